// Elementwise, reduction, neural-network and sampling ops, out-of-place and in-place; the bfloat16 products
// over a packed operand (packed-matmul.h).
#include "packed-matmul.h"
#include "handle.h"

namespace attune {

// An integer JS number against an integer tensor stays an integer, so index arithmetic keeps its dtype.
static at::Scalar scalarFor(const at::Tensor& tensor, const Napi::Value& value) {
  double number = toDouble(value);
  if (at::isIntegralType(tensor.scalar_type(), true) && number == static_cast<double>(static_cast<int64_t>(number)))
    return at::Scalar(static_cast<int64_t>(number));
  return at::Scalar(number);
}

#define UNARY(Name, expr)                                        \
  static Napi::Value Name(const Napi::CallbackInfo& info) {      \
    const at::Tensor& a = unwrap(info[0]);                       \
    return wrap(info.Env(), expr);                               \
  }

// Handles are numbers too, so each binary op comes twice: Name (tensor, tensor) and NameScalar (tensor, number).
#define BINARY(Name, fn)                                                      \
  static Napi::Value Name(const Napi::CallbackInfo& info) {                   \
    return wrap(info.Env(), fn(unwrap(info[0]), unwrap(info[1])));            \
  }                                                                           \
  static Napi::Value Name##Scalar(const Napi::CallbackInfo& info) {           \
    const at::Tensor& a = unwrap(info[0]);                                    \
    return wrap(info.Env(), fn(a, scalarFor(a, info[1])));                    \
  }

#define INPLACE_BINARY(Name, method)                                \
  static Napi::Value Name(const Napi::CallbackInfo& info) {         \
    unwrap(info[0]).method(unwrap(info[1]));                        \
    return info[0];                                                 \
  }                                                                 \
  static Napi::Value Name##Scalar(const Napi::CallbackInfo& info) { \
    at::Tensor& a = unwrap(info[0]);                                \
    a.method(scalarFor(a, info[1]));                                \
    return info[0];                                                 \
  }

UNARY(Neg, at::neg(a))
UNARY(Exp, at::exp(a))
UNARY(Log, at::log(a))
UNARY(Sqrt, at::sqrt(a))
UNARY(Rsqrt, at::rsqrt(a))
UNARY(Abs, at::abs(a))
UNARY(Tanh, at::tanh(a))
UNARY(Sigmoid, at::sigmoid(a))
UNARY(Silu, at::silu(a))
UNARY(Relu, at::relu(a))
UNARY(Sin, at::sin(a))
UNARY(Cos, at::cos(a))
UNARY(Reciprocal, at::reciprocal(a))
UNARY(Floor, at::floor(a))
UNARY(LogicalNot, at::logical_not(a))
UNARY(IsFinite, at::isfinite(a))

BINARY(Add, at::add)
BINARY(Sub, at::sub)
BINARY(Mul, at::mul)
BINARY(Div, at::div)
BINARY(Pow, at::pow)
BINARY(Eq, at::eq)
BINARY(Ne, at::ne)
BINARY(Lt, at::lt)
BINARY(Le, at::le)
BINARY(Gt, at::gt)
BINARY(Ge, at::ge)

static Napi::Value Maximum(const Napi::CallbackInfo& info) {
  return wrap(info.Env(), at::maximum(unwrap(info[0]), unwrap(info[1])));
}
static Napi::Value Minimum(const Napi::CallbackInfo& info) {
  return wrap(info.Env(), at::minimum(unwrap(info[0]), unwrap(info[1])));
}
static Napi::Value LogicalAnd(const Napi::CallbackInfo& info) {
  return wrap(info.Env(), at::logical_and(unwrap(info[0]), unwrap(info[1])));
}
static Napi::Value LogicalOr(const Napi::CallbackInfo& info) {
  return wrap(info.Env(), at::logical_or(unwrap(info[0]), unwrap(info[1])));
}

// gelu(t, approximate: 'none' | 'tanh')
static Napi::Value Gelu(const Napi::CallbackInfo& info) {
  return wrap(info.Env(), at::gelu(unwrap(info[0]), info[1].As<Napi::String>().Utf8Value()));
}

