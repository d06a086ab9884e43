// Loads the libtorch addon and states the shape of its functions. Every function takes and returns
// opaque handles; the Tensor class in tensor.ts is the only intended caller.
import { createRequire } from 'node:module';
import { existsSync } from 'node:fs';
import { packageRoot } from '../package-root.js';
import path from 'node:path';

/** A slot in the addon's tensor table (index and generation packed in a number). */
export type Handle = number & { readonly __brand: 'TensorHandle' };

/** The kernels that multiply packed bfloat16 operands on the CPU (native/src/packed-matmul.h). */
export type PackedKernel = 'amx' | 'avx512bf16';
export type DType = 'float32' | 'float16' | 'bfloat16' | 'float64' | 'int64' | 'int32' | 'int16' | 'int8' | 'uint8' | 'bool';
type T = Handle;
type TorNum = Handle | number;
type Opt<X> = X | null | undefined;

export interface NativeTorch {
  empty(shape: number[], dtype?: DType, device?: string): T;
  emptyOnHugePages(shape: number[], dtype?: DType): T;
  zeros(shape: number[], dtype?: DType, device?: string): T;
  ones(shape: number[], dtype?: DType, device?: string): T;
  full(shape: number[], value: number, dtype?: DType, device?: string): T;
  arange(start: number, end: number, step: number, dtype?: DType, device?: string): T;
  randn(shape: number[], dtype?: DType, device?: string): T;
  rand(shape: number[], dtype?: DType, device?: string): T;
  fromBuffer(bytes: Uint8Array, dtype: DType, shape: number[], copy: boolean): T;
  toBuffer(t: T): Buffer;
  item(t: T): number;
  shape(t: T): number[];
  dtype(t: T): DType;
  device(t: T): string;
  isContiguous(t: T): boolean;
  /** How many times the tensor's storage (shared with its views) has been changed in place. */
  tensorVersion(t: T): number;
  replaceTensor(target: T, source: T): void;
  readFileInto(t: T, fd: number, position: number): number;
  dispose(t: T): void;
  liveTensors(): number;

  neg(a: T): T; exp(a: T): T; log(a: T): T; sqrt(a: T): T; rsqrt(a: T): T; abs(a: T): T; tanh(a: T): T;
  sigmoid(a: T): T; silu(a: T): T; relu(a: T): T; sin(a: T): T; cos(a: T): T; reciprocal(a: T): T; floor(a: T): T;
  logicalNot(a: T): T; isFinite(a: T): T;
  // Each binary op takes a tensor; its ...Scalar twin takes a number (handles are numbers too).
  add(a: T, b: T): T; sub(a: T, b: T): T; mul(a: T, b: T): T; div(a: T, b: T): T; pow(a: T, b: T): T;
  eq(a: T, b: T): T; ne(a: T, b: T): T; lt(a: T, b: T): T; le(a: T, b: T): T; gt(a: T, b: T): T; ge(a: T, b: T): T;
  addScalar(a: T, b: number): T; subScalar(a: T, b: number): T; mulScalar(a: T, b: number): T; divScalar(a: T, b: number): T;
  powScalar(a: T, b: number): T; eqScalar(a: T, b: number): T; neScalar(a: T, b: number): T; ltScalar(a: T, b: number): T;
  leScalar(a: T, b: number): T; gtScalar(a: T, b: number): T; geScalar(a: T, b: number): T;
  maximum(a: T, b: T): T; minimum(a: T, b: T): T; logicalAnd(a: T, b: T): T; logicalOr(a: T, b: T): T;
  gelu(a: T, approximate: 'none' | 'tanh'): T;
  clamp(a: T, min: Opt<number>, max: Opt<number>): T;
  where(condition: T, a: TorNum, b: TorNum, aIsScalar: boolean, bIsScalar: boolean): T;
  maskedFill(a: T, mask: T, value: number): T;
  sum(a: T, dims: Opt<number[]>, keepdim: boolean, dtype: Opt<DType>): T;
  mean(a: T, dims: Opt<number[]>, keepdim: boolean): T;
  amax(a: T, dims: number[], keepdim: boolean): T;
  argmax(a: T, dim: number, keepdim: boolean): T;
  norm(a: T, p: number): T;
  cumsum(a: T, dim: number): T;
  softmax(a: T, dim: number, dtype: Opt<DType>): T;
  logSoftmax(a: T, dim: number, dtype: Opt<DType>): T;
  matmul(a: T, b: T): T;
  linear(x: T, weight: T, bias: Opt<T>): T;
  embedding(weight: T, indices: T): T;
  crossEntropy(logits: T, targets: T, ignoreIndex: number, reduction: 'mean' | 'sum' | 'none'): T;
  dropout(a: T, p: number, train: boolean): T;
  topk(a: T, k: number, dim: number, largest: boolean): [T, T];
  sort(a: T, dim: number, descending: boolean): [T, T];
  multinomial(probs: T, samples: number, replacement: boolean): T;
  add_(a: T, b: T): T; sub_(a: T, b: T): T; mul_(a: T, b: T): T; div_(a: T, b: T): T;
  addScalar_(a: T, b: number): T; subScalar_(a: T, b: number): T; mulScalar_(a: T, b: number): T; divScalar_(a: T, b: number): T;
  addScaled_(a: T, b: T, alpha: number): T;
  addcmul_(a: T, b: T, c: T, value: number): T;
  addcdiv_(a: T, b: T, c: T, value: number): T;
  lerp_(a: T, end: T, weight: number): T;
  copy_(a: T, src: T): T; indexCopy_(a: T, dim: number, index: T, src: T): T; zero_(a: T): T; fill_(a: T, value: number): T; sqrt_(a: T): T;
  normal_(a: T, mean: number, std: number): T;
  uniform_(a: T, low: number, high: number): T;

