// Keys and values of past tokens, preallocated per layer so that decoding one token costs one
// token's projections, not the whole prefix's.
import { zeros, keep, type Tensor, type DType } from '../tensor/index.js';

/** What attention needs from a cache: store a forward's keys and values, and hand back those to attend over. */
export interface AttentionCache {
  /** Tokens stored before this forward: the positions of the new tokens start here unless given. */
  readonly length: number;
  /** Stores k, v [B, K, T, D]; returns the keys and values to attend over [B, K, S, D]. */
  append(layer: number, k: Tensor, v: Tensor): [Tensor, Tensor];
  advance(tokens: number): void;
}

export class KvCache implements AttentionCache {
  private readonly keys: Tensor[] = [];
  private readonly values: Tensor[] = [];
  /** Tokens already stored. */
  length = 0;

  constructor(
    layers: number,
    batch: number,
    kvHeads: number,
    readonly capacity: number,
    headDim: number,
    placement: { dtype?: DType; device?: string } = {},
  ) {
    for (let i = 0; i < layers; i++) {
      this.keys.push(keep(zeros([batch, kvHeads, capacity, headDim], placement)));
      this.values.push(keep(zeros([batch, kvHeads, capacity, headDim], placement)));
    }
  }

  /** Stores k, v [B, K, T, D] after the cached tokens; returns all keys and values so far [B, K, S, D]. */
  append(layer: number, k: Tensor, v: Tensor): [Tensor, Tensor] {
    const end = this.length + k.size(2);
    if (end > this.capacity) throw new Error(`the KV cache holds ${this.capacity} tokens; ${end} needed`);
    this.keys[layer].slice(2, this.length, end).copy_(k);
    this.values[layer].slice(2, this.length, end).copy_(v);
    return [this.keys[layer].slice(2, 0, end), this.values[layer].slice(2, 0, end)];
  }

  advance(tokens: number): void {
    this.length += tokens;
  }

  dispose(): void {
    for (const t of [...this.keys, ...this.values]) t.dispose();
  }
}