// clamp(t, min | null, max | null)
static Napi::Value Clamp(const Napi::CallbackInfo& info) {
  c10::optional<at::Scalar> lo, hi;
  if (!absent(info[1])) lo = toDouble(info[1]);
  if (!absent(info[2])) hi = toDouble(info[2]);
  return wrap(info.Env(), at::clamp(unwrap(info[0]), lo, hi));
}

// where(condition, a, b, aIsScalar, bIsScalar): a and b are tensors or numbers, as the flags say.
static Napi::Value Where(const Napi::CallbackInfo& info) {
  const at::Tensor& condition = unwrap(info[0]);
  bool aNumber = toBool(info[3]), bNumber = toBool(info[4]);
  if (aNumber && bNumber) return wrap(info.Env(), at::where(condition, toDouble(info[1]), toDouble(info[2])));
  if (aNumber) return wrap(info.Env(), at::where(condition, at::Scalar(toDouble(info[1])), unwrap(info[2])));
  if (bNumber) return wrap(info.Env(), at::where(condition, unwrap(info[1]), at::Scalar(toDouble(info[2]))));
  return wrap(info.Env(), at::where(condition, unwrap(info[1]), unwrap(info[2])));
}

static Napi::Value MaskedFill(const Napi::CallbackInfo& info) {
  return wrap(info.Env(), at::masked_fill(unwrap(info[0]), unwrap(info[1]), toDouble(info[2])));
}

// Reductions take dims (array) or null for all dims.
static Napi::Value Sum(const Napi::CallbackInfo& info) {
  const at::Tensor& a = unwrap(info[0]);
  c10::optional<at::ScalarType> dtype;
  if (!absent(info[3])) dtype = parseDtype(info[3]);
  if (absent(info[1])) return wrap(info.Env(), at::sum(a, dtype));
  return wrap(info.Env(), at::sum(a, intList(info[1]), toBool(info[2]), dtype));
}
static Napi::Value Mean(const Napi::CallbackInfo& info) {
  const at::Tensor& a = unwrap(info[0]);
  if (absent(info[1])) return wrap(info.Env(), at::mean(a));
  return wrap(info.Env(), at::mean(a, intList(info[1]), toBool(info[2])));
}
static Napi::Value Amax(const Napi::CallbackInfo& info) {
  return wrap(info.Env(), at::amax(unwrap(info[0]), intList(info[1]), toBool(info[2])));
}
static Napi::Value Argmax(const Napi::CallbackInfo& info) {
  return wrap(info.Env(), at::argmax(unwrap(info[0]), toInt(info[1]), toBool(info[2])));
}
static Napi::Value Norm(const Napi::CallbackInfo& info) {
  return wrap(info.Env(), at::norm(unwrap(info[0]), toDouble(info[1])));
}
static Napi::Value Cumsum(const Napi::CallbackInfo& info) {
  return wrap(info.Env(), at::cumsum(unwrap(info[0]), toInt(info[1])));
}

static Napi::Value Softmax(const Napi::CallbackInfo& info) {
  c10::optional<at::ScalarType> dtype;
  if (!absent(info[2])) dtype = parseDtype(info[2]);
  return wrap(info.Env(), at::softmax(unwrap(info[0]), toInt(info[1]), dtype));
}
static Napi::Value LogSoftmax(const Napi::CallbackInfo& info) {
  c10::optional<at::ScalarType> dtype;
  if (!absent(info[2])) dtype = parseDtype(info[2]);
  return wrap(info.Env(), at::log_softmax(unwrap(info[0]), toInt(info[1]), dtype));
}

