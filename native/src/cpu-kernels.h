// Row kernels for the CPU that fuse what ATen runs as several passes over memory: a normalisation, a
// gated activation and a softmax cross-entropy. Each works on raw, contiguous rows of float32 or
// bfloat16 (Storage) and computes in float32; callers split rows across threads (fused.cc). They are
// plain loops, compiled once per instruction set and chosen at load time (cpu-kernels.cc), so one build
// runs on any x86-64 and uses AVX-512 or AVX2 where the CPU has them.
#pragma once

#include <cstdint>

namespace attune::kernels {

enum class Storage { Float32, BFloat16 };

// y = x · rstd · scale, rstd = 1 / sqrt(mean(x²) + eps), per row of d values; rstd is written per row.
// roundBeforeScale rounds x · rstd to the storage type before the scale multiplies it (Hugging Face's
// Llama/Qwen norm: weight * normed.to(dtype)); otherwise one rounding at the end (Gemma's).
void rmsNormForward(Storage storage, const void* x, const float* scale, void* y, float* rstd, int64_t rows, int64_t d,
                    float eps, bool roundBeforeScale);

// gradX = rstd · (g·scale − x̂ · mean(g·scale · x̂)), x̂ = x · rstd.
void rmsNormBackward(Storage storage, const void* x, const float* scale, const float* rstd, const void* gradY, void* gradX,
                     int64_t rows, int64_t d);

enum class Activation { Silu, GeluTanh };

// Each row of gateUp holds n gate values then n up values: out = act(gate) · up.
void gatedActivationForward(Storage storage, Activation activation, const void* gateUp, void* out, int64_t rows, int64_t n);

// gradGateUp's row: [g · up · act'(gate), g · act(gate)].
void gatedActivationBackward(Storage storage, Activation activation, const void* gateUp, const void* gradOut, void* gradGateUp,
                             int64_t rows, int64_t n);

// Softmax cross-entropy of logit rows (of vocab values) against targets, with an optional softcap
// (l = cap · tanh(z / cap), 0 = none). Per row: loss[r] = logsumexp(l) − l[target] and correct[r] = 1
// when l[target] is the row's largest; both 0 for a row whose target is ignoreIndex. With withGrad the
// row is overwritten with d loss / d z (softmax minus one-hot, times the softcap's derivative; zeros
// for an ignored row). scratch holds vocab floats for the calling thread.
void softmaxCrossEntropy(Storage storage, void* logits, const int64_t* targets, int64_t ignoreIndex, float softcap, bool withGrad,
                         float* loss, uint8_t* correct, int64_t rows, int64_t vocab, float* scratch);

// Softmax of attention scores in place, over rows of length keys: p = softmax(scale · s) over the keys a
// row may see, 0 elsewhere. allowed ([rows, length], nonzero = may see) limits them when given; so does
// causalPast ≥ 0 (row t sees keys j ≤ causalPast + t). A row that sees no key is all zeros.
void attentionSoftmax(Storage storage, void* scores, int64_t rows, int64_t length, float scale, const uint8_t* allowed, int64_t causalPast);

// The scores' gradient from the probabilities and theirs, in place: g ← scale · p · (g − Σ p·g), per row.
void attentionSoftmaxBackward(Storage storage, const void* probs, void* grad, int64_t rows, int64_t length, float scale);

// Rotary position embedding over rows of d values (d even), with rotate(x) = [−x[d/2:], x[:d/2]]:
// forward y = x·cos + rotate(x)·sin; backward (the same call with backward) gx = g·cos + rotateᵀ(g·sin),
// rotateᵀ(u) = [u[d/2:], −u[:d/2]]. Row r of x starts r · xRowStride elements in; cos, sin and y are
// contiguous rows.
void rotary(Storage storage, const void* x, int64_t xRowStride, const void* cos, const void* sin, void* y, int64_t rows, int64_t d,
            bool backward);

// One AdamW update of n float32 values, as torch.optim.AdamW's single-tensor path computes it:
// p ← p·(1 − lr·weightDecay); m ← lerp(m, g, 1 − β₁); v ← β₂·v + (1 − β₂)·g²;
// p ← p − (lr / biasCorrection1) · m / (√v / biasCorrection2Sqrt + eps).
void adamw(float* param, const float* grad, float* firstMoment, float* secondMoment, int64_t n, float learningRate, float beta1,
           float beta2, float eps, float weightDecay, float biasCorrection1, float biasCorrection2Sqrt);

}  // namespace attune::kernels
