// Fused pieces with hand-written backward passes, composed from ATen ops: each saves less for backward
// and runs fewer kernels than the same math recorded op by op, and computes only the gradients asked
// for (never those of frozen weights). Generic building blocks (a normalisation, a low-rank-adapted
// linear map, a gated activation, a vocabulary-sized loss); no model logic lives here.
#include <torch/csrc/autograd/custom_function.h>
#include <torch/version.h>

#include "handle.h"

namespace attune {

using torch::autograd::AutogradContext;
using torch::autograd::Function;
using torch::autograd::variable_list;

namespace {

// RMSNorm computed in float32 whatever the input dtype, as Hugging Face does:
//   y = weight * to(dtype)(x / rms(x))             (offset 0: Llama, Qwen)
//   y = to(dtype)((x / rms(x)) * (offset + weight)) (offset 1: Gemma)
struct RmsNorm : Function<RmsNorm> {
  static at::Tensor forward(AutogradContext* ctx, const at::Tensor& x, const at::Tensor& weight, double eps, double offset) {
    auto x32 = x.to(at::kFloat);
    auto rstd = x32.square().mean(-1, true).add_(eps).rsqrt_();
    auto normed = x32.mul(rstd);
    at::Tensor y = offset != 0 ? normed.mul_(weight.to(at::kFloat).add(offset)).to(x.scalar_type())
                               : weight.mul(normed.to(x.scalar_type()));
    ctx->save_for_backward({x, weight, rstd});
    ctx->saved_data["offset"] = offset;
    ctx->saved_data["weightNeedsGrad"] = weight.requires_grad();
    return y;
  }

  static variable_list backward(AutogradContext* ctx, variable_list grads) {
    auto saved = ctx->get_saved_variables();
    const auto &x = saved[0], &weight = saved[1], &rstd = saved[2];
    double offset = ctx->saved_data["offset"].toDouble();
    auto scale = weight.to(at::kFloat);
    if (offset != 0) scale = scale.add(offset);
    // Out of place throughout: to(kFloat) returns its input itself when that is already float32.
    auto g = grads[0].to(at::kFloat);
    auto xhat = at::mul(x.to(at::kFloat), rstd);
    at::Tensor gradWeight;
    if (ctx->saved_data["weightNeedsGrad"].toBool()) {
      auto dims = std::vector<int64_t>();
      for (int64_t d = 0; d < x.dim() - 1; d++) dims.push_back(d);
      gradWeight = g.mul(xhat).sum(dims).to(weight.scalar_type());
    }
    auto gs = at::mul(g, scale);
    auto gradX = gs.sub(xhat.mul_(gs.mul(xhat).mean(-1, true))).mul_(rstd).to(x.scalar_type());
    return {gradX, gradWeight, at::Tensor(), at::Tensor()};
  }
};

// y = x Wᵀ + bias + scale · (z Aᵀ) Bᵀ, where z is x itself or (for LoRA dropout) a dropped-out copy of x.
// Several adapters may share one product (q/k/v fused): A stacks their [rank, in] matrices and B is their
// list of [out_i, rank_i] matrices, each adding into its own block of output columns, which costs half
// the work of one block-diagonal B. The backward's products are the ones LoRA needs: gx = g W + scale
// (g B) A, gA = scale (g B)ᵀ z, gB = scale gᵀ (z Aᵀ); frozen W and bias get none. Which inputs need
// gradients is read from requires_grad at forward time (an absent optional input is no autograd input,
// so the node's own input numbering would shift with it).
struct LoraLinear : Function<LoraLinear> {
  static at::Tensor forward(AutogradContext* ctx, const at::Tensor& x, const at::Tensor& weight,
                            const c10::optional<at::Tensor>& bias, const at::Tensor& a, at::TensorList bs, double scale,
                            const at::Tensor& z, bool zIsX) {
    if (bias && bias->defined() && bias->requires_grad()) throw std::invalid_argument("loraLinear: the bias must be frozen");
    auto za = at::linear(z, a).reshape({-1, a.size(0)});
    auto y = at::linear(x, weight, bias);
    auto y2 = y.view({-1, y.size(-1)});
    int64_t column = 0, rank = 0;
    for (const auto& b : bs) {
      y2.narrow(1, column, b.size(0)).addmm_(za.narrow(1, rank, b.size(1)), b.t(), 1, scale);
      column += b.size(0);
      rank += b.size(1);
    }
    if (column != y.size(-1) || rank != a.size(0)) throw std::invalid_argument("loraLinear: B's blocks must cover the output and A's rank");
    std::vector<at::Tensor> saved{x, weight, a, za, z};
    saved.insert(saved.end(), bs.begin(), bs.end());
    ctx->save_for_backward(saved);
    ctx->saved_data["scale"] = scale;
    ctx->saved_data["zIsX"] = zIsX;
    c10::List<bool> needs({x.requires_grad(), weight.requires_grad(), a.requires_grad(), !zIsX && z.requires_grad()});
    for (const auto& b : bs) needs.push_back(b.requires_grad());
    ctx->saved_data["needs"] = needs;
    return y;
  }