static Napi::Value Matmul(const Napi::CallbackInfo& info) {
  return wrap(info.Env(), at::matmul(unwrap(info[0]), unwrap(info[1])));
}
// linear(x, weight[out, in], bias | null)
static Napi::Value Linear(const Napi::CallbackInfo& info) {
  c10::optional<at::Tensor> bias;
  if (!absent(info[2])) bias = unwrap(info[2]);
  return wrap(info.Env(), at::linear(unwrap(info[0]), unwrap(info[1]), bias));
}
static Napi::Value Embedding(const Napi::CallbackInfo& info) {
  return wrap(info.Env(), at::embedding(unwrap(info[0]), unwrap(info[1])));
}
// crossEntropy(logits[N, C], targets[N], ignoreIndex, reduction: 'mean' | 'sum' | 'none')
static Napi::Value CrossEntropy(const Napi::CallbackInfo& info) {
  auto reductionName = info[3].As<Napi::String>().Utf8Value();
  int64_t reduction = reductionName == "none" ? at::Reduction::None
                      : reductionName == "sum" ? at::Reduction::Sum
                                               : at::Reduction::Mean;
  return wrap(info.Env(), at::cross_entropy_loss(unwrap(info[0]), unwrap(info[1]), {}, reduction, toInt(info[2])));
}
static Napi::Value Dropout(const Napi::CallbackInfo& info) {
  return wrap(info.Env(), at::dropout(unwrap(info[0]), toDouble(info[1]), toBool(info[2])));
}

// topk(t, k, dim, largest) -> [values, indices]
static Napi::Value Topk(const Napi::CallbackInfo& info) {
  auto [values, indices] = at::topk(unwrap(info[0]), toInt(info[1]), toInt(info[2]), toBool(info[3]), true);
  return wrapList(info.Env(), {values, indices});
}
// sort(t, dim, descending) -> [values, indices]
static Napi::Value Sort(const Napi::CallbackInfo& info) {
  auto [values, indices] = at::sort(unwrap(info[0]), toInt(info[1]), toBool(info[2]));
  return wrapList(info.Env(), {values, indices});
}
static Napi::Value Multinomial(const Napi::CallbackInfo& info) {
  return wrap(info.Env(), at::multinomial(unwrap(info[0]), toInt(info[1]), toBool(info[2])));
}

// In-place ops return their first argument's handle.
INPLACE_BINARY(AddInPlace, add_)
INPLACE_BINARY(SubInPlace, sub_)
INPLACE_BINARY(MulInPlace, mul_)
INPLACE_BINARY(DivInPlace, div_)

// addScaled_(t, other, alpha): t += alpha * other
static Napi::Value AddScaledInPlace(const Napi::CallbackInfo& info) {
  unwrap(info[0]).add_(unwrap(info[1]), toDouble(info[2]));
  return info[0];
}
static Napi::Value AddcmulInPlace(const Napi::CallbackInfo& info) {
  unwrap(info[0]).addcmul_(unwrap(info[1]), unwrap(info[2]), toDouble(info[3]));
  return info[0];
}
static Napi::Value AddcdivInPlace(const Napi::CallbackInfo& info) {
  unwrap(info[0]).addcdiv_(unwrap(info[1]), unwrap(info[2]), toDouble(info[3]));
  return info[0];
}
static Napi::Value LerpInPlace(const Napi::CallbackInfo& info) {
  unwrap(info[0]).lerp_(unwrap(info[1]), toDouble(info[2]));
  return info[0];
}
static Napi::Value CopyInPlace(const Napi::CallbackInfo& info) {
  unwrap(info[0]).copy_(unwrap(info[1]));
  return info[0];
}
// indexCopy_(t, dim, index, source): t[..., index[i], ...] = source[..., i, ...] along dim
static Napi::Value IndexCopyInPlace(const Napi::CallbackInfo& info) {
  unwrap(info[0]).index_copy_(toInt(info[1]), unwrap(info[2]), unwrap(info[3]));
  return info[0];
}
static Napi::Value ZeroInPlace(const Napi::CallbackInfo& info) {
  unwrap(info[0]).zero_();
  return info[0];
}
static Napi::Value FillInPlace(const Napi::CallbackInfo& info) {
  unwrap(info[0]).fill_(toDouble(info[1]));
  return info[0];
}
static Napi::Value NormalInPlace(const Napi::CallbackInfo& info) {
  unwrap(info[0]).normal_(toDouble(info[1]), toDouble(info[2]));
  return info[0];
}
static Napi::Value UniformInPlace(const Napi::CallbackInfo& info) {
  unwrap(info[0]).uniform_(toDouble(info[1]), toDouble(info[2]));
  return info[0];
}
static Napi::Value SqrtInPlace(const Napi::CallbackInfo& info) {
  unwrap(info[0]).sqrt_();
  return info[0];
}

