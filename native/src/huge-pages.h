// Memory for large, long-lived tensors on the kernel's transparent huge pages (2 MiB) where it grants them.
// A product that reads a 16 GB weight a 4 KiB page at a time misses the TLB on nearly every page, and the
// page tables of 16 GB (32 MB) no longer sit in cache, so each miss walks memory. Measured on a 2-core AMD
// Zen 5 over 10 GB of packed weights ([256, 14336] by a packed [4096, 14336]): the product by the
// transpose took 44 ms on huge pages against 56 ms on 4 KiB pages, the plain product 42 against 46.
#pragma once

#include <ATen/ATen.h>

namespace attune {

// An uninitialised CPU tensor of these sizes in its own mapping, 2 MiB-aligned and advised for huge pages
// (madvise MADV_HUGEPAGE), which the kernel honours when transparent huge pages are set to `madvise` or
// `always`; otherwise (or off Linux) the memory is ordinary pages, and nothing else changes. The memory
// goes back to the system as soon as the tensor's storage is freed.
at::Tensor emptyOnHugePages(at::IntArrayRef sizes, const at::TensorOptions& options);

}  // namespace attune
