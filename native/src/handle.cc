#include "handle.h"

#include <deque>

#include <unordered_map>

namespace attune {

namespace {

struct Slot {
  at::Tensor tensor;
  uint32_t index = 0;
  uint32_t generation = 0;
  int64_t reportedBytes = 0;
};

constexpr uint64_t indexBits = 24;
constexpr uint64_t indexMask = (uint64_t{1} << indexBits) - 1;

// A deque: growing it never moves a slot, so references from unwrap() stay valid while an op wraps its result.
// Never destroyed: at exit libtorch's own globals may already be gone, and freeing tensors then corrupts the heap.
std::deque<Slot>& slots = *new std::deque<Slot>();
std::vector<uint32_t>& freeSlots = *new std::vector<uint32_t>();
int64_t liveTensors = 0;

Slot* slotOf(const Napi::Value& value) {
  if (!value.IsNumber()) return nullptr;
  auto handle = static_cast<uint64_t>(value.As<Napi::Number>().Int64Value());
  auto index = handle & indexMask;
  if (index >= slots.size() || slots[index].generation != (handle >> indexBits)) return nullptr;
  return &slots[index];
}

}  // namespace

int64_t liveTensorCount() { return liveTensors; }

Napi::Value wrap(Napi::Env env, at::Tensor tensor) {
  uint32_t index;
  if (freeSlots.empty()) {
    if (slots.size() > indexMask) throw std::runtime_error("too many live tensors");
    index = static_cast<uint32_t>(slots.size());
    slots.emplace_back().index = index;
  } else {
    index = freeSlots.back();
    freeSlots.pop_back();
  }
  Slot& slot = slots[index];
  slot.tensor = std::move(tensor);
  liveTensors++;
  // Report host memory only: it is what competes with the JS heap, so the GC should know of it.
  slot.reportedBytes = slot.tensor.device().is_cpu() ? static_cast<int64_t>(slot.tensor.nbytes()) : 0;
  if (slot.reportedBytes) Napi::MemoryManagement::AdjustExternalMemory(env, slot.reportedBytes);
  return Napi::Number::New(env, static_cast<double>((uint64_t{slot.generation} << indexBits) | index));
}

at::Tensor& unwrap(const Napi::Value& value) {
  Slot* slot = slotOf(value);
  if (!slot || !slot->tensor.defined()) {
    throw std::invalid_argument(value.IsNumber() ? "tensor used after it was disposed" : "expected a tensor handle");
  }
  return slot->tensor;
}

void release(Napi::Env env, const Napi::Value& handle) {
  Slot* slot = slotOf(handle);
  if (!slot || !slot->tensor.defined()) return;
  slot->tensor = at::Tensor();
  slot->generation++;
  liveTensors--;
  if (slot->reportedBytes) Napi::MemoryManagement::AdjustExternalMemory(env, -slot->reportedBytes);
  slot->reportedBytes = 0;
  freeSlots.push_back(slot->index);
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
