// Tensors and threads around the packed kernels (amx-kernel.h, avx512-kernel.h): checks, scratch, and
// each thread's share of the work. The AMX kernel splits the left operand's rows (or, for a product by the
// transpose, w's rows) between the threads; the AVX512-BF16 kernel splits the output's columns, 64 at a
// time. The AMX kernel is measured against oneDNN by bench/probes/amx-matmul.cc, which runs it as it is.
#include "packed-matmul.h"

#include "huge-pages.h"

#include <ATen/Parallel.h>

#include <algorithm>
#include <cstdlib>
#include <cstring>
#include <stdexcept>

#if defined(__x86_64__)
#include "amx-kernel.h"
#include "avx512-kernel.h"
#endif

namespace attune::packed {
namespace {

#if !defined(__x86_64__)
constexpr int64_t kBlock = 32, kBlockValues = kBlock * kBlock;  // as packed-layout.h, which is x86-64 only
#endif
constexpr int64_t kMinRowsPerThread = 32;  // below this an AMX thread multiplies more padding than rows, and oneDNN keeps up

Kernel fastestKernel() {
#if defined(__x86_64__)
  const char* cap = std::getenv("ATTUNE_PACKED_KERNEL");
  if (cap && std::strcmp(cap, "none") == 0) return Kernel::none;
  const bool avx512 = __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") && amx::cpuHasAvx512Bf16();
  const bool amxAllowed = !(cap && std::strcmp(cap, "avx512bf16") == 0);
  if (amxAllowed && avx512 && amx::cpuHasAmxBf16() && amx::kernelGrantsTiles()) return Kernel::amx;
  return avx512 ? Kernel::avx512bf16 : Kernel::none;
#else
  return Kernel::none;
#endif
}

template <typename T>
T* raw(const at::Tensor& t) {
  return static_cast<T*>(t.data_ptr());
}

// Whether left is a bfloat16 CPU matrix whose columns match the packed w [k, n] (side 1: its k, for
// left · w; side 0: its n, for left · wᵀ), with at least one row.
bool fits(const at::Tensor& left, const at::Tensor& packed, int side) {
  if (!available() || !left.device().is_cpu() || left.scalar_type() != at::kBFloat16 || left.dim() != 2 || left.size(0) == 0) return false;
  if (packed.dim() != 3 || packed.size(2) != kBlockValues) return false;
  return left.size(1) == packed.size(side == 1 ? 1 : 0) * kBlock;
}

}  // namespace

Kernel kernel() {
  static const Kernel chosen = fastestKernel();
  return chosen;
}

const char* kernelName(Kernel kernel) {
  switch (kernel) {
    case Kernel::amx: return "amx";
    case Kernel::avx512bf16: return "avx512bf16";
    default: return "none";
  }
}

at::Tensor packRight(const at::Tensor& w) {
  if (!available()) throw std::invalid_argument("packRight: this CPU has no bfloat16 kernel for packed operands (AMX-BF16 or AVX512-BF16)");
  if (!w.device().is_cpu() || w.scalar_type() != at::kBFloat16 || w.dim() != 2)
    throw std::invalid_argument("packRight: the matrix must be a 2-D bfloat16 tensor on the CPU");
  const int64_t k = w.size(0), n = w.size(1);
  if (k == 0 || n == 0 || k % kBlock || n % kBlock) throw std::invalid_argument("packRight: both dimensions must be multiples of 32");
  auto packed = emptyOnHugePages({n / kBlock, k / kBlock, kBlockValues}, w.options());
#if defined(__x86_64__)
  const auto transposed = w.t();
  if (!w.is_contiguous() && transposed.is_contiguous()) {
    // A transposed view (Wᵀ of a weight W [n, k]): its tiles are W's rows transposed pair by pair, read
    // from W as it lies, without a transposed copy of it first (a second weight's worth of memory).
    packTransposedInto(raw<const uint16_t>(transposed), n, k, raw<uint16_t>(packed), 0, n / kBlock);
    return packed;
  }
  auto source = w.contiguous();
  packInto(raw<const uint16_t>(source), k, n, raw<uint16_t>(packed));
#endif
  return packed;
}

at::Tensor unpackRight(const at::Tensor& packed) {
  if (!available()) throw std::invalid_argument("unpackRight: this CPU has no bfloat16 kernel for packed operands (AMX-BF16 or AVX512-BF16)");
  if (!packed.device().is_cpu() || packed.scalar_type() != at::kBFloat16 || packed.dim() != 3 || packed.size(2) != kBlockValues)
    throw std::invalid_argument("unpackRight: these are not packed tiles");
  const int64_t n = packed.size(0) * kBlock, k = packed.size(1) * kBlock;
  auto w = at::empty({k, n}, packed.options());
#if defined(__x86_64__)
  unpackFrom(raw<const uint16_t>(packed.contiguous()), k, n, raw<uint16_t>(w));
#endif
  return w;
}

bool takes(const at::Tensor& left, const at::Tensor& packed) {
  return fits(left, packed, 1) && left.size(0) >= kMinRowsPerThread * at::get_num_threads();
}

#if defined(__x86_64__)
namespace {

// The low-rank term's float32 operands, checked against the product's rows and output columns.
struct LowRankOperands {
  at::Tensor left, right;
  LowRank term;
  LowRankOperands(const char* op, const at::Tensor& lowLeft, const at::Tensor& lowRight, int64_t rows, int64_t columns) {
    if (!lowLeft.defined() && !lowRight.defined()) return;
    if (!lowLeft.defined() || !lowRight.defined() || lowLeft.dim() != 2 || lowRight.dim() != 2 || lowLeft.size(0) != rows ||
        lowRight.size(1) != columns || lowLeft.size(1) != lowRight.size(0))
      throw std::invalid_argument(std::string(op) + ": the low-rank term must be [rows, r] · [r, n]");
    left = lowLeft.to(at::kFloat).contiguous();
    right = lowRight.to(at::kFloat).contiguous();
    term = {raw<const float>(left), raw<const float>(right), lowLeft.size(1)};
  }
};

// The AVX512-BF16 kernel's split: each worker a run of 64-column units of the output's `blocks` (32
// columns each), with its own sums (and, for the product by the transpose, its own panel).
template <typename Multiply>
void onColumnUnits(int64_t blocks, int64_t rows, const at::TensorOptions& options, bool panel, Multiply multiply) {
  const int64_t units = (blocks + 1) / 2;
  const int workers = static_cast<int>(std::min<int64_t>(at::get_num_threads(), units));
  auto sums = at::empty({workers, avx512::sumValues(rows)}, options.dtype(at::kFloat));
  auto panels = at::empty({panel ? workers : 0, avx512::panelValues()}, options);
  at::parallel_for(0, workers, 1, [&](int64_t begin, int64_t end) {
    for (int64_t worker = begin; worker < end; worker++) {
      const int64_t first = 2 * (units * worker / workers), last = std::min(blocks, 2 * (units * (worker + 1) / workers));
      if (last > first)
        multiply(first, last - first, raw<float>(sums) + worker * avx512::sumValues(rows), panel ? raw<uint16_t>(panels) + worker * avx512::panelValues() : nullptr);
    }
  });
}

}  // namespace
#endif

at::Tensor multiplyPacked(const at::Tensor& left, const at::Tensor& packed, const at::Tensor& lowLeft, const at::Tensor& lowRight) {
  if (!fits(left, packed, 1)) throw std::invalid_argument("multiplyPacked: the operands do not fit the packed product");
  const int64_t k = left.size(1), n = packed.size(0) * kBlock;
  auto rowsMajor = left.contiguous();
  const int64_t rows = rowsMajor.size(0), blocks = (rows + kBlock - 1) / kBlock;
  auto out = at::empty({rows, n}, left.options());
#if defined(__x86_64__)
  const LowRankOperands low("multiplyPacked", lowLeft, lowRight, rows, n);
  if (kernel() == Kernel::avx512bf16) {
    onColumnUnits(n / kBlock, rows, left.options(), false, [&](int64_t first, int64_t count, float* sums, uint16_t*) {
      avx512::multiplyColumns(raw<const uint16_t>(rowsMajor), rows, k, n, raw<const uint16_t>(packed), low.term, raw<uint16_t>(out), first, count, sums);
    });
    return out;
  }
  const int workers = static_cast<int>(std::min<int64_t>(at::get_num_threads(), blocks));
  auto rowTiles = at::empty({blocks * kBlock * k}, left.options());
  auto tails = at::empty({workers, kBlock * k}, left.options());
  auto partials = at::empty({blocks * kBlock * n}, left.options().dtype(at::kFloat));
  at::parallel_for(0, workers, 1, [&](int64_t begin, int64_t end) {
    for (int64_t worker = begin; worker < end; worker++) {
      const int64_t firstBlock = blocks * worker / workers, count = blocks * (worker + 1) / workers - firstBlock;
      amx::multiplyRows(raw<const uint16_t>(rowsMajor), rows, k, n, raw<const uint16_t>(packed), low.term, raw<uint16_t>(out), firstBlock * kBlock, count,
                        raw<uint16_t>(rowTiles) + firstBlock * kBlock * k, raw<float>(partials) + firstBlock * kBlock * n,
                        raw<uint16_t>(tails) + worker * kBlock * k);
    }
  });
#endif
  return out;
}

at::Tensor multiplyPackedTransposed(const at::Tensor& left, const at::Tensor& packed, const at::Tensor& lowLeft, const at::Tensor& lowRight) {
  if (!fits(left, packed, 0)) throw std::invalid_argument("multiplyPackedTransposed: the operands do not fit the packed product");
  const int64_t n = left.size(1), k = packed.size(1) * kBlock;
  auto rowsMajor = left.contiguous();
  const int64_t rows = rowsMajor.size(0), rowBlocks = (rows + kBlock - 1) / kBlock, columnBlocks = k / kBlock;
  auto out = at::empty({rows, k}, left.options());
#if defined(__x86_64__)
  const LowRankOperands low("multiplyPackedTransposed", lowLeft, lowRight, rows, k);
  if (kernel() == Kernel::avx512bf16) {
    onColumnUnits(columnBlocks, rows, left.options(), true, [&](int64_t first, int64_t count, float* sums, uint16_t* panel) {
      avx512::multiplyTransposedColumns(raw<const uint16_t>(packed), k, n, raw<const uint16_t>(rowsMajor), rows, low.term, raw<uint16_t>(out), first, count,
                                        panel, sums);
    });
    return out;
  }
  auto leftTiles = at::empty({rowBlocks * kBlock * n}, left.options());
  at::parallel_for(0, rowBlocks, 1, [&](int64_t begin, int64_t end) {
    packTransposedInto(raw<const uint16_t>(rowsMajor), rows, n, raw<uint16_t>(leftTiles), begin, end - begin);
  });
  const int workers = static_cast<int>(std::min<int64_t>(at::get_num_threads(), columnBlocks));
  auto rowTiles = at::empty({workers, amx::transposedRowTileValues(n)}, left.options());
  auto partials = at::empty({workers, amx::transposedPartialValues(rows)}, left.options().dtype(at::kFloat));
  at::parallel_for(0, workers, 1, [&](int64_t begin, int64_t end) {
    for (int64_t worker = begin; worker < end; worker++) {
      const int64_t first = columnBlocks * worker / workers, count = columnBlocks * (worker + 1) / workers - first;
      amx::multiplyTransposedRows(raw<const uint16_t>(packed), k, n, raw<const uint16_t>(leftTiles), rows, low.term, raw<uint16_t>(out), first, count,
                                  raw<uint16_t>(rowTiles) + worker * amx::transposedRowTileValues(n),
                                  raw<float>(partials) + worker * amx::transposedPartialValues(rows));
    }
  });
#endif
  return out;
}

}  // namespace attune::packed