// packRight(w): w [k, n] in bfloat16, packed for multiplyPacked (packed-matmul.h)
static Napi::Value PackRightOp(const Napi::CallbackInfo& info) { return wrap(info.Env(), packed::packRight(unwrap(info[0]))); }

// multiplyPacked(left, packed): left [rows, k] · w [k, n], any rows (packedTakes says where it beats matmul)
static Napi::Value MultiplyPackedOp(const Napi::CallbackInfo& info) {
  return wrap(info.Env(), packed::multiplyPacked(unwrap(info[0]), unwrap(info[1])));
}

// unpackRight(packed): w [k, n] back out of packRight's layout
static Napi::Value UnpackRightOp(const Napi::CallbackInfo& info) { return wrap(info.Env(), packed::unpackRight(unwrap(info[0]))); }

// multiplyPackedTransposed(left, packed): left [rows, n] · wᵀ from w [k, n] packed, any rows
static Napi::Value MultiplyPackedTransposedOp(const Napi::CallbackInfo& info) {
  return wrap(info.Env(), packed::multiplyPackedTransposed(unwrap(info[0]), unwrap(info[1])));
}

// packedTakes(left, packed): whether multiplyPacked takes them (elsewhere a caller uses matmul)
static Napi::Value PackedTakesOp(const Napi::CallbackInfo& info) {
  return Napi::Boolean::New(info.Env(), packed::takes(unwrap(info[0]), unwrap(info[1])));
}

// packedKernel(): 'amx' or 'avx512bf16', the kernel packed products run on here, or null where none
static Napi::Value PackedKernelOp(const Napi::CallbackInfo& info) {
  if (!packed::available()) return info.Env().Null();
  return Napi::String::New(info.Env(), packed::kernelName(packed::kernel()));
}

