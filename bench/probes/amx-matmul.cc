// A bfloat16 matmul written directly on the AMX units, at one block's projections of a training step:
// forward y = x Wᵀ and backward g W for each [out, in] weight, the products bench/measure.ts times with
// oneDNN. Its weights are packed into tile order once, outside the timing, as a frozen base weight could
// be at load (one packed copy per direction: twice the weights' memory). The activations are packed on
// every call, inside the timing. It is a measurement of how far a matmul built for these shapes gets,
// not a kernel Attune runs (bench/matmul-headroom.ts sets it beside oneDNN). It repeats each product on the
// same warm buffers; what the design gives inside a training step is in the README (the backward on a
// packed copy: 1B steps 6–35% faster, the forward: within noise).
//
// Blocking: each thread takes a share of the rows and packs them as tile-contiguous blocks (strided rows
// would fall into the same L1 sets); the output is built 32 × 32 at a time in four accumulator tiles
// over a whole slab of k, with both operands streamed from L2 and the next block of weights prefetched
// into it. A slab of k is as long as keeps a thread's rows within 1 MiB; longer contractions keep
// float32 partial sums between slabs.
//
//   amx-matmul ROWS OUT IN [OUT IN ...]   (ROWS, OUT and IN multiples of 32; threads from OMP_NUM_THREADS)
// Prints one JSON line: the combined rate, or {"amx":false,"why":...}. Built by the bench with g++.
#include <immintrin.h>
#include <omp.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <vector>

#include "../../native/src/amx-tiles.h"

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

constexpr int64_t kRowsPerThreadBytes = 1 << 20;
constexpr int kPrefetchLinesPerStep = 4;

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

// 16 × 16 32-bit transpose in registers: 16 rows of src (stride in 32-bit words) to 16 contiguous rows.
void transpose16(const uint32_t* src, int64_t stride, uint32_t* dst) {
  __m512i r[16], t[16];
  for (int i = 0; i < 16; i++) r[i] = _mm512_loadu_si512(src + i * stride);
  for (int i = 0; i < 16; i += 2) {
    t[i] = _mm512_unpacklo_epi32(r[i], r[i + 1]);
    t[i + 1] = _mm512_unpackhi_epi32(r[i], r[i + 1]);
  }
  for (int i = 0; i < 16; i += 4) {
    r[i] = _mm512_unpacklo_epi64(t[i], t[i + 2]);
    r[i + 1] = _mm512_unpackhi_epi64(t[i], t[i + 2]);
    r[i + 2] = _mm512_unpacklo_epi64(t[i + 1], t[i + 3]);
    r[i + 3] = _mm512_unpackhi_epi64(t[i + 1], t[i + 3]);
  }
  for (int i = 0; i < 16; i += 8)
    for (int j = 0; j < 4; j++) {
      t[i + j] = _mm512_shuffle_i32x4(r[i + j], r[i + 4 + j], 0x88);
      t[i + 4 + j] = _mm512_shuffle_i32x4(r[i + j], r[i + 4 + j], 0xdd);
    }
  for (int j = 0; j < 8; j++) {
    r[j] = _mm512_shuffle_i32x4(t[j], t[j + 8], 0x88);
    r[j + 8] = _mm512_shuffle_i32x4(t[j], t[j + 8], 0xdd);
  }
  for (int q = 0; q < 16; q++) _mm512_storeu_si512(dst + q * 16, r[q]);
}

// The right-hand operand in tile order, [column block of 32][k step of 32][2 tiles][16 pairs][16 columns][2]:
// each tile row holds, per column, two consecutive k values.
struct PackedWeight {
  Buffer<bf16> data;
  int64_t columns = 0, depth = 0;
  const bf16* block(int64_t columnBlock) const { return data.data() + columnBlock * depth * 32; }
};

// For y = x Wᵀ, W [out, in]: columns are W's rows, k runs along them (pairs of 32-bit words, transposed).
PackedWeight packRowsAsColumns(const bf16* w, int64_t out, int64_t in) {
  PackedWeight p{Buffer<bf16>(out * in), out, in};
  int64_t steps = in / 32;
#pragma omp parallel for collapse(2)
  for (int64_t cb = 0; cb < out / 32; cb++)
    for (int64_t s = 0; s < steps; s++)
      for (int t = 0; t < 2; t++)
        transpose16(reinterpret_cast<const uint32_t*>(w + (cb * 32 + t * 16) * in + s * 32), in / 2,
                    reinterpret_cast<uint32_t*>(p.data.data() + ((cb * steps + s) * 2 + t) * 512));
  return p;
}

