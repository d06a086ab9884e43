#include "handle.h"

#include <unordered_map>

namespace attune {

std::atomic<int64_t> liveTensors{0};

void release(Napi::Env env, TensorBox* box) {
  if (!box->tensor.defined()) return;
  box->tensor = at::Tensor();
  liveTensors--;
  if (box->reportedBytes) Napi::MemoryManagement::AdjustExternalMemory(env, -box->reportedBytes);
  box->reportedBytes = 0;
}

Napi::Value wrap(Napi::Env env, at::Tensor tensor) {
  auto* box = new TensorBox{std::move(tensor), 0};
  liveTensors++;
  // Report host memory only: it is what competes with the JS heap, so the GC should know of it.
  if (box->tensor.device().is_cpu()) {
    box->reportedBytes = static_cast<int64_t>(box->tensor.nbytes());
    if (box->reportedBytes) Napi::MemoryManagement::AdjustExternalMemory(env, box->reportedBytes);
  }
  return Napi::External<TensorBox>::New(env, box, [](Napi::Env env, TensorBox* b) {
    release(env, b);
    delete b;
  });
}

at::Tensor& unwrap(const Napi::Value& value) {
  if (!value.IsExternal()) throw std::invalid_argument("expected a tensor handle");
  auto* box = value.As<Napi::External<TensorBox>>().Data();
  if (!box->tensor.defined()) throw std::invalid_argument("tensor used after it was disposed");
  return box->tensor;
}

static const std::unordered_map<std::string, at::ScalarType>& dtypes() {
  static const std::unordered_map<std::string, at::ScalarType> map = {
      {"float32", at::kFloat}, {"float16", at::kHalf},  {"bfloat16", at::kBFloat16},
      {"float64", at::kDouble}, {"int64", at::kLong},   {"int32", at::kInt},
      {"int16", at::kShort},   {"int8", at::kChar},     {"uint8", at::kByte},
      {"bool", at::kBool}};
  return map;
}

at::ScalarType parseDtype(const Napi::Value& value) {
  auto name = value.As<Napi::String>().Utf8Value();
  auto found = dtypes().find(name);
  if (found == dtypes().end()) throw std::invalid_argument("unknown dtype '" + name + "'");
  return found->second;
}

std::string dtypeName(at::ScalarType type) {
  for (const auto& [name, t] : dtypes())
    if (t == type) return name;
  return c10::toString(type);
}

at::Device parseDevice(const Napi::Value& value) {
  return at::Device(value.As<Napi::String>().Utf8Value());
}

std::vector<int64_t> intList(const Napi::Value& value) {
  auto array = value.As<Napi::Array>();
  std::vector<int64_t> out(array.Length());
  for (uint32_t i = 0; i < array.Length(); i++) out[i] = toInt(array.Get(i));
  return out;
}

std::vector<at::Tensor> tensorList(const Napi::Value& value) {
  auto array = value.As<Napi::Array>();
  std::vector<at::Tensor> out;
  out.reserve(array.Length());
  for (uint32_t i = 0; i < array.Length(); i++) out.push_back(unwrap(array.Get(i)));
  return out;
}

Napi::Array wrapList(Napi::Env env, const std::vector<at::Tensor>& tensors) {
  auto array = Napi::Array::New(env, tensors.size());
  for (size_t i = 0; i < tensors.size(); i++) array.Set(i, wrap(env, tensors[i]));
  return array;
}

at::TensorOptions options(const Napi::Value& dtype, const Napi::Value& device) {
  auto opts = at::TensorOptions().dtype(absent(dtype) ? at::kFloat : parseDtype(dtype));
  if (!absent(device)) opts = opts.device(parseDevice(device));
  return opts;
}

}  // namespace attune
