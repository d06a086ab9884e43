// The AMX kernel itself, free of libtorch so that the bench's standalone probe (bench/probes/amx-matmul.cc)
// times exactly what the addon runs (amx-matmul.cc wraps it for tensors and threads). x86-64 only.
//
// The left operand's rows are split between the threads. Each thread first copies its rows into tile order
// (32 rows × 32 values per k step, contiguous), then walks k in slabs of at most 1 MiB of its rows, so
// they stay in its L2 while every 32 columns of the packed right operand stream past them. Each 32 × 32
// output block accumulates in four float32 tiles; across slabs the sums wait in float32 partials, and
// the last slab rounds them into bfloat16 once. While one column block multiplies, the next one's slab
// is prefetched into L2.
#pragma once

#include <immintrin.h>

#include <algorithm>
#include <cstdint>
#include <cstring>

#include "amx-tiles.h"

#define ATTUNE_AMX_TARGET __attribute__((target("amx-tile,amx-bf16,avx512f,avx512bw,avx512bf16")))

namespace attune::amx {

constexpr int64_t kBlock = 32;                     // rows and columns of an output block, and values of a k step
constexpr int64_t kBlockValues = kBlock * kBlock;  // one k step of a block: two tiles of 16 × 32 values
constexpr int64_t kSlabBytesPerThread = 1 << 20;   // a thread's rows per slab of k, kept in its 2 MiB L2
constexpr int kPrefetchLinesPerStep = 4;           // the next column block's slab, spread over this one's steps

// Rows 2p and 2p + 1 of each k step of w, their values side by side: the right operand's tile rows.
ATTUNE_AMX_TARGET inline void packInto(const uint16_t* w, int64_t k, int64_t n, uint16_t* packed) {
  const __m512i firstHalf = _mm512_set_epi16(47, 15, 46, 14, 45, 13, 44, 12, 43, 11, 42, 10, 41, 9, 40, 8, 39, 7, 38, 6, 37, 5,
                                             36, 4, 35, 3, 34, 2, 33, 1, 32, 0);
  const __m512i secondHalf = _mm512_set_epi16(63, 31, 62, 30, 61, 29, 60, 28, 59, 27, 58, 26, 57, 25, 56, 24, 55, 23, 54, 22,
                                              53, 21, 52, 20, 51, 19, 50, 18, 49, 17, 48, 16);
  const int64_t steps = k / kBlock;
  for (int64_t column = 0; column < n / kBlock; column++)
    for (int64_t step = 0; step < steps; step++)
      for (int pair = 0; pair < 16; pair++) {
        const uint16_t* even = w + (step * kBlock + 2 * pair) * n + column * kBlock;
        __m512i evenRow = _mm512_loadu_si512(even), oddRow = _mm512_loadu_si512(even + n);
        uint16_t* tiles = packed + (column * steps + step) * kBlockValues + pair * kBlock;
        _mm512_storeu_si512(tiles, _mm512_permutex2var_epi16(evenRow, firstHalf, oddRow));
        _mm512_storeu_si512(tiles + kBlockValues / 2, _mm512_permutex2var_epi16(evenRow, secondHalf, oddRow));
      }
}

// The low-rank term of multiplyPacked: lowLeft [rows, rank] · lowRight [rank, n] in float32 (rank 0: none).
struct LowRank {
  const float* left = nullptr;
  const float* right = nullptr;
  int64_t rank = 0;
};

// Output rows [first, first + 32 · blocks) ∩ [0, rows) of left · w (+ the low-rank term). `rowTiles`
// (32 · blocks · k values), `partials` (32 · blocks · n floats) and `tail` (32 · k values) are this thread's scratch.
ATTUNE_AMX_TARGET inline void multiplyRows(const uint16_t* left, int64_t rows, int64_t k, int64_t n, const uint16_t* packed, const LowRank& low,
                                    uint16_t* out, int64_t first, int64_t blocks, uint16_t* rowTiles, float* partials, uint16_t* tail) {
  const int64_t steps = k / kBlock, columnBlocks = n / kBlock;
  for (int64_t block = 0; block < blocks; block++) {
    const int64_t start = first + block * kBlock;
    const uint16_t* source = left + start * k;
    if (start + kBlock > rows) {  // the last, partial block: its missing rows are zeros
      std::memset(tail, 0, kBlock * k * sizeof(uint16_t));
      std::memcpy(tail, source, (rows - start) * k * sizeof(uint16_t));
      source = tail;
    }
    for (int64_t step = 0; step < steps; step++)
      for (int r = 0; r < kBlock; r++)
        _mm512_storeu_si512(rowTiles + ((block * steps + step) * kBlock + r) * kBlock, _mm512_loadu_si512(source + r * k + step * kBlock));
  }
  const int64_t slabSteps = std::clamp<int64_t>(kSlabBytesPerThread / (blocks * kBlockValues * 2), 1, steps);
  configureTiles();
  alignas(64) float sums[4][256];
  for (int64_t slabStart = 0; slabStart < steps; slabStart += slabSteps) {
    const int64_t slabEnd = std::min(steps, slabStart + slabSteps);
    const bool firstSlab = slabStart == 0, lastSlab = slabEnd == steps;
    for (int64_t column = 0; column < columnBlocks; column++) {
      const char* next = column + 1 < columnBlocks ? reinterpret_cast<const char*>(packed + ((column + 1) * steps + slabStart) * kBlockValues) : nullptr;
      const int64_t nextLines = (slabEnd - slabStart) * kBlockValues * 2 / 64;
      int64_t prefetched = 0;
      for (int64_t block = 0; block < blocks; block++) {
        float* partial = partials + (block * columnBlocks + column) * kBlockValues;
        if (firstSlab) {
          _tile_zero(0);
          _tile_zero(1);
          _tile_zero(2);
          _tile_zero(3);
        } else {
          _tile_loadd(0, partial, 64);
          _tile_loadd(1, partial + 256, 64);
          _tile_loadd(2, partial + 512, 64);
          _tile_loadd(3, partial + 768, 64);
        }
        const uint16_t* a = rowTiles + (block * steps + slabStart) * kBlockValues;
        const uint16_t* b = packed + (column * steps + slabStart) * kBlockValues;
        for (int64_t step = slabStart; step < slabEnd; step++, a += kBlockValues, b += kBlockValues) {
          for (int i = 0; next && i < kPrefetchLinesPerStep && prefetched < nextLines; i++, prefetched++)
            _mm_prefetch(next + prefetched * 64, _MM_HINT_T1);
          _tile_loadd(4, a, 64);                     // rows 0-15
          _tile_loadd(5, a + kBlockValues / 2, 64);  // rows 16-31
          _tile_loadd(6, b, 64);                     // columns 0-15
          _tile_loadd(7, b + kBlockValues / 2, 64);  // columns 16-31
          _tile_dpbf16ps(0, 4, 6);
          _tile_dpbf16ps(1, 4, 7);
          _tile_dpbf16ps(2, 5, 6);
          _tile_dpbf16ps(3, 5, 7);
        }
        float* destination = lastSlab ? sums[0] : partial;
        _tile_stored(0, destination, 64);
        _tile_stored(1, destination + 256, 64);
        _tile_stored(2, destination + 512, 64);
        _tile_stored(3, destination + 768, 64);
        if (!lastSlab) continue;
        for (int half = 0; half < 2; half++)
          for (int r = 0; r < 16; r++) {
            const int64_t row = first + block * kBlock + half * 16 + r;
            if (row >= rows) break;
            __m512 first16 = _mm512_load_ps(sums[half * 2] + r * 16), second16 = _mm512_load_ps(sums[half * 2 + 1] + r * 16);
            for (int64_t j = 0; j < low.rank; j++) {
              const __m512 factor = _mm512_set1_ps(low.left[row * low.rank + j]);
              const float* right = low.right + j * n + column * kBlock;
              first16 = _mm512_fmadd_ps(factor, _mm512_loadu_ps(right), first16);
              second16 = _mm512_fmadd_ps(factor, _mm512_loadu_ps(right + 16), second16);
            }
            _mm512_storeu_si512(out + row * n + column * kBlock, (__m512i)_mm512_cvtne2ps_pbh(second16, first16));
          }
      }
    }
  }
  _tile_release();
}

}  // namespace attune::amx