// For g W, W [out, in]: columns are W's columns, k runs down W's rows (pairs of rows interleaved).
PackedWeight packColumns(const bf16* w, int64_t out, int64_t in) {
  PackedWeight p{Buffer<bf16>(out * in), in, out};
  const __m512i low = _mm512_set_epi16(47, 15, 46, 14, 45, 13, 44, 12, 43, 11, 42, 10, 41, 9, 40, 8, 39, 7, 38, 6, 37, 5, 36, 4, 35, 3,
                                       34, 2, 33, 1, 32, 0);
  const __m512i high = _mm512_set_epi16(63, 31, 62, 30, 61, 29, 60, 28, 59, 27, 58, 26, 57, 25, 56, 24, 55, 23, 54, 22, 53, 21, 52,
                                        20, 51, 19, 50, 18, 49, 17, 48, 16);
  int64_t steps = out / 32;
#pragma omp parallel for collapse(2)
  for (int64_t cb = 0; cb < in / 32; cb++)
    for (int64_t s = 0; s < steps; s++)
      for (int pair = 0; pair < 16; pair++) {
        const bf16* even = w + (s * 32 + 2 * pair) * in + cb * 32;
        __m512i a = _mm512_loadu_si512(even), b = _mm512_loadu_si512(even + in);
        bf16* dst = p.data.data() + (cb * steps + s) * 1024 + pair * 32;
        _mm512_storeu_si512(dst, _mm512_permutex2var_epi16(a, low, b));
        _mm512_storeu_si512(dst + 512, _mm512_permutex2var_epi16(a, high, b));
      }
  return p;
}

struct ThreadScratch {
  Buffer<bf16> rows;       // this thread's rows of the left operand, in tile order
  Buffer<float> partials;  // float32 sums between slabs of k
};

