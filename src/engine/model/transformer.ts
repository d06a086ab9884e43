// The decoder-only transformer shared by Llama, Qwen 2/3 and Gemma 3: one readable forward pass,
// shapes in the comments (B batch, T new tokens, S attended tokens, H heads, K kv heads, D head dim).
// Weights live in one compute dtype (float32, bfloat16 or float16); norms, softmax and the loss run in
// float32, as Hugging Face runs them.
import {
  embedding, linear, PackedMatrix, PackedWeight, type WeightPacking, linearCrossEntropy, lowestFinite, materializedAttention, rmsNorm, gatedActivation, scaledDotProductAttention, sdpaSupport, tensor, tidy, zeros,
  type DType, type Tensor,
} from '../tensor/index.js';
import type { ModelConfig } from './config.js';
import { Linear, FusedLinear } from './linear.js';
import { applyRope, ropeTables, type RopeTables } from './rope.js';
import type { AttentionCache } from './kv-cache.js';

/** torch.finfo(torch.float32).min, as Hugging Face masks with (it rounds to -inf in float16, harmless: no row is ever fully blocked). */

export interface Block {
  inputNorm: Tensor;
  postAttentionNorm: Tensor;
  /** Gemma only: norms around the MLP, after attention's output. */
  preFeedforwardNorm?: Tensor;
  postFeedforwardNorm?: Tensor;
  qNorm?: Tensor;
  kNorm?: Tensor;
  q: Linear; k: Linear; v: Linear; o: Linear;
  gate: Linear; up: Linear; down: Linear;
  /** q/k/v and gate/up as one product each, as they share their input; built from the parts when absent. */
  qkv?: FusedLinear;
  gateUp?: FusedLinear;
}

export interface Weights {
  embed: Tensor;
  blocks: Block[];
  finalNorm: Tensor;
  /** Equal to embed when the head is tied. */
  head: Tensor;
}

export interface ForwardOptions {
  /** [B, T] position of each token within its example. Defaults to 0..T-1 (after the cache's length). */
  positions?: Tensor;
  /** [B, T] example id of each token when several examples are packed in one row; attention stays inside each. */
  segments?: Tensor;
  cache?: AttentionCache;
  /**
   * Additive masks [B, 1, 1, T, S] the caller built, used instead of the causal and segment masks: batched
   * decoding over a paged cache, where each row attends only its own tokens (generate/batch-decoder.ts).
   */
  masks?: AttentionMasks;
  train?: boolean;
}

/** Additive attention masks: 0 where a query may attend, the lowest float where not; null when nothing is blocked. */
export interface AttentionMasks {
  full: Tensor | null;
  /** Gemma's sliding-window layers. */
  sliding: Tensor | null;
}

/**
 * How attention is computed: libtorch's scaled_dot_product_attention (2.0+); matmul-softmax-matmul as
 * Hugging Face's eager attention; the same with the softmax and its backward as single passes that keep
 * the probabilities (materializedAttention: CPU, short rows); or 'auto', the fastest that fits.
 */
export type AttentionKernel = 'auto' | 'sdpa' | 'eager' | 'materialized';

/**
 * Rows of up to this many keys use materializedAttention on the CPU: on 2×256-token steps it is
 * about 3× faster than the flash kernel (whose tiles suit long rows), and the probabilities it keeps,
 * H·S values per token per layer, stay small beside the other activations.
 */
const materializedAttentionMaxKeys = 512;

/** Whether attention on the CPU keeps its probabilities for rows of this many keys (the memory plan counts them). */
export function keepsAttentionProbabilities(device: string, dtype: string, keys: number): boolean {
  return device === 'cpu' && (dtype === 'float32' || dtype === 'bfloat16') && keys <= materializedAttentionMaxKeys;
}

/** What every block of one forward pass shares: rotary tables at the tokens' positions and the masks. */
export interface ForwardContext {
  global: [Tensor, Tensor];
  local: [Tensor, Tensor];
  masks: { full: Mask; sliding: Mask };
  options: ForwardOptions;
}

/**
 * Where a query may attend: `allowed` [B, 1, T, S] (true = may attend; always within the causal mask); causal alone needs no tensor;
 * `additive` [B, 1, 1, T, S] is a caller's (ForwardOptions.masks); null = everywhere.
 */
