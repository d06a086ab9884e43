// The loops are written for the compiler to vectorise: straight float arithmetic over arrays, with the
// bfloat16 conversions and exp done in bit arithmetic rather than library calls. Each entry point is
// compiled for AVX-512, AVX2 and the x86-64 baseline, and the dynamic loader picks the best this CPU
// runs.
#include "cpu-kernels.h"

#include <algorithm>
#include <cmath>
#include <cstring>

// Function multiversioning: the same definition under three targets, chosen by the CPU's features
// (a choice by CPU model name fails on virtual machines, which report a generic model).
#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__)
#define ATTUNE_FOR_EACH_TARGET(define)                    \
  define(__attribute__((target("default"))))             \
  define(__attribute__((target("avx2,fma,f16c"))))       \
  define(__attribute__((target("avx512f,avx512bw,avx512vl,avx512dq,fma,f16c"))))
#else
#define ATTUNE_FOR_EACH_TARGET(define) define()
#endif
#define ATTUNE_INLINE inline __attribute__((always_inline))

namespace attune::kernels {
namespace {

ATTUNE_INLINE float fromBits(uint32_t u) {
  float f;
  std::memcpy(&f, &u, sizeof f);
  return f;
}

ATTUNE_INLINE uint32_t toBits(float f) {
  uint32_t u;
  std::memcpy(&u, &f, sizeof u);
  return u;
}

// Round to nearest even, as c10::BFloat16 does; NaN stays NaN.
ATTUNE_INLINE uint16_t toBFloat16(float f) {
  uint32_t u = toBits(f);
  uint32_t rounded = (u + 0x7FFFu + ((u >> 16) & 1u)) >> 16;
  return (u & 0x7FFFFFFFu) > 0x7F800000u ? uint16_t(0x7FC0) : uint16_t(rounded);
}

// std::min and std::max take references and are not always inlined into the cloned functions; a call
// in a loop stops its vectorisation.
ATTUNE_INLINE float smaller(float a, float b) { return b < a ? b : a; }
ATTUNE_INLINE float larger(float a, float b) { return a < b ? b : a; }

ATTUNE_INLINE float fromBFloat16(uint16_t v) { return fromBits(uint32_t(v) << 16); }

template <Storage S>
struct Element;
template <>
struct Element<Storage::Float32> {
  using type = float;
  static ATTUNE_INLINE float load(float v) { return v; }
  static ATTUNE_INLINE float store(float v) { return v; }
  static ATTUNE_INLINE float round(float v) { return v; }
};
template <>
struct Element<Storage::BFloat16> {
  using type = uint16_t;
  static ATTUNE_INLINE float load(uint16_t v) { return fromBFloat16(v); }
  static ATTUNE_INLINE uint16_t store(float v) { return toBFloat16(v); }
  static ATTUNE_INLINE float round(float v) { return fromBFloat16(toBFloat16(v)); }
};

// exp(x) as 2ⁿ · exp(r), |r| ≤ ln2 / 2, with Cephes' expf polynomial: within 2 ulp of expf over
// [-87, 88]; below that it returns about 1e-38 (not 0), above it about 1e38 (not inf).
ATTUNE_INLINE float expApprox(float x) {
  x = smaller(larger(x, -87.0f), 88.0f);
  // Rounds to the nearest integer: adding 1.5·2²³ pushes the fraction out of a float's mantissa.
  float n = (x * 1.44269504088896341f + 12582912.0f) - 12582912.0f;
  float r = x - n * 0.693359375f + n * 2.12194440e-4f;
  float p = 1.9875691500e-4f;
  p = p * r + 1.3981999507e-3f;
  p = p * r + 8.3334519073e-3f;
  p = p * r + 4.1665795894e-2f;
  p = p * r + 1.6666665459e-1f;
  p = p * r + 5.0000001201e-1f;
  float e = p * r * r + r + 1.0f;
  return e * fromBits(uint32_t(int32_t(n) + 127) << 23);
}

ATTUNE_INLINE float sigmoid(float x) { return 1.0f / (1.0f + expApprox(-x)); }

// tanh(x) = 1 − 2 / (exp(2x) + 1), exact at the ends because exp saturates rather than overflowing.
ATTUNE_INLINE float tanhApprox(float x) { return 1.0f - 2.0f / (expApprox(2.0f * x) + 1.0f); }

constexpr float kGeluC = 0.7978845608028654f;  // sqrt(2 / π)
constexpr float kGeluA = 0.044715f;

template <Storage S>
ATTUNE_INLINE void rmsNormForwardRows(const void* xRaw, const float* scale, void* yRaw, float* rstd, int64_t rows, int64_t d, float eps,
                                      bool roundBeforeScale) {
  using E = Element<S>;
  using T = typename E::type;
  for (int64_t r = 0; r < rows; r++) {
    const T* x = static_cast<const T*>(xRaw) + r * d;
    T* y = static_cast<T*>(yRaw) + r * d;
    float sum = 0;
#pragma omp simd reduction(+ : sum)
    for (int64_t i = 0; i < d; i++) {
      float v = E::load(x[i]);
      sum += v * v;
    }
    float s = 1.0f / std::sqrt(sum / float(d) + eps);
    rstd[r] = s;
    if (roundBeforeScale) {
#pragma omp simd
      for (int64_t i = 0; i < d; i++) y[i] = E::store(scale[i] * E::round(E::load(x[i]) * s));
    } else {
#pragma omp simd
      for (int64_t i = 0; i < d; i++) y[i] = E::store(E::load(x[i]) * s * scale[i]);
    }
  }
}

template <Storage S>
ATTUNE_INLINE void rmsNormBackwardRows(const void* xRaw, const float* scale, const float* rstd, const void* gRaw, void* gxRaw,
                                       int64_t rows, int64_t d) {
  using E = Element<S>;
  using T = typename E::type;
  for (int64_t r = 0; r < rows; r++) {
    const T* x = static_cast<const T*>(xRaw) + r * d;
    const T* g = static_cast<const T*>(gRaw) + r * d;
    T* gx = static_cast<T*>(gxRaw) + r * d;
    float s = rstd[r];
    float dot = 0;  // Σ g·scale·x̂
#pragma omp simd reduction(+ : dot)
    for (int64_t i = 0; i < d; i++) dot += E::load(g[i]) * scale[i] * E::load(x[i]);
    float mean = dot * s / float(d);
#pragma omp simd
    for (int64_t i = 0; i < d; i++) {
      float xhat = E::load(x[i]) * s;
      gx[i] = E::store(s * (E::load(g[i]) * scale[i] - xhat * mean));
    }
  }
}

template <Storage S, Activation A>
ATTUNE_INLINE void gatedForwardRows(const void* inRaw, void* outRaw, int64_t rows, int64_t n) {
  using E = Element<S>;
  using T = typename E::type;
  for (int64_t r = 0; r < rows; r++) {
    const T* gate = static_cast<const T*>(inRaw) + r * 2 * n;
    const T* up = gate + n;
    T* out = static_cast<T*>(outRaw) + r * n;
#pragma omp simd
    for (int64_t i = 0; i < n; i++) {
      float x = E::load(gate[i]);
      float act = A == Activation::Silu ? x * sigmoid(x) : 0.5f * x * (1.0f + tanhApprox(kGeluC * (x + kGeluA * x * x * x)));
      out[i] = E::store(act * E::load(up[i]));
    }
  }
}

template <Storage S, Activation A>
ATTUNE_INLINE void gatedBackwardRows(const void* inRaw, const void* gRaw, void* gradRaw, int64_t rows, int64_t n) {
  using E = Element<S>;
  using T = typename E::type;
  for (int64_t r = 0; r < rows; r++) {
    const T* gate = static_cast<const T*>(inRaw) + r * 2 * n;
    const T* up = gate + n;
    const T* g = static_cast<const T*>(gRaw) + r * n;
    T* gradGate = static_cast<T*>(gradRaw) + r * 2 * n;
    T* gradUp = gradGate + n;
#pragma omp simd
    for (int64_t i = 0; i < n; i++) {
      float x = E::load(gate[i]), u = E::load(up[i]), gi = E::load(g[i]);
      float act, slope;
      if (A == Activation::Silu) {
        float sg = sigmoid(x);
        act = x * sg;
        slope = sg * (1.0f + x * (1.0f - sg));
      } else {
        float t = tanhApprox(kGeluC * (x + kGeluA * x * x * x));
        act = 0.5f * x * (1.0f + t);
        slope = 0.5f * (1.0f + t) + 0.5f * x * (1.0f - t * t) * kGeluC * (1.0f + 3.0f * kGeluA * x * x);
      }
      gradUp[i] = E::store(gi * act);
      gradGate[i] = E::store(gi * u * slope);
    }
  }
}

template <Storage S>
ATTUNE_INLINE void softmaxCrossEntropyRows(void* logitsRaw, const int64_t* targets, int64_t ignoreIndex, float softcap, bool withGrad,
                                           float* loss, uint8_t* correct, int64_t rows, int64_t vocab, float* scratch) {
  using E = Element<S>;
  using T = typename E::type;
  for (int64_t r = 0; r < rows; r++) {
    T* z = static_cast<T*>(logitsRaw) + r * vocab;
    int64_t target = targets[r];
    if (target == ignoreIndex || target < 0 || target >= vocab) {
      // An out-of-range target is refused before the kernel runs (fused.cc); this only keeps reads in bounds.
      loss[r] = 0;
      correct[r] = 0;
      if (withGrad) std::fill(z, z + vocab, E::store(0.0f));
      continue;
    }
    float largest = -INFINITY;
    if (softcap > 0) {
#pragma omp simd
      for (int64_t i = 0; i < vocab; i++) scratch[i] = softcap * tanhApprox(E::load(z[i]) / softcap);
    } else {
#pragma omp simd
      for (int64_t i = 0; i < vocab; i++) scratch[i] = E::load(z[i]);
    }
#pragma omp simd reduction(max : largest)
    for (int64_t i = 0; i < vocab; i++) largest = larger(largest, scratch[i]);
    float picked = scratch[target];
    float sum = 0;
#pragma omp simd reduction(+ : sum)
    for (int64_t i = 0; i < vocab; i++) {
      scratch[i] = expApprox(scratch[i] - largest);
      sum += scratch[i];
    }
    loss[r] = largest + std::log(sum) - picked;
    correct[r] = picked >= largest;
    if (!withGrad) continue;
    float inverse = 1.0f / sum;
    if (softcap > 0) {
      // d l / d z = 1 − tanh², with tanh recomputed from z (still unchanged at i when it is overwritten).
#pragma omp simd
      for (int64_t i = 0; i < vocab; i++) {
        float t = tanhApprox(E::load(z[i]) / softcap);
        float p = scratch[i] * inverse - (i == target ? 1.0f : 0.0f);
        z[i] = E::store(p * (1.0f - t * t));
      }
    } else {
#pragma omp simd
      for (int64_t i = 0; i < vocab; i++) z[i] = E::store(scratch[i] * inverse);
      // The target's gradient, p − 1, from its float32 probability rather than the rounded one.
      z[target] = E::store(scratch[target] * inverse - 1.0f);
    }
  }
}

// One row's softmax over its first `seen` keys; with Masked, only where mask[j] is 1. The mask enters as
// arithmetic (a hidden key's score drops by 1e30 and its exp is multiplied by 0) so the loops vectorise.
// Returns false when the row sees no key.
constexpr int64_t kAttentionBuffer = 1024;

template <Storage S, bool Masked>
ATTUNE_INLINE bool attentionSoftmaxRow(typename Element<S>::type* s, const uint8_t* mask, int64_t seen, float scale, float* buffer) {
  using E = Element<S>;
  float largest = -INFINITY;
#pragma omp simd reduction(max : largest)
  for (int64_t j = 0; j < seen; j++) {
    float hidden = Masked ? 1.0f - float(mask[j]) : 0.0f;
    largest = larger(largest, E::load(s[j]) * scale - hidden * 1e30f);
  }
  if (largest < -1e29f) return false;
  // Rows that fit keep their exponentials in the buffer; longer ones compute them twice.
  float sum = 0;
  if (seen <= kAttentionBuffer) {
#pragma omp simd reduction(+ : sum)
    for (int64_t j = 0; j < seen; j++) {
      float e = expApprox(E::load(s[j]) * scale - largest) * (Masked ? float(mask[j]) : 1.0f);
      buffer[j] = e;
      sum += e;
    }
    float inverse = 1.0f / sum;
#pragma omp simd
    for (int64_t j = 0; j < seen; j++) s[j] = E::store(buffer[j] * inverse);
    return true;
  }
#pragma omp simd reduction(+ : sum)
  for (int64_t j = 0; j < seen; j++) sum += expApprox(E::load(s[j]) * scale - largest) * (Masked ? float(mask[j]) : 1.0f);
  float inverse = 1.0f / sum;
#pragma omp simd
  for (int64_t j = 0; j < seen; j++) {
    float e = expApprox(E::load(s[j]) * scale - largest) * (Masked ? float(mask[j]) : 1.0f);
    s[j] = E::store(e * inverse);
  }
  return true;
}

template <Storage S>
ATTUNE_INLINE void attentionSoftmaxRows(void* scoresRaw, int64_t rows, int64_t length, float scale, const uint8_t* allowed, int64_t causalPast) {
  using E = Element<S>;
  using T = typename E::type;
  float buffer[kAttentionBuffer];
  for (int64_t r = 0; r < rows; r++) {
    T* s = static_cast<T*>(scoresRaw) + r * length;
    int64_t seen = causalPast >= 0 ? std::min<int64_t>(length, causalPast + r + 1) : length;  // keys past this are hidden
    bool any = allowed ? attentionSoftmaxRow<S, true>(s, allowed + r * length, seen, scale, buffer)
                       : attentionSoftmaxRow<S, false>(s, nullptr, seen, scale, buffer);
    std::fill(s + (any ? seen : 0), s + length, E::store(0.0f));
  }
}

template <Storage S>
ATTUNE_INLINE void attentionSoftmaxBackwardRows(const void* probsRaw, void* gradRaw, int64_t rows, int64_t length, float scale) {
  using E = Element<S>;
  using T = typename E::type;
  for (int64_t r = 0; r < rows; r++) {
    const T* p = static_cast<const T*>(probsRaw) + r * length;
    T* g = static_cast<T*>(gradRaw) + r * length;
    float dot = 0;
#pragma omp simd reduction(+ : dot)
    for (int64_t j = 0; j < length; j++) dot += E::load(p[j]) * E::load(g[j]);
#pragma omp simd
    for (int64_t j = 0; j < length; j++) g[j] = E::store(scale * E::load(p[j]) * (E::load(g[j]) - dot));
  }
}

template <Storage S>
ATTUNE_INLINE void rotaryRows(const void* xRaw, int64_t xRowStride, const void* cosRaw, const void* sinRaw, void* yRaw, int64_t rows, int64_t d,
                              bool backward) {
  using E = Element<S>;
  using T = typename E::type;
  int64_t half = d / 2;
  for (int64_t r = 0; r < rows; r++) {
    const T* x = static_cast<const T*>(xRaw) + r * xRowStride;
    const T* c = static_cast<const T*>(cosRaw) + r * d;
    const T* s = static_cast<const T*>(sinRaw) + r * d;
    T* y = static_cast<T*>(yRaw) + r * d;
    if (backward) {
#pragma omp simd
      for (int64_t i = 0; i < half; i++) {
        y[i] = E::store(E::load(x[i]) * E::load(c[i]) + E::load(x[i + half]) * E::load(s[i + half]));
        y[i + half] = E::store(E::load(x[i + half]) * E::load(c[i + half]) - E::load(x[i]) * E::load(s[i]));
      }
    } else {
#pragma omp simd
      for (int64_t i = 0; i < half; i++) {
        y[i] = E::store(E::load(x[i]) * E::load(c[i]) - E::load(x[i + half]) * E::load(s[i]));
        y[i + half] = E::store(E::load(x[i + half]) * E::load(c[i + half]) + E::load(x[i]) * E::load(s[i + half]));
      }
    }
  }
}

ATTUNE_INLINE void adamwValues(float* p, const float* g, float* m, float* v, int64_t n, float lr, float beta1, float beta2, float eps,
                                float weightDecay, float biasCorrection1, float biasCorrection2Sqrt) {
  float decay = 1.0f - lr * weightDecay, weight = 1.0f - beta1, step = -lr / biasCorrection1;
#pragma omp simd
  for (int64_t i = 0; i < n; i++) {
    float gi = g[i];
    // ATen's lerp: from the nearer end, so that weights near 1 stay exact.
    float mi = weight < 0.5f ? m[i] + weight * (gi - m[i]) : gi - (gi - m[i]) * (1.0f - weight);
    float vi = v[i] * beta2 + (1.0f - beta2) * gi * gi;
    m[i] = mi;
    v[i] = vi;
    p[i] = p[i] * decay + step * (mi / (std::sqrt(vi) / biasCorrection2Sqrt + eps));
  }
}

#define ATTUNE_DEFINE_KERNELS(target)                                                                                          \
  target void rmsNormForwardVersioned(Storage storage, const void* x, const float* scale, void* y, float* rstd, int64_t rows, int64_t d,  \
                             float eps, bool roundBeforeScale) {                                                                \
    if (storage == Storage::BFloat16) rmsNormForwardRows<Storage::BFloat16>(x, scale, y, rstd, rows, d, eps, roundBeforeScale);  \
    else rmsNormForwardRows<Storage::Float32>(x, scale, y, rstd, rows, d, eps, roundBeforeScale);                                 \
  }                                                                                                                             \
  target void rmsNormBackwardVersioned(Storage storage, const void* x, const float* scale, const float* rstd, const void* gradY,          \
                              void* gradX, int64_t rows, int64_t d) {                                                          \
    if (storage == Storage::BFloat16) rmsNormBackwardRows<Storage::BFloat16>(x, scale, rstd, gradY, gradX, rows, d);            \
    else rmsNormBackwardRows<Storage::Float32>(x, scale, rstd, gradY, gradX, rows, d);                                          \
  }                                                                                                                             \
  target void gatedActivationForwardVersioned(Storage storage, Activation activation, const void* gateUp, void* out, int64_t rows,       \
                                     int64_t n) {                                                                               \
    bool silu = activation == Activation::Silu;                                                                                 \
    if (storage == Storage::BFloat16) {                                                                                         \
      if (silu) gatedForwardRows<Storage::BFloat16, Activation::Silu>(gateUp, out, rows, n);                                    \
      else gatedForwardRows<Storage::BFloat16, Activation::GeluTanh>(gateUp, out, rows, n);                                     \
    } else {                                                                                                                    \
      if (silu) gatedForwardRows<Storage::Float32, Activation::Silu>(gateUp, out, rows, n);                                     \
      else gatedForwardRows<Storage::Float32, Activation::GeluTanh>(gateUp, out, rows, n);                                      \
    }                                                                                                                           \
  }                                                                                                                             \
  target void gatedActivationBackwardVersioned(Storage storage, Activation activation, const void* gateUp, const void* gradOut,          \
                                      void* gradGateUp, int64_t rows, int64_t n) {                                              \
    bool silu = activation == Activation::Silu;                                                                                 \
    if (storage == Storage::BFloat16) {                                                                                         \
      if (silu) gatedBackwardRows<Storage::BFloat16, Activation::Silu>(gateUp, gradOut, gradGateUp, rows, n);                   \
      else gatedBackwardRows<Storage::BFloat16, Activation::GeluTanh>(gateUp, gradOut, gradGateUp, rows, n);                    \
    } else {                                                                                                                    \
      if (silu) gatedBackwardRows<Storage::Float32, Activation::Silu>(gateUp, gradOut, gradGateUp, rows, n);                    \
      else gatedBackwardRows<Storage::Float32, Activation::GeluTanh>(gateUp, gradOut, gradGateUp, rows, n);                     \
    }                                                                                                                           \
  }                                                                                                                             \
  target void softmaxCrossEntropyVersioned(Storage storage, void* logits, const int64_t* targets, int64_t ignoreIndex, float softcap,    \
                                  bool withGrad, float* loss, uint8_t* correct, int64_t rows, int64_t vocab, float* scratch) {  \
    if (storage == Storage::BFloat16)                                                                                           \
      softmaxCrossEntropyRows<Storage::BFloat16>(logits, targets, ignoreIndex, softcap, withGrad, loss, correct, rows, vocab,   \
                                                 scratch);                                                                      \
    else                                                                                                                        \
      softmaxCrossEntropyRows<Storage::Float32>(logits, targets, ignoreIndex, softcap, withGrad, loss, correct, rows, vocab,    \
                                                scratch);                                                                       \
  }                                                                                                                             \
  target void attentionSoftmaxVersioned(Storage storage, void* scores, int64_t rows, int64_t length, float scale,              \
                                        const uint8_t* allowed, int64_t causalPast) {                                          \
    if (storage == Storage::BFloat16)                                                                                           \
      attentionSoftmaxRows<Storage::BFloat16>(scores, rows, length, scale, allowed, causalPast);                                \
    else attentionSoftmaxRows<Storage::Float32>(scores, rows, length, scale, allowed, causalPast);                              \
  }                                                                                                                             \
  target void rotaryVersioned(Storage storage, const void* x, int64_t xRowStride, const void* cos, const void* sin, void* y,      \
                              int64_t rows, int64_t d, bool backward) {                                                        \
    if (storage == Storage::BFloat16) rotaryRows<Storage::BFloat16>(x, xRowStride, cos, sin, y, rows, d, backward);             \
    else rotaryRows<Storage::Float32>(x, xRowStride, cos, sin, y, rows, d, backward);                                          \
  }                                                                                                                             \
  target void adamwVersioned(float* p, const float* g, float* m, float* v, int64_t n, float lr, float beta1, float beta2,        \
                             float eps, float weightDecay, float biasCorrection1, float biasCorrection2Sqrt) {                  \
    adamwValues(p, g, m, v, n, lr, beta1, beta2, eps, weightDecay, biasCorrection1, biasCorrection2Sqrt);                       \
  }                                                                                                                             \
  target void attentionSoftmaxBackwardVersioned(Storage storage, const void* probs, void* grad, int64_t rows, int64_t length,   \
                                                float scale) {                                                                 \
    if (storage == Storage::BFloat16) attentionSoftmaxBackwardRows<Storage::BFloat16>(probs, grad, rows, length, scale);        \
    else attentionSoftmaxBackwardRows<Storage::Float32>(probs, grad, rows, length, scale);                                      \
  }

ATTUNE_FOR_EACH_TARGET(ATTUNE_DEFINE_KERNELS)

}  // namespace

// GCC emits a multiversioned function's dispatcher only where it is called, so the exported entry points
// call the versions from here.
void rmsNormForward(Storage storage, const void* x, const float* scale, void* y, float* rstd, int64_t rows, int64_t d, float eps,
                    bool roundBeforeScale) {
  rmsNormForwardVersioned(storage, x, scale, y, rstd, rows, d, eps, roundBeforeScale);
}

void rmsNormBackward(Storage storage, const void* x, const float* scale, const float* rstd, const void* gradY, void* gradX, int64_t rows,
                     int64_t d) {
  rmsNormBackwardVersioned(storage, x, scale, rstd, gradY, gradX, rows, d);
}

void gatedActivationForward(Storage storage, Activation activation, const void* gateUp, void* out, int64_t rows, int64_t n) {
  gatedActivationForwardVersioned(storage, activation, gateUp, out, rows, n);
}

void gatedActivationBackward(Storage storage, Activation activation, const void* gateUp, const void* gradOut, void* gradGateUp, int64_t rows,
                             int64_t n) {
  gatedActivationBackwardVersioned(storage, activation, gateUp, gradOut, gradGateUp, rows, n);
}

void softmaxCrossEntropy(Storage storage, void* logits, const int64_t* targets, int64_t ignoreIndex, float softcap, bool withGrad, float* loss,
                         uint8_t* correct, int64_t rows, int64_t vocab, float* scratch) {
  softmaxCrossEntropyVersioned(storage, logits, targets, ignoreIndex, softcap, withGrad, loss, correct, rows, vocab, scratch);
}

void attentionSoftmax(Storage storage, void* scores, int64_t rows, int64_t length, float scale, const uint8_t* allowed, int64_t causalPast) {
  attentionSoftmaxVersioned(storage, scores, rows, length, scale, allowed, causalPast);
}

void attentionSoftmaxBackward(Storage storage, const void* probs, void* grad, int64_t rows, int64_t length, float scale) {
  attentionSoftmaxBackwardVersioned(storage, probs, grad, rows, length, scale);
}

void rotary(Storage storage, const void* x, int64_t xRowStride, const void* cos, const void* sin, void* y, int64_t rows, int64_t d,
            bool backward) {
  rotaryVersioned(storage, x, xRowStride, cos, sin, y, rows, d, backward);
}

void adamw(float* param, const float* grad, float* firstMoment, float* secondMoment, int64_t n, float learningRate, float beta1,
           float beta2, float eps, float weightDecay, float biasCorrection1, float biasCorrection2Sqrt) {
  adamwVersioned(param, grad, firstMoment, secondMoment, n, learningRate, beta1, beta2, eps, weightDecay, biasCorrection1,
                 biasCorrection2Sqrt);
}

}  // namespace attune::kernels
