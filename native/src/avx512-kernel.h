// The AVX512-BF16 kernel: products over the packed layout (packed-layout.h) on CPUs that have VDPBF16PS
// but no AMX tile units (AMD Zen 4 and 5, Intel Cooper Lake). One VDPBF16PS multiplies a broadcast pair of
// a left row's consecutive k values by one packed row, 16 columns' pairs of the same k values, so a packed
// weight is read as it lies, where oneDNN re-lays its right operand on every call.
//
// Each thread takes 64 columns at a time (two packed blocks) and walks k in slabs that keep those columns'
// panel (256 KiB) in its L2, while strips of 6 left rows accumulate in 24 registers (6 rows × 4 × 16
// columns; with the panel row's 4, 28 of the 32). Float32 sums wait between slabs in the thread's partials;
// after the last slab they are rounded into bfloat16 once, with the low-rank term. Measured on a 2-core
// AMD Zen 5 at one block's projections of the 1B and 8B steps (`npm run bench -- --only matmul-headroom`):
// 0.71 and 0.74 TFLOPS, where oneDNN gives 0.61 and 0.58 and VDPBF16PS on registers alone 0.88. Free of
// libtorch, like the AMX kernel. x86-64 only.
#pragma once

#include <algorithm>
#include <cstdint>
#include <cstring>

#include "packed-layout.h"