type Mask = { causal: true } | { allowed: Tensor } | { additive: Tensor } | null;

/** Hugging Face module paths of each block's projections, as PEFT names them. */
export const projectionPaths = {
  q: 'self_attn.q_proj', k: 'self_attn.k_proj', v: 'self_attn.v_proj', o: 'self_attn.o_proj',
  gate: 'mlp.gate_proj', up: 'mlp.up_proj', down: 'mlp.down_proj',
} as const;
export type Projection = keyof typeof projectionPaths;

/** Positions the rotary tables cover at first; they grow (doubling, up to the model's context) when a sequence needs more. */
const initialRopePositions = 4096;

export class Transformer {
  private rope!: RopeTables;
  /** Gemma's sliding layers use their own base frequency. */
  private localRope?: RopeTables;
  private ropePositions = 0;
  attentionKernel: AttentionKernel;
  private readonly fused: { qkv: FusedLinear; gateUp: FusedLinear }[];
  /** The head's weight packed (tensor/packed.ts) while a training run keeps it (packProjections). */
  private packedHead: PackedWeight | null = null;

  constructor(
    readonly config: ModelConfig,
    readonly weights: Weights,
    readonly device = 'cpu',
  ) {
    this.coverPositions(Math.min(config.maxPositions, initialRopePositions));
    this.fused = weights.blocks.map((b) => {
      b.qkv ??= FusedLinear.fromParts([b.q, b.k, b.v]);
      b.gateUp ??= FusedLinear.fromParts([b.gate, b.up]);
      [b.q, b.k, b.v] = b.qkv.parts;
      [b.gate, b.up] = b.gateUp.parts;
      return { qkv: b.qkv, gateUp: b.gateUp };
    });
    this.attentionKernel = 'auto';
  }

  /** The weights' (compute) dtype. */
  get dtype(): DType {
    return this.weights.embed.dtype;
  }

  /**
   * Packs the adapted projections' frozen weights for the CPU's packed bfloat16 kernel for a training run (tensor/packed.ts),
   * where their sizes fit the tiles: beside them, two more copies, one for each product, and the
   * vocabulary head's too; instead of them, none, and the head stays as it is (its tiles instead of it
   * save no memory over leaving it unpacked, and at the 8B head's shape oneDNN's products were faster:
   * 570 ms a step against 690). Returns what drops the tiles again (and puts back what they stood in for).
   */
  packProjections(packing: WeightPacking): () => void {
    const projections = this.weights.blocks.flatMap((block, i) => [this.fused[i].qkv, block.o, this.fused[i].gateUp, block.down]);
    for (const projection of projections) projection.pack(packing);
    if (packing === 'beside' && !this.packedHead && PackedMatrix.fits(this.weights.head)) this.packedHead = PackedWeight.of(this.weights.head);
    return () => {
      for (const projection of projections) projection.unpack();
      this.packedHead?.dispose();
      this.packedHead = null;
    };
  }

  /** Every projection by its PEFT module path, e.g. `model.layers.0.self_attn.q_proj`. */
  *linears(): Generator<[string, Linear, Projection]> {
    for (const [i, block] of this.weights.blocks.entries()) {
      for (const [key, path] of Object.entries(projectionPaths) as [Projection, string][]) {
        yield [`model.layers.${i}.${path}`, block[key], key];
      }
    }
  }

  /** ids [B, T] → the embedded tokens [B, T, hidden] and what every block needs. */
  embed(ids: Tensor, options: ForwardOptions = {}): { x: Tensor; context: ForwardContext } {
    const { config, weights } = this;
    const [batch, length] = ids.shape;
    const past = options.cache?.length ?? 0;
    const positions = options.positions ?? defaultPositions(batch, length, past, this.device);
    let x = embedding(weights.embed, ids); // [B, T, hidden]
    if (config.gemma) x = x.mul(Math.fround(Math.sqrt(config.hiddenSize)));
    if (options.segments && past > 0) throw new Error('packed sequences cannot continue a KV cache');
    this.coverPositions(past + length);
    const global = gatherRope(this.rope, positions, this.dtype);
    const local = this.localRope ? gatherRope(this.localRope, positions, this.dtype) : global;
    const masks = options.masks ? callerMasks(options.masks) : this.attentionMasks(positions, options.segments, past);
    return { x, context: { global, local, masks, options } };
  }

