// The AMX kernel itself, over the packed layout (packed-layout.h), free of libtorch so that the bench's
// standalone probe (bench/probes/amx-matmul.cc) times exactly what the addon runs (packed-matmul.cc wraps
// it for tensors and threads). x86-64 only.
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
#include "packed-layout.h"

#define ATTUNE_AMX_TARGET __attribute__((target("amx-tile,amx-bf16,avx512f,avx512bw,avx512bf16")))

namespace attune::amx {

using packed::kBlock, packed::kBlockValues, packed::LowRank, packed::pairRowIndex, packed::storeRow, packed::transpose16, packed::unpairRow;
constexpr int64_t kSlabBytesPerThread = 1 << 20;   // a thread's rows per slab of k, kept in its 2 MiB L2
constexpr int kPrefetchLinesPerStep = 4;           // the next column block's slab, spread over this one's steps

// A 32 × 32 output block accumulates in tiles 0-3 (rows 0-15 × columns 0-15, 0-15 × 16-31, 16-31 × 0-15,
// 16-31 × 16-31), 1,024 floats when stored. The first slab of k starts them at zero; a later one from the
// partial sums the slab before left.
#define ATTUNE_AMX_INLINE ATTUNE_AMX_TARGET inline __attribute__((always_inline))
ATTUNE_AMX_INLINE void startBlockSums(const float* partial, bool firstSlab) {
  if (firstSlab) {
    _tile_zero(0);
    _tile_zero(1);
    _tile_zero(2);
    _tile_zero(3);
    return;
  }
  _tile_loadd(0, partial, 64);
  _tile_loadd(1, partial + 256, 64);
  _tile_loadd(2, partial + 512, 64);
  _tile_loadd(3, partial + 768, 64);
}

// One k step of the block: a's two 16-row tiles (its rows 0-15, then 16-31) times b's two 16-column
// tiles (its columns 0-15, then 16-31), into tiles 0-3.
ATTUNE_AMX_INLINE void multiplyStep(const uint16_t* a, const uint16_t* b) {
  _tile_loadd(4, a, 64);
  _tile_loadd(5, a + kBlockValues / 2, 64);
  _tile_loadd(6, b, 64);
  _tile_loadd(7, b + kBlockValues / 2, 64);
  _tile_dpbf16ps(0, 4, 6);
  _tile_dpbf16ps(1, 4, 7);
  _tile_dpbf16ps(2, 5, 6);
  _tile_dpbf16ps(3, 5, 7);
}

ATTUNE_AMX_INLINE void storeBlockSums(float* destination) {
  _tile_stored(0, destination, 64);
  _tile_stored(1, destination + 256, 64);
  _tile_stored(2, destination + 512, 64);
  _tile_stored(3, destination + 768, 64);
}

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
        startBlockSums(partial, firstSlab);
        const uint16_t* a = rowTiles + (block * steps + slabStart) * kBlockValues;
        const uint16_t* b = packed + (column * steps + slabStart) * kBlockValues;
        for (int64_t step = slabStart; step < slabEnd; step++, a += kBlockValues, b += kBlockValues) {
          for (int i = 0; next && i < kPrefetchLinesPerStep && prefetched < nextLines; i++, prefetched++)
            _mm_prefetch(next + prefetched * 64, _MM_HINT_T1);
          multiplyStep(a, b);
        }
        storeBlockSums(lastSlab ? sums[0] : partial);
        if (!lastSlab) continue;
        for (int half = 0; half < 2; half++)
          for (int r = 0; r < 16; r++) {
            const int64_t row = first + block * kBlock + half * 16 + r;
            if (row >= rows) break;
            storeRow(_mm512_load_ps(sums[half * 2] + r * 16), _mm512_load_ps(sums[half * 2 + 1] + r * 16), low, out, row, n, column);
          }
      }
    }
  }
  _tile_release();
}

constexpr int64_t kTransposedGroup = 8;      // blocks of w's rows that share one pass over left's tiles
constexpr int64_t kTransposedSlabSteps = 16;  // n steps per slab: a group's rows of w (256 KiB) and a row block's tiles (32 KiB) stay in L2 and L1

// Scratch sizes for multiplyTransposedRows, in values.
inline int64_t transposedRowTileValues(int64_t n) { return kTransposedGroup * std::min(n / kBlock, kTransposedSlabSteps) * kBlockValues; }
inline int64_t transposedPartialValues(int64_t rows) { return kTransposedGroup * ((rows + kBlock - 1) / kBlock) * kBlockValues; }

