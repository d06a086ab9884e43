// The tensor handle shared by every op, plus the argument conversions all op files use. Nothing here
// knows about models.
//
// A handle is a JS number naming a slot in a table of at::Tensors: the slot index in the low 24 bits and
// the slot's generation above them, so a stale handle to a reused slot is refused. Numbers rather than
// Externals because an External is freed by a GC finalizer that Node defers to the event loop: a training
// loop that never yields piled up ~900 unfinalized handles per step. Disposal frees a slot at once; the JS
// side's FinalizationRegistry disposes the tensors nobody disposed. The table is per process and only the
// JS thread touches it (no worker_threads).
#pragma once

#include <ATen/ATen.h>
#include <napi.h>

#include <optional>
#include <string>
#include <vector>

namespace attune {

int64_t liveTensorCount();

Napi::Value wrap(Napi::Env env, at::Tensor tensor);
at::Tensor& unwrap(const Napi::Value& value);
/** Frees the handle's slot; a stale or already freed handle is ignored. */
void release(Napi::Env env, const Napi::Value& handle);

at::ScalarType parseDtype(const Napi::Value& value);
std::string dtypeName(at::ScalarType type);
at::Device parseDevice(const Napi::Value& value);
std::vector<int64_t> intList(const Napi::Value& value);
std::vector<at::Tensor> tensorList(const Napi::Value& value);
Napi::Array wrapList(Napi::Env env, const std::vector<at::Tensor>& tensors);
at::TensorOptions options(const Napi::Value& dtype, const Napi::Value& device);

inline bool absent(const Napi::Value& value) { return value.IsUndefined() || value.IsNull(); }
inline int64_t toInt(const Napi::Value& value) { return value.As<Napi::Number>().Int64Value(); }
inline double toDouble(const Napi::Value& value) { return value.As<Napi::Number>().DoubleValue(); }
inline bool toBool(const Napi::Value& value) { return value.As<Napi::Boolean>().Value(); }

// Converts libtorch exceptions into JS errors carrying libtorch's message without its C++ backtrace.
template <Napi::Value (*F)(const Napi::CallbackInfo&)>
Napi::Value guarded(const Napi::CallbackInfo& info) {
  try {
    return F(info);
  } catch (const Napi::Error&) {
    throw;
  } catch (const c10::Error& e) {
    throw Napi::Error::New(info.Env(), e.what_without_backtrace());
  } catch (const std::exception& e) {
    throw Napi::Error::New(info.Env(), e.what());
  }
}

using Registrar = void (*)(Napi::Env, Napi::Object);
void registerCreation(Napi::Env env, Napi::Object exports);
void registerMath(Napi::Env env, Napi::Object exports);
void registerShape(Napi::Env env, Napi::Object exports);
void registerRuntime(Napi::Env env, Napi::Object exports);
void registerFused(Napi::Env env, Napi::Object exports);
void registerOptimizer(Napi::Env env, Napi::Object exports);
void registerProfiler(Napi::Env env, Napi::Object exports);

#define ATTUNE_EXPORT(name, fn) exports.Set(name, Napi::Function::New(env, guarded<fn>, name))

}  // namespace attune
