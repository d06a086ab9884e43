// A bfloat16 matrix packed once into the layout the CPU's bfloat16 kernel reads (AMX tiles, or AVX512-BF16's
// VDPBF16PS where there are none), so that products left · w read it without re-laying it on every call
// (native/src/packed-matmul.h). Beside w it costs a copy of w; instead of w it
// costs nothing, w's tiles standing in for w itself (PackedWeight.instead); the memory plan chooses
// (train/memory-plan.ts). A copy beside w remembers w's version: once w changes in place, the ops that
// take it (loraLinear, linearCrossEntropy) refuse it rather than compute with stale values.
import { torch, type PackedKernel } from './native.js';
import { Tensor } from './tensor.js';
import { keep } from './scope.js';
import { empty, mallocTrim } from './ops.js';

export type { PackedKernel };

/**
 * Which kernel multiplies packed bfloat16 operands here: AMX tiles, else AVX512-BF16, else none (null).
 * ATTUNE_PACKED_KERNEL=none|avx512bf16 caps the choice, to compare kernels on one machine.
 */
export const packedKernel = (): PackedKernel | null => torch.packedKernel();

export class PackedMatrix {
  private constructor(
    readonly tiles: Tensor,
    /** w.version when it was packed. */
    readonly sourceVersion: number,
    /** w's [k, n]. */
    readonly shape: [number, number],
  ) {}

  /** Packs w [k, n] (bfloat16 on the CPU, both sizes multiples of 32); needs a packedKernel(). */
  static of(w: Tensor): PackedMatrix {
    return new PackedMatrix(keep(new Tensor(torch.packRight(w.handle))), w.version, [w.size(0), w.size(1)]);
  }

  /** Whether w [k, n] can be packed: bfloat16 on the CPU, sizes multiples of 32, and a packed kernel here. */
  static fits(w: Tensor): boolean {
    return w.dtype === 'bfloat16' && w.device === 'cpu' && w.shape.length === 2 && w.shape.every((n) => n > 0 && n % 32 === 0) && packedKernel() !== null;
  }

  /** Whether times() takes this left operand (bfloat16 [rows, k], enough rows to fill every thread's tiles). */
  takes(left: Tensor): boolean {
    return torch.packedTakes(left.handle, this.tiles.handle);
  }

  /** left [rows, k] · w → [rows, n], bfloat16 accumulated in float32, any rows (takes() says where it pays). */
  times(left: Tensor): Tensor {
    return new Tensor(torch.multiplyPacked(left.handle, this.tiles.handle));
  }

  /** left [rows, n] · wᵀ → [rows, k] from the same tiles, any rows. */
  timesTransposed(left: Tensor): Tensor {
    return new Tensor(torch.multiplyPackedTransposed(left.handle, this.tiles.handle));
  }

  /** w [k, n] again, value for value. */
  unpacked(): Tensor {
    return new Tensor(torch.unpackRight(this.tiles.handle));
  }

  dispose(): void {
    this.tiles.dispose();
  }
}

/** How a training run keeps its frozen weights packed: a copy for each product beside W, or W's own packed copy instead of W. */
export type WeightPacking = 'beside' | 'instead';

/** A view of a packed weight's rows [start, start + view's rows), which follows the weight out and back (PackedWeight.instead). */
export interface RowView {
  view: Tensor;
  start: number;
}

/**
 * A frozen linear map's weight W [out, in] packed for its two products, x Wᵀ in the forward pass and g W in
 * the backward pass, in one of two ways:
 * - beside W (of): tiles of Wᵀ and tiles of W, each a copy of W's size; the fastest where they fit;
 * - instead of W: W's tiles alone serve both products, and W itself, with the given views of it, becomes a
 *   stand-in on the meta device (its shape without values), so W's memory goes back. An op that still
 *   reaches for W's values gets none: its result is on the meta device too, and reading it fails ("no
 *   data"), so nothing computes with garbage. dispose() puts the values back.
 */
export class PackedWeight {
  private constructor(
    /** Tiles of Wᵀ [in, out], for x Wᵀ; none when W's tiles stand in for W. */
    readonly forward: PackedMatrix | null,
    /** Tiles of W [out, in], for g W (and for x Wᵀ when they stand in for W). */
    readonly backward: PackedMatrix,
    private readonly standIn: { weight: Tensor; views: RowView[] } | null = null,
  ) {}

  /** W packed the given way; `views` (row views of W, e.g. a fused weight's parts) follow W when its tiles stand in for it. */
  static pack(w: Tensor, packing: WeightPacking, views: RowView[] = []): PackedWeight {
    return packing === 'beside' ? PackedWeight.of(w) : PackedWeight.instead(w, views);
  }

  static of(w: Tensor): PackedWeight {
    return new PackedWeight(PackedMatrix.of(w.transpose(0, 1)), PackedMatrix.of(w), null);
  }

  /** W's tiles in place of W (and of `views`, row views of W, e.g. a fused weight's parts). */
  static instead(w: Tensor, views: RowView[] = []): PackedWeight {
    const tiles = PackedMatrix.of(w);
    const standIn = empty(w.shape, { dtype: w.dtype, device: 'meta' });
    for (const { view, start } of views) view.replaceWith(standIn.slice(0, start, start + view.size(0)));
    w.replaceWith(standIn);
    // The allocator keeps freed memory in its heap (native/src/addon.cc): hand W's pages back now, or
    // packing a model's weights one by one would need twice their memory.
    mallocTrim();
    return new PackedWeight(null, tiles, { weight: w, views });
  }

  /** Whether W's tiles stand in for W. */
  get instead(): boolean {
    return this.standIn !== null;
  }

  /** W.version when it was packed. */
  get sourceVersion(): number {
    return this.backward.sourceVersion;
  }

  /** Drops the tiles; where they stood in for W, W and its views get their values back first. */
  dispose(): void {
    if (this.standIn) {
      const { weight, views } = this.standIn;
      const values = this.backward.unpacked();
      for (const { view, start } of views) view.replaceWith(values.slice(0, start, start + view.size(0)));
      weight.replaceWith(values);
    }
    this.forward?.dispose();
    this.backward.dispose();
    if (this.standIn) mallocTrim();
  }
}
