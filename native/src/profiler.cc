// libtorch's op profiler (Kineto, libtorch 2.x), for finding where a step's time goes: start, run, stop,
// and read each recorded op back as [name, start ns, duration ns, thread, input shapes].
#include <torch/version.h>

#include "handle.h"

#if TORCH_VERSION_MAJOR >= 2
#include <torch/csrc/autograd/profiler_kineto.h>
#endif

namespace attune {

#if TORCH_VERSION_MAJOR >= 2
namespace profiler = torch::autograd::profiler;
namespace impl = torch::profiler::impl;

// profilerStart(recordShapes)
static Napi::Value ProfilerStart(const Napi::CallbackInfo& info) {
  impl::ProfilerConfig config(impl::ProfilerState::KINETO, toBool(info[0]));
  std::set<impl::ActivityType> activities{impl::ActivityType::CPU};
  profiler::prepareProfiler(config, activities);
  profiler::enableProfiler(config, activities);
  return info.Env().Undefined();
}

static Napi::Value ProfilerStop(const Napi::CallbackInfo& info) {
  auto result = profiler::disableProfiler();
  const auto& events = result->events();
  auto env = info.Env();
  auto out = Napi::Array::New(env, events.size());
  for (size_t i = 0; i < events.size(); i++) {
    const auto& e = events[i];
    std::string shapes;
    for (const auto& s : e.shapes()) {
      shapes += "[";
      for (size_t j = 0; j < s.size(); j++) shapes += (j ? "," : "") + std::to_string(s[j]);
      shapes += "]";
    }
    auto row = Napi::Array::New(env, 5);
    row.Set(0u, Napi::String::New(env, e.name()));
    row.Set(1u, Napi::Number::New(env, static_cast<double>(e.startNs())));
    row.Set(2u, Napi::Number::New(env, static_cast<double>(e.durationNs())));
    row.Set(3u, Napi::Number::New(env, static_cast<double>(e.startThreadId())));
    row.Set(4u, Napi::String::New(env, shapes));
    out.Set(i, row);
  }
  return out;
}
#else
static Napi::Value ProfilerStart(const Napi::CallbackInfo& info) {
  throw std::runtime_error("the op profiler needs libtorch 2.0 or later");
}
static Napi::Value ProfilerStop(const Napi::CallbackInfo& info) { return ProfilerStart(info); }
#endif

void registerProfiler(Napi::Env env, Napi::Object exports) {
  ATTUNE_EXPORT("profilerStart", ProfilerStart);
  ATTUNE_EXPORT("profilerStop", ProfilerStop);
}

}  // namespace attune
