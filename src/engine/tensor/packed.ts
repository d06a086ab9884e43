// A bfloat16 matrix packed once into the CPU's AMX tile layout, so that products left · w read it without
// re-laying it on every call (native/src/amx-matmul.h). It costs a second copy of w; the memory plan
// decides when that is worth it (train/memory-plan.ts). The copy remembers w's version: once w changes in
// place, the ops that take it (loraLinear, linearCrossEntropy) refuse it rather than compute with stale values.
import { torch } from './native.js';
import { Tensor } from './tensor.js';
import { keep } from './scope.js';

/** Whether this CPU has AMX-BF16 tile units this process may use (ATTUNE_AMX=0 turns them off). */
export const amxAvailable = (): boolean => torch.amxAvailable();

export class PackedMatrix {
  private constructor(
    readonly tiles: Tensor,
    /** w.version when it was packed. */
    readonly sourceVersion: number,
    /** w's [k, n]. */
    readonly shape: [number, number],
  ) {}

  /** Packs w [k, n] (bfloat16 on the CPU, both sizes multiples of 32); needs amxAvailable(). */
  static of(w: Tensor): PackedMatrix {
    return new PackedMatrix(keep(new Tensor(torch.packRight(w.handle))), w.version, [w.size(0), w.size(1)]);
  }

  /** Whether w [k, n] can be packed: bfloat16 on the CPU, sizes multiples of 32, and AMX here. */
  static fits(w: Tensor): boolean {
    return w.dtype === 'bfloat16' && w.device === 'cpu' && w.shape.length === 2 && w.shape.every((n) => n > 0 && n % 32 === 0) && amxAvailable();
  }

  /** Whether times() takes this left operand (bfloat16 [rows, k], enough rows to fill every thread's tiles). */
  takes(left: Tensor): boolean {
    return torch.amxTakes(left.handle, this.tiles.handle);
  }

  /** left [rows, k] · w → [rows, n], bfloat16 accumulated in float32; needs takes(left). */
  times(left: Tensor): Tensor {
    return new Tensor(torch.multiplyPacked(left.handle, this.tiles.handle));
  }

  dispose(): void {
    this.tiles.dispose();
  }
}

/**
 * A frozen linear map's weight W [out, in] packed for its two products: x Wᵀ in the forward pass (tiles
 * of Wᵀ) and g W in the backward pass (tiles of W). Each is a copy of W's size.
 */
export class PackedWeight {
  private constructor(
    /** Tiles of Wᵀ [in, out], for x Wᵀ. */
    readonly forward: PackedMatrix,
    /** Tiles of W [out, in], for g W. */
    readonly backward: PackedMatrix,
  ) {}

  static of(w: Tensor): PackedWeight {
    return new PackedWeight(PackedMatrix.of(w.transpose(0, 1)), PackedMatrix.of(w));
  }

  /** W.version when it was packed. */
  get sourceVersion(): number {
    return this.backward.sourceVersion;
  }

  dispose(): void {
    this.forward.dispose();
    this.backward.dispose();
  }
}