namespace attune::avx512 {

using packed::kBlock, packed::kBlockValues, packed::LowRank, packed::storeRow, packed::transposeBlock;

constexpr int kStripRows = 6;            // left rows per strip: 6 × 4 accumulators fill the registers
constexpr int64_t kColumnsPerUnit = 64;  // two packed blocks: a thread's share of the columns, 64 at a time
constexpr int64_t kSlabSteps = 64;       // k steps (of 32 values) per slab: a unit's panel of 256 KiB, in L2

// Scratch sizes, in values: a thread's float32 sums of every row for one unit, and (for the product by
// the transpose) the unit's panel re-laid for one slab.
inline int64_t sumValues(int64_t rows) { return rows * kColumnsPerUnit; }
inline int64_t panelValues() { return 2 * kSlabSteps * kBlockValues; }

// Rows [0, R) of a strip (the first at `left`, `stride` values apart, already at the slab's first k) times
// V / 2 packed blocks (the first at `block0`, the second at `block1`, both at the slab's first step), over
// `steps` k steps, into `sums` [R, 64]: started from zero on the first slab, added to on a later one.
template <int R, int V>
ATTUNE_PACKED_INLINE void multiplyStrip(const uint16_t* left, int64_t stride, const uint16_t* block0, const uint16_t* block1, int64_t steps, float* sums,
                                        bool firstSlab) {
  __m512 acc[R][V];
  for (int r = 0; r < R; r++)
    for (int v = 0; v < V; v++) acc[r][v] = firstSlab ? _mm512_setzero_ps() : _mm512_loadu_ps(sums + r * kColumnsPerUnit + v * 16);
  for (int64_t step = 0; step < steps; step++) {
    const uint16_t* first = block0 + step * kBlockValues;
    const uint16_t* second = block1 + step * kBlockValues;
#pragma GCC unroll 4
    for (int pair = 0; pair < 16; pair++) {
      __m512bh column[V];
      column[0] = (__m512bh)_mm512_loadu_si512(first + pair * kBlock);
      column[1] = (__m512bh)_mm512_loadu_si512(first + kBlockValues / 2 + pair * kBlock);
      if constexpr (V == 4) {
        column[2] = (__m512bh)_mm512_loadu_si512(second + pair * kBlock);
        column[3] = (__m512bh)_mm512_loadu_si512(second + kBlockValues / 2 + pair * kBlock);
      }
#pragma GCC unroll 8
      for (int r = 0; r < R; r++) {
        int32_t values;
        std::memcpy(&values, left + r * stride + step * kBlock + 2 * pair, sizeof values);
        const __m512bh broadcast = (__m512bh)_mm512_set1_epi32(values);
        for (int v = 0; v < V; v++) acc[r][v] = _mm512_dpbf16_ps(acc[r][v], broadcast, column[v]);
      }
    }
  }
  for (int r = 0; r < R; r++)
    for (int v = 0; v < V; v++) _mm512_storeu_ps(sums + r * kColumnsPerUnit + v * 16, acc[r][v]);
}

template <int V>
ATTUNE_PACKED_INLINE void multiplyTail(int tail, const uint16_t* left, int64_t stride, const uint16_t* block0, const uint16_t* block1, int64_t steps,
                                       float* sums, bool firstSlab) {
  switch (tail) {
    case 1: return multiplyStrip<1, V>(left, stride, block0, block1, steps, sums, firstSlab);
    case 2: return multiplyStrip<2, V>(left, stride, block0, block1, steps, sums, firstSlab);
    case 3: return multiplyStrip<3, V>(left, stride, block0, block1, steps, sums, firstSlab);
    case 4: return multiplyStrip<4, V>(left, stride, block0, block1, steps, sums, firstSlab);
    case 5: return multiplyStrip<5, V>(left, stride, block0, block1, steps, sums, firstSlab);
  }
}

// Memory that the work after this slab will read: `runs` runs of `runValues` values, `stride` values apart.
// While the slab multiplies, it is fetched into cache a share at a time, so that reading it later does not
// wait on memory.
struct Upcoming {
  const uint16_t* first = nullptr;
  int64_t runs = 0;
  int64_t runValues = 0;
  int64_t stride = 0;
};

constexpr int64_t kLineValues = 32;  // bfloat16 values in a 64-byte cache line

ATTUNE_PACKED_INLINE void fetchLines(const Upcoming& upcoming, int64_t begin, int64_t end) {
  const int64_t linesPerRun = upcoming.runValues / kLineValues;
  for (int64_t line = begin; line < end; line++)
    _mm_prefetch(reinterpret_cast<const char*>(upcoming.first + (line / linesPerRun) * upcoming.stride + (line % linesPerRun) * kLineValues), _MM_HINT_T1);
}

// Every row of left [rows, stride] (at the slab's first k) times one slab of a unit's `blocks` (1 or 2)
// packed blocks, into sums [rows, 64].
template <int V>
ATTUNE_PACKED_TARGET void multiplySlabOf(const uint16_t* left, int64_t rows, int64_t stride, const uint16_t* block0, const uint16_t* block1,
                                         int64_t steps, float* sums, bool firstSlab, const Upcoming& upcoming) {
  const int64_t strips = (rows + kStripRows - 1) / kStripRows;
  const int64_t lines = upcoming.runs * (upcoming.runValues / kLineValues), linesPerStrip = (lines + strips - 1) / strips;
  int64_t row = 0, fetched = 0;
  for (; row + kStripRows <= rows; row += kStripRows) {
    multiplyStrip<kStripRows, V>(left + row * stride, stride, block0, block1, steps, sums + row * kColumnsPerUnit, firstSlab);
    const int64_t end = std::min(lines, fetched + linesPerStrip);
    fetchLines(upcoming, fetched, end);
    fetched = end;
  }
  if (row < rows) multiplyTail<V>(static_cast<int>(rows - row), left + row * stride, stride, block0, block1, steps, sums + row * kColumnsPerUnit, firstSlab);
  fetchLines(upcoming, fetched, lines);
}

ATTUNE_PACKED_TARGET inline void multiplySlab(int64_t blocks, const uint16_t* left, int64_t rows, int64_t stride, const uint16_t* block0,
                                              const uint16_t* block1, int64_t steps, float* sums, bool firstSlab, const Upcoming& upcoming = {}) {
  if (blocks == 2) multiplySlabOf<4>(left, rows, stride, block0, block1, steps, sums, firstSlab, upcoming);
  else multiplySlabOf<2>(left, rows, stride, block0, block1, steps, sums, firstSlab, upcoming);
}

// A unit's sums, with the low-rank term, rounded into out [rows, columns] at output block `column` (and
// the next, for a unit of two blocks).
ATTUNE_PACKED_TARGET inline void storeUnit(const float* sums, int64_t rows, int64_t blocks, const LowRank& low, uint16_t* out, int64_t columns,
                                           int64_t column) {
  for (int64_t row = 0; row < rows; row++)
    for (int64_t b = 0; b < blocks; b++) {
      const float* source = sums + row * kColumnsPerUnit + b * kBlock;
      storeRow(_mm512_loadu_ps(source), _mm512_loadu_ps(source + 16), low, out, row, columns, column + b);
    }
}

// Output columns [32 · first, 32 · (first + blocks)) of left [rows, k] · w (+ the low-rank term), where w
// [k, n] is packed (packed::packInto). `sums` (sumValues(rows)) is this thread's scratch.
ATTUNE_PACKED_TARGET inline void multiplyColumns(const uint16_t* left, int64_t rows, int64_t k, int64_t n, const uint16_t* packed, const LowRank& low,
                                                 uint16_t* out, int64_t first, int64_t blocks, float* sums) {
  const int64_t steps = k / kBlock;
  for (int64_t column = first; column < first + blocks; column += 2) {
    const int64_t unitBlocks = std::min<int64_t>(2, first + blocks - column);
    const uint16_t* block0 = packed + column * steps * kBlockValues;
    const uint16_t* block1 = block0 + steps * kBlockValues;
    for (int64_t slab = 0; slab < steps; slab += kSlabSteps)
      multiplySlab(unitBlocks, left + slab * kBlock, rows, k, block0 + slab * kBlockValues, block1 + slab * kBlockValues,
                   std::min(kSlabSteps, steps - slab), sums, slab == 0);
    storeUnit(sums, rows, unitBlocks, low, out, n, column);
  }
}

// Output columns [32 · first, 32 · (first + blocks)) of left [rows, n] · wᵀ (+ the low-rank term), from the
// same packed w [k, n]. Each slab of a unit's panel is re-laid first as the packed blocks of wᵀ
// (packed::transposeBlock), then it multiplies as above. W's blocks for one slab lie a whole row of blocks
// apart, too scattered for the hardware's prefetcher, so while a slab multiplies, the next slab's blocks
// are fetched into L2 (Upcoming). Measured on a 2-core AMD Zen 5 at the 8B step's shapes, re-laying then
// costs 3% of the product over one matrix, and 7% over 10 GB of them on huge pages (11% on 4 KiB pages);
// done from memory with two-source permutes it cost 12-18% over one. That is less than the second copy of
// W it saves. `panel` (panelValues()) and `sums` (sumValues(rows)) are this
// thread's scratch.
ATTUNE_PACKED_TARGET inline void multiplyTransposedColumns(const uint16_t* packed, int64_t k, int64_t n, const uint16_t* left, int64_t rows,
                                                           const LowRank& low, uint16_t* out, int64_t first, int64_t blocks, uint16_t* panel,
                                                           float* sums) {
  const int64_t kSteps = k / kBlock, nSteps = n / kBlock;
  for (int64_t column = first; column < first + blocks; column += 2) {
    const int64_t unitBlocks = std::min<int64_t>(2, first + blocks - column);
    for (int64_t slab = 0; slab < nSteps; slab += kSlabSteps) {
      const int64_t slabSteps = std::min(kSlabSteps, nSteps - slab);
      for (int64_t step = 0; step < slabSteps; step++) {
        const uint16_t* source = packed + ((slab + step) * kSteps + column) * kBlockValues;
        for (int64_t b = 0; b < unitBlocks; b++) transposeBlock(source + b * kBlockValues, panel + (b * kSlabSteps + step) * kBlockValues);
      }
      // The next slab of this unit, or the first of the next unit.
      Upcoming upcoming;
      const int64_t nextSlab = slab + kSlabSteps < nSteps ? slab + kSlabSteps : 0;
      const int64_t nextColumn = nextSlab ? column : column + 2;
      if (nextColumn < first + blocks) {
        const int64_t nextBlocks = std::min<int64_t>(2, first + blocks - nextColumn);
        upcoming = {packed + (nextSlab * kSteps + nextColumn) * kBlockValues, std::min(kSlabSteps, nSteps - nextSlab), nextBlocks * kBlockValues,
                    kSteps * kBlockValues};
      }
      multiplySlab(unitBlocks, left + slab * kBlock, rows, n, panel, panel + kSlabSteps * kBlockValues, slabSteps, sums, slab == 0, upcoming);
    }
    storeUnit(sums, rows, unitBlocks, low, out, k, column);
  }
}

}  // namespace attune::avx512
