// The Tensor class: a thin, PyTorch-shaped face over an addon handle. Every op returns a new Tensor
// that registers itself with the innermost tidy() scope, so tensor memory is freed deterministically.
import { torch, type DType, type Handle } from './native.js';
import { track } from './scope.js';

export type { DType } from './native.js';
type Operand = Tensor | number;

/** Frees the native tensors of Tensor objects that were collected without dispose(). */
const forgotten = new FinalizationRegistry<Handle>((handle) => torch.dispose(handle));

export class Tensor {
  #handle: Handle | null;

  constructor(handle: Handle) {
    this.#handle = handle;
    forgotten.register(this, handle, this);
    track(this);
  }

  get handle(): Handle {
    if (this.#handle === null) throw new Error('tensor used after it was disposed');
    return this.#handle;
  }
  get disposed(): boolean {
    return this.#handle === null;
  }
  /** Frees the native tensor now rather than at garbage collection. Views of it stay valid. */
  dispose(): void {
    if (this.#handle === null) return;
    torch.dispose(this.#handle);
    forgotten.unregister(this);
    this.#handle = null;
  }
  /**
   * From now on this tensor is `source`'s tensor, for everyone who holds this one (source is disposed).
   * Swaps a weight for a stand-in and back without finding every holder (tensor/packed.ts).
   */
  replaceWith(source: Tensor): void {
    torch.replaceTensor(this.handle, source.handle);
    source.dispose();
  }
  [Symbol.dispose](): void {
    this.dispose();
  }

  get shape(): number[] { return torch.shape(this.handle); }
  get dtype(): DType { return torch.dtype(this.handle); }
  get device(): string { return torch.device(this.handle); }
  get isContiguous(): boolean { return torch.isContiguous(this.handle); }
  /** Counts the in-place changes to this tensor's storage (its views share the count). */
  get version(): number { return torch.tensorVersion(this.handle); }
  get numel(): number { return this.shape.reduce((a, b) => a * b, 1); }
  size(dim: number): number {
    const shape = this.shape;
    return shape[dim < 0 ? shape.length + dim : dim];
  }

  // Elementwise
  add(other: Operand): Tensor {
    return new Tensor(typeof other === 'number' ? torch.addScalar(this.handle, other) : torch.add(this.handle, other.handle));
  }
  sub(other: Operand): Tensor {
    return new Tensor(typeof other === 'number' ? torch.subScalar(this.handle, other) : torch.sub(this.handle, other.handle));
  }
  mul(other: Operand): Tensor {
    return new Tensor(typeof other === 'number' ? torch.mulScalar(this.handle, other) : torch.mul(this.handle, other.handle));
  }
  div(other: Operand): Tensor {
    return new Tensor(typeof other === 'number' ? torch.divScalar(this.handle, other) : torch.div(this.handle, other.handle));
  }
  pow(other: Operand): Tensor {
    return new Tensor(typeof other === 'number' ? torch.powScalar(this.handle, other) : torch.pow(this.handle, other.handle));
  }
  eq(other: Operand): Tensor {
    return new Tensor(typeof other === 'number' ? torch.eqScalar(this.handle, other) : torch.eq(this.handle, other.handle));
  }
  ne(other: Operand): Tensor {
    return new Tensor(typeof other === 'number' ? torch.neScalar(this.handle, other) : torch.ne(this.handle, other.handle));
  }
  lt(other: Operand): Tensor {
    return new Tensor(typeof other === 'number' ? torch.ltScalar(this.handle, other) : torch.lt(this.handle, other.handle));
  }
  le(other: Operand): Tensor {
    return new Tensor(typeof other === 'number' ? torch.leScalar(this.handle, other) : torch.le(this.handle, other.handle));
  }
  gt(other: Operand): Tensor {
    return new Tensor(typeof other === 'number' ? torch.gtScalar(this.handle, other) : torch.gt(this.handle, other.handle));
  }
  ge(other: Operand): Tensor {
    return new Tensor(typeof other === 'number' ? torch.geScalar(this.handle, other) : torch.ge(this.handle, other.handle));
  }
  maximum(other: Tensor): Tensor { return new Tensor(torch.maximum(this.handle, other.handle)); }
  minimum(other: Tensor): Tensor { return new Tensor(torch.minimum(this.handle, other.handle)); }
  logicalAnd(other: Tensor): Tensor { return new Tensor(torch.logicalAnd(this.handle, other.handle)); }
  logicalOr(other: Tensor): Tensor { return new Tensor(torch.logicalOr(this.handle, other.handle)); }
  logicalNot(): Tensor { return new Tensor(torch.logicalNot(this.handle)); }
  isFinite(): Tensor { return new Tensor(torch.isFinite(this.handle)); }
  neg(): Tensor { return new Tensor(torch.neg(this.handle)); }
  exp(): Tensor { return new Tensor(torch.exp(this.handle)); }
  log(): Tensor { return new Tensor(torch.log(this.handle)); }
  sqrt(): Tensor { return new Tensor(torch.sqrt(this.handle)); }
  rsqrt(): Tensor { return new Tensor(torch.rsqrt(this.handle)); }
  abs(): Tensor { return new Tensor(torch.abs(this.handle)); }
  tanh(): Tensor { return new Tensor(torch.tanh(this.handle)); }
  sigmoid(): Tensor { return new Tensor(torch.sigmoid(this.handle)); }
  silu(): Tensor { return new Tensor(torch.silu(this.handle)); }
  relu(): Tensor { return new Tensor(torch.relu(this.handle)); }
  gelu(approximate: 'none' | 'tanh' = 'none'): Tensor { return new Tensor(torch.gelu(this.handle, approximate)); }
  sin(): Tensor { return new Tensor(torch.sin(this.handle)); }
  cos(): Tensor { return new Tensor(torch.cos(this.handle)); }
  reciprocal(): Tensor { return new Tensor(torch.reciprocal(this.handle)); }
  floor(): Tensor { return new Tensor(torch.floor(this.handle)); }
  clamp(min?: number | null, max?: number | null): Tensor { return new Tensor(torch.clamp(this.handle, min, max)); }
  maskedFill(mask: Tensor, value: number): Tensor { return new Tensor(torch.maskedFill(this.handle, mask.handle, value)); }

  // Reductions (dims omitted = all)
  sum(dims?: number[] | number, keepdim = false, dtype?: DType): Tensor {
    return new Tensor(torch.sum(this.handle, dimList(dims), keepdim, dtype));
  }
  mean(dims?: number[] | number, keepdim = false): Tensor { return new Tensor(torch.mean(this.handle, dimList(dims), keepdim)); }
  amax(dims: number[] | number, keepdim = false): Tensor { return new Tensor(torch.amax(this.handle, dimList(dims)!, keepdim)); }
  argmax(dim: number, keepdim = false): Tensor { return new Tensor(torch.argmax(this.handle, dim, keepdim)); }
  norm(p = 2): Tensor { return new Tensor(torch.norm(this.handle, p)); }
  cumsum(dim: number): Tensor { return new Tensor(torch.cumsum(this.handle, dim)); }
  softmax(dim: number, dtype?: DType): Tensor { return new Tensor(torch.softmax(this.handle, dim, dtype)); }
  logSoftmax(dim: number, dtype?: DType): Tensor { return new Tensor(torch.logSoftmax(this.handle, dim, dtype)); }
  topk(k: number, dim = -1, largest = true): [Tensor, Tensor] {
    const [values, indices] = torch.topk(this.handle, k, dim, largest);
    return [new Tensor(values), new Tensor(indices)];
  }
  sort(dim = -1, descending = false): [Tensor, Tensor] {
    const [values, indices] = torch.sort(this.handle, dim, descending);
    return [new Tensor(values), new Tensor(indices)];
  }

  // Linear algebra
  matmul(other: Tensor): Tensor { return new Tensor(torch.matmul(this.handle, other.handle)); }

  // Shape and layout
  view(...shape: number[]): Tensor { return new Tensor(torch.view(this.handle, shape)); }
  reshape(...shape: number[]): Tensor { return new Tensor(torch.reshape(this.handle, shape)); }
  transpose(dim0: number, dim1: number): Tensor { return new Tensor(torch.transpose(this.handle, dim0, dim1)); }
  permute(...dims: number[]): Tensor { return new Tensor(torch.permute(this.handle, dims)); }
  unsqueeze(dim: number): Tensor { return new Tensor(torch.unsqueeze(this.handle, dim)); }
  squeeze(dim: number): Tensor { return new Tensor(torch.squeeze(this.handle, dim)); }
  expand(...shape: number[]): Tensor { return new Tensor(torch.expand(this.handle, shape)); }
  flatten(startDim = 0, endDim = -1): Tensor { return new Tensor(torch.flatten(this.handle, startDim, endDim)); }
  slice(dim: number, start: number, end: number, step = 1): Tensor {
    return new Tensor(torch.slice(this.handle, dim, start, end, step));
  }
  select(dim: number, index: number): Tensor { return new Tensor(torch.select(this.handle, dim, index)); }
  indexSelect(dim: number, indices: Tensor): Tensor { return new Tensor(torch.indexSelect(this.handle, dim, indices.handle)); }
  gather(dim: number, indices: Tensor): Tensor { return new Tensor(torch.gather(this.handle, dim, indices.handle)); }
  split(sizes: number[], dim: number): Tensor[] { return torch.split(this.handle, sizes, dim).map((h) => new Tensor(h)); }
  repeatInterleave(repeats: number, dim: number): Tensor {
    return new Tensor(torch.repeatInterleave(this.handle, repeats, dim));
  }
  tril(diagonal = 0): Tensor { return new Tensor(torch.tril(this.handle, diagonal)); }
  triu(diagonal = 0): Tensor { return new Tensor(torch.triu(this.handle, diagonal)); }
  contiguous(): Tensor { return new Tensor(torch.contiguous(this.handle)); }
  clone(): Tensor { return new Tensor(torch.clone(this.handle)); }
  detach(): Tensor { return new Tensor(torch.detach(this.handle)); }
  to(target: { dtype?: DType; device?: string }): Tensor {
    return new Tensor(torch.to(this.handle, target.dtype, target.device));
  }
  float(): Tensor { return this.to({ dtype: 'float32' }); }

  // In place: they return this, for chaining.
  add_(other: Operand): this {
    if (typeof other === 'number') torch.addScalar_(this.handle, other);
    else torch.add_(this.handle, other.handle);
    return this;
  }
  sub_(other: Operand): this {
    if (typeof other === 'number') torch.subScalar_(this.handle, other);
    else torch.sub_(this.handle, other.handle);
    return this;
  }
  mul_(other: Operand): this {
    if (typeof other === 'number') torch.mulScalar_(this.handle, other);
    else torch.mul_(this.handle, other.handle);
    return this;
  }
  div_(other: Operand): this {
    if (typeof other === 'number') torch.divScalar_(this.handle, other);
    else torch.div_(this.handle, other.handle);
    return this;
  }
  /** this += alpha * other */
  addScaled_(other: Tensor, alpha: number): this { torch.addScaled_(this.handle, other.handle, alpha); return this; }
  addcmul_(a: Tensor, b: Tensor, value: number): this { torch.addcmul_(this.handle, a.handle, b.handle, value); return this; }
  addcdiv_(a: Tensor, b: Tensor, value: number): this { torch.addcdiv_(this.handle, a.handle, b.handle, value); return this; }
  lerp_(end: Tensor, weight: number): this { torch.lerp_(this.handle, end.handle, weight); return this; }
  copy_(source: Tensor): this { torch.copy_(this.handle, source.handle); return this; }
  /** Along dim, slice index[i] of this becomes slice i of source. */
  indexCopy_(dim: number, index: Tensor, source: Tensor): this { torch.indexCopy_(this.handle, dim, index.handle, source.handle); return this; }
  zero_(): this { torch.zero_(this.handle); return this; }
  fill_(value: number): this { torch.fill_(this.handle, value); return this; }
  sqrt_(): this { torch.sqrt_(this.handle); return this; }
  normal_(mean = 0, std = 1): this { torch.normal_(this.handle, mean, std); return this; }
  uniform_(low = 0, high = 1): this { torch.uniform_(this.handle, low, high); return this; }

  // Autograd
  get requiresGrad(): boolean { return torch.requiresGrad(this.handle); }
  requiresGrad_(value = true): this { torch.requiresGrad_(this.handle, value); return this; }
  /** The accumulated gradient, or null before any backward pass reached this tensor. */
  get grad(): Tensor | null {
    const grad = torch.grad(this.handle);
    return grad === null ? null : new Tensor(grad);
  }
  clearGrad(): void { torch.clearGrad(this.handle); }
  backward(gradient?: Tensor): void { torch.backward(this.handle, gradient?.handle); }

  // Reading values back
  item(): number { return torch.item(this.handle); }
  /** Fills this contiguous CPU tensor's bytes from an open file at position; returns the bytes read (fewer where the file ends). */
  readFrom(fd: number, position: number): number { return torch.readFileInto(this.handle, fd, position); }
  /** The bytes of a contiguous CPU copy (no copy when already contiguous on CPU). While the Buffer lives, so does the tensor's memory. */
  toBuffer(): Buffer { return torch.toBuffer(this.handle); }
  toFloat32Array(): Float32Array {
    return new Float32Array(this.bytesAs('float32'));
  }
  /** Values as plain numbers (integers exact up to 2^53). */
  toNumbers(): number[] {
    return Array.from(new Float64Array(this.bytesAs('float64')));
  }
  /** A copy of the values, converted to dtype, as a standalone ArrayBuffer. */
  private bytesAs(dtype: DType): ArrayBuffer {
    const converted = torch.to(this.handle, dtype, 'cpu');
    try {
      const bytes = torch.toBuffer(converted);
      return bytes.buffer.slice(bytes.byteOffset, bytes.byteOffset + bytes.byteLength) as ArrayBuffer;
    } finally {
      torch.dispose(converted);
    }
  }
}

function dimList(dims: number[] | number | undefined): number[] | null {
  if (dims === undefined) return null;
  return typeof dims === 'number' ? [dims] : dims;
}
