// The decoder-only transformer shared by Llama, Qwen 2/3 and Gemma 3: one readable forward pass,
// shapes in the comments (B batch, T new tokens, S attended tokens, H heads, K kv heads, D head dim).
import { embedding, linear, tensor, tidy, zeros, type Tensor } from '../tensor/index.js';

/** torch.finfo(torch.float32).min, as Hugging Face masks with (it rounds to -inf in float16, harmless: no row is ever fully blocked). */
export const LOWEST_FLOAT = -3.4028234663852886e38;
import type { ModelConfig } from './config.js';
import { Linear, FusedLinear } from './linear.js';
import { applyRope, ropeTables, type RopeTables } from './rope.js';
import type { AttentionCache } from './kv-cache.js';

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
}

/** The matrix products a block actually runs: q/k/v and gate/up fused, as they share their input. */
interface FusedBlock {
  qkv: FusedLinear;
  gateUp: FusedLinear;
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

/** Hugging Face module paths of each block's projections, as PEFT names them. */
export const projectionPaths = {
  q: 'self_attn.q_proj', k: 'self_attn.k_proj', v: 'self_attn.v_proj', o: 'self_attn.o_proj',
  gate: 'mlp.gate_proj', up: 'mlp.up_proj', down: 'mlp.down_proj',
} as const;
export type Projection = keyof typeof projectionPaths;

export class Transformer {
  readonly rope: RopeTables;
  /** Gemma's sliding layers use their own base frequency. */
  readonly localRope?: RopeTables;
  private readonly fused: FusedBlock[];

  constructor(
    readonly config: ModelConfig,
    readonly weights: Weights,
    readonly device = 'cpu',
  ) {
    const { headDim, maxPositions, ropeTheta, ropeScaling, gemma } = config;
    this.rope = ropeTables(headDim, maxPositions, ropeTheta, ropeScaling, device);
    if (gemma) this.localRope = ropeTables(headDim, maxPositions, gemma.ropeLocalTheta, { type: 'default', factor: 1 }, device);
    this.fused = weights.blocks.map((b) => ({ qkv: new FusedLinear([b.q, b.k, b.v]), gateUp: new FusedLinear([b.gate, b.up]) }));
  }

  /** Every projection by its PEFT module path, e.g. `model.layers.0.self_attn.q_proj`. */
  *linears(): Generator<[string, Linear, Projection]> {
    for (const [i, block] of this.weights.blocks.entries()) {
      for (const [key, path] of Object.entries(projectionPaths) as [Projection, string][]) {
        yield [`model.layers.${i}.${path}`, block[key], key];
      }
    }
  }

