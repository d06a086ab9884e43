// Keys and values of many sequences in one preallocated pool of fixed-size blocks (vLLM's PagedAttention
// layout, with plain tensor ops). A sequence owns a list of blocks, so the pool bounds memory and sequences
// of any length come and go without fragmenting it. A forward writes its new tokens' keys and values into
// their slots with one index_copy per layer; a decode step gathers each row's blocks (index_select) into a
// padded [rows, kv heads, S, head dim] batch, and the caller's mask hides each row's padding.
//
// Block 0 is scratch: padding tokens write there and padded rows read it. It is never handed out, and it
// always holds finite values (zeros, or some padding token's keys), which matters because a masked
// position still goes through the matrix products (0 × NaN would be NaN).
import { ids, keep, zeros, type DType, type Tensor } from '../tensor/index.js';
import type { AttentionCache } from './kv-cache.js';
import type { ModelConfig } from './config.js';

/** Never handed out; padding writes to its first slot and padded rows read it. */
export const SCRATCH_BLOCK = 0;

export interface PoolShape {
  layers: number;
  kvHeads: number;
  headDim: number;
}

export class KvBlockPool {
  /** Per layer: [blocks + 1, blockSize, kvHeads, headDim]. */
  private readonly keys: Tensor[] = [];
  private readonly values: Tensor[] = [];
  private readonly free: number[] = [];
  private readonly width: number;

  /** Bytes one token's keys and values take over every layer. */
  static bytesPerToken({ numLayers, numKvHeads, headDim }: ModelConfig, dtype: DType): number {
    const bytes = dtype === 'float32' ? 4 : dtype === 'float64' ? 8 : 2;
    return 2 * numLayers * numKvHeads * headDim * bytes;
  }

  constructor(
    shape: PoolShape,
    /** Blocks sequences may own (the scratch block comes on top). */
    readonly blocks: number,
    readonly blockSize: number,
    readonly placement: { dtype?: DType; device?: string } = {},
  ) {
    if (!(Number.isInteger(blocks) && blocks >= 1 && Number.isInteger(blockSize) && blockSize >= 1)) {
      throw new Error(`a KV pool needs at least one block of at least one token, not ${blocks} × ${blockSize}`);
    }
    this.width = shape.kvHeads * shape.headDim;
    for (let i = 0; i < shape.layers; i++) {
      this.keys.push(keep(zeros([blocks + 1, blockSize, shape.kvHeads, shape.headDim], placement)));
      this.values.push(keep(zeros([blocks + 1, blockSize, shape.kvHeads, shape.headDim], placement)));
    }
    for (let b = blocks; b >= 1; b--) this.free.push(b);
  }

  get freeBlocks(): number {
    return this.free.length;
  }

  /** Blocks for `tokens` tokens. */
  blocksFor(tokens: number): number {
    return Math.ceil(tokens / this.blockSize);
  }

  /** Takes `count` blocks, or none when fewer are free. */
  allocate(count: number): number[] | undefined {
    if (count > this.free.length) return undefined;
    return this.free.splice(this.free.length - count, count);
  }

  release(blocks: number[]): void {
    for (const b of blocks) this.free.push(b);
  }

  /** The slot (block × blockSize + offset) of a sequence's token at `position`. */
  slotOf(blockTable: number[], position: number): number {
    return blockTable[Math.floor(position / this.blockSize)] * this.blockSize + (position % this.blockSize);
  }

  /** Stores k, v [B, K, T, D] at flat slots [B·T]. */
  write(layer: number, slots: Tensor, k: Tensor, v: Tensor): void {
    const [B, , T] = k.shape;
    const flat = (pool: Tensor) => pool.view(-1, this.width);
    flat(this.keys[layer]).indexCopy_(0, slots, k.transpose(1, 2).reshape(B * T, this.width));
    flat(this.values[layer]).indexCopy_(0, slots, v.transpose(1, 2).reshape(B * T, this.width));
  }

  /** Each row's blocks [rows × blocksPerRow] (scratch-padded) → keys and values [rows, K, blocksPerRow·blockSize, D]. */
  gather(layer: number, blockIds: Tensor, rows: number): [Tensor, Tensor] {
    const read = (pool: Tensor) => {
      const [, , K, D] = pool.shape;
      return pool.indexSelect(0, blockIds).view(rows, -1, K, D).transpose(1, 2);
    };
    return [read(this.keys[layer]), read(this.values[layer])];
  }

  dispose(): void {
    for (const t of [...this.keys, ...this.values]) t.dispose();
  }
}

/**
 * One forward's view of the pool, as the transformer's attention sees a cache: it stores the new tokens at
 * `writeSlots`. A prefill attends over its own tokens (the transformer's segment mask keeps each sequence
 * to itself); a decode step attends over each row's blocks, gathered, with the caller's masks.
 */
export class PagedForward implements AttentionCache {
  readonly length = 0;
  private readonly slots: Tensor;
  private readonly blockIds?: Tensor;

  constructor(
    private readonly pool: KvBlockPool,
    writeSlots: number[],
    /** Decode only: each row's block table, padded with the scratch block to equal lengths. */
    private readonly read?: { blockTables: number[][] },
  ) {
    const device = pool.placement.device;
    this.slots = ids(writeSlots, [writeSlots.length], device);
    if (read) this.blockIds = ids(read.blockTables.flat(), [read.blockTables.flat().length], device);
  }

  append(layer: number, k: Tensor, v: Tensor): [Tensor, Tensor] {
    this.pool.write(layer, this.slots, k, v);
    if (!this.read) return [k, v];
    return this.pool.gather(layer, this.blockIds!, this.read.blockTables.length);
  }

  advance(): void {}
}
