// Matrix products in bfloat16 on the CPU's AMX tile units, with the right operand packed once ahead of
// time into the layout the tiles read. Why: oneDNN re-lays a bfloat16 right operand into a scratch buffer
// on every call, which inside a training step (where the weights no longer sit in cache) costs more than
// the multiply; a copy packed once removes that. Measured on a 2-core Sapphire Rapids (bench:
// `npm run bench -- --only matmul-headroom`, and whole training steps in the README). The caller owns the
// packed copy and decides whether its memory is worth it (src/engine/train/memory-plan.ts).
#pragma once

#include <ATen/ATen.h>

namespace attune::amx {

// Whether this CPU has AMX-BF16 and AVX512-BF16 and the kernel grants this process the tile state.
// ATTUNE_AMX=0 in the environment turns it off.
bool available();

// A bfloat16 matrix w [k, n] (contiguous, k and n multiples of 32) as the right operand's tiles,
// [n / 32, k / 32, 1024]: for each 32 columns and each 32 values of k, two 16-column tiles whose rows
// hold k's consecutive pairs side by side. The same number of values as w.
at::Tensor packRight(const at::Tensor& w);

// packRight's inverse: w [k, n] out of its tiles, value for value.
at::Tensor unpackRight(const at::Tensor& packed);

// Whether multiplyPacked takes this left operand: bfloat16 on the CPU, [rows, k] with k matching the
// packed operand, and enough rows (32 a thread) to keep every thread's tiles busy; fewer go to oneDNN.
// (multiplyPacked itself takes any number of rows: where the tiles are w's only copy, it must.)
bool takes(const at::Tensor& left, const at::Tensor& packed);

// left [rows, k] · w [k, n] → [rows, n] in bfloat16, accumulated in float32, from w's packed tiles. With
// lowLeft [rows, r] and lowRight [r, n] (float32, r small: a LoRA update), their product is added to each
// output block in float32 before it is rounded, which saves a pass over the output.
at::Tensor multiplyPacked(const at::Tensor& left, const at::Tensor& packed, const at::Tensor& lowLeft = {}, const at::Tensor& lowRight = {});

// left [rows, n] · wᵀ → [rows, k] from the same tiles of w [k, n], any number of rows, with the same
// optional low-rank term (lowRight [r, k]). So one packed copy serves both products a frozen weight
// takes in training, x Wᵀ and g W, and it can stand in for W itself where two more copies do not fit.
at::Tensor multiplyPackedTransposed(const at::Tensor& left, const at::Tensor& packed, const at::Tensor& lowLeft = {}, const at::Tensor& lowRight = {});

}  // namespace attune::amx