  /** ids [B, T] → final hidden states [B, T, hidden]. */
  hiddenStates(ids: Tensor, options: ForwardOptions = {}): Tensor {
    const { config, weights } = this;
    const [batch, length] = ids.shape;
    const past = options.cache?.length ?? 0;
    const positions = options.positions ?? defaultPositions(batch, length, past, this.device);
    let x = embedding(weights.embed, ids); // [B, T, hidden]
    if (config.gemma) x = x.mul(Math.fround(Math.sqrt(config.hiddenSize)));

    if (options.segments && past > 0) throw new Error('packed sequences cannot continue a KV cache');
    const masks = options.masks ?? this.attentionMasks(positions, options.segments, past);
    const global = gatherRope(this.rope, positions);
    const local = this.localRope ? gatherRope(this.localRope, positions) : global;

    for (const [i, block] of weights.blocks.entries()) {
      const sliding = config.gemma?.slidingLayers[i] ?? false;
      const rope = sliding ? local : global;
      const mask = sliding ? masks.sliding : masks.full;
      const run = () => this.block(block, x, rope, mask, i, options);
      // Outside training nothing needs a block's intermediates once it is done: free them before the next block.
      x = options.train ? run() : tidy(run);
    }
    options.cache?.advance(length);
    return this.norm(x, weights.finalNorm);
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

  private block(block: Block, x: Tensor, rope: [Tensor, Tensor], mask: Tensor | null, layer: number, options: ForwardOptions): Tensor {
    const train = options.train ?? false;
    const fused = this.fused[layer];
    let h = this.attention(block, fused, this.norm(x, block.inputNorm), rope, mask, layer, options);
    if (block.preFeedforwardNorm) {
      x = x.add(this.norm(h, block.postAttentionNorm));
      h = this.mlp(block, fused, this.norm(x, block.preFeedforwardNorm), train);
      return x.add(this.norm(h, block.postFeedforwardNorm!));
    }
    x = x.add(h);
    return x.add(this.mlp(block, fused, this.norm(x, block.postAttentionNorm), train));
  }

  private attention(
    block: Block,
    fused: FusedBlock,
    x: Tensor,
    [cos, sin]: [Tensor, Tensor],
    mask: Tensor | null,
    layer: number,
    options: ForwardOptions,
  ): Tensor {
    const { numHeads: H, numKvHeads: K, headDim: D, gemma } = this.config;
    const train = options.train ?? false;
    const [B, T] = x.shape;
    const [qFlat, kFlat, vFlat] = fused.qkv.forward(x, train);
    let q = qFlat.view(B, T, H, D).transpose(1, 2); // [B, H, T, D]
    let k = kFlat.view(B, T, K, D).transpose(1, 2); // [B, K, T, D]
    let v = vFlat.view(B, T, K, D).transpose(1, 2);
    if (block.qNorm) q = this.norm(q, block.qNorm);
    if (block.kNorm) k = this.norm(k, block.kNorm);
    q = applyRope(q, cos, sin);
    k = applyRope(k, cos, sin);
    if (options.cache) [k, v] = options.cache.append(layer, k, v); // [B, K, S, D]

    // Grouped-query attention without copying K and V: fold each kv head's queries together.
    const S = k.size(2);
    const groups = H / K;
    const scale = gemma ? Math.pow(gemma.queryPreAttnScalar, -0.5) : 1 / Math.sqrt(D);
    const qGrouped = q.reshape(B, K, groups * T, D);
    let scores = qGrouped.matmul(k.transpose(2, 3)).mul(scale).view(B, K, groups, T, S);
    const softcap = gemma?.attnLogitSoftcapping;
    if (softcap) scores = scores.div(softcap).tanh().mul(softcap);
    if (mask) scores = scores.add(mask); // [B, 1, 1, T, S]: 0 where allowed, the lowest float where blocked
    const probs = scores.softmax(-1, 'float32').to({ dtype: q.dtype }).view(B, K, groups * T, S);
    const out = probs.matmul(v).view(B, H, T, D).transpose(1, 2).reshape(B, T, H * D);
    return block.o.forward(out, train);
  }

  private mlp(block: Block, fused: FusedBlock, x: Tensor, train: boolean): Tensor {
    const [gate, up] = fused.gateUp.forward(x, train);
    const activated = this.config.activation === 'gelu_tanh' ? gate.gelu('tanh') : gate.silu();
    return block.down.forward(activated.mul(up), train);
  }

  /** RMSNorm in float32, as HF does; Gemma scales by (1 + weight). */
  private norm(x: Tensor, weight: Tensor): Tensor {
    const dtype = x.dtype;
    const x32 = dtype === 'float32' ? x : x.float();
    const normed = x32.mul(x32.mul(x32).mean(-1, true).add(this.config.rmsNormEps).rsqrt());
    if (this.config.gemma) return normed.mul(weight.float().add(1)).to({ dtype });
    return weight.dtype === 'float32' && dtype === 'float32' ? normed.mul(weight) : weight.mul(normed.to({ dtype }));
  }

  /**
   * Additive masks [B, 1, 1, T, S]: the lowest float where a query may NOT attend (later tokens, other
   * packed examples, and for Gemma's sliding layers tokens beyond the window), 0 elsewhere; null when
   * nothing is blocked. Additive rather than masked_fill: a broadcast add is an order of magnitude faster
   * over the scores, forward and backward, and the lowest float (not -inf) keeps fully blocked rows finite.
   */
  private attentionMasks(positions: Tensor, segments: Tensor | undefined, past: number): AttentionMasks {
    const [, T] = positions.shape;
    const S = past + T;
    const window = this.config.gemma?.slidingWindow;
    // Query i sits at absolute slot past+i; key j at slot j.
    const querySlots = tensor(Array.from({ length: T }, (_, i) => past + i), [T, 1], { dtype: 'int64', device: this.device });
    const keySlots = tensor(Array.from({ length: S }, (_, j) => j), [1, S], { dtype: 'int64', device: this.device });
    let blocked = keySlots.gt(querySlots).unsqueeze(0); // [1, T, S]
    if (segments) blocked = blocked.logicalOr(segments.unsqueeze(2).ne(segments.unsqueeze(1))); // [B, T, S]
    const additive = (mask: Tensor) =>
      zeros(mask.shape, { dtype: this.weights.embed.dtype, device: this.device }).maskedFill(mask, LOWEST_FLOAT).unsqueeze(1).unsqueeze(1);
    const full = T === 1 && !segments ? null : additive(blocked);
    if (window === undefined) return { full, sliding: null };
    // Within one example, slots and positions advance together, so slot distance is token distance.
    const tooFar = querySlots.sub(keySlots).ge(window).unsqueeze(0);
    return { full, sliding: additive(blocked.logicalOr(tooFar)) };
  }
}

function defaultPositions(batch: number, length: number, past: number, device: string): Tensor {
  const row = Array.from({ length }, (_, i) => past + i);
  return tensor(Array.from({ length: batch }, () => row).flat(), [batch, length], { dtype: 'int64', device });
}

/** Tables [P, D] at positions [B, T] → cos, sin [B, 1, T, D]. */
function gatherRope(tables: RopeTables, positions: Tensor): [Tensor, Tensor] {
  return [embedding(tables.cos, positions).unsqueeze(1), embedding(tables.sin, positions).unsqueeze(1)];
}
