// The one layout both bfloat16 kernels read (amx-kernel.h, avx512-kernel.h), and what they share around it:
// packing into it and out of it, the 16 × 16 transpose, and rounding an output row into bfloat16. A
// matrix w [k, n] lies as [n / 32, k / 32, 1024]: for each 32 columns and each 32 values of k, two halves
// (columns 0-15, then 16-31) of 16 rows, each row holding 16 columns' pairs of consecutive k values side by
// side. That is an AMX tile of the right operand, and equally the operand of one VDPBF16PS. Free of
// libtorch, so that the bench's standalone probes (bench/probes) time exactly what the addon runs. x86-64 only.
#pragma once

#include <immintrin.h>

#include <cstdint>

#define ATTUNE_PACKED_TARGET __attribute__((target("avx512f,avx512bw,avx512bf16")))
#define ATTUNE_PACKED_INLINE ATTUNE_PACKED_TARGET inline __attribute__((always_inline))

namespace attune::packed {

constexpr int64_t kBlock = 32;                     // columns of a packed block, and values of a k step
constexpr int64_t kBlockValues = kBlock * kBlock;  // one k step of a block: two halves of 16 × 32 values

// Rows 2p and 2p + 1 of each k step of w, their values side by side: the right operand's tile rows.
ATTUNE_PACKED_TARGET inline void packInto(const uint16_t* w, int64_t k, int64_t n, uint16_t* packed) {
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
ATTUNE_PACKED_TARGET inline __m512i pairRowIndex(int odd) {
  alignas(64) uint16_t index[32];
  for (int j = 0; j < 32; j++) index[j] = static_cast<uint16_t>((j < 16 ? 2 * j : 32 + 2 * (j - 16)) + odd);
  return _mm512_load_si512(index);
}

// Row 2p + odd of the 32 × 32 block whose packed pair rows start at `pair` (first half) and pair + 512.
ATTUNE_PACKED_TARGET inline __m512i unpairRow(const uint16_t* pair, __m512i index) {
  return _mm512_permutex2var_epi16(_mm512_loadu_si512(pair), index, _mm512_loadu_si512(pair + kBlockValues / 2));
}

// w [k, n] back out of packInto's layout, value for value.
ATTUNE_PACKED_TARGET inline void unpackFrom(const uint16_t* packed, int64_t k, int64_t n, uint16_t* w) {
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
ATTUNE_PACKED_TARGET inline void transpose16(__m512i rows[16]) {
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

// One packed 32 × 32 block of w [k, n] (a k step's 32 values by 32 columns) re-laid as the packed block
// of wᵀ that covers the same values: a 32 × 32 transpose of 16-bit values in which the pairs change axis.
// Read as bits, a source row holds w[i, j] at row (j4 i4 i3 i2 i1), element (j3 j2 j1 j0 i0); the target
// wants row (i4 j4 j3 j2 j1), element (i3 i2 i1 i0 j0). One in-lane byte shuffle swaps the element's two
// low bits; then each of i1, i2, i3 trades places with j1, j2, j3 in a stage of 64-, 128- and 256-bit
// interleaves between row pairs. Those are in-lane shuffles and 128-bit lane moves, cheap on a Zen 5,
// where the two-source word and dword permutes (VPERMT2W, VPERMT2D) this replaced are slow (77 ns a block in
// L1 against 33).
ATTUNE_PACKED_TARGET inline void transposeBlock(const uint16_t* source, uint16_t* destination) {
  const __m512i swapLowBits = _mm512_broadcast_i32x4(_mm_setr_epi8(0, 1, 4, 5, 2, 3, 6, 7, 8, 9, 12, 13, 10, 11, 14, 15));
  // The stages pair rows that differ in bits 0-2 only, so each eight rows (fixed j4 and i4) go alone.
  for (int group = 0; group < 4; group++) {
    __m512i rows[8];
    for (int r = 0; r < 8; r++) rows[r] = _mm512_shuffle_epi8(_mm512_loadu_si512(source + (group * 8 + r) * kBlock), swapLowBits);
    for (int r = 0; r < 8; r += 2) {  // i1 ↔ j1: 64-bit halves of each 128-bit lane
      const __m512i low = rows[r], high = rows[r + 1];
      rows[r] = _mm512_unpacklo_epi64(low, high);
      rows[r + 1] = _mm512_unpackhi_epi64(low, high);
    }
    for (int r : {0, 1, 4, 5}) {  // i2 ↔ j2: 128-bit lanes
      const __m512i low = rows[r], high = rows[r + 2];
      rows[r] = _mm512_mask_shuffle_i64x2(low, 0xCC, high, high, 0x80);     // [low0, high0, low2, high2]
      rows[r + 2] = _mm512_mask_shuffle_i64x2(high, 0x33, low, low, 0x31);  // [low1, high1, low3, high3]
    }
    for (int r = 0; r < 4; r++) {  // i3 ↔ j3: 256-bit halves
      const __m512i low = rows[r], high = rows[r + 4];
      rows[r] = _mm512_shuffle_i64x2(low, high, 0x44);
      rows[r + 4] = _mm512_shuffle_i64x2(low, high, 0xEE);
    }
    const int j4 = group >> 1, i4 = group & 1;
    for (int r = 0; r < 8; r++) _mm512_storeu_si512(destination + i4 * kBlockValues / 2 + (j4 * 8 + r) * kBlock, rows[r]);
  }
}

// left [rows, n] laid out as the right-hand tiles of leftᵀ (packInto's layout of leftᵀ [n, rows], rows
// padded with zeros to 32), for row blocks [firstBlock, firstBlock + blocks): each tile row holds one pair
// of n's values for 16 rows, which is a 16 × 16 transpose of 32-bit pairs.
ATTUNE_PACKED_TARGET inline void packTransposedInto(const uint16_t* left, int64_t rows, int64_t n, uint16_t* packed, int64_t firstBlock, int64_t blocks) {
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

// The low-rank term of multiplyPacked: lowLeft [rows, rank] · lowRight [rank, n] in float32 (rank 0: none).
struct LowRank {
  const float* left = nullptr;
  const float* right = nullptr;
  int64_t rank = 0;
};

// Output row `row`, columns [32 · column, 32 · column + 32) of out [rows, columns]: its float32 sums (two
// halves of 16) plus its low-rank term, rounded once into bfloat16.
ATTUNE_PACKED_INLINE void storeRow(__m512 first16, __m512 second16, const LowRank& low, uint16_t* out, int64_t row, int64_t columns, int64_t column) {
  for (int64_t j = 0; j < low.rank; j++) {
    const __m512 factor = _mm512_set1_ps(low.left[row * low.rank + j]);
    const float* right = low.right + j * columns + column * kBlock;
    first16 = _mm512_fmadd_ps(factor, _mm512_loadu_ps(right), first16);
    second16 = _mm512_fmadd_ps(factor, _mm512_loadu_ps(right + 16), second16);
  }
  _mm512_storeu_si512(out + row * columns + column * kBlock, (__m512i)_mm512_cvtne2ps_pbh(second16, first16));
}

}  // namespace attune::packed
