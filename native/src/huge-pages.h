// Memory for large, long-lived tensors (model weights and their packed copies), each in a mapping of its own,
// on the kernel's transparent huge pages (2 MiB) where it grants them. Two reasons. A product that reads 16 GB
// of weights a 4 KiB page at a time misses the TLB on nearly every page, and the page tables of 16 GB (32 MB)
// no longer sit in cache, so each miss walks memory: on a 2-core AMD Zen 5 over 10 GB of packed weights,
// [256, 14336] by a packed [4096, 14336] took 44 ms by the transpose on huge pages against 56 ms on 4 KiB
// pages, and 42 against 46 plainly. And a weight freed (its packed copy taking its place) goes straight back
// to the system, where in the allocator's heap it left a hole that short-lived tensors faulted back in.
#pragma once

#include <ATen/ATen.h>

namespace attune {

// An uninitialised CPU tensor of these sizes in its own mapping, 2 MiB-aligned and advised for huge pages
// (madvise MADV_HUGEPAGE), which the kernel honours when transparent huge pages are set to `madvise` or
// `always`; otherwise (or off Linux) the memory is ordinary pages, and nothing else changes. The memory
// goes back to the system as soon as the tensor's storage is freed.
at::Tensor emptyOnHugePages(at::IntArrayRef sizes, const at::TensorOptions& options);

}  // namespace attune
