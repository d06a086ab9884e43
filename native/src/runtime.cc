// Autograd, grad mode, threads, seeding and devices.
#include <ATen/Parallel.h>
#include <ATen/core/grad_mode.h>
#include <ATen/detail/CUDAHooksInterface.h>
#include <torch/version.h>

#include <dlfcn.h>
#include <malloc.h>

#include <mutex>

#include "handle.h"

namespace attune {

static Napi::Value SetRequiresGrad(const Napi::CallbackInfo& info) {
  unwrap(info[0]).requires_grad_(toBool(info[1]));
  return info[0];
}
static Napi::Value RequiresGrad(const Napi::CallbackInfo& info) {
  return Napi::Boolean::New(info.Env(), unwrap(info[0]).requires_grad());
}
// grad(t) -> tensor | null
static Napi::Value Grad(const Napi::CallbackInfo& info) {
  const auto& grad = unwrap(info[0]).grad();
  if (!grad.defined()) return info.Env().Null();
  return wrap(info.Env(), grad);
}
static Napi::Value ClearGrad(const Napi::CallbackInfo& info) {
  unwrap(info[0]).mutable_grad().reset();
  return info.Env().Undefined();
}
// backward(t, gradient | null)
static Napi::Value Backward(const Napi::CallbackInfo& info) {
  const at::Tensor& t = unwrap(info[0]);
  if (absent(info[1])) t.backward();
  else t.backward(unwrap(info[1]));
  return info.Env().Undefined();
}
// setGradEnabled(enabled) -> previous
static Napi::Value SetGradEnabled(const Napi::CallbackInfo& info) {
  bool previous = at::GradMode::is_enabled();
  at::GradMode::set_enabled(toBool(info[0]));
  return Napi::Boolean::New(info.Env(), previous);
}
static Napi::Value IsGradEnabled(const Napi::CallbackInfo& info) {
  return Napi::Boolean::New(info.Env(), at::GradMode::is_enabled());
}

// at::set_num_threads does not reach a pthreads OpenBLAS (Debian's): its pool is sized separately, so
// large matrix products can use every core while small elementwise ops stay on one. Looked up at run
// time because other BLAS builds lack the function.
static void setBlasThreads(int threads) {
  using SetThreads = void (*)(int);
  void* symbol = dlsym(RTLD_DEFAULT, "openblas_set_num_threads");
  // Node opens addons with RTLD_LOCAL, so also look in the BLAS libraries libtorch already loaded.
  for (const char* library : {"libopenblas.so.0", "libblas.so.3"}) {
    if (symbol) break;
    if (void* handle = dlopen(library, RTLD_LAZY | RTLD_NOLOAD)) symbol = dlsym(handle, "openblas_set_num_threads");
  }
  if (symbol) reinterpret_cast<SetThreads>(symbol)(threads);
}

static Napi::Value SetBlasThreads(const Napi::CallbackInfo& info) {
  setBlasThreads(static_cast<int>(toInt(info[0])));
  return info.Env().Undefined();
}

static Napi::Value SetNumThreads(const Napi::CallbackInfo& info) {
  at::set_num_threads(static_cast<int>(toInt(info[0])));
  return info.Env().Undefined();
}
static Napi::Value GetNumThreads(const Napi::CallbackInfo& info) {
  return Napi::Number::New(info.Env(), at::get_num_threads());
}

static int64_t cudaDevices() {
  return at::hasCUDA() ? at::detail::getCUDAHooks().getNumGPUs() : 0;
}

static Napi::Value ManualSeed(const Napi::CallbackInfo& info) {
  auto seed = static_cast<uint64_t>(toInt(info[0]));
  auto cpu = at::detail::getDefaultCPUGenerator();
  {
    std::lock_guard<std::mutex> lock(cpu.mutex());
    cpu.set_current_seed(seed);
  }
  for (int64_t i = 0; i < cudaDevices(); i++) {
    auto gpu = at::globalContext().defaultGenerator(at::Device(at::kCUDA, static_cast<c10::DeviceIndex>(i)));
    std::lock_guard<std::mutex> lock(gpu.mutex());
    gpu.set_current_seed(seed);
  }
  return info.Env().Undefined();
}

static Napi::Value CudaDeviceCount(const Napi::CallbackInfo& info) {
  return Napi::Number::New(info.Env(), static_cast<double>(cudaDevices()));
}

// What glibc's allocator holds: in use, free but kept, and mmapped. Tells a leak from retained memory.
static Napi::Value HeapStats(const Napi::CallbackInfo& info) {
  struct mallinfo2 m = mallinfo2();
  auto out = Napi::Object::New(info.Env());
  out.Set("inUseBytes", Napi::Number::New(info.Env(), static_cast<double>(m.uordblks + m.hblkhd)));
  out.Set("freeBytes", Napi::Number::New(info.Env(), static_cast<double>(m.fordblks)));
  out.Set("mmappedBytes", Napi::Number::New(info.Env(), static_cast<double>(m.hblkhd)));
  out.Set("arenaBytes", Napi::Number::New(info.Env(), static_cast<double>(m.arena)));
  return out;
}

// Gives the heap's free pages back to the system (glibc frees whole free pages inside the heap too, not
// only at its top). Returns whether any memory was released.
static Napi::Value MallocTrim(const Napi::CallbackInfo& info) {
  return Napi::Boolean::New(info.Env(), malloc_trim(0) != 0);
}

// The CUDA runtime, looked up at run time among the libraries libtorch already loaded, so the addon
// builds and runs without CUDA headers or a CUDA libtorch (null when there is none).
static void* cudaRuntimeSymbol(const char* name) {
  for (const char* library : {"libcudart.so.13", "libcudart.so.12", "libcudart.so.11.0", "libcudart.so"}) {
    if (void* handle = dlopen(library, RTLD_LAZY | RTLD_NOLOAD)) {
      if (void* symbol = dlsym(handle, name)) return symbol;
    }
  }
  return dlsym(RTLD_DEFAULT, name);
}

// cudaMemory(index) -> { freeBytes, totalBytes } | null
static Napi::Value CudaMemory(const Napi::CallbackInfo& info) {
  using GetDevice = int (*)(int*);
  using SetDevice = int (*)(int);
  using MemGetInfo = int (*)(size_t*, size_t*);
  if (cudaDevices() == 0) return info.Env().Null();
  auto getDevice = reinterpret_cast<GetDevice>(cudaRuntimeSymbol("cudaGetDevice"));
  auto setDevice = reinterpret_cast<SetDevice>(cudaRuntimeSymbol("cudaSetDevice"));
  auto memGetInfo = reinterpret_cast<MemGetInfo>(cudaRuntimeSymbol("cudaMemGetInfo"));
  if (!getDevice || !setDevice || !memGetInfo) return info.Env().Null();
  int previous = 0;
  size_t freeBytes = 0, totalBytes = 0;
  if (getDevice(&previous) != 0 || setDevice(static_cast<int>(toInt(info[0]))) != 0) return info.Env().Null();
  int status = memGetInfo(&freeBytes, &totalBytes);
  setDevice(previous);
  if (status != 0) return info.Env().Null();
  auto out = Napi::Object::New(info.Env());
  out.Set("freeBytes", Napi::Number::New(info.Env(), static_cast<double>(freeBytes)));
  out.Set("totalBytes", Napi::Number::New(info.Env(), static_cast<double>(totalBytes)));
  return out;
}

static Napi::Value Version(const Napi::CallbackInfo& info) {
  return Napi::String::New(info.Env(), std::to_string(TORCH_VERSION_MAJOR) + "." + std::to_string(TORCH_VERSION_MINOR) + "." + std::to_string(TORCH_VERSION_PATCH));
}

void registerRuntime(Napi::Env env, Napi::Object exports) {
  ATTUNE_EXPORT("requiresGrad_", SetRequiresGrad);
  ATTUNE_EXPORT("requiresGrad", RequiresGrad);
  ATTUNE_EXPORT("grad", Grad);
  ATTUNE_EXPORT("clearGrad", ClearGrad);
  ATTUNE_EXPORT("backward", Backward);
  ATTUNE_EXPORT("setGradEnabled", SetGradEnabled);
  ATTUNE_EXPORT("isGradEnabled", IsGradEnabled);
  ATTUNE_EXPORT("setNumThreads", SetNumThreads);
  ATTUNE_EXPORT("getNumThreads", GetNumThreads);
  ATTUNE_EXPORT("setBlasThreads", SetBlasThreads);
  ATTUNE_EXPORT("manualSeed", ManualSeed);
  ATTUNE_EXPORT("cudaDeviceCount", CudaDeviceCount);
  ATTUNE_EXPORT("version", Version);
  ATTUNE_EXPORT("heapStats", HeapStats);
  ATTUNE_EXPORT("mallocTrim", MallocTrim);
  ATTUNE_EXPORT("cudaMemory", CudaMemory);
}

}  // namespace attune
