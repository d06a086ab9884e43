// Tensors and threads around the AMX kernel (amx-kernel.h): checks, scratch, and each thread's share of
// the work (of the left operand's rows, or for a product by the transpose, of w's rows). Measured against
// oneDNN by bench/probes/amx-matmul.cc, which runs the same kernel.
#include "amx-matmul.h"

#include <ATen/Parallel.h>

#include <algorithm>
#include <cstdlib>
#include <cstring>
#include <stdexcept>

#if defined(__x86_64__)
#include "amx-kernel.h"
#endif

namespace attune::amx {
namespace {

#if !defined(__x86_64__)
constexpr int64_t kBlock = 32, kBlockValues = kBlock * kBlock;  // as amx-kernel.h, which is x86-64 only
#endif
constexpr int64_t kMinRowsPerThread = 32;  // below this a thread multiplies more padding than rows

bool cpuAndKernelGrantAmx() {
#if defined(__x86_64__)
  const char* setting = std::getenv("ATTUNE_AMX");
  if (setting && std::strcmp(setting, "0") == 0) return false;
  return cpuHasAmxBf16() && cpuHasAvx512Bf16() && kernelGrantsTiles();
#else
  return false;
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

bool available() {
  static const bool granted = cpuAndKernelGrantAmx();
  return granted;
}

at::Tensor packRight(const at::Tensor& w) {
  if (!available()) throw std::invalid_argument("packRight: this CPU has no AMX-BF16 tile units this process may use");
  if (!w.device().is_cpu() || w.scalar_type() != at::kBFloat16 || w.dim() != 2)
    throw std::invalid_argument("packRight: the matrix must be a 2-D bfloat16 tensor on the CPU");
  const int64_t k = w.size(0), n = w.size(1);
  if (k == 0 || n == 0 || k % kBlock || n % kBlock) throw std::invalid_argument("packRight: both dimensions must be multiples of 32");
  auto packed = at::empty({n / kBlock, k / kBlock, kBlockValues}, w.options());
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
  if (!available()) throw std::invalid_argument("unpackRight: this CPU has no AMX-BF16 tile units this process may use");
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

}  // namespace
#endif

at::Tensor multiplyPacked(const at::Tensor& left, const at::Tensor& packed, const at::Tensor& lowLeft, const at::Tensor& lowRight) {
  if (!fits(left, packed, 1)) throw std::invalid_argument("multiplyPacked: the operands do not fit the AMX product");
  const int64_t k = left.size(1), n = packed.size(0) * kBlock;
  auto rowsMajor = left.contiguous();
  const int64_t rows = rowsMajor.size(0), blocks = (rows + kBlock - 1) / kBlock;
  auto out = at::empty({rows, n}, left.options());
#if defined(__x86_64__)
  const LowRankOperands low("multiplyPacked", lowLeft, lowRight, rows, n);
  const int workers = static_cast<int>(std::min<int64_t>(at::get_num_threads(), blocks));
  auto rowTiles = at::empty({blocks * kBlock * k}, left.options());
  auto tails = at::empty({workers, kBlock * k}, left.options());
  auto partials = at::empty({blocks * kBlock * n}, left.options().dtype(at::kFloat));
  at::parallel_for(0, workers, 1, [&](int64_t begin, int64_t end) {
    for (int64_t worker = begin; worker < end; worker++) {
      const int64_t firstBlock = blocks * worker / workers, count = blocks * (worker + 1) / workers - firstBlock;
      multiplyRows(raw<const uint16_t>(rowsMajor), rows, k, n, raw<const uint16_t>(packed), low.term, raw<uint16_t>(out), firstBlock * kBlock, count,
                   raw<uint16_t>(rowTiles) + firstBlock * kBlock * k, raw<float>(partials) + firstBlock * kBlock * n,
                   raw<uint16_t>(tails) + worker * kBlock * k);
    }
  });
#endif
  return out;
}

at::Tensor multiplyPackedTransposed(const at::Tensor& left, const at::Tensor& packed, const at::Tensor& lowLeft, const at::Tensor& lowRight) {
  if (!fits(left, packed, 0)) throw std::invalid_argument("multiplyPackedTransposed: the operands do not fit the AMX product");
  const int64_t n = left.size(1), k = packed.size(1) * kBlock;
  auto rowsMajor = left.contiguous();
  const int64_t rows = rowsMajor.size(0), rowBlocks = (rows + kBlock - 1) / kBlock, columnBlocks = k / kBlock;
  auto out = at::empty({rows, k}, left.options());
#if defined(__x86_64__)
  const LowRankOperands low("multiplyPackedTransposed", lowLeft, lowRight, rows, k);
  auto leftTiles = at::empty({rowBlocks * kBlock * n}, left.options());
  at::parallel_for(0, rowBlocks, 1, [&](int64_t begin, int64_t end) {
    packTransposedInto(raw<const uint16_t>(rowsMajor), rows, n, raw<uint16_t>(leftTiles), begin, end - begin);
  });
  const int workers = static_cast<int>(std::min<int64_t>(at::get_num_threads(), columnBlocks));
  auto rowTiles = at::empty({workers, transposedRowTileValues(n)}, left.options());
  auto partials = at::empty({workers, transposedPartialValues(rows)}, left.options().dtype(at::kFloat));
  at::parallel_for(0, workers, 1, [&](int64_t begin, int64_t end) {
    for (int64_t worker = begin; worker < end; worker++) {
      const int64_t first = columnBlocks * worker / workers, count = columnBlocks * (worker + 1) / workers - first;
      multiplyTransposedRows(raw<const uint16_t>(packed), k, n, raw<const uint16_t>(leftTiles), rows, low.term, raw<uint16_t>(out), first, count,
                             raw<uint16_t>(rowTiles) + worker * transposedRowTileValues(n), raw<float>(partials) + worker * transposedPartialValues(rows));
    }
  });
#endif
  return out;
}

}  // namespace attune::amx
