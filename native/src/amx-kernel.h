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

// Element indices for _mm512_permutex2var_epi16 over a packed block's two halves (values 0-31 of the
// first, 32-63 of the second): row 2p (even) or 2p + 1 (odd) of w, 32 consecutive values, out of pair p's
// interleaved rows. packInto's inverse, and the left-hand tiles of w that multiplyTransposedRows reads.
ATTUNE_AMX_TARGET inline __m512i pairRowIndex(int odd) {
  alignas(64) uint16_t index[32];
  for (int j = 0; j < 32; j++) index[j] = static_cast<uint16_t>((j < 16 ? 2 * j : 32 + 2 * (j - 16)) + odd);
  return _mm512_load_si512(index);
}

// Row 2p + odd of the 32 × 32 block whose packed pair rows start at `pair` (first half) and pair + 512.
ATTUNE_AMX_TARGET inline __m512i unpairRow(const uint16_t* pair, __m512i index) {
  return _mm512_permutex2var_epi16(_mm512_loadu_si512(pair), index, _mm512_loadu_si512(pair + kBlockValues / 2));
}

// w [k, n] back out of packInto's layout, value for value.
ATTUNE_AMX_TARGET inline void unpackFrom(const uint16_t* packed, int64_t k, int64_t n, uint16_t* w) {
  const __m512i even = pairRowIndex(0), odd = pairRowIndex(1);
  const int64_t steps = k / kBlock;
  for (int64_t column = 0; column < n / kBlock; column++)
    for (int64_t step = 0; step < steps; step++)
      for (int pair = 0; pair < 16; pair++) {
        const uint16_t* source = packed + (column * steps + step) * kBlockValues + pair * kBlock;
        uint16_t* row = w + (step * kBlock + 2 * pair) * n + column * kBlock;
        _mm512_storeu_si512(row, unpairRow(source, even));
        _mm512_storeu_si512(row + n, unpairRow(source, odd));
      }
}

// Sixteen rows of sixteen 32-bit values transposed in place, in four stages: each swaps one bit of the
// row index with the same bit of the column index, pairing rows i and i + b (b = 8, 4, 2, 1).
ATTUNE_AMX_TARGET inline void transpose16(__m512i rows[16]) {
  for (int b = 8; b >= 1; b /= 2) {
    alignas(64) int32_t upperIndex[16], lowerIndex[16];
    for (int c = 0; c < 16; c++) {
      upperIndex[c] = (c & b) ? 16 + c - b : c;
      lowerIndex[c] = (c & b) ? 16 + c : c + b;
    }
    const __m512i upperPick = _mm512_load_si512(upperIndex), lowerPick = _mm512_load_si512(lowerIndex);
    for (int i = 0; i < 16; i++) {
      if (i & b) continue;
      const __m512i upper = rows[i], lower = rows[i + b];
      rows[i] = _mm512_permutex2var_epi32(upper, upperPick, lower);
      rows[i + b] = _mm512_permutex2var_epi32(upper, lowerPick, lower);
    }
  }
}

// left [rows, n] laid out as the right-hand tiles of leftᵀ (packInto's layout of leftᵀ [n, rows], rows
// padded with zeros to 32), for row blocks [firstBlock, firstBlock + blocks): each tile row holds one pair
// of n's values for 16 rows, which is a 16 × 16 transpose of 32-bit pairs.
ATTUNE_AMX_TARGET inline void packTransposedInto(const uint16_t* left, int64_t rows, int64_t n, uint16_t* packed, int64_t firstBlock, int64_t blocks) {
  const int64_t steps = n / kBlock;
  __m512i tile[16];
  for (int64_t block = firstBlock; block < firstBlock + blocks; block++)
    for (int64_t step = 0; step < steps; step++)
      for (int half = 0; half < 2; half++) {
        for (int r = 0; r < 16; r++) {
          const int64_t row = block * kBlock + half * 16 + r;
          tile[r] = row < rows ? _mm512_loadu_si512(left + row * n + step * kBlock) : _mm512_setzero_si512();
        }
        transpose16(tile);
        uint16_t* destination = packed + (block * steps + step) * kBlockValues + half * kBlockValues / 2;
        for (int p = 0; p < 16; p++) _mm512_storeu_si512(destination + p * kBlock, tile[p]);
      }
}

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

// The low-rank term of multiplyPacked: lowLeft [rows, rank] · lowRight [rank, n] in float32 (rank 0: none).
struct LowRank {
  const float* left = nullptr;
  const float* right = nullptr;
  int64_t rank = 0;
};

// Output row `row`, columns [32 · column, 32 · column + 32) of out [rows, columns]: its float32 sums (two
// halves of 16) plus its low-rank term, rounded once into bfloat16.
ATTUNE_AMX_INLINE void storeRow(__m512 first16, __m512 second16, const LowRank& low, uint16_t* out, int64_t row, int64_t columns, int64_t column) {
  for (int64_t j = 0; j < low.rank; j++) {
    const __m512 factor = _mm512_set1_ps(low.left[row * low.rank + j]);
    const float* right = low.right + j * columns + column * kBlock;
    first16 = _mm512_fmadd_ps(factor, _mm512_loadu_ps(right), first16);
    second16 = _mm512_fmadd_ps(factor, _mm512_loadu_ps(right + 16), second16);
  }
  _mm512_storeu_si512(out + row * columns + column * kBlock, (__m512i)_mm512_cvtne2ps_pbh(second16, first16));
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
