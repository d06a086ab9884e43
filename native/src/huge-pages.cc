#include "huge-pages.h"

#if defined(__linux__)
#include <sys/mman.h>
#include <unistd.h>
#endif

#include <new>

namespace attune {

#if defined(__linux__)
namespace {

constexpr size_t kHugePage = size_t(2) << 20;

// Maps `bytes` (a multiple of the page size) at a 2 MiB boundary: maps a huge page more than asked, then
// gives back what lies before the boundary and past the end.
void* mapAligned(size_t bytes) {
  void* mapped = mmap(nullptr, bytes + kHugePage, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (mapped == MAP_FAILED) throw std::bad_alloc();
  auto start = reinterpret_cast<uintptr_t>(mapped);
  auto aligned = (start + kHugePage - 1) & ~(kHugePage - 1);
  if (aligned > start) munmap(mapped, aligned - start);
  const auto end = start + bytes + kHugePage;
  if (end > aligned + bytes) munmap(reinterpret_cast<void*>(aligned + bytes), end - (aligned + bytes));
  return reinterpret_cast<void*>(aligned);
}

}  // namespace
#endif

at::Tensor emptyOnHugePages(at::IntArrayRef sizes, const at::TensorOptions& options) {
#if defined(__linux__)
  int64_t count = 1;
  for (auto size : sizes) count *= size;
  const size_t page = static_cast<size_t>(sysconf(_SC_PAGESIZE));
  const size_t bytes = (static_cast<size_t>(count) * c10::elementSize(c10::typeMetaToScalarType(options.dtype())) + page - 1) / page * page;
  if (bytes < kHugePage) return at::empty(sizes, options);
  void* data = mapAligned(bytes);
  madvise(data, bytes, MADV_HUGEPAGE);
  return at::from_blob(data, sizes, [bytes](void* p) { munmap(p, bytes); }, options.device(at::kCPU));
#else
  return at::empty(sizes, options);
#endif
}

}  // namespace attune
