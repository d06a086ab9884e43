// Making tensors, moving bytes in and out of them, and reading their metadata.
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <mutex>
#include <stdexcept>
#include <string>

#include "handle.h"
#include "huge-pages.h"

namespace attune {

// A tensor that borrows a JS buffer keeps it alive with a reference. libtorch may drop the tensor on
// any thread, but references may only be deleted on the JS thread, so the deleter queues them here.
static std::mutex pendingMutex;
static std::vector<napi_ref> pendingReferences;

static void deletePendingReferences(napi_env env) {
  std::lock_guard<std::mutex> lock(pendingMutex);
  for (auto ref : pendingReferences) napi_delete_reference(env, ref);
  pendingReferences.clear();
}

static Napi::Value Empty(const Napi::CallbackInfo& info) {
  return wrap(info.Env(), at::empty(intList(info[0]), options(info[1], info[2])));
}
// emptyOnHugePages(shape, dtype): on the CPU, in a mapping of its own (huge-pages.h).
static Napi::Value EmptyOnHugePages(const Napi::CallbackInfo& info) {
  return wrap(info.Env(), emptyOnHugePages(intList(info[0]), at::TensorOptions().dtype(absent(info[1]) ? at::kFloat : parseDtype(info[1]))));
}
static Napi::Value Zeros(const Napi::CallbackInfo& info) {
  return wrap(info.Env(), at::zeros(intList(info[0]), options(info[1], info[2])));
}
static Napi::Value Ones(const Napi::CallbackInfo& info) {
  return wrap(info.Env(), at::ones(intList(info[0]), options(info[1], info[2])));
}
static Napi::Value Full(const Napi::CallbackInfo& info) {
  return wrap(info.Env(), at::full(intList(info[0]), toDouble(info[1]), options(info[2], info[3])));
}
static Napi::Value Arange(const Napi::CallbackInfo& info) {
  return wrap(info.Env(), at::arange(toDouble(info[0]), toDouble(info[1]), toDouble(info[2]),
                                     options(info[3], info[4])));
}
static Napi::Value Randn(const Napi::CallbackInfo& info) {
  return wrap(info.Env(), at::randn(intList(info[0]), options(info[1], info[2])));
}
static Napi::Value Rand(const Napi::CallbackInfo& info) {
  return wrap(info.Env(), at::rand(intList(info[0]), options(info[1], info[2])));
}

// fromBuffer(bytes: Uint8Array, dtype, shape, copy): with copy=false the tensor aliases the bytes.
static Napi::Value FromBuffer(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  deletePendingReferences(env);
  auto bytes = info[0].As<Napi::TypedArray>();
  auto dtype = parseDtype(info[1]);
  auto shape = intList(info[2]);
  bool copy = toBool(info[3]);
  int64_t numel = 1;
  for (auto d : shape) numel *= d;
  size_t expected = static_cast<size_t>(numel) * at::elementSize(dtype);
  if (bytes.ByteLength() != expected)
    throw std::invalid_argument("buffer holds " + std::to_string(bytes.ByteLength()) + " bytes; shape and dtype need " +
                                std::to_string(expected));
  auto* data = static_cast<uint8_t*>(bytes.ArrayBuffer().Data()) + bytes.ByteOffset();
  auto opts = at::TensorOptions().dtype(dtype);
  if (copy || expected == 0) {
    auto out = at::empty(shape, opts);
    if (expected) std::memcpy(out.data_ptr(), data, expected);
    return wrap(env, out);
  }
  napi_ref ref;
  napi_create_reference(env, bytes, 1, &ref);
  auto tensor = at::from_blob(
      data, shape,
      [ref](void*) {
        std::lock_guard<std::mutex> lock(pendingMutex);
        pendingReferences.push_back(ref);
      },
      opts);
  return wrap(env, tensor);
}

// toBuffer(t): a Buffer over the tensor's bytes, without copying when the tensor is contiguous on CPU.
static Napi::Value ToBuffer(const Napi::CallbackInfo& info) {
  auto source = unwrap(info[0]);
  auto* owner = new at::Tensor(source.to(at::kCPU).contiguous());
  return Napi::Buffer<uint8_t>::New(info.Env(), static_cast<uint8_t*>(owner->data_ptr()), owner->nbytes(),
                                    [](Napi::Env, uint8_t*, at::Tensor* t) { delete t; }, owner);
}

// readFileInto(t, fd, position): fills a contiguous CPU tensor's bytes from an open file at position, and
// returns how many it read (fewer where the file ends). Unlike a read into toBuffer's Buffer, nothing
// pins the tensor afterwards: that Buffer keeps it alive until garbage collection, so a weight read that
// way could not give its memory back when it is freed.
static Napi::Value ReadFileInto(const Napi::CallbackInfo& info) {
  auto& t = unwrap(info[0]);
  if (!t.device().is_cpu() || !t.is_contiguous()) throw std::invalid_argument("readFileInto: the tensor must be contiguous on the CPU");
  const int fd = static_cast<int>(toInt(info[1]));
  auto position = static_cast<off_t>(toInt(info[2]));
  auto* data = static_cast<char*>(t.data_ptr());
  size_t done = 0, total = t.nbytes();
  while (done < total) {
    const ssize_t n = pread(fd, data + done, std::min<size_t>(total - done, size_t(1) << 30), position + static_cast<off_t>(done));
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) throw std::runtime_error(std::string("readFileInto: ") + std::strerror(errno));
    if (n == 0) break;
    done += static_cast<size_t>(n);
  }
  return Napi::Number::New(info.Env(), static_cast<double>(done));
}

