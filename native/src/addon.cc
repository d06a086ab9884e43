#include <malloc.h>

#include "handle.h"

namespace attune {

// Activations are large, short-lived and the same sizes step after step. glibc serves blocks that large
// with mmap and returns them with munmap, so every op paid for fresh zeroed pages: about 1.2 million
// page faults and 40% of a stories15M training step (bench/). Keeping them in the heap lets freed blocks
// be reused; the cost is that RSS stays at its peak. ATTUNE_SYSTEM_MALLOC=1 keeps glibc's defaults.
static void keepLargeBlocksInHeap() {
  const char* opt_out = getenv("ATTUNE_SYSTEM_MALLOC");
  if (opt_out && opt_out[0] == '1') return;
  mallopt(M_MMAP_MAX, 0);              // mmap's threshold caps at 32 MiB; logits are larger, so no mmap at all
  mallopt(M_TRIM_THRESHOLD, 1 << 30);  // and keep up to 1 GiB of freed heap for the next step
}

static Napi::Object Init(Napi::Env env, Napi::Object exports) {
  keepLargeBlocksInHeap();
  registerCreation(env, exports);
  registerMath(env, exports);
  registerShape(env, exports);
  registerRuntime(env, exports);
  registerFused(env, exports);
  registerOptimizer(env, exports);
  registerProfiler(env, exports);
  return exports;
}

NODE_API_MODULE(attune_torch, Init)

}  // namespace attune