  /** Makes the rotary tables cover positions 0..needed-1 (positions never exceed a row's slots). */
  private coverPositions(needed: number): void {
    if (needed <= this.ropePositions) return;
    const { headDim, maxPositions, ropeTheta, ropeScaling, gemma } = this.config;
    const positions = Math.min(maxPositions, Math.max(needed, 2 * this.ropePositions));
    const old = [this.rope, this.localRope];
    this.rope = ropeTables(headDim, positions, ropeTheta, ropeScaling, this.device);
    if (gemma) this.localRope = ropeTables(headDim, positions, gemma.ropeLocalTheta, { type: 'default', factor: 1 }, this.device);
    for (const tables of old) {
      tables?.cos.dispose();
      tables?.sin.dispose();
    }
    this.ropePositions = positions;
  }

  /** Block i of the stack: [B, T, hidden] → [B, T, hidden]. */
  block(i: number, x: Tensor, context: ForwardContext): Tensor {
    const sliding = this.config.gemma?.slidingLayers[i] ?? false;
    const rope = sliding ? context.local : context.global;
    const mask = sliding ? context.masks.sliding : context.masks.full;
    const block = this.weights.blocks[i];
    const fused = this.fused[i];
    const train = context.options.train ?? false;
    let h = this.attention(block, fused.qkv, this.norm(x, block.inputNorm), rope, mask, i, context.options);
    if (block.preFeedforwardNorm) {
      x = x.add(this.norm(h, block.postAttentionNorm));
      h = this.mlp(block, fused.gateUp, this.norm(x, block.preFeedforwardNorm), train);
      return x.add(this.norm(h, block.postFeedforwardNorm!));
    }
    x = x.add(h);
    return x.add(this.mlp(block, fused.gateUp, this.norm(x, block.postAttentionNorm), train));
  }

  /** The final norm, after the last block. */
  finalNorm(x: Tensor): Tensor {
    return this.norm(x, this.weights.finalNorm);
  }

  /** ids [B, T] → final hidden states [B, T, hidden]. */
  hiddenStates(ids: Tensor, options: ForwardOptions = {}): Tensor {
    let { x, context } = this.embed(ids, options);
    for (let i = 0; i < this.weights.blocks.length; i++) {
      const run = () => this.block(i, x, context);
      // Outside training nothing needs a block's intermediates once it is done: free them before the next block.
      x = options.train ? run() : tidy(run);
    }
    options.cache?.advance(ids.size(1));
    return this.finalNorm(x);
  }

  /** hidden [..., hidden] → logits [..., vocab]. */
  logits(hidden: Tensor): Tensor {
    const logits = linear(hidden, this.weights.head);
    const cap = this.config.gemma?.finalLogitSoftcapping;
    return cap ? logits.div(cap).tanh().mul(cap) : logits;
  }

  forward(ids: Tensor, options: ForwardOptions = {}): Tensor {
    return this.logits(this.hiddenStates(ids, options));
  }

  /**
   * Cross-entropy of hidden states [N, hidden] against targets [N], summed in float32, chunkRows rows of
   * logits at a time: [loss sum, correct predictions]. With withGrad, backward() reaches the hidden states.
   */
  lossSum(hidden: Tensor, targets: Tensor, { chunkRows = 256, withGrad = false } = {}): [Tensor, Tensor] {
    const softcap = this.config.gemma?.finalLogitSoftcapping ?? 0;
    return linearCrossEntropy(hidden, this.weights.head, targets, { chunkRows, softcap, withGrad, packed: this.packedHead });
  }