  static variable_list backward(AutogradContext* ctx, variable_list grads) {
    auto saved = ctx->get_saved_variables();
    const auto &x = saved[0], &weight = saved[1], &a = saved[2], &za = saved[3], &z = saved[4];
    std::vector<at::Tensor> bs(saved.begin() + 5, saved.end());
    double scale = ctx->saved_data["scale"].toDouble();
    bool zIsX = ctx->saved_data["zIsX"].toBool();
    auto needs = ctx->saved_data["needs"].toBoolList();
    auto g = grads[0].reshape({-1, grads[0].size(-1)});
    auto gb = at::empty({g.size(0), a.size(0)}, g.options());  // scale · g B, block by block: [N, rank]
    std::vector<at::Tensor> gradBs(bs.size());
    int64_t column = 0, rank = 0;
    for (size_t i = 0; i < bs.size(); i++) {
      auto gi = g.narrow(1, column, bs[i].size(0));
      auto dst = gb.narrow(1, rank, bs[i].size(1));
      at::mm_out(dst, gi, bs[i]);
      if (needs[4 + i]) gradBs[i] = at::mm(gi.t(), za.narrow(1, rank, bs[i].size(1))).mul_(scale);
      column += bs[i].size(0);
      rank += bs[i].size(1);
    }
    gb.mul_(scale);
    at::Tensor gradX, gradWeight, gradA, gradZ;
    if (needs[0]) {
      gradX = at::mm(g, weight);
      if (zIsX) gradX.addmm_(gb, a);
      gradX = gradX.view(x.sizes());
    }
    if (needs[1]) gradWeight = at::mm(g.t(), x.reshape({-1, x.size(-1)}));
    if (needs[2]) gradA = at::mm(gb.t(), z.reshape({-1, z.size(-1)}));
    if (needs[3]) gradZ = at::mm(gb, a).view(z.sizes());
    variable_list out{gradX, gradWeight, at::Tensor(), gradA};
    out.insert(out.end(), gradBs.begin(), gradBs.end());
    out.insert(out.end(), {at::Tensor(), gradZ, at::Tensor()});
    return out;
  }
};

// Gated activation over a fused [.., 2n] input (gate half, then up half): act(gate) * up, with act SiLU
// (SwiGLU) or tanh-approximated GELU (GeGLU). Saves only the input.
struct GatedActivation : Function<GatedActivation> {
  static at::Tensor activate(const at::Tensor& gate, bool gelu) { return gelu ? at::gelu(gate, "tanh") : at::silu(gate); }

  static at::Tensor forward(AutogradContext* ctx, const at::Tensor& gateUp, bool gelu) {
    auto n = gateUp.size(-1) / 2;
    ctx->save_for_backward({gateUp});
    ctx->saved_data["gelu"] = gelu;
    return activate(gateUp.narrow(-1, 0, n), gelu).mul_(gateUp.narrow(-1, n, n));
  }

