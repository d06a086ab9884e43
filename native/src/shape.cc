// Views, layout, indexing and joining: ops that move or select elements without arithmetic.
#include "handle.h"

namespace attune {

static Napi::Value View(const Napi::CallbackInfo& info) {
  return wrap(info.Env(), unwrap(info[0]).view(intList(info[1])));
}
static Napi::Value Reshape(const Napi::CallbackInfo& info) {
  return wrap(info.Env(), unwrap(info[0]).reshape(intList(info[1])));
}
static Napi::Value Transpose(const Napi::CallbackInfo& info) {
  return wrap(info.Env(), unwrap(info[0]).transpose(toInt(info[1]), toInt(info[2])));
}
static Napi::Value Permute(const Napi::CallbackInfo& info) {
  return wrap(info.Env(), unwrap(info[0]).permute(intList(info[1])));
}
static Napi::Value Unsqueeze(const Napi::CallbackInfo& info) {
  return wrap(info.Env(), unwrap(info[0]).unsqueeze(toInt(info[1])));
}
static Napi::Value Squeeze(const Napi::CallbackInfo& info) {
  return wrap(info.Env(), unwrap(info[0]).squeeze(toInt(info[1])));
}
static Napi::Value Expand(const Napi::CallbackInfo& info) {
  return wrap(info.Env(), unwrap(info[0]).expand(intList(info[1])));
}
static Napi::Value Flatten(const Napi::CallbackInfo& info) {
  return wrap(info.Env(), unwrap(info[0]).flatten(toInt(info[1]), toInt(info[2])));
}
// slice(t, dim, start, end, step)
static Napi::Value Slice(const Napi::CallbackInfo& info) {
  return wrap(info.Env(), unwrap(info[0]).slice(toInt(info[1]), toInt(info[2]), toInt(info[3]), toInt(info[4])));
}
static Napi::Value Select(const Napi::CallbackInfo& info) {
  return wrap(info.Env(), unwrap(info[0]).select(toInt(info[1]), toInt(info[2])));
}
static Napi::Value IndexSelect(const Napi::CallbackInfo& info) {
  return wrap(info.Env(), at::index_select(unwrap(info[0]), toInt(info[1]), unwrap(info[2])));
}
static Napi::Value Gather(const Napi::CallbackInfo& info) {
  return wrap(info.Env(), at::gather(unwrap(info[0]), toInt(info[1]), unwrap(info[2])));
}
static Napi::Value Cat(const Napi::CallbackInfo& info) {
  return wrap(info.Env(), at::cat(tensorList(info[0]), toInt(info[1])));
}
static Napi::Value Stack(const Napi::CallbackInfo& info) {
  return wrap(info.Env(), at::stack(tensorList(info[0]), toInt(info[1])));
}
// split(t, sizes[], dim) -> tensors
static Napi::Value Split(const Napi::CallbackInfo& info) {
  return wrapList(info.Env(), unwrap(info[0]).split_with_sizes(intList(info[1]), toInt(info[2])));
}
static Napi::Value RepeatInterleave(const Napi::CallbackInfo& info) {
  return wrap(info.Env(), at::repeat_interleave(unwrap(info[0]), toInt(info[1]), toInt(info[2])));
}
static Napi::Value Tril(const Napi::CallbackInfo& info) {
  return wrap(info.Env(), at::tril(unwrap(info[0]), toInt(info[1])));
}
static Napi::Value Triu(const Napi::CallbackInfo& info) {
  return wrap(info.Env(), at::triu(unwrap(info[0]), toInt(info[1])));
}
static Napi::Value Contiguous(const Napi::CallbackInfo& info) {
  return wrap(info.Env(), unwrap(info[0]).contiguous());
}
static Napi::Value Clone(const Napi::CallbackInfo& info) {
  return wrap(info.Env(), unwrap(info[0]).clone());
}
static Napi::Value Detach(const Napi::CallbackInfo& info) {
  return wrap(info.Env(), unwrap(info[0]).detach());
}
// to(t, dtype | null, device | null)
static Napi::Value To(const Napi::CallbackInfo& info) {
  const at::Tensor& a = unwrap(info[0]);
  auto dtype = absent(info[1]) ? a.scalar_type() : parseDtype(info[1]);
  auto device = absent(info[2]) ? a.device() : parseDevice(info[2]);
  return wrap(info.Env(), a.to(device, dtype));
}

void registerShape(Napi::Env env, Napi::Object exports) {
  ATTUNE_EXPORT("view", View);
  ATTUNE_EXPORT("reshape", Reshape);
  ATTUNE_EXPORT("transpose", Transpose);
  ATTUNE_EXPORT("permute", Permute);
  ATTUNE_EXPORT("unsqueeze", Unsqueeze);
  ATTUNE_EXPORT("squeeze", Squeeze);
  ATTUNE_EXPORT("expand", Expand);
  ATTUNE_EXPORT("flatten", Flatten);
  ATTUNE_EXPORT("slice", Slice);
  ATTUNE_EXPORT("select", Select);
  ATTUNE_EXPORT("indexSelect", IndexSelect);
  ATTUNE_EXPORT("gather", Gather);
  ATTUNE_EXPORT("cat", Cat);
  ATTUNE_EXPORT("stack", Stack);
  ATTUNE_EXPORT("split", Split);
  ATTUNE_EXPORT("repeatInterleave", RepeatInterleave);
  ATTUNE_EXPORT("tril", Tril);
  ATTUNE_EXPORT("triu", Triu);
  ATTUNE_EXPORT("contiguous", Contiguous);
  ATTUNE_EXPORT("clone", Clone);
  ATTUNE_EXPORT("detach", Detach);
  ATTUNE_EXPORT("to", To);
}

}  // namespace attune