  private attention(
    block: Block,
    qkv: FusedLinear,
    x: Tensor,
    [cos, sin]: [Tensor, Tensor],
    mask: Mask,
    layer: number,
    options: ForwardOptions,
  ): Tensor {
    const { numHeads: H, numKvHeads: K, headDim: D, gemma } = this.config;
    const train = options.train ?? false;
    const [B, T] = x.shape;
    const [qFlat, kFlat, vFlat] = qkv.forward(x, train);
    let q = qFlat.view(B, T, H, D).transpose(1, 2); // [B, H, T, D]
    let k = kFlat.view(B, T, K, D).transpose(1, 2); // [B, K, T, D]
    let v = vFlat.view(B, T, K, D).transpose(1, 2);
    if (block.qNorm) q = this.norm(q, block.qNorm);
    if (block.kNorm) k = this.norm(k, block.kNorm);
    q = applyRope(q, cos, sin);
    k = applyRope(k, cos, sin);
    if (options.cache) [k, v] = options.cache.append(layer, k, v); // [B, K, S, D]
    const scale = gemma ? Math.pow(gemma.queryPreAttnScalar, -0.5) : 1 / Math.sqrt(D);
    const kernel = this.kernelFor(k.size(2), mask);
    const out =
      kernel === 'materialized'
        ? this.materialized(q, k, v, mask, scale)
        : kernel === 'sdpa'
          ? this.sdpa(q, k, v, mask, scale)
          : this.eagerAttention(q, k, v, mask, scale);
    return block.o.forward(out.transpose(1, 2).reshape(B, T, H * D), train);
  }

  // The same choice with and without gradients: DPO's reference pass must compute exactly what the policy's does.
  private kernelFor(keys: number, mask: Mask): Exclude<AttentionKernel, 'auto'> {
    if (this.attentionKernel !== 'auto') return this.attentionKernel;
    // Softcapped attention scores (Gemma 2) have only the eager path; a caller's additive mask only the other two.
    if (this.config.gemma?.attnLogitSoftcapping) return 'eager';
    const additive = mask !== null && 'additive' in mask;
    if (!additive && keepsAttentionProbabilities(this.device, this.dtype, keys)) return 'materialized';
    return sdpaSupport().sdpa ? 'sdpa' : 'eager';
  }

  private materialized(q: Tensor, k: Tensor, v: Tensor, mask: Mask, scale: number): Tensor {
    if (mask !== null && 'additive' in mask) throw new Error('materialized attention takes no additive mask');
    // Every mask attentionMasks makes is causal (an allowed mask only hides more), and saying so lets each row stop at its diagonal.
    const causal = mask !== null;
    return materializedAttention(q, k, v, { allowed: mask === null || 'causal' in mask ? null : mask.allowed, causal, scale });
  }

  /** libtorch's fused kernel (flash attention on CPU and CUDA), which never materialises the scores. */
  private sdpa(q: Tensor, k: Tensor, v: Tensor, mask: Mask, scale: number): Tensor {
    const groups = q.size(1) / k.size(1);
    if (groups > 1 && !sdpaSupport().groupedQueries) [k, v] = [k.repeatInterleave(groups, 1), v.repeatInterleave(groups, 1)];
    const causal = mask !== null && 'causal' in mask;
    const given = mask === null || causal ? null : 'allowed' in mask ? mask.allowed : mask.additive.squeeze(2); // [B, 1, T, S]
    return scaledDotProductAttention(q, k, v, { mask: given, causal, scale });
  }

  /** Matmul, softmax in float32, matmul: Hugging Face's eager attention (and the only one libtorch 1.x has). */
  private eagerAttention(q: Tensor, k: Tensor, v: Tensor, mask: Mask, scale: number): Tensor {
    const [B, H, T, D] = q.shape;
    const K = k.size(1);
    const S = k.size(2);
    // Grouped-query attention without copying K and V: fold each kv head's queries together.
    const groups = H / K;
    let scores = q.reshape(B, K, groups * T, D).matmul(k.transpose(2, 3)).mul(scale).view(B, K, groups, T, S);
    const softcap = this.config.gemma?.attnLogitSoftcapping;
    if (softcap) scores = scores.div(softcap).tanh().mul(softcap);
    const additive = this.additiveMask(mask, T, S);
    if (additive) scores = scores.add(additive); // [B, 1, 1, T, S]: 0 where allowed, the dtype's lowest finite value where blocked
    const probs = scores.softmax(-1, 'float32').to({ dtype: q.dtype }).view(B, K, groups * T, S);
    return probs.matmul(v).view(B, H, T, D);
  }

