// The addon's AMX bfloat16 matmul (native/src/amx-kernel.h, included here as it is) timed on its own at one
// block's projections of a training step: forward y = x Wᵀ and backward g W for each [out, in] weight, the
// products bench/measure.ts times with oneDNN. Its weights are packed into tile order once, outside the
// timing, as a training run packs its frozen weights beside them (one packed copy per direction: twice the
// weights' memory). It also times the forward from the backward's tiles alone (multiplyTransposedRows),
// as a run whose tiles stand in for its weights computes it, and checks that it gives the same bits. The
// activations are packed on every call, inside the timing. It repeats each product on the same warm
// buffers (bench/matmul-headroom.ts sets it beside oneDNN); what the kernel gives inside a training step is
// `npm run bench -- --only packed-weights` (README).
//
//   amx-matmul ROWS OUT IN [OUT IN ...]   (ROWS, OUT and IN multiples of 32; threads from OMP_NUM_THREADS)
// Prints one JSON line: the combined rate and both forwards' times, or {"amx":false,"why":...}. Built by
// the bench with g++.
#include <immintrin.h>
#include <omp.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <vector>

#include "../../native/src/amx-kernel.h"

namespace {

using bf16 = uint16_t;

// Cache-line-aligned storage: a tile row that straddles two lines costs two loads.
template <typename T>
struct LineAligned {
  using value_type = T;
  LineAligned() = default;
  template <typename U>
  LineAligned(const LineAligned<U>&) {}
  T* allocate(size_t n) { return static_cast<T*>(std::aligned_alloc(64, (n * sizeof(T) + 63) / 64 * 64)); }
  void deallocate(T* p, size_t) { std::free(p); }
  bool operator==(const LineAligned&) const { return true; }
};
template <typename T>
using Buffer = std::vector<T, LineAligned<T>>;

float fromBf16(bf16 v) {
  uint32_t u = uint32_t(v) << 16;
  float f;
  std::memcpy(&f, &u, 4);
  return f;
}

bf16 toBf16(float f) {
  uint32_t u;
  std::memcpy(&u, &f, 4);
  return bf16((u + 0x7fff + ((u >> 16) & 1)) >> 16);
}

// The right-hand operand in the kernel's tile order: [k, n] packed (attune::packed::packInto).
struct PackedWeight {
  Buffer<bf16> data;
  int64_t depth = 0, columns = 0;
};

PackedWeight pack(const Buffer<bf16>& right, int64_t depth, int64_t columns) {
  PackedWeight p{Buffer<bf16>(depth * columns), depth, columns};
  attune::packed::packInto(right.data(), depth, columns, p.data.data());
  return p;
}

// Wᵀ [in, out] of W [out, in], for y = x Wᵀ.
Buffer<bf16> transposed(const Buffer<bf16>& w, int64_t out, int64_t in) {
  Buffer<bf16> t(in * out);
  for (int64_t i = 0; i < out; i++)
    for (int64_t j = 0; j < in; j++) t[j * out + i] = w[i * in + j];
  return t;
}

struct ThreadScratch {
  Buffer<bf16> rows, tail;  // this thread's rows of the left operand in tile order; a partial block's copy
  Buffer<float> partials;   // float32 sums between slabs of k
};

// out [rows, b.columns] (bf16) = left [rows, b.depth] (bf16, row-major) · b, each thread a share of the rows.
void matmul(const bf16* left, int64_t rows, const PackedWeight& b, bf16* out, std::vector<ThreadScratch>& scratch) {
  const int64_t blocks = (rows + 31) / 32;
#pragma omp parallel
  {
    const int threads = omp_get_num_threads(), id = omp_get_thread_num();
    const int64_t firstBlock = blocks * id / threads, count = blocks * (id + 1) / threads - firstBlock;
    ThreadScratch& mine = scratch[id];
    mine.rows.resize(count * 32 * b.depth);
    mine.tail.resize(32 * b.depth);
    mine.partials.resize(count * 32 * b.columns);
    if (count > 0)
      attune::amx::multiplyRows(left, rows, b.depth, b.columns, b.data.data(), attune::packed::LowRank{}, out, firstBlock * 32, count,
                                mine.rows.data(), mine.partials.data(), mine.tail.data());
  }
}

// out [rows, w.depth] = left [rows, w.columns] · wᵀ from w's own packed tiles (the one-copy forward):
// left is packed once, then each thread takes a share of w's row blocks.
void matmulTransposed(const bf16* left, int64_t rows, const PackedWeight& w, bf16* out, Buffer<bf16>& leftTiles, std::vector<ThreadScratch>& scratch) {
  const int64_t rowBlocks = (rows + 31) / 32, columnBlocks = w.depth / 32;
  leftTiles.resize(rowBlocks * w.columns * 32);
#pragma omp parallel
  {
    const int threads = omp_get_num_threads(), id = omp_get_thread_num();
    const int64_t firstRows = rowBlocks * id / threads, rowCount = rowBlocks * (id + 1) / threads - firstRows;
    attune::packed::packTransposedInto(left, rows, w.columns, leftTiles.data(), firstRows, rowCount);
#pragma omp barrier
    const int64_t firstBlock = columnBlocks * id / threads, count = columnBlocks * (id + 1) / threads - firstBlock;
    ThreadScratch& mine = scratch[id];
    mine.rows.resize(attune::amx::transposedRowTileValues(w.columns));
    mine.partials.resize(attune::amx::transposedPartialValues(rows));
    if (count > 0)
      attune::amx::multiplyTransposedRows(w.data.data(), w.depth, w.columns, leftTiles.data(), rows, attune::packed::LowRank{}, out, firstBlock, count,
                                          mine.rows.data(), mine.partials.data());
  }
}

Buffer<bf16> randomBf16(int64_t n, uint32_t seed, float scale) {
  Buffer<bf16> v(n);
  for (auto& x : v) {
    seed = seed * 1664525u + 1013904223u;
    x = toBf16((float(seed >> 8) / float(1 << 24) - 0.5f) * scale);
  }
  return v;
}

// Cores that sat idle take milliseconds to come back (bench/probes/amx-peak.cc): half a second of runs first.
template <typename Run>
double bestSeconds(Run&& run) {
  for (double started = omp_get_wtime(); omp_get_wtime() - started < 0.5;) run();
  double best = INFINITY;
  for (int i = 0; i < 5; i++) {
    double started = omp_get_wtime();
    run();
    best = std::min(best, omp_get_wtime() - started);
  }
  return best;
}

// Sampled entries of out [rows, n] against float32 sums of the same bf16 products: left [rows, k], and
// the right-hand value at (kk, j) from rightAt.
template <typename RightAt>
bool agrees(const Buffer<bf16>& out, int64_t n, const Buffer<bf16>& left, int64_t k, RightAt&& rightAt, int64_t rows) {
  uint32_t seed = 7;
  for (int sample = 0; sample < 64; sample++) {
    seed = seed * 1664525u + 1013904223u;
    int64_t i = (seed >> 8) % rows, j = (seed >> 3) % n;
    double expected = 0;
    for (int64_t kk = 0; kk < k; kk++) expected += double(fromBf16(left[i * k + kk])) * fromBf16(rightAt(kk, j));
    if (std::fabs(fromBf16(out[i * n + j]) - expected) > 0.01 * std::fabs(expected) + 1e-3) return false;
  }
  return true;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 4 || argc % 2) return puts("{\"amx\":false,\"why\":\"usage: amx-matmul ROWS OUT IN [OUT IN ...]\"}"), 2;
  if (!attune::amx::cpuHasAmxBf16() || !attune::amx::cpuHasAvx512Bf16()) return puts("{\"amx\":false,\"why\":\"this CPU has no AMX-BF16, or no AVX512-BF16 (the kernel needs both)\"}"), 0;
  if (!attune::amx::kernelGrantsTiles())
    return puts("{\"amx\":false,\"why\":\"the kernel does not grant AMX tile state\"}"), 0;
  const int64_t rows = atol(argv[1]);
  std::vector<ThreadScratch> scratch(omp_get_max_threads());
  double flops = 0, seconds = 0, soleSeconds = 0, forwardSeconds = 0;
  Buffer<bf16> leftTiles;
  for (int arg = 2; arg + 1 < argc; arg += 2) {
    const int64_t out = atol(argv[arg]), in = atol(argv[arg + 1]);
    if (rows % 32 || out % 32 || in % 32 || rows <= 0 || out <= 0 || in <= 0)
      return puts("{\"amx\":false,\"why\":\"ROWS, OUT and IN must be positive multiples of 32\"}"), 0;
    auto w = randomBf16(out * in, 1, 0.1f), x = randomBf16(rows * in, 2, 2.0f), g = randomBf16(rows * out, 3, 2.0f);
    auto forward = pack(transposed(w, out, in), in, out);
    auto backward = pack(w, out, in);
    Buffer<bf16> y(rows * out), gx(rows * in);
    const double forwardTime = bestSeconds([&] { matmul(x.data(), rows, forward, y.data(), scratch); });
    seconds += forwardTime;
    forwardSeconds += forwardTime;
    seconds += bestSeconds([&] { matmul(g.data(), rows, backward, gx.data(), scratch); });
    Buffer<bf16> ySole(rows * out);
    soleSeconds += bestSeconds([&] { matmulTransposed(x.data(), rows, backward, ySole.data(), leftTiles, scratch); });
    flops += 2.0 * 2 * rows * out * in;
    if (ySole != y) return printf("{\"amx\":false,\"why\":\"the one-copy forward of a %ldx%ld weight differs from the two-copy one\"}\n", long(out), long(in)), 0;
    bool right = agrees(y, out, x, in, [&](int64_t kk, int64_t j) { return w[j * in + kk]; }, rows) &&
                 agrees(gx, in, g, out, [&](int64_t kk, int64_t j) { return w[kk * in + j]; }, rows);
    if (!right) return printf("{\"amx\":false,\"why\":\"the product of a %ldx%ld weight disagrees with float32 sums\"}\n", long(out), long(in)), 0;
  }
  printf("{\"amx\":true,\"threads\":%d,\"rows\":%ld,\"tflops\":%.3f,\"forward_ms\":%.1f,\"one_copy_forward_ms\":%.1f}\n", omp_get_max_threads(), long(rows),
         flops / seconds / 1e12, forwardSeconds * 1e3, soleSeconds * 1e3);
}