// Output columns [32 · first, 32 · (first + blocks)) of left · wᵀ (+ the low-rank term), where w [k, n] is
// packed (packInto) and left [rows, n] is packed by packTransposedInto. The tiles compute blocks of
// (left · wᵀ)ᵀ = w · leftᵀ: w's rows are the left-hand tiles, taken out of w's packed pairs into
// `rowTiles` (transposedRowTileValues) a group and a slab at a time, and each 32 × 32 result is transposed
// back on its way out. `partials` (transposedPartialValues) keeps float32 sums between slabs. This lets one
// packed copy of a weight serve both x Wᵀ (here) and g W (multiplyRows).
ATTUNE_AMX_TARGET inline void multiplyTransposedRows(const uint16_t* packed, int64_t k, int64_t n, const uint16_t* leftTiles, int64_t rows,
                                                     const LowRank& low, uint16_t* out, int64_t first, int64_t blocks, uint16_t* rowTiles,
                                                     float* partials) {
  const int64_t kSteps = k / kBlock, nSteps = n / kBlock, rowBlocks = (rows + kBlock - 1) / kBlock;
  const int64_t slabSteps = std::min(nSteps, kTransposedSlabSteps);
  const __m512i even = pairRowIndex(0), odd = pairRowIndex(1);
  configureTiles();
  alignas(64) float sums[4][256];
  __m512i lower[16], upper[16];
  for (int64_t group = first; group < first + blocks; group += kTransposedGroup) {
    const int64_t members = std::min(kTransposedGroup, first + blocks - group);
    for (int64_t slabStart = 0; slabStart < nSteps; slabStart += slabSteps) {
      const int64_t slabEnd = std::min(nSteps, slabStart + slabSteps), slabLength = slabEnd - slabStart;
      const bool firstSlab = slabStart == 0, lastSlab = slabEnd == nSteps;
      for (int64_t member = 0; member < members; member++)
        for (int64_t step = slabStart; step < slabEnd; step++) {
          const uint16_t* source = packed + (step * kSteps + group + member) * kBlockValues;
          if (step + 1 < slabEnd)
            for (int line = 0; line < 32; line++) _mm_prefetch(reinterpret_cast<const char*>(source + kSteps * kBlockValues) + line * 64, _MM_HINT_T0);
          uint16_t* tiles = rowTiles + (member * slabSteps + step - slabStart) * kBlockValues;
          for (int pair = 0; pair < 16; pair++) {
            _mm512_storeu_si512(tiles + (2 * pair) * kBlock, unpairRow(source + pair * kBlock, even));
            _mm512_storeu_si512(tiles + (2 * pair + 1) * kBlock, unpairRow(source + pair * kBlock, odd));
          }
        }
      for (int64_t rowBlock = 0; rowBlock < rowBlocks; rowBlock++) {
        const char* next = rowBlock + 1 < rowBlocks ? reinterpret_cast<const char*>(leftTiles + ((rowBlock + 1) * nSteps + slabStart) * kBlockValues) : nullptr;
        const int64_t nextLines = slabLength * kBlockValues * 2 / 64, linesPerStep = (nextLines + members * slabLength - 1) / (members * slabLength);
        int64_t prefetched = 0;
        for (int64_t member = 0; member < members; member++) {
          float* partial = partials + (member * rowBlocks + rowBlock) * kBlockValues;
          startBlockSums(partial, firstSlab);
          const uint16_t* a = rowTiles + member * slabSteps * kBlockValues;
          const uint16_t* b = leftTiles + (rowBlock * nSteps + slabStart) * kBlockValues;
          for (int64_t step = slabStart; step < slabEnd; step++, a += kBlockValues, b += kBlockValues) {
            for (int64_t i = 0; next && i < linesPerStep && prefetched < nextLines; i++, prefetched++) _mm_prefetch(next + prefetched * 64, _MM_HINT_T1);
            multiplyStep(a, b);  // a: w's rows; b: left's rows
          }
          storeBlockSums(lastSlab ? sums[0] : partial);
          if (!lastSlab) continue;
          const int64_t column = group + member;
          for (int half = 0; half < 2; half++) {  // left's rows 16 · half to 16 · half + 15
            for (int r = 0; r < 16; r++) {
              lower[r] = _mm512_castps_si512(_mm512_load_ps(sums[half] + r * 16));      // w's rows 0-15
              upper[r] = _mm512_castps_si512(_mm512_load_ps(sums[2 + half] + r * 16));  // w's rows 16-31
            }
            transpose16(lower);
            transpose16(upper);
            for (int r = 0; r < 16; r++) {
              const int64_t row = rowBlock * kBlock + half * 16 + r;
              if (row >= rows) break;
              storeRow(_mm512_castsi512_ps(lower[r]), _mm512_castsi512_ps(upper[r]), low, out, row, k, column);
            }
          }
        }
      }
    }
  }
  _tile_release();
}

}  // namespace attune::amx
