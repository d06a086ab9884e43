#include "handle.h"

namespace attune {

static Napi::Object Init(Napi::Env env, Napi::Object exports) {
  registerCreation(env, exports);
  registerMath(env, exports);
  registerShape(env, exports);
  registerRuntime(env, exports);
  return exports;
}

NODE_API_MODULE(attune_torch, Init)

}  // namespace attune
