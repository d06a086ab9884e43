// Free functions: tensor creation, ops over several tensors, and runtime settings.
import { torch, type DType } from './native.js';
import { Tensor } from './tensor.js';
import type { PackedWeight } from './packed.js';

export interface Placement {
  dtype?: DType;
  device?: string;
}

type TypedArray = Float32Array | Float64Array | Int32Array | BigInt64Array | Uint8Array | Int8Array | Int16Array | Uint16Array;

const typedArrayDtype = (data: TypedArray): DType => {
  if (data instanceof Float32Array) return 'float32';
  if (data instanceof Float64Array) return 'float64';
  if (data instanceof Int32Array) return 'int32';
  if (data instanceof BigInt64Array) return 'int64';
  if (data instanceof Int8Array) return 'int8';
  if (data instanceof Int16Array) return 'int16';
  if (data instanceof Uint8Array) return 'uint8';
  throw new Error('Uint16Array needs an explicit dtype (float16 or bfloat16)');
};

/** A tensor holding a copy of the given values. Plain number arrays become float32 unless dtype says otherwise. */
export function tensor(data: number[] | TypedArray, shape?: number[], placement: Placement = {}): Tensor {
  const dims = shape ?? [data.length];
  if (Array.isArray(data)) {
    // Staged as float64, exact for integers up to 2^53 (token ids, positions), then converted natively:
    // a BigInt64Array would allocate a BigInt per element on the JS heap.
    const dtype = placement.dtype ?? 'float32';
    const staged = fromBytes(bytesOf(Float64Array.from(data)), 'float64', dims, { copy: true });
    const t = staged.to({ dtype, device: placement.device });
    staged.dispose();
    return t;
  }
  const staged = fromBytes(bytesOf(data), placement.dtype ?? typedArrayDtype(data), dims, { copy: true });
  if (!placement.device) return staged;
  const t = staged.to({ device: placement.device });
  staged.dispose();
  return t;
}

/** Int64 token ids, the dtype embedding and cross-entropy want. */
export function ids(values: number[], shape?: number[], device?: string): Tensor {
  return tensor(values, shape, { dtype: 'int64', device });
}

/** A CPU tensor over raw little-endian bytes; with copy=false it aliases them (zero-copy). */
export function fromBytes(bytes: Uint8Array, dtype: DType, shape: number[], { copy = false } = {}): Tensor {
  return new Tensor(torch.fromBuffer(bytes, dtype, shape, copy));
}

const bytesOf = (data: TypedArray): Uint8Array => new Uint8Array(data.buffer, data.byteOffset, data.byteLength);

/**
 * The most negative finite value of a floating dtype: what an additive attention mask adds where a key is
 * blocked. float32's lowest overflows bfloat16 and float16, so each dtype has its own.
 */
export const lowestFinite = (dtype: DType): number =>
  dtype === 'float16' ? -65504 : dtype === 'bfloat16' ? -3.3895313892515355e38 : -3.4028234663852886e38;

export const zeros = (shape: number[], p: Placement = {}) => new Tensor(torch.zeros(shape, p.dtype, p.device));
export const ones = (shape: number[], p: Placement = {}) => new Tensor(torch.ones(shape, p.dtype, p.device));
export const empty = (shape: number[], p: Placement = {}) => new Tensor(torch.empty(shape, p.dtype, p.device));
/**
 * empty() for a model's weights. On the CPU each large one gets a mapping of its own, on huge pages where the
 * kernel grants them (native/src/huge-pages.h), rather than a block of the allocator's heap: a weight freed
 * (packed in its place, say) goes straight back to the system, and leaves no hole of gigabytes that a
 * training step's short-lived tensors would then fault in page by page.
 */
export const emptyForWeights = (shape: number[], p: Placement = {}) =>
  !p.device || p.device === 'cpu' ? new Tensor(torch.emptyOnHugePages(shape, p.dtype)) : empty(shape, p);
export const full = (shape: number[], value: number, p: Placement = {}) =>
  new Tensor(torch.full(shape, value, p.dtype, p.device));
