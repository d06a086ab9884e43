// Matrix products in bfloat16 on the CPU with the right operand packed once ahead of time (packed-layout.h),
// on the fastest unit this CPU has for them: AMX tiles (amx-kernel.h) or, without them, AVX512-BF16's
// VDPBF16PS (avx512-kernel.h). Why: oneDNN re-lays a bfloat16 right operand into a scratch buffer on every
// call, which inside a training step (where the weights no longer sit in cache) costs more than the
// multiply on AMX, and holds VDPBF16PS to about 0.6 of its 0.88 TFLOPS on a 2-core Zen 5; a copy packed
// once removes that. Measured by the bench (`npm run bench -- --only matmul-headroom`, and whole training
// steps with `--only packed-weights`). The caller owns the packed copy and decides whether its memory is
// worth it (src/engine/train/memory-plan.ts).
#pragma once

#include <ATen/ATen.h>

namespace attune::packed {

enum class Kernel { none, amx, avx512bf16 };

// Which kernel this process multiplies packed operands with: AMX where the CPU has AMX-BF16 and
// AVX512-BF16 and the OS grants this process the tile state, else AVX512-BF16 where the CPU has it
// (with AVX512-BW), else none. ATTUNE_PACKED_KERNEL=none|avx512bf16 in the environment caps the choice
// (to compare the kernels, or oneDNN, on one machine).
Kernel kernel();
inline bool available() { return kernel() != Kernel::none; }
const char* kernelName(Kernel kernel);

// A bfloat16 matrix w [k, n] (contiguous, k and n multiples of 32) in the packed layout, [n / 32, k / 32,
// 1024] (packed-layout.h). The same number of values as w.
at::Tensor packRight(const at::Tensor& w);

// packRight's inverse: w [k, n] out of its packed blocks, value for value.
at::Tensor unpackRight(const at::Tensor& packed);

// Whether multiplyPacked takes this left operand: bfloat16 on the CPU, [rows, k] with k matching the
// packed operand, and enough rows (32 a thread) to keep every thread busy; fewer go to oneDNN.
// (multiplyPacked itself takes any number of rows: where the packed copy is w's only one, it must.)
bool takes(const at::Tensor& left, const at::Tensor& packed);

// left [rows, k] · w [k, n] → [rows, n] in bfloat16, accumulated in float32, from w packed. With lowLeft
// [rows, r] and lowRight [r, n] (float32, r small: a LoRA update), their product is added to each output
// row in float32 before it is rounded, which saves a pass over the output.
at::Tensor multiplyPacked(const at::Tensor& left, const at::Tensor& packed, const at::Tensor& lowLeft = {}, const at::Tensor& lowRight = {});

// left [rows, n] · wᵀ → [rows, k] from the same packed w [k, n], any number of rows, with the same
// optional low-rank term (lowRight [r, k]). So one packed copy serves both products a frozen weight
// takes in training, x Wᵀ and g W, and it can stand in for W itself where two more copies do not fit.
at::Tensor multiplyPackedTransposed(const at::Tensor& left, const at::Tensor& packed, const at::Tensor& lowLeft = {}, const at::Tensor& lowRight = {});

}  // namespace attune::packed