  /**
   * The additive form [B, 1, 1, T, S]: 0 where allowed, the dtype's lowest finite value where blocked. Additive rather
   * than masked_fill: a broadcast add is an order of magnitude faster over the scores, forward and
   * backward, and the lowest finite value (not -inf) keeps fully blocked rows finite.
   */
  private additiveMask(mask: Mask, T: number, S: number): Tensor | null {
    if (mask === null) return null;
    if ('additive' in mask) return mask.additive;
    const allowed = 'allowed' in mask ? mask.allowed : causalAllowed(T, S, this.device).unsqueeze(0).unsqueeze(0);
    return zeros(allowed.shape, { dtype: this.dtype, device: this.device }).maskedFill(allowed.logicalNot(), lowestFinite(this.dtype)).unsqueeze(1);
  }

  private mlp(block: Block, gateUp: FusedLinear, x: Tensor, train: boolean): Tensor {
    return block.down.forward(gatedActivation(gateUp.forwardFused(x, train), this.config.activation), train);
  }

  /** RMSNorm in float32, as HF does; Gemma scales by (1 + weight). */
  private norm(x: Tensor, weight: Tensor): Tensor {
    return rmsNorm(x, weight, this.config.rmsNormEps, this.config.gemma ? 1 : 0);
  }

  /**
   * Where each query may attend: not later tokens, not other packed examples, and for Gemma's sliding
   * layers not beyond the window. A plain causal mask over a fresh sequence needs no tensor.
   */
  private attentionMasks(positions: Tensor, segments: Tensor | undefined, past: number): { full: Mask; sliding: Mask } {
    const [, T] = positions.shape;
    const S = past + T;
    const window = this.config.gemma?.slidingWindow;
    const plainCausal = !segments && past === 0;
    const full: Mask = T === 1 && !segments ? null : plainCausal ? { causal: true } : { allowed: allowedMask(T, S, past, segments, this.device) };
    if (window === undefined || S <= window) return { full, sliding: full };
    // Within one example, slots and positions advance together, so slot distance is token distance.
    const querySlots = tensor(Array.from({ length: T }, (_, i) => past + i), [T, 1], { dtype: 'int64', device: this.device });
    const keySlots = tensor(Array.from({ length: S }, (_, j) => j), [1, S], { dtype: 'int64', device: this.device });
    const near = querySlots.sub(keySlots).lt(window).unsqueeze(0).unsqueeze(0); // [1, 1, T, S]
    const base = full === null ? near : 'allowed' in full ? full.allowed : allowedMask(T, S, past, undefined, this.device);
    return { full, sliding: { allowed: base.logicalAnd(near) } };
  }
}

function callerMasks({ full, sliding }: AttentionMasks): { full: Mask; sliding: Mask } {
  const wrap = (additive: Tensor | null): Mask => (additive ? { additive } : null);
  return { full: wrap(full), sliding: wrap(sliding) };
}

/** [T, S]: true where query i (at slot past + i) may see key j, i.e. j ≤ past + i. */
function causalAllowed(T: number, S: number, device: string, past = S - T): Tensor {
  const querySlots = tensor(Array.from({ length: T }, (_, i) => past + i), [T, 1], { dtype: 'int64', device });
  const keySlots = tensor(Array.from({ length: S }, (_, j) => j), [1, S], { dtype: 'int64', device });
  return keySlots.le(querySlots);
}

/** [B or 1, 1, T, S] boolean: causal, and inside the query's own packed example when segments are given. */
function allowedMask(T: number, S: number, past: number, segments: Tensor | undefined, device: string): Tensor {
  let allowed = causalAllowed(T, S, device, past).unsqueeze(0); // [1, T, S]
  if (segments) allowed = allowed.logicalAnd(segments.unsqueeze(2).eq(segments.unsqueeze(1))); // [B, T, S]
  return allowed.unsqueeze(1);
}

function defaultPositions(batch: number, length: number, past: number, device: string): Tensor {
  const row = Array.from({ length }, (_, i) => past + i);
  return tensor(Array.from({ length: batch }, () => row).flat(), [batch, length], { dtype: 'int64', device });
}

/** Tables [P, D] at positions [B, T] → cos, sin [B, 1, T, D] in the activations' dtype, as HF casts them. */
function gatherRope(tables: RopeTables, positions: Tensor, dtype: DType): [Tensor, Tensor] {
  const at = (table: Tensor) => embedding(table, positions).unsqueeze(1).to({ dtype });
  return [at(tables.cos), at(tables.sin)];
}
