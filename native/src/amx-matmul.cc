// Tensors and threads around the AMX kernel (amx-kernel.h): checks, scratch, one share of the rows a
// thread. Measured against oneDNN by bench/probes/amx-matmul.cc, which runs the same kernel.
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
  auto source = w.contiguous();
  auto packed = at::empty({n / kBlock, k / kBlock, kBlockValues}, w.options());
#if defined(__x86_64__)
  packInto(raw<const uint16_t>(source), k, n, raw<uint16_t>(packed));
#endif
  return packed;
}

bool takes(const at::Tensor& left, const at::Tensor& packed) {
  if (!available() || !left.device().is_cpu() || left.scalar_type() != at::kBFloat16 || left.dim() != 2) return false;
  if (packed.dim() != 3 || packed.size(2) != kBlockValues || left.size(1) != packed.size(1) * kBlock) return false;
  return left.size(0) >= kMinRowsPerThread * at::get_num_threads();
}

at::Tensor multiplyPacked(const at::Tensor& left, const at::Tensor& packed, const at::Tensor& lowLeft, const at::Tensor& lowRight) {
  if (!takes(left, packed)) throw std::invalid_argument("multiplyPacked: the operands do not fit the AMX product");
  const int64_t k = left.size(1), n = packed.size(0) * kBlock;
  auto rowsMajor = left.contiguous();
  const int64_t rows = rowsMajor.size(0), blocks = (rows + kBlock - 1) / kBlock;
  auto out = at::empty({rows, n}, left.options());
#if defined(__x86_64__)
  at::Tensor lowLeftRows, lowRightRows;
  LowRank low;
  if (lowLeft.defined() || lowRight.defined()) {
    if (!lowLeft.defined() || !lowRight.defined() || lowLeft.dim() != 2 || lowRight.dim() != 2 || lowLeft.size(0) != rows ||
        lowRight.size(1) != n || lowLeft.size(1) != lowRight.size(0))
      throw std::invalid_argument("multiplyPacked: the low-rank term must be [rows, r] · [r, n]");
    lowLeftRows = lowLeft.to(at::kFloat).contiguous();
    lowRightRows = lowRight.to(at::kFloat).contiguous();
    low = {raw<const float>(lowLeftRows), raw<const float>(lowRightRows), lowLeft.size(1)};
  }
  const int workers = static_cast<int>(std::min<int64_t>(at::get_num_threads(), blocks));
  auto rowTiles = at::empty({blocks * kBlock * k}, left.options());
  auto tails = at::empty({workers, kBlock * k}, left.options());
  auto partials = at::empty({blocks * kBlock * n}, left.options().dtype(at::kFloat));
  at::parallel_for(0, workers, 1, [&](int64_t begin, int64_t end) {
    for (int64_t worker = begin; worker < end; worker++) {
      const int64_t firstBlock = blocks * worker / workers, count = blocks * (worker + 1) / workers - firstBlock;
      multiplyRows(raw<const uint16_t>(rowsMajor), rows, k, n, raw<const uint16_t>(packed), low, raw<uint16_t>(out), firstBlock * kBlock, count,
                   raw<uint16_t>(rowTiles) + firstBlock * kBlock * k, raw<float>(partials) + firstBlock * kBlock * n,
                   raw<uint16_t>(tails) + worker * kBlock * k);
    }
  });
#endif
  return out;
}

}  // namespace attune::amx