export const randn = (shape: number[], p: Placement = {}) => new Tensor(torch.randn(shape, p.dtype, p.device));
export const rand = (shape: number[], p: Placement = {}) => new Tensor(torch.rand(shape, p.dtype, p.device));
export const arange = (start: number, end: number, p: Placement = {}, step = 1) =>
  new Tensor(torch.arange(start, end, step, p.dtype ?? 'int64', p.device));

export const cat = (tensors: Tensor[], dim = 0) => new Tensor(torch.cat(tensors.map((t) => t.handle), dim));
export const stack = (tensors: Tensor[], dim = 0) => new Tensor(torch.stack(tensors.map((t) => t.handle), dim));
export const where = (condition: Tensor, a: Tensor | number, b: Tensor | number) =>
  new Tensor(
    torch.where(
      condition.handle,
      typeof a === 'number' ? a : a.handle,
      typeof b === 'number' ? b : b.handle,
      typeof a === 'number',
      typeof b === 'number',
    ),
  );
/** x @ weight.T + bias, with weight in PyTorch's [out, in] layout. */
export const linear = (x: Tensor, weight: Tensor, bias?: Tensor | null) =>
  new Tensor(torch.linear(x.handle, weight.handle, bias?.handle));
export const embedding = (weight: Tensor, indices: Tensor) => new Tensor(torch.embedding(weight.handle, indices.handle));
export const dropout = (x: Tensor, p: number, train: boolean) =>
  p > 0 && train ? new Tensor(torch.dropout(x.handle, p, train)) : x;
export const multinomial = (probs: Tensor, samples: number, replacement = false) =>
  new Tensor(torch.multinomial(probs.handle, samples, replacement));
/** Cross-entropy of logits [N, C] against targets [N]; targets equal to ignoreIndex do not count. */
export const crossEntropy = (
  logits: Tensor,
  targets: Tensor,
  { ignoreIndex = -100, reduction = 'mean' }: { ignoreIndex?: number; reduction?: 'mean' | 'sum' | 'none' } = {},
) => new Tensor(torch.crossEntropy(logits.handle, targets.handle, ignoreIndex, reduction));

/** RMSNorm in float32 whatever x's dtype, as Hugging Face computes it; offset 1 scales by (1 + weight) (Gemma). */
export const rmsNorm = (x: Tensor, weight: Tensor, eps: number, offset = 0) =>
  new Tensor(torch.rmsNorm(x.handle, weight.handle, eps, offset));

/**
 * x Wᵀ + bias + scale · (z Aᵀ) Bᵀ with z = loraInput ?? x, as one autograd node that computes no gradient
 * for the frozen W and bias. b may be a list of [out_i, rank_i] blocks (adapters of projections fused
 * into W, whose A matrices are stacked in a), each adding into its own block of output columns.
 */
export const loraLinear = (
  x: Tensor,
  weight: Tensor,
  bias: Tensor | null,
  a: Tensor,
  b: Tensor | Tensor[],
  scale: number,
  loraInput?: Tensor,
  /** W packed for x Wᵀ and g W (tensor/packed.ts): the products read the tiles. Refused once W has changed. */
  packed?: PackedWeight | null,
) =>
  new Tensor(
    torch.loraLinear(
      x.handle, weight.handle, bias?.handle, a.handle, (Array.isArray(b) ? b : [b]).map((t) => t.handle), scale, loraInput?.handle,
      packed?.forward?.tiles.handle, packed?.backward.tiles.handle, packed?.sourceVersion ?? 0,
    ),
  );

/** act(gate) · up over a fused [..., 2n] input whose first half is the gate. */
export const gatedActivation = (gateUp: Tensor, activation: 'silu' | 'gelu_tanh') =>
  new Tensor(torch.gatedActivation(gateUp.handle, activation));

export interface LinearCrossEntropyOptions {
  ignoreIndex?: number;
  /** Rows whose logits exist at once. */
  chunkRows?: number;
  /** Logits become tanh(logits / softcap) · softcap (0: none). */
  softcap?: number;
  /** Computes hidden's gradient (chunk by chunk, in the forward pass) so that backward() can reach it. */
  withGrad?: boolean;
  /** The weight packed for h Wᵀ and g W (tensor/packed.ts): the products read the tiles. Refused once W has changed. */
  packed?: PackedWeight | null;
}

