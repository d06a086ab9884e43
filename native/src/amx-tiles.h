// What every AMX tile multiply needs first: the CPU's features, the kernel's leave to use the tile state,
// and the one tile shape used here (8 tiles of 16 rows × 64 bytes). Shared by the addon (packed-matmul.cc)
// and the bench's standalone probes (bench/probes), which include it by path.
#pragma once

#include <cpuid.h>
#include <immintrin.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <cstdint>

namespace attune::amx {

inline bool cpuHasAmxBf16() {
  unsigned a, b, c, d;
  if (!__get_cpuid_count(7, 0, &a, &b, &c, &d)) return false;
  return (d >> 24 & 1) && (d >> 22 & 1);  // AMX-TILE, AMX-BF16
}

inline bool cpuHasAvx512Bf16() {
  unsigned a, b, c, d;
  return __get_cpuid_count(7, 1, &a, &b, &c, &d) && (a >> 5 & 1);
}

// Linux hands out the tile state only on request (ARCH_REQ_XCOMP_PERM for XFEATURE_XTILEDATA).
inline bool kernelGrantsTiles() { return syscall(SYS_arch_prctl, 0x1023, 18) == 0; }

// Every tile 16 rows of 64 bytes, for the calling thread.
__attribute__((target("amx-tile"))) inline void configureTiles() {
  struct {
    uint8_t palette = 1, startRow = 0;
    uint8_t reserved[14] = {};
    uint16_t bytesPerRow[16] = {};
    uint8_t rows[16] = {};
  } config;
  for (int t = 0; t < 8; t++) config.rows[t] = 16, config.bytesPerRow[t] = 64;
  _tile_loadconfig(&config);
}

}  // namespace attune::amx