  view(a: T, shape: number[]): T; reshape(a: T, shape: number[]): T;
  transpose(a: T, dim0: number, dim1: number): T; permute(a: T, dims: number[]): T;
  unsqueeze(a: T, dim: number): T; squeeze(a: T, dim: number): T; expand(a: T, shape: number[]): T;
  flatten(a: T, startDim: number, endDim: number): T;
  slice(a: T, dim: number, start: number, end: number, step: number): T;
  select(a: T, dim: number, index: number): T;
  indexSelect(a: T, dim: number, indices: T): T;
  gather(a: T, dim: number, indices: T): T;
  cat(tensors: T[], dim: number): T; stack(tensors: T[], dim: number): T;
  split(a: T, sizes: number[], dim: number): T[];
  repeatInterleave(a: T, repeats: number, dim: number): T;
  tril(a: T, diagonal: number): T; triu(a: T, diagonal: number): T;
  contiguous(a: T): T; clone(a: T): T; detach(a: T): T;
  to(a: T, dtype: Opt<DType>, device: Opt<string>): T;

  requiresGrad_(a: T, value: boolean): T;
  requiresGrad(a: T): boolean;
  grad(a: T): T | null;
  clearGrad(a: T): void;
  backward(a: T, gradient: Opt<T>): void;
  setGradEnabled(enabled: boolean): boolean;
  isGradEnabled(): boolean;
  setNumThreads(n: number): void;
  getNumThreads(): number;
  /** OpenBLAS's own pool (no effect with other BLAS builds). */
  setBlasThreads(n: number): void;
  manualSeed(seed: number): void;
  cudaDeviceCount(): number;
  version(): string;
  /** glibc malloc's view of native memory (main arena and mmapped blocks). */
  heapStats(): { inUseBytes: number; freeBytes: number; mmappedBytes: number; arenaBytes: number };
  /** malloc_trim(0): gives the heap's free pages back to the system. */
  mallocTrim(): boolean;
  /** Free and total memory of a CUDA device, or null without a CUDA runtime. */
  cudaMemory(index: number): { freeBytes: number; totalBytes: number } | null;

  /** libtorch's op profiler (2.x): ops recorded between start and stop, as [name, start ns, duration ns, thread, shapes]. */
  profilerStart(recordShapes: boolean): void;
  profilerStop(): [string, number, number, number, string][];

  // bfloat16 products with the right operand packed once, on AMX tiles or AVX512-BF16 (native/src/packed-matmul.h).
  packedKernel(): PackedKernel | null;
  packRight(w: T): T;
  packedTakes(left: T, packed: T): boolean;
  multiplyPacked(left: T, packed: T): T;
  multiplyPackedTransposed(left: T, packed: T): T;
  unpackRight(packed: T): T;

  // Fused pieces with hand-written backward passes (native/src/fused.cc).
  rmsNorm(x: T, weight: T, eps: number, offset: number): T;
  loraLinear(x: T, weight: T, bias: Opt<T>, a: T, bs: T[], scale: number, loraInput: Opt<T>, forwardTiles: Opt<T>, backwardTiles: Opt<T>, packedVersion: number): T;
  gatedActivation(gateUp: T, activation: 'silu' | 'gelu_tanh'): T;
  linearCrossEntropy(hidden: T, weight: T, targets: T, ignoreIndex: number, chunkRows: number, softcap: number, withGrad: boolean, forwardTiles: Opt<T>, backwardTiles: Opt<T>, packedVersion: number): [T, T];
  sdpaSupport(): { sdpa: boolean; groupedQueries: boolean };
  scaledDotProductAttention(q: T, k: T, v: T, mask: Opt<T>, causal: boolean, scale: number): T;
  rotary(x: T, cos: T, sin: T): T;
  adamwStep(params: T[], firstMoments: T[], secondMoments: T[], learningRate: number, beta1: number, beta2: number, eps: number, weightDecay: number, step: number): void;
  clipGradNorm(params: T[], maxNorm: number): number;
  materializedAttention(q: T, k: T, v: T, allowed: Opt<T>, causal: boolean, scale: number): T;
}

function findAddon(): string {
  const addon = path.join(packageRoot, 'native', 'build', 'Release', 'attune_torch.node');
  if (!existsSync(addon)) throw new Error('the libtorch addon is not built: run `npm run build:native` (see README)');
  return addon;
}

// libgomp reads these once, when libtorch loads. Idle OpenMP workers sleep rather than spin on the cores
// that OpenBLAS's threads and other processes need (it only matters with several ATen threads), but
// first spin briefly (100,000 polls, well under a millisecond): a training step runs thousands of short
// parallel regions, and waking a sleeping worker for each cost 6% of a Llama-3.2-1B step (bfloat16,
// 2 threads: 2.21 s sleeping at once, 2.08 s with the short spin; `npm run bench`).
process.env.OMP_WAIT_POLICY ??= 'PASSIVE';
process.env.GOMP_SPINCOUNT ??= '100000';

export const torch = createRequire(import.meta.url)(findAddon()) as NativeTorch;