/**
 * Cross-entropy of hidden Wᵀ against targets, summed over the rows that have a target, without ever
 * holding all rows' logits: [loss sum (float32 scalar), rows whose argmax is the target (int64 scalar)].
 */
export function linearCrossEntropy(
  hidden: Tensor,
  weight: Tensor,
  targets: Tensor,
  { ignoreIndex = -100, chunkRows = 256, softcap = 0, withGrad = false, packed }: LinearCrossEntropyOptions = {},
): [Tensor, Tensor] {
  const [loss, correct] = torch.linearCrossEntropy(
    hidden.handle, weight.handle, targets.handle, ignoreIndex, chunkRows, softcap, withGrad,
    packed?.forward?.tiles.handle, packed?.backward.tiles.handle, packed?.sourceVersion ?? 0,
  );
  return [new Tensor(loss), new Tensor(correct)];
}

/** What this libtorch's scaled_dot_product_attention can do (none before 2.0; grouped queries from 2.5). */
export const sdpaSupport = (() => {
  let support: { sdpa: boolean; groupedQueries: boolean } | undefined;
  return () => (support ??= torch.sdpaSupport());
})();

/** softmax(q kᵀ · scale + mask) v; mask is boolean (true = may attend) or additive; k, v may have fewer heads than q. */
/** One AdamW step over every parameter that has a gradient (torch.optim.AdamW's arithmetic), in one native call. */
export const adamwStep = (
  params: Tensor[],
  moments: [Tensor[], Tensor[]],
  { learningRate, beta1, beta2, eps, weightDecay, step }: { learningRate: number; beta1: number; beta2: number; eps: number; weightDecay: number; step: number },
) => torch.adamwStep(params.map((p) => p.handle), moments[0].map((m) => m.handle), moments[1].map((v) => v.handle), learningRate, beta1, beta2, eps, weightDecay, step);

/** Scales the parameters' gradients so their global L2 norm is at most maxNorm; returns the norm before clipping. */
export const clipGradNorm = (params: Tensor[], maxNorm: number): number => torch.clipGradNorm(params.map((p) => p.handle), maxNorm);

/** Rotary position embedding, x·cos + rotate_half(x)·sin, as one pass each way; the result is contiguous. */
export const rotary = (x: Tensor, cos: Tensor, sin: Tensor) => new Tensor(torch.rotary(x.handle, cos.handle, sin.handle));

/**
 * Attention that keeps its probabilities for backward (CPU, float32 or bfloat16): faster than the flash kernel
 * on short rows, at H·T·S values of memory per layer. allowed: bool [B or 1, 1, T, S].
 */
export const materializedAttention = (q: Tensor, k: Tensor, v: Tensor, { allowed, causal = false, scale }: { allowed?: Tensor | null; causal?: boolean; scale: number }) =>
  new Tensor(torch.materializedAttention(q.handle, k.handle, v.handle, allowed?.handle, causal, scale));

export const scaledDotProductAttention = (q: Tensor, k: Tensor, v: Tensor, { mask, causal = false, scale }: { mask?: Tensor | null; causal?: boolean; scale: number }) =>
  new Tensor(torch.scaledDotProductAttention(q.handle, k.handle, v.handle, mask?.handle, causal, scale));

/** Runs fn with autograd recording off (like torch.no_grad()). */
export function noGrad<T>(fn: () => T): T {
  const previous = torch.setGradEnabled(false);
  try {
    return fn();
  } finally {
    torch.setGradEnabled(previous);
  }
}

export const manualSeed = (seed: number) => torch.manualSeed(seed);
export const setNumThreads = (threads: number) => torch.setNumThreads(threads);
export const getNumThreads = () => torch.getNumThreads();
export const setBlasThreads = (threads: number) => torch.setBlasThreads(threads);
export const liveTensorCount = () => torch.liveTensors();
export const cudaDeviceCount = () => torch.cudaDeviceCount();
export const libtorchVersion = () => torch.version();
export const heapStats = () => torch.heapStats();
export const profilerStart = (recordShapes = false) => torch.profilerStart(recordShapes);
export const profilerStop = () => torch.profilerStop();
export const mallocTrim = () => torch.mallocTrim();
export const cudaMemory = (index: number) => torch.cudaMemory(index);