// out [rows, b.columns] (bf16) = left [rows, b.depth] (bf16, row-major) · b.
void matmul(const bf16* left, int64_t rows, const PackedWeight& b, bf16* out, std::vector<ThreadScratch>& scratch) {
  const int64_t depth = b.depth, columns = b.columns, steps = depth / 32, columnBlocks = columns / 32;
#pragma omp parallel
  {
    int threads = omp_get_num_threads(), id = omp_get_thread_num();
    int64_t firstBlock = rows / 32 * id / threads, endBlock = rows / 32 * (id + 1) / threads, blocks = endBlock - firstBlock;
    ThreadScratch& mine = scratch[id];
    mine.rows.resize(blocks * 32 * depth);
    bf16* packed = mine.rows.data();
    for (int64_t rb = 0; rb < blocks; rb++)
      for (int64_t s = 0; s < steps; s++)
        for (int r = 0; r < 32; r++)
          _mm512_storeu_si512(packed + ((rb * steps + s) * 32 + r) * 32, _mm512_loadu_si512(left + ((firstBlock + rb) * 32 + r) * depth + s * 32));
    const int64_t slabSteps = std::max<int64_t>(1, std::min(steps, kRowsPerThreadBytes / std::max<int64_t>(1, blocks * 32 * 64)));
    if (slabSteps < steps) mine.partials.resize(blocks * columnBlocks * 1024);
    float* partials = mine.partials.data();
    attune::amx::configureTiles();
    alignas(64) float tiles[4][256];
    for (int64_t s0 = 0; s0 < steps; s0 += slabSteps) {
      const int64_t s1 = std::min(steps, s0 + slabSteps);
      const bool first = s0 == 0, last = s1 == steps;
      for (int64_t cb = 0; cb < columnBlocks; cb++) {
        const char* next = cb + 1 < columnBlocks ? reinterpret_cast<const char*>(b.block(cb + 1) + s0 * 1024) : nullptr;
        const int64_t nextLines = (s1 - s0) * 32;
        int64_t prefetched = 0;
        for (int64_t rb = 0; rb < blocks; rb++) {
          float* sums = partials + (rb * columnBlocks + cb) * 1024;
          if (first) {
            _tile_zero(0);
            _tile_zero(1);
            _tile_zero(2);
            _tile_zero(3);
          } else {
            _tile_loadd(0, sums, 64);
            _tile_loadd(1, sums + 256, 64);
            _tile_loadd(2, sums + 512, 64);
            _tile_loadd(3, sums + 768, 64);
          }
          const bf16* a = packed + (rb * steps + s0) * 1024;
          const bf16* w = b.block(cb) + s0 * 1024;
          for (int64_t s = s0; s < s1; s++, a += 1024, w += 1024) {
            for (int i = 0; next && i < kPrefetchLinesPerStep && prefetched < nextLines; i++, prefetched++) _mm_prefetch(next + prefetched * 64, _MM_HINT_T1);
            _tile_loadd(4, a, 64);
            _tile_loadd(5, a + 512, 64);
            _tile_loadd(6, w, 64);
            _tile_loadd(7, w + 512, 64);
            _tile_dpbf16ps(0, 4, 6);
            _tile_dpbf16ps(1, 4, 7);
            _tile_dpbf16ps(2, 5, 6);
            _tile_dpbf16ps(3, 5, 7);
          }
          float* destination = last ? tiles[0] : sums;  // tiles[0..3] are contiguous, as a block of sums is
          _tile_stored(0, destination, 64);
          _tile_stored(1, destination + 256, 64);
          _tile_stored(2, destination + 512, 64);
          _tile_stored(3, destination + 768, 64);
          if (!last) continue;
          for (int half = 0; half < 2; half++)
            for (int r = 0; r < 16; r++) {
              __m512 low = _mm512_load_ps(tiles[half * 2] + r * 16), high = _mm512_load_ps(tiles[half * 2 + 1] + r * 16);
              bf16* dst = out + ((firstBlock + rb) * 32 + half * 16 + r) * columns + cb * 32;
              _mm512_storeu_si512(dst, (__m512i)_mm512_cvtne2ps_pbh(high, low));
            }
        }
      }
    }
    _tile_release();
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
  if (!attune::amx::cpuHasAmxBf16() || !attune::amx::cpuHasAvx512Bf16()) return puts("{\"amx\":false,\"why\":\"this CPU has no AMX-BF16 and AVX512-BF16\"}"), 0;
  if (!attune::amx::kernelGrantsTiles())
    return puts("{\"amx\":false,\"why\":\"the kernel does not grant AMX tile state\"}"), 0;
  const int64_t rows = atol(argv[1]);
  std::vector<ThreadScratch> scratch(omp_get_max_threads());
  double flops = 0, seconds = 0;
  for (int arg = 2; arg + 1 < argc; arg += 2) {
    const int64_t out = atol(argv[arg]), in = atol(argv[arg + 1]);
    if (rows % 32 || out % 32 || in % 32 || rows <= 0 || out <= 0 || in <= 0)
      return puts("{\"amx\":false,\"why\":\"ROWS, OUT and IN must be positive multiples of 32\"}"), 0;
    auto w = randomBf16(out * in, 1, 0.1f), x = randomBf16(rows * in, 2, 2.0f), g = randomBf16(rows * out, 3, 2.0f);
    auto forward = packRowsAsColumns(w.data(), out, in);
    auto backward = packColumns(w.data(), out, in);
    Buffer<bf16> y(rows * out), gx(rows * in);
    seconds += bestSeconds([&] { matmul(x.data(), rows, forward, y.data(), scratch); });
    seconds += bestSeconds([&] { matmul(g.data(), rows, backward, gx.data(), scratch); });
    flops += 2.0 * 2 * rows * out * in;
    bool right = agrees(y, out, x, in, [&](int64_t kk, int64_t j) { return w[j * in + kk]; }, rows) &&
                 agrees(gx, in, g, out, [&](int64_t kk, int64_t j) { return w[kk * in + j]; }, rows);
    if (!right) return printf("{\"amx\":false,\"why\":\"the product of a %ldx%ld weight disagrees with float32 sums\"}\n", long(out), long(in)), 0;
  }
  printf("{\"amx\":true,\"threads\":%d,\"rows\":%ld,\"tflops\":%.3f}\n", omp_get_max_threads(), long(rows), flops / seconds / 1e12);
}