static Napi::Value Item(const Napi::CallbackInfo& info) {
  return Napi::Number::New(info.Env(), unwrap(info[0]).item().toDouble());
}
static Napi::Value Shape(const Napi::CallbackInfo& info) {
  auto sizes = unwrap(info[0]).sizes();
  auto array = Napi::Array::New(info.Env(), sizes.size());
  for (size_t i = 0; i < sizes.size(); i++) array.Set(i, Napi::Number::New(info.Env(), sizes[i]));
  return array;
}
static Napi::Value Dtype(const Napi::CallbackInfo& info) {
  return Napi::String::New(info.Env(), dtypeName(unwrap(info[0]).scalar_type()));
}
static Napi::Value DeviceOf(const Napi::CallbackInfo& info) {
  return Napi::String::New(info.Env(), unwrap(info[0]).device().str());
}
static Napi::Value IsContiguous(const Napi::CallbackInfo& info) {
  return Napi::Boolean::New(info.Env(), unwrap(info[0]).is_contiguous());
}
// The count of in-place changes to the tensor's storage (shared by its views): a copy made from it is
// stale once this moves.
static Napi::Value TensorVersion(const Napi::CallbackInfo& info) {
  return Napi::Number::New(info.Env(), static_cast<double>(unwrap(info[0])._version()));
}
// replaceTensor(handle, source): the handle names source's tensor from now on (every holder of the handle
// sees it); source's own handle stays valid. Swaps a weight for a stand-in and back without touching holders.
static Napi::Value ReplaceTensor(const Napi::CallbackInfo& info) {
  unwrap(info[0]) = unwrap(info[1]);
  return info.Env().Undefined();
}
static Napi::Value Dispose(const Napi::CallbackInfo& info) {
  release(info.Env(), info[0]);
  deletePendingReferences(info.Env());
  return info.Env().Undefined();
}
static Napi::Value LiveTensors(const Napi::CallbackInfo& info) {
  return Napi::Number::New(info.Env(), static_cast<double>(liveTensorCount()));
}

void registerCreation(Napi::Env env, Napi::Object exports) {
  ATTUNE_EXPORT("empty", Empty);
  ATTUNE_EXPORT("emptyOnHugePages", EmptyOnHugePages);
  ATTUNE_EXPORT("zeros", Zeros);
  ATTUNE_EXPORT("ones", Ones);
  ATTUNE_EXPORT("full", Full);
  ATTUNE_EXPORT("arange", Arange);
  ATTUNE_EXPORT("randn", Randn);
  ATTUNE_EXPORT("rand", Rand);
  ATTUNE_EXPORT("fromBuffer", FromBuffer);
  ATTUNE_EXPORT("toBuffer", ToBuffer);
  ATTUNE_EXPORT("readFileInto", ReadFileInto);
  ATTUNE_EXPORT("item", Item);
  ATTUNE_EXPORT("shape", Shape);
  ATTUNE_EXPORT("dtype", Dtype);
  ATTUNE_EXPORT("device", DeviceOf);
  ATTUNE_EXPORT("isContiguous", IsContiguous);
  ATTUNE_EXPORT("tensorVersion", TensorVersion);
  ATTUNE_EXPORT("replaceTensor", ReplaceTensor);
  ATTUNE_EXPORT("dispose", Dispose);
  ATTUNE_EXPORT("liveTensors", LiveTensors);
}

}  // namespace attune
