// The tensor package: import tensors, ops and scopes from here.
export { Tensor, type DType } from './tensor.js';
export * from './ops.js';
export { tidy, keep } from './scope.js';
export { PackedMatrix, PackedWeight, packedKernel, type PackedKernel, type WeightPacking } from './packed.js';