  static variable_list backward(AutogradContext* ctx, variable_list grads) {
    auto gateUp = ctx->get_saved_variables()[0];
    bool gelu = ctx->saved_data["gelu"].toBool();
    auto n = gateUp.size(-1) / 2;
    auto gate = gateUp.narrow(-1, 0, n), up = gateUp.narrow(-1, n, n);
    const auto& g = grads[0];
    auto out = at::empty_like(gateUp);
    auto gradGate = out.narrow(-1, 0, n), gradUp = out.narrow(-1, n, n);
    at::mul_out(gradUp, g, activate(gate, gelu));
    auto gUp = g.mul(up);
    if (gelu) at::gelu_backward_out(gradGate, gUp, gate, "tanh");
    else at::silu_backward_out(gradGate, gUp, gate);
    return {out, at::Tensor()};
  }
};

// Cross-entropy of softcap(h Wᵀ) against targets, summed over rows whose target is not ignoreIndex, in
// chunks of rows so that only one chunk's logits exist at a time. Logits are computed in h's dtype and
// their log-softmax in float32; when h needs a gradient it is computed here, chunk by chunk (softmax
// minus one-hot, times W), and the backward only scales it. Returns [loss sum, number of rows whose
// argmax is the target].
struct LinearCrossEntropy : Function<LinearCrossEntropy> {
  static variable_list forward(AutogradContext* ctx, const at::Tensor& hidden, const at::Tensor& weight, const at::Tensor& targets,
                               int64_t ignoreIndex, int64_t chunkRows, double softcap, bool withGrad) {
    auto rows = hidden.size(0);
    auto loss = at::zeros({}, hidden.options().dtype(at::kFloat));
    auto correct = at::zeros({}, targets.options());
    at::Tensor gradHidden = withGrad ? at::empty_like(hidden) : at::Tensor();
    for (int64_t start = 0; start < rows; start += chunkRows) {
      auto n = std::min(chunkRows, rows - start);
      auto h = hidden.narrow(0, start, n);
      auto t = targets.narrow(0, start, n);
      auto logits = at::linear(h, weight);
      at::Tensor capped;  // tanh(logits / cap), kept for the softcap's derivative
      if (softcap > 0) {
        capped = at::tanh(at::div(logits.to(at::kFloat), softcap));
        logits = capped.mul(softcap);
      }
      auto logp = at::log_softmax(logits, -1, at::kFloat);
      auto valid = t.ne(ignoreIndex);
      auto safeTargets = t.masked_fill(valid.logical_not(), 0).unsqueeze(1);
      auto picked = logp.gather(1, safeTargets).squeeze(1);
      // The target is the prediction when its log-probability is the row's largest (a max is a faster pass than argmax).
      correct.add_(picked.ge(logp.amax(-1)).logical_and_(valid).sum());
      loss.sub_(picked.mul_(valid).sum());
      if (!withGrad) continue;
      auto p = logp.exp_();  // softmax, in place
      p.scatter_add_(1, safeTargets, valid.to(at::kFloat).neg().unsqueeze(1));
      p.mul_(valid.unsqueeze(1));
      if (softcap > 0) p.mul_(capped.square_().neg_().add_(1));
      auto dst = gradHidden.narrow(0, start, n);
      at::mm_out(dst, p.to(hidden.scalar_type()), weight);
    }
    if (weight.requires_grad()) throw std::invalid_argument("linearCrossEntropy: the projection weight must be frozen");
    ctx->save_for_backward({gradHidden});
    ctx->mark_non_differentiable({correct});
    return {loss, correct};
  }

