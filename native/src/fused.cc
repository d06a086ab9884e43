// Fused pieces with hand-written backward passes: each saves less for backward and runs fewer passes over
// memory than the same math recorded op by op, and computes only the gradients asked for (never those
// of frozen weights). On the CPU, in float32 and bfloat16, the elementwise and row-wise parts run as
// single-pass row kernels (cpu-kernels.h), threaded with at::parallel_for; elsewhere (CUDA, float16)
// the same math is composed from ATen ops. Generic building blocks (a normalisation, a low-rank-adapted
// linear map, a gated activation, rotary embedding, attention, a vocabulary-sized loss); no model logic.
#include <ATen/Parallel.h>
#include <torch/csrc/autograd/custom_function.h>
#include <torch/version.h>

#include "packed-matmul.h"
#include "cpu-kernels.h"
#include "handle.h"

namespace attune {

using torch::autograd::AutogradContext;
using torch::autograd::Function;
using torch::autograd::variable_list;

namespace {

// Whether the CPU row kernels (cpu-kernels.h) can take these tensors; otherwise ATen's ops do the same math.
static bool rowKernelsTake(const at::Tensor& t) {
  return t.device().is_cpu() && (t.scalar_type() == at::kFloat || t.scalar_type() == at::kBFloat16);
}

static bool rowKernelsFit(std::initializer_list<at::Tensor> tensors) {
  for (const auto& t : tensors) {
    if (!rowKernelsTake(t) || !t.is_contiguous()) return false;
  }
  return true;
}

static kernels::Storage storageOf(const at::Tensor& t) {
  return t.scalar_type() == at::kBFloat16 ? kernels::Storage::BFloat16 : kernels::Storage::Float32;
}

// Splits rows across the intra-op threads, about 32K values per task so that small tensors stay on one.
template <typename Body>
static void forRows(int64_t rows, int64_t rowLength, const Body& body) {
  at::parallel_for(0, rows, std::max<int64_t>(1, 32768 / std::max<int64_t>(1, rowLength)), body);
}

// RMSNorm computed in float32 whatever the input dtype, as Hugging Face does:
//   y = weight * to(dtype)(x / rms(x))             (offset 0: Llama, Qwen)
//   y = to(dtype)((x / rms(x)) * (offset + weight)) (offset 1: Gemma)
struct RmsNorm : Function<RmsNorm> {
  static at::Tensor forward(AutogradContext* ctx, const at::Tensor& x, const at::Tensor& weight, double eps, double offset) {
    if (!weight.requires_grad() && weight.scalar_type() == x.scalar_type() && rowKernelsFit({x, weight})) {
      return forwardOnRows(ctx, x, weight, eps, offset);
    }
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

  // One pass per row over x (frozen weight): saves x, the float32 scale and each row's rstd.
  static at::Tensor forwardOnRows(AutogradContext* ctx, const at::Tensor& x, const at::Tensor& weight, double eps, double offset) {
    auto d = x.size(-1), rows = x.numel() / std::max<int64_t>(1, d);
    auto scale = weight.to(at::kFloat);
    if (offset != 0) scale = scale.add(offset);
    auto y = at::empty_like(x);
    auto rstd = at::empty({rows}, x.options().dtype(at::kFloat));
    auto storage = storageOf(x);
    auto elementSize = x.element_size();
    auto* xData = static_cast<const char*>(x.data_ptr());
    auto* yData = static_cast<char*>(y.data_ptr());
    auto *scaleData = scale.data_ptr<float>(), *rstdData = rstd.data_ptr<float>();
    forRows(rows, d, [&](int64_t begin, int64_t end) {
      kernels::rmsNormForward(storage, xData + begin * d * elementSize, scaleData, yData + begin * d * elementSize, rstdData + begin,
                              end - begin, d, static_cast<float>(eps), offset == 0);
    });
    ctx->save_for_backward({x, scale, rstd});
    ctx->saved_data["rows"] = true;
    return y;
  }

  static at::Tensor backwardOnRows(const at::Tensor& x, const at::Tensor& scale, const at::Tensor& rstd, const at::Tensor& grad) {
    auto g = grad.contiguous().to(x.scalar_type());
    auto d = x.size(-1), rows = rstd.numel();
    auto gradX = at::empty_like(x);
    auto storage = storageOf(x);
    auto elementSize = x.element_size();
    auto *xData = static_cast<const char*>(x.data_ptr()), *gData = static_cast<const char*>(g.data_ptr());
    auto* gxData = static_cast<char*>(gradX.data_ptr());
    auto *scaleData = scale.data_ptr<float>(), *rstdData = rstd.data_ptr<float>();
    forRows(rows, d, [&](int64_t begin, int64_t end) {
      auto at = begin * d * elementSize;
      kernels::rmsNormBackward(storage, xData + at, scaleData, rstdData + begin, gData + at, gxData + at, end - begin, d);
    });
    return gradX;
  }

  static variable_list backward(AutogradContext* ctx, variable_list grads) {
    auto saved = ctx->get_saved_variables();
    if (ctx->saved_data.count("rows")) return {backwardOnRows(saved[0], saved[1], saved[2], grads[0]), at::Tensor(), at::Tensor(), at::Tensor()};
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

// Whether tiles are a [k, n] matrix's, as packed::packRight lays them out.
static bool tilesOf(const at::Tensor& tiles, int64_t k, int64_t n) {
  return tiles.dim() == 3 && tiles.size(0) * 32 == n && tiles.size(1) * 32 == k;
}

// Which packed tiles (packed-matmul.h) an op has for its weight W [out, in]: of Wᵀ for x Wᵀ, of W for g W. A
// weight on the meta device has no values of its own: W's tiles are its only copy, and both products read
// them (x Wᵀ through multiplyPackedTransposed), however few the rows.
struct PackedTiles {
  bool forward = false, backward = false, sole = false;
};

// Refuses tiles that are not W's as it is now: a stale copy would give wrong results without a sign.
static PackedTiles checkPacked(const char* op, const at::Tensor& weight, const c10::optional<at::Tensor>& forwardTiles,
                               const c10::optional<at::Tensor>& backwardTiles, int64_t packedVersion) {
  PackedTiles packed{forwardTiles && forwardTiles->defined(), backwardTiles && backwardTiles->defined(), weight.is_meta()};
  if (packed.sole && (!packed.backward || packed.forward)) throw std::invalid_argument(std::string(op) + ": a weight without values needs its tiles, and only them");
  if ((packed.forward || packed.backward) && !packed.sole && weight._version() != packedVersion)
    throw std::invalid_argument(std::string(op) + ": the weight changed after its tiles were packed");
  if ((packed.forward && !tilesOf(*forwardTiles, weight.size(1), weight.size(0))) || (packed.backward && !tilesOf(*backwardTiles, weight.size(0), weight.size(1))))
    throw std::invalid_argument(std::string(op) + ": the packed tiles are not this weight's");
  return packed;
}

// y = x Wᵀ + bias + scale · (z Aᵀ) Bᵀ, where z is x itself or (for LoRA dropout) a dropped-out copy of x.
// Several adapters may share one product (q/k/v fused): A stacks their [rank, in] matrices and B is their
// list of [out_i, rank_i] matrices, each adding into its own block of output columns, which costs half
// the work of one block-diagonal B. The backward's products are the ones LoRA needs: gx = g W + scale
// (g B) A, gA = scale (g B)ᵀ z, gB = scale gᵀ (z Aᵀ); frozen W and bias get none. Which inputs need
// gradients is read from requires_grad at forward time (an absent optional input is no autograd input,
// so the node's own input numbering would shift with it). With packed tiles (packed-matmul.h) of Wᵀ and of W,
// packed while W's version counter read packedVersion, x Wᵀ and g W read them instead of W; with W's
// tiles alone (W on the meta device), both read those.
struct LoraLinear : Function<LoraLinear> {
  static at::Tensor forward(AutogradContext* ctx, const at::Tensor& x, const at::Tensor& weight,
                            const c10::optional<at::Tensor>& bias, const at::Tensor& a, at::TensorList bs, double scale,
                            const at::Tensor& z, bool zIsX, const c10::optional<at::Tensor>& forwardTiles,
                            const c10::optional<at::Tensor>& backwardTiles, int64_t packedVersion) {
    if (bias && bias->defined() && bias->requires_grad()) throw std::invalid_argument("loraLinear: the bias must be frozen");
    const auto packed = checkPacked("loraLinear", weight, forwardTiles, backwardTiles, packedVersion);
    if (packed.backward) ctx->saved_data["packed"] = *backwardTiles;
    ctx->saved_data["sole"] = packed.sole;
    int64_t columns = 0, ranks = 0;
    for (const auto& b : bs) columns += b.size(0), ranks += b.size(1);
    if (columns != weight.size(0) || ranks != a.size(0)) throw std::invalid_argument("loraLinear: B's blocks must cover the output and A's rank");
    auto za = at::linear(z, a).reshape({-1, a.size(0)});
    auto x2 = x.reshape({-1, x.size(-1)});
    at::Tensor y;
    if (packed.sole || (packed.forward && packed::takes(x2, *forwardTiles))) {
      // The adapters' term joins the product's float32 sums: scale · za Bᵀ with Bᵀ block-diagonal [rank, out].
      auto bt = at::zeros({a.size(0), weight.size(0)}, a.options().dtype(at::kFloat));
      int64_t column = 0, rank = 0;
      for (const auto& b : bs) {
        bt.narrow(0, rank, b.size(1)).narrow(1, column, b.size(0)).copy_(b.t()).mul_(scale);
        column += b.size(0);
        rank += b.size(1);
      }
      auto sizes = x.sizes().vec();
      sizes.back() = weight.size(0);
      y = (packed.sole ? packed::multiplyPackedTransposed(x2, *backwardTiles, za, bt) : packed::multiplyPacked(x2, *forwardTiles, za, bt)).view(sizes);
      if (bias && bias->defined()) y.add_(*bias);
    } else {
      y = at::linear(x, weight, bias);
      auto y2 = y.view({-1, y.size(-1)});
      int64_t column = 0, rank = 0;
      for (const auto& b : bs) {
        y2.narrow(1, column, b.size(0)).addmm_(za.narrow(1, rank, b.size(1)), b.t(), 1, scale);
        column += b.size(0);
        rank += b.size(1);
      }
    }
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
      auto packed = ctx->saved_data.count("packed") ? ctx->saved_data["packed"].toTensor() : at::Tensor();
      if (packed.defined() && (ctx->saved_data["sole"].toBool() || packed::takes(g, packed))) {
        gradX = zIsX ? packed::multiplyPacked(g, packed, gb, a) : packed::multiplyPacked(g, packed);  // (g B) A joins the sums
      } else {
        gradX = at::mm(g, weight);
        if (zIsX) gradX.addmm_(gb, a);
      }
      gradX = gradX.view(x.sizes());
    }
    if (needs[1]) gradWeight = at::mm(g.t(), x.reshape({-1, x.size(-1)}));
    if (needs[2]) gradA = at::mm(gb.t(), z.reshape({-1, z.size(-1)}));
    if (needs[3]) gradZ = at::mm(gb, a).view(z.sizes());
    variable_list out{gradX, gradWeight, at::Tensor(), gradA};
    out.insert(out.end(), gradBs.begin(), gradBs.end());
    out.insert(out.end(), {at::Tensor(), gradZ, at::Tensor(), at::Tensor(), at::Tensor(), at::Tensor()});
    return out;
  }
};

// Gated activation over a fused [.., 2n] input (gate half, then up half): act(gate) * up, with act SiLU
// (SwiGLU) or tanh-approximated GELU (GeGLU). Saves only the input.
struct GatedActivation : Function<GatedActivation> {
  static at::Tensor activate(const at::Tensor& gate, bool gelu) { return gelu ? at::gelu(gate, "tanh") : at::silu(gate); }

  static kernels::Activation kind(bool gelu) { return gelu ? kernels::Activation::GeluTanh : kernels::Activation::Silu; }

  static at::Tensor forward(AutogradContext* ctx, const at::Tensor& gateUp, bool gelu) {
    auto n = gateUp.size(-1) / 2;
    ctx->save_for_backward({gateUp});
    ctx->saved_data["gelu"] = gelu;
    if (rowKernelsFit({gateUp})) {
      auto sizes = gateUp.sizes().vec();
      sizes.back() = n;
      auto out = at::empty(sizes, gateUp.options());
      auto rows = out.numel() / std::max<int64_t>(1, n), elementSize = gateUp.element_size();
      auto* in = static_cast<const char*>(gateUp.data_ptr());
      auto* dst = static_cast<char*>(out.data_ptr());
      forRows(rows, 2 * n, [&](int64_t begin, int64_t end) {
        kernels::gatedActivationForward(storageOf(gateUp), kind(gelu), in + begin * 2 * n * elementSize, dst + begin * n * elementSize, end - begin, n);
      });
      return out;
    }
    return activate(gateUp.narrow(-1, 0, n), gelu).mul_(gateUp.narrow(-1, n, n));
  }

  static variable_list backward(AutogradContext* ctx, variable_list grads) {
    auto gateUp = ctx->get_saved_variables()[0];
    bool gelu = ctx->saved_data["gelu"].toBool();
    auto n = gateUp.size(-1) / 2;
    auto out = at::empty_like(gateUp);
    if (rowKernelsFit({gateUp})) {
      auto g = grads[0].contiguous().to(gateUp.scalar_type());
      auto rows = g.numel() / std::max<int64_t>(1, n), elementSize = gateUp.element_size();
      auto* in = static_cast<const char*>(gateUp.data_ptr());
      auto* gData = static_cast<const char*>(g.data_ptr());
      auto* dst = static_cast<char*>(out.data_ptr());
      forRows(rows, 2 * n, [&](int64_t begin, int64_t end) {
        kernels::gatedActivationBackward(storageOf(gateUp), kind(gelu), in + begin * 2 * n * elementSize, gData + begin * n * elementSize,
                                         dst + begin * 2 * n * elementSize, end - begin, n);
      });
      return {out, at::Tensor()};
    }
    auto gate = gateUp.narrow(-1, 0, n), up = gateUp.narrow(-1, n, n);
    const auto& g = grads[0];
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
  // h Wᵀ over a whole vocabulary, a block of columns at a time: on the CPU oneDNN runs [N, d] × [d, 128K] at
  // about 1.45 TFLOPS and the same in blocks of 16K columns at 2.1 (bfloat16, measured on a Xeon with AMX).
  static at::Tensor vocabularyLogits(const at::Tensor& h, const at::Tensor& weight) {
    constexpr int64_t kColumns = 16384;
    auto vocab = weight.size(0);
    auto logits = at::empty({h.size(0), vocab}, h.options());
    for (int64_t start = 0; start < vocab; start += kColumns) {
      auto block = logits.narrow(1, start, std::min(kColumns, vocab - start));
      at::mm_out(block, h, weight.narrow(0, start, block.size(1)).t());
    }
    return logits;
  }

  // The loss, accuracy and (withGrad) the logits' gradient in place, one pass per row (cpu-kernels.h).
  static void crossEntropyOnRows(const at::Tensor& logits, const at::Tensor& targets, int64_t ignoreIndex, double softcap, bool withGrad,
                                 at::Tensor& loss, at::Tensor& correct) {
    auto rows = logits.size(0), vocab = logits.size(1);
    auto t = targets.to(at::kLong).contiguous();
    if (t.ne(ignoreIndex).logical_and_(t.lt(0).logical_or_(t.ge(vocab))).any().item<bool>()) {
      throw std::invalid_argument("linearCrossEntropy: a target is outside the vocabulary");
    }
    auto rowLoss = at::empty({rows}, logits.options().dtype(at::kFloat));
    auto rowCorrect = at::empty({rows}, logits.options().dtype(at::kByte));
    auto storage = storageOf(logits);
    auto elementSize = logits.element_size();
    auto* data = static_cast<char*>(logits.data_ptr());
    auto* targetData = t.data_ptr<int64_t>();
    auto *lossData = rowLoss.data_ptr<float>();
    auto* correctData = rowCorrect.data_ptr<uint8_t>();
    at::parallel_for(0, rows, 1, [&](int64_t begin, int64_t end) {
      std::vector<float> scratch(vocab);
      kernels::softmaxCrossEntropy(storage, data + begin * vocab * elementSize, targetData + begin, ignoreIndex, static_cast<float>(softcap),
                                   withGrad, lossData + begin, correctData + begin, end - begin, vocab, scratch.data());
    });
    loss.add_(rowLoss.sum());
    correct.add_(rowCorrect.sum(at::kLong).to(correct.scalar_type()));
  }

  static variable_list forward(AutogradContext* ctx, const at::Tensor& hidden, const at::Tensor& weight, const at::Tensor& targets,
                               int64_t ignoreIndex, int64_t chunkRows, double softcap, bool withGrad,
                               const c10::optional<at::Tensor>& forwardTiles, const c10::optional<at::Tensor>& backwardTiles,
                               int64_t packedVersion) {
    const auto packed = checkPacked("linearCrossEntropy", weight, forwardTiles, backwardTiles, packedVersion);
    auto rows = hidden.size(0);
    auto loss = at::zeros({}, hidden.options().dtype(at::kFloat));
    auto correct = at::zeros({}, targets.options());
    at::Tensor gradHidden = withGrad ? at::empty_like(hidden) : at::Tensor();
    for (int64_t start = 0; start < rows; start += chunkRows) {
      auto n = std::min(chunkRows, rows - start);
      auto h = hidden.narrow(0, start, n);
      auto t = targets.narrow(0, start, n);
      at::Tensor logits;
      if (packed.sole) logits = packed::multiplyPackedTransposed(h, *backwardTiles);
      else if (packed.forward && packed::takes(h, *forwardTiles)) logits = packed::multiplyPacked(h, *forwardTiles);
      else logits = rowKernelsTake(h) ? vocabularyLogits(h, weight) : at::linear(h, weight);
      if (rowKernelsFit({logits})) {
        crossEntropyOnRows(logits, t, ignoreIndex, softcap, withGrad, loss, correct);
        if (!withGrad) continue;
        auto dst = gradHidden.narrow(0, start, n);
        // The logits now hold their gradient.
        if (packed.sole || (packed.backward && packed::takes(logits, *backwardTiles))) dst.copy_(packed::multiplyPacked(logits, *backwardTiles));
        else at::mm_out(dst, logits, weight);
        continue;
      }
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
      if (packed.sole) dst.copy_(packed::multiplyPacked(p.to(hidden.scalar_type()), *backwardTiles));
      else at::mm_out(dst, p.to(hidden.scalar_type()), weight);
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
    return {scaled, at::Tensor(), at::Tensor(), at::Tensor(), at::Tensor(), at::Tensor(), at::Tensor(), at::Tensor(), at::Tensor(), at::Tensor()};
  }
};

// Rotary position embedding, y = x·cos + rotate(x)·sin with rotate(x) = [−x₂, x₁] (Hugging Face's
// rotate_half), for x [B, H, T, D] of any strides (q and k arrive as transposed views) and cos, sin
// [B or 1, 1, T, D]. The output is contiguous [B, H, T, D]. Saves only cos and sin.
struct Rotary : Function<Rotary> {
  static at::Tensor rotate(const at::Tensor& x, const at::Tensor& cos, const at::Tensor& sin, bool backward) {
    bool rows = x.dim() == 4 && cos.dim() == 4 && sin.dim() == 4 && x.stride(-1) == 1 && rowKernelsTake(x) &&
                cos.scalar_type() == x.scalar_type() && sin.scalar_type() == x.scalar_type() && cos.device() == x.device();
    if (!rows) {
      auto half = x.size(-1) / 2;
      if (backward) {
        auto gs = x.mul(sin);
        return x.mul(cos).add_(at::cat({gs.narrow(-1, half, half), gs.narrow(-1, 0, half).neg()}, -1));
      }
      return x.mul(cos).add_(at::cat({x.narrow(-1, half, half).neg(), x.narrow(-1, 0, half)}, -1).mul_(sin));
    }
    auto B = x.size(0), H = x.size(1), T = x.size(2), D = x.size(3);
    auto c = cos.expand({B, 1, T, D}).contiguous(), s = sin.expand({B, 1, T, D}).contiguous();
    auto y = at::empty({B, H, T, D}, x.options());
    auto storage = storageOf(x);
    auto elementSize = x.element_size();
    auto* xData = static_cast<const char*>(x.data_ptr());
    auto *cData = static_cast<const char*>(c.data_ptr()), *sData = static_cast<const char*>(s.data_ptr());
    auto* yData = static_cast<char*>(y.data_ptr());
    at::parallel_for(0, B * H, 1, [&](int64_t begin, int64_t end) {
      for (int64_t bh = begin; bh < end; bh++) {
        auto b = bh / H, h = bh % H;
        kernels::rotary(storage, xData + (b * x.stride(0) + h * x.stride(1)) * elementSize, x.stride(2), cData + b * T * D * elementSize,
                        sData + b * T * D * elementSize, yData + bh * T * D * elementSize, T, D, backward);
      }
    });
    return y;
  }

  static at::Tensor forward(AutogradContext* ctx, const at::Tensor& x, const at::Tensor& cos, const at::Tensor& sin) {
    if (cos.requires_grad() || sin.requires_grad()) throw std::invalid_argument("rotary: cos and sin must be constants");
    ctx->save_for_backward({cos, sin});
    return rotate(x, cos, sin, false);
  }

  static variable_list backward(AutogradContext* ctx, variable_list grads) {
    auto saved = ctx->get_saved_variables();
    return {rotate(grads[0], saved[0], saved[1], true), at::Tensor(), at::Tensor()};
  }
};

// Attention that keeps its probabilities: scores = q kᵀ and out = p v as batched matmuls, and the softmax
// and its backward as single passes over rows (cpu-kernels.h). For short sequences on the CPU this is
// several times faster than the flash kernel, whose tiles are sized for long ones; it stores p
// ([B, H, T, S] in q's dtype) for backward, so it is for short rows. Grouped-query attention folds
// each key/value head's query heads together ([B, K, G·T, D]), as Hugging Face's repeat_kv orders them.
// allowed (optional, bool [B or 1, 1, T, S]) and causal (query t sees keys j ≤ S − T + t) hide keys.
struct MaterializedAttention : Function<MaterializedAttention> {
  static at::Tensor forward(AutogradContext* ctx, const at::Tensor& q, const at::Tensor& k, const at::Tensor& v,
                            const c10::optional<at::Tensor>& allowed, bool causal, double scale) {
    auto B = q.size(0), H = q.size(1), T = q.size(2), D = q.size(3), K = k.size(1), S = k.size(2);
    if (H % K != 0) throw std::invalid_argument("materializedAttention: query heads must be a multiple of key/value heads");
    auto G = H / K;
    auto qg = q.reshape({B, K, G * T, D});
    auto probs = at::matmul(qg, k.transpose(-2, -1)).contiguous();  // scores, then probabilities in place
    at::Tensor mask;
    if (allowed && allowed->defined()) {
      const auto& a = *allowed;
      if (a.dim() != 4 || a.size(1) != 1 || a.size(2) != T || a.size(3) != S || (a.size(0) != 1 && a.size(0) != B)) {
        throw std::invalid_argument("materializedAttention: the mask must be [B or 1, 1, T, S]");
      }
      mask = a.to(at::kBool).contiguous();
    }
    auto maskBatchStride = mask.defined() && mask.size(0) > 1 ? T * S : 0;
    auto* maskData = mask.defined() ? reinterpret_cast<const uint8_t*>(mask.data_ptr<bool>()) : nullptr;
    auto storage = storageOf(probs);
    auto elementSize = probs.element_size();
    auto* data = static_cast<char*>(probs.data_ptr());
    at::parallel_for(0, B * K * G, 1, [&](int64_t begin, int64_t end) {
      for (int64_t block = begin; block < end; block++) {
        auto b = block / (K * G);
        kernels::attentionSoftmax(storage, data + block * T * S * elementSize, T, S, static_cast<float>(scale),
                                  maskData ? maskData + b * maskBatchStride : nullptr, causal ? S - T : -1);
      }
    });
    auto out = at::matmul(probs, v).view({B, H, T, D});
    ctx->save_for_backward({qg, k, v, probs});
    ctx->saved_data["scale"] = scale;
    return out;
  }

  static variable_list backward(AutogradContext* ctx, variable_list grads) {
    auto saved = ctx->get_saved_variables();
    const auto &qg = saved[0], &k = saved[1], &v = saved[2], &probs = saved[3];
    auto scale = ctx->saved_data["scale"].toDouble();
    auto g = grads[0].reshape(qg.sizes()).to(qg.scalar_type());
    auto gradV = at::matmul(probs.transpose(-2, -1), g);
    auto gradScores = at::matmul(g, v.transpose(-2, -1)).contiguous();  // gradient of p, then of the scores in place
    auto rows = gradScores.numel() / gradScores.size(-1), length = gradScores.size(-1);
    auto storage = storageOf(probs);
    auto elementSize = probs.element_size();
    auto* p = static_cast<const char*>(probs.data_ptr());
    auto* gs = static_cast<char*>(gradScores.data_ptr());
    forRows(rows, length, [&](int64_t begin, int64_t end) {
      kernels::attentionSoftmaxBackward(storage, p + begin * length * elementSize, gs + begin * length * elementSize, end - begin, length,
                                        static_cast<float>(scale));
    });
    auto gradQ = at::matmul(gradScores, k).view(grads[0].sizes());
    auto gradK = at::matmul(gradScores.transpose(-2, -1), qg);
    return {gradQ, gradK, gradV, at::Tensor(), at::Tensor(), at::Tensor()};
  }
};

}  // namespace

// rmsNorm(x, weight, eps, offset)
static Napi::Value RmsNormOp(const Napi::CallbackInfo& info) {
  return wrap(info.Env(), RmsNorm::apply(unwrap(info[0]), unwrap(info[1]), toDouble(info[2]), toDouble(info[3])));
}

// loraLinear(x, weight, bias | null, a, bs[], scale, loraInput | null, forwardTiles | null, backwardTiles | null, packedVersion)
static Napi::Value LoraLinearOp(const Napi::CallbackInfo& info) {
  const auto& x = unwrap(info[0]);
  c10::optional<at::Tensor> bias, forwardTiles, backwardTiles;
  if (!absent(info[2])) bias = unwrap(info[2]);
  if (!absent(info[7])) forwardTiles = unwrap(info[7]);
  if (!absent(info[8])) backwardTiles = unwrap(info[8]);
  auto bs = tensorList(info[4]);
  bool zIsX = absent(info[6]);
  return wrap(info.Env(), LoraLinear::apply(x, unwrap(info[1]), bias, unwrap(info[3]), at::TensorList(bs), toDouble(info[5]),
                                           zIsX ? x : unwrap(info[6]), zIsX, forwardTiles, backwardTiles, toInt(info[9])));
}

// gatedActivation(gateUp, 'silu' | 'gelu_tanh')
static Napi::Value GatedActivationOp(const Napi::CallbackInfo& info) {
  auto kind = info[1].As<Napi::String>().Utf8Value();
  if (kind != "silu" && kind != "gelu_tanh") throw std::invalid_argument("gatedActivation: unknown activation '" + kind + "'");
  return wrap(info.Env(), GatedActivation::apply(unwrap(info[0]), kind == "gelu_tanh"));
}

// linearCrossEntropy(hidden [N, d], weight [V, d], targets [N], ignoreIndex, chunkRows, softcap (0 = none), withGrad,
//                    forwardTiles | null, backwardTiles | null, packedVersion)
//   -> [loss sum, correct count]
static Napi::Value LinearCrossEntropyOp(const Napi::CallbackInfo& info) {
  auto chunkRows = toInt(info[4]);
  if (chunkRows < 1) throw std::invalid_argument("linearCrossEntropy: chunkRows must be positive");
  c10::optional<at::Tensor> forwardTiles, backwardTiles;
  if (!absent(info[7])) forwardTiles = unwrap(info[7]);
  if (!absent(info[8])) backwardTiles = unwrap(info[8]);
  auto outputs = LinearCrossEntropy::apply(unwrap(info[0]), unwrap(info[1]), unwrap(info[2]), toInt(info[3]), chunkRows,
                                           toDouble(info[5]), toBool(info[6]), forwardTiles, backwardTiles, toInt(info[9]));
  return wrapList(info.Env(), outputs);
}

// rotary(x, cos, sin)
static Napi::Value RotaryOp(const Napi::CallbackInfo& info) {
  const auto &x = unwrap(info[0]), &cos = unwrap(info[1]), &sin = unwrap(info[2]);
  if (x.size(-1) % 2 != 0 || cos.size(-1) != x.size(-1) || sin.size(-1) != x.size(-1)) {
    throw std::invalid_argument("rotary: x, cos and sin must share an even last dimension");
  }
  return wrap(info.Env(), Rotary::apply(x, cos, sin));
}

// materializedAttention(q [B, H, T, D], k, v [B, K, S, D], allowed | null (bool [B or 1, 1, T, S]), causal, scale): CPU, float32
// or bfloat16 only (the engine picks it; see MaterializedAttention).
static Napi::Value MaterializedAttentionOp(const Napi::CallbackInfo& info) {
  const auto &q = unwrap(info[0]), &k = unwrap(info[1]), &v = unwrap(info[2]);
  c10::optional<at::Tensor> allowed;
  if (!absent(info[3])) allowed = unwrap(info[3]);
  if (q.dim() != 4 || k.dim() != 4 || v.dim() != 4) throw std::invalid_argument("materializedAttention: q, k and v must be 4-d");
  for (const auto& t : {q, k, v}) {
    if (!t.device().is_cpu() || t.scalar_type() != q.scalar_type() || (t.scalar_type() != at::kFloat && t.scalar_type() != at::kBFloat16)) {
      throw std::invalid_argument("materializedAttention: q, k and v must be CPU tensors, all float32 or all bfloat16");
    }
  }
  return wrap(info.Env(), MaterializedAttention::apply(q, k, v, allowed, toBool(info[4]), toDouble(info[5])));
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
  ATTUNE_EXPORT("materializedAttention", MaterializedAttentionOp);
  ATTUNE_EXPORT("rotary", RotaryOp);
}

}  // namespace attune