void registerMath(Napi::Env env, Napi::Object exports) {
  ATTUNE_EXPORT("packRight", PackRightOp);
  ATTUNE_EXPORT("multiplyPacked", MultiplyPackedOp);
  ATTUNE_EXPORT("unpackRight", UnpackRightOp);
  ATTUNE_EXPORT("multiplyPackedTransposed", MultiplyPackedTransposedOp);
  ATTUNE_EXPORT("packedTakes", PackedTakesOp);
  ATTUNE_EXPORT("packedKernel", PackedKernelOp);
  ATTUNE_EXPORT("neg", Neg);
  ATTUNE_EXPORT("exp", Exp);
  ATTUNE_EXPORT("log", Log);
  ATTUNE_EXPORT("sqrt", Sqrt);
  ATTUNE_EXPORT("rsqrt", Rsqrt);
  ATTUNE_EXPORT("abs", Abs);
  ATTUNE_EXPORT("tanh", Tanh);
  ATTUNE_EXPORT("sigmoid", Sigmoid);
  ATTUNE_EXPORT("silu", Silu);
  ATTUNE_EXPORT("relu", Relu);
  ATTUNE_EXPORT("sin", Sin);
  ATTUNE_EXPORT("cos", Cos);
  ATTUNE_EXPORT("reciprocal", Reciprocal);
  ATTUNE_EXPORT("floor", Floor);
  ATTUNE_EXPORT("logicalNot", LogicalNot);
  ATTUNE_EXPORT("isFinite", IsFinite);
  ATTUNE_EXPORT("add", Add);
  ATTUNE_EXPORT("addScalar", AddScalar);
  ATTUNE_EXPORT("sub", Sub);
  ATTUNE_EXPORT("subScalar", SubScalar);
  ATTUNE_EXPORT("mul", Mul);
  ATTUNE_EXPORT("mulScalar", MulScalar);
  ATTUNE_EXPORT("div", Div);
  ATTUNE_EXPORT("divScalar", DivScalar);
  ATTUNE_EXPORT("pow", Pow);
  ATTUNE_EXPORT("powScalar", PowScalar);
  ATTUNE_EXPORT("eq", Eq);
  ATTUNE_EXPORT("eqScalar", EqScalar);
  ATTUNE_EXPORT("ne", Ne);
  ATTUNE_EXPORT("neScalar", NeScalar);
  ATTUNE_EXPORT("lt", Lt);
  ATTUNE_EXPORT("ltScalar", LtScalar);
  ATTUNE_EXPORT("le", Le);
  ATTUNE_EXPORT("leScalar", LeScalar);
  ATTUNE_EXPORT("gt", Gt);
  ATTUNE_EXPORT("gtScalar", GtScalar);
  ATTUNE_EXPORT("ge", Ge);
  ATTUNE_EXPORT("geScalar", GeScalar);
  ATTUNE_EXPORT("maximum", Maximum);
  ATTUNE_EXPORT("minimum", Minimum);
  ATTUNE_EXPORT("logicalAnd", LogicalAnd);
  ATTUNE_EXPORT("logicalOr", LogicalOr);
  ATTUNE_EXPORT("gelu", Gelu);
  ATTUNE_EXPORT("clamp", Clamp);
  ATTUNE_EXPORT("where", Where);
  ATTUNE_EXPORT("maskedFill", MaskedFill);
  ATTUNE_EXPORT("sum", Sum);
  ATTUNE_EXPORT("mean", Mean);
  ATTUNE_EXPORT("amax", Amax);
  ATTUNE_EXPORT("argmax", Argmax);
  ATTUNE_EXPORT("norm", Norm);
  ATTUNE_EXPORT("cumsum", Cumsum);
  ATTUNE_EXPORT("softmax", Softmax);
  ATTUNE_EXPORT("logSoftmax", LogSoftmax);
  ATTUNE_EXPORT("matmul", Matmul);
  ATTUNE_EXPORT("linear", Linear);
  ATTUNE_EXPORT("embedding", Embedding);
  ATTUNE_EXPORT("crossEntropy", CrossEntropy);
  ATTUNE_EXPORT("dropout", Dropout);
  ATTUNE_EXPORT("topk", Topk);
  ATTUNE_EXPORT("sort", Sort);
  ATTUNE_EXPORT("multinomial", Multinomial);
  ATTUNE_EXPORT("add_", AddInPlace);
  ATTUNE_EXPORT("addScalar_", AddInPlaceScalar);
  ATTUNE_EXPORT("sub_", SubInPlace);
  ATTUNE_EXPORT("subScalar_", SubInPlaceScalar);
  ATTUNE_EXPORT("mul_", MulInPlace);
  ATTUNE_EXPORT("mulScalar_", MulInPlaceScalar);
  ATTUNE_EXPORT("div_", DivInPlace);
  ATTUNE_EXPORT("divScalar_", DivInPlaceScalar);
  ATTUNE_EXPORT("addScaled_", AddScaledInPlace);
  ATTUNE_EXPORT("addcmul_", AddcmulInPlace);
  ATTUNE_EXPORT("addcdiv_", AddcdivInPlace);
  ATTUNE_EXPORT("lerp_", LerpInPlace);
  ATTUNE_EXPORT("copy_", CopyInPlace);
  ATTUNE_EXPORT("indexCopy_", IndexCopyInPlace);
  ATTUNE_EXPORT("zero_", ZeroInPlace);
  ATTUNE_EXPORT("fill_", FillInPlace);
  ATTUNE_EXPORT("normal_", NormalInPlace);
  ATTUNE_EXPORT("uniform_", UniformInPlace);
  ATTUNE_EXPORT("sqrt_", SqrtInPlace);
}

}  // namespace attune
