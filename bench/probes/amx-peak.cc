// The CPU's own bfloat16 matrix rate: AMX tile multiplies (TDPBF16PS) on every core at once, first on
// operands that stay in the core's caches (the ceiling any matmul library could approach here), then with
// one operand streamed in from L2 and from beyond it, as a large matmul must. Shown beside oneDNN's rate at
// real shapes (bench/matmul-headroom.ts). Prints one JSON line; on a CPU or kernel without AMX it says so,
// and where the CPU has AVX-512 BF16 instead (AMD Zen 4 and 5, say), it gives that instruction's ceiling.
// Built by the bench with g++ -O2 -mamx-tile -mamx-bf16 -fopenmp.
#include <immintrin.h>
#include <omp.h>

#include <cstdint>
#include <cstdio>
#include <cstdlib>

#include "../../native/src/amx-tiles.h"

namespace {

// 2×2 blocks of 16×16 float32 accumulators over k-steps of 32: the register blocking a GEMM kernel uses.
// Each k-step loads two A tiles from a small block that stays in L1 and two B tiles from a buffer of
// `streamedBytes` per thread, read front to back: 8 KiB stays in L1, 64 KiB spills to L2, 1 MiB streams
// from L2, 64 MiB from beyond it.
double tflops(long streamedBytes) {
  const int aSteps = 4;
  const long bSteps = streamedBytes / 2048;
  const long steps = 25000000L;
  double started = omp_get_wtime();
#pragma omp parallel
  {
    attune::amx::configureTiles();
    auto* a = static_cast<uint16_t*>(aligned_alloc(64, aSteps * 2048));
    auto* b = static_cast<uint16_t*>(aligned_alloc(64, bSteps * 2048));
    for (int i = 0; i < aSteps * 1024; i++) a[i] = 0x3f80;  // 1.0
    for (long i = 0; i < bSteps * 1024; i++) b[i] = 0x3f80;
    _tile_zero(0);
    _tile_zero(1);
    _tile_zero(2);
    _tile_zero(3);
    for (long done = 0; done < steps; done += bSteps) {
      for (long k = 0; k < bSteps; k++) {
        const uint16_t* ak = a + (k % aSteps) * 1024;
        _tile_loadd(4, ak, 64);
        _tile_loadd(5, ak + 512, 64);
        _tile_loadd(6, b + k * 1024, 64);
        _tile_loadd(7, b + k * 1024 + 512, 64);
        _tile_dpbf16ps(0, 4, 6);
        _tile_dpbf16ps(1, 4, 7);
        _tile_dpbf16ps(2, 5, 6);
        _tile_dpbf16ps(3, 5, 7);
      }
    }
    float sink[256];
    _tile_stored(0, sink, 64);
    _tile_release();
    free(a), free(b);
  }
  double seconds = omp_get_wtime() - started;
  const long done = (steps + bSteps - 1) / bSteps * bSteps;
  return 2.0 * 16 * 16 * 32 * 4 * done * omp_get_max_threads() / seconds / 1e12;
}

// VDPBF16PS (16 float32 sums, each of two bfloat16 products) on registers alone, on every core at once:
// 24 independent sums per thread, enough to hide the instruction's latency on both of a core's pipes.
__attribute__((target("avx512f,avx512bf16"))) double dotProductTflops() {
  const long rounds = 20000000L;
  double started = omp_get_wtime();
#pragma omp parallel
  {
    __m512 sums[24];
    for (auto& sum : sums) sum = _mm512_setzero_ps();
    __m512bh left = (__m512bh)_mm512_set1_epi16(0x3f80), right = left;
    for (long round = 0; round < rounds; round++) {
#pragma GCC unroll 24
      for (auto& sum : sums) sum = _mm512_dpbf16_ps(sum, left, right);
      __asm__ volatile("" : "+v"(left));  // keeps the loop from being folded away
    }
    float sink = 0;
    for (auto& sum : sums) sink += _mm512_reduce_add_ps(sum);
    __asm__ volatile("" : : "x"(sink));
  }
  return 2.0 * 32 * 24 * rounds * omp_get_max_threads() / (omp_get_wtime() - started) / 1e12;
}

void withoutAmx(const char* why) {
  if (!__builtin_cpu_supports("avx512bf16")) {
    printf("{\"amx\":false,\"why\":\"%s\"}\n", why);
    return;
  }
  dotProductTflops();  // the cores' warm-up, as for the tiles below
  printf("{\"amx\":false,\"why\":\"%s\",\"threads\":%d,\"avx512_bf16_tflops\":%.2f}\n", why, omp_get_max_threads(), dotProductTflops());
}

}  // namespace

int main() {
  if (!attune::amx::cpuHasAmxBf16()) return withoutAmx("this CPU has no AMX-BF16"), 0;
  if (!attune::amx::kernelGrantsTiles()) return withoutAmx("the kernel does not grant AMX tile state"), 0;
  // Cores that sat idle take milliseconds to come back (the first parallel bursts here run at a tenth of
  // the rate): a second of multiplies first.
  tflops(8 << 10), tflops(8 << 10);
  printf("{\"amx\":true,\"threads\":%d,\"in_l1_tflops\":%.2f,\"in_l2_tflops\":%.2f,\"streamed_from_l2_tflops\":%.2f,"
         "\"streamed_from_memory_tflops\":%.2f}\n",
         omp_get_max_threads(), tflops(8 << 10), tflops(64 << 10), tflops(1 << 20), tflops(64L << 20));
}