  static variable_list backward(AutogradContext* ctx, variable_list grads) {
    auto gradHidden = ctx->get_saved_variables()[0];
    if (!gradHidden.defined()) throw std::runtime_error("linearCrossEntropy: run with withGrad to differentiate it");
    auto scaled = gradHidden.mul(grads[0].to(gradHidden.scalar_type()));
    return {scaled, at::Tensor(), at::Tensor(), at::Tensor(), at::Tensor(), at::Tensor(), at::Tensor()};
  }
};

}  // namespace

// rmsNorm(x, weight, eps, offset)
static Napi::Value RmsNormOp(const Napi::CallbackInfo& info) {
  return wrap(info.Env(), RmsNorm::apply(unwrap(info[0]), unwrap(info[1]), toDouble(info[2]), toDouble(info[3])));
}

// loraLinear(x, weight, bias | null, a, bs[], scale, loraInput | null)
static Napi::Value LoraLinearOp(const Napi::CallbackInfo& info) {
  const auto& x = unwrap(info[0]);
  c10::optional<at::Tensor> bias;
  if (!absent(info[2])) bias = unwrap(info[2]);
  auto bs = tensorList(info[4]);
  bool zIsX = absent(info[6]);
  return wrap(info.Env(), LoraLinear::apply(x, unwrap(info[1]), bias, unwrap(info[3]), at::TensorList(bs), toDouble(info[5]),
                                           zIsX ? x : unwrap(info[6]), zIsX));
}

// gatedActivation(gateUp, 'silu' | 'gelu_tanh')
static Napi::Value GatedActivationOp(const Napi::CallbackInfo& info) {
  auto kind = info[1].As<Napi::String>().Utf8Value();
  if (kind != "silu" && kind != "gelu_tanh") throw std::invalid_argument("gatedActivation: unknown activation '" + kind + "'");
  return wrap(info.Env(), GatedActivation::apply(unwrap(info[0]), kind == "gelu_tanh"));
}

// linearCrossEntropy(hidden [N, d], weight [V, d], targets [N], ignoreIndex, chunkRows, softcap (0 = none), withGrad)
//   -> [loss sum, correct count]
static Napi::Value LinearCrossEntropyOp(const Napi::CallbackInfo& info) {
  auto chunkRows = toInt(info[4]);
  if (chunkRows < 1) throw std::invalid_argument("linearCrossEntropy: chunkRows must be positive");
  auto outputs = LinearCrossEntropy::apply(unwrap(info[0]), unwrap(info[1]), unwrap(info[2]), toInt(info[3]), chunkRows,
                                           toDouble(info[5]), toBool(info[6]));
  return wrapList(info.Env(), outputs);
}

// Whether this libtorch has scaled_dot_product_attention (2.0+), and whether it groups query heads over
// fewer key/value heads itself (enable_gqa, 2.5+).
static bool hasSdpa() { return TORCH_VERSION_MAJOR >= 2; }
static bool hasSdpaGqa() { return TORCH_VERSION_MAJOR > 2 || (TORCH_VERSION_MAJOR == 2 && TORCH_VERSION_MINOR >= 5); }

static Napi::Value SdpaSupport(const Napi::CallbackInfo& info) {
  auto out = Napi::Object::New(info.Env());
  out.Set("sdpa", Napi::Boolean::New(info.Env(), hasSdpa()));
  out.Set("groupedQueries", Napi::Boolean::New(info.Env(), hasSdpaGqa()));
  return out;
}

// scaledDotProductAttention(q [B, H, T, D], k, v [B, K, S, D], mask | null (bool, true = attend, or additive), causal, scale)
static Napi::Value Sdpa(const Napi::CallbackInfo& info) {
#if TORCH_VERSION_MAJOR >= 2
  const auto &q = unwrap(info[0]), &k = unwrap(info[1]), &v = unwrap(info[2]);
  c10::optional<at::Tensor> mask;
  if (!absent(info[3])) mask = unwrap(info[3]);
  bool causal = toBool(info[4]);
  double scale = toDouble(info[5]);
#if TORCH_VERSION_MAJOR > 2 || TORCH_VERSION_MINOR >= 5
  return wrap(info.Env(), at::scaled_dot_product_attention(q, k, v, mask, 0.0, causal, scale, q.size(1) != k.size(1)));
#elif TORCH_VERSION_MINOR >= 1
  return wrap(info.Env(), at::scaled_dot_product_attention(q, k, v, mask, 0.0, causal, scale));
#else
  return wrap(info.Env(), at::scaled_dot_product_attention(q.mul(scale * std::sqrt(static_cast<double>(q.size(-1)))), k, v, mask, 0.0, causal));
#endif
#else
  throw std::runtime_error("scaled_dot_product_attention needs libtorch 2.0 or later; this is " +
                           std::to_string(TORCH_VERSION_MAJOR) + "." + std::to_string(TORCH_VERSION_MINOR));
#endif
}

void registerFused(Napi::Env env, Napi::Object exports) {
  ATTUNE_EXPORT("rmsNorm", RmsNormOp);
  ATTUNE_EXPORT("loraLinear", LoraLinearOp);
  ATTUNE_EXPORT("gatedActivation", GatedActivationOp);
  ATTUNE_EXPORT("linearCrossEntropy", LinearCrossEntropyOp);
  ATTUNE_EXPORT("sdpaSupport", SdpaSupport);
  ATTUNE_EXPORT("scaledDotProductAttention", Sdpa);
}

}  // namespace attune
