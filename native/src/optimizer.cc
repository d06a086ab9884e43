// Optimizer updates over a whole list of parameters in one call: a step's hundreds of small LoRA tensors
// cost one crossing from JavaScript rather than several ops each. Generic (AdamW, gradient clipping);
// which tensors are parameters is the engine's business.
#include <ATen/Parallel.h>
#include <ATen/core/grad_mode.h>

#include <cmath>

#include "cpu-kernels.h"
#include "handle.h"

namespace attune {

static bool fusedAdamwFits(const at::Tensor& p, const at::Tensor& g, const at::Tensor& m, const at::Tensor& v) {
  for (const auto* t : {&p, &g, &m, &v}) {
    if (!t->device().is_cpu() || t->scalar_type() != at::kFloat || !t->is_contiguous()) return false;
  }
  return true;
}

// adamwStep(params[], firstMoments[], secondMoments[], learningRate, beta1, beta2, eps, weightDecay, step): parameters
// without a gradient are skipped. torch.optim.AdamW's single-tensor arithmetic, fused into one pass on the CPU.
static Napi::Value AdamwStep(const Napi::CallbackInfo& info) {
  auto params = tensorList(info[0]), firstMoments = tensorList(info[1]), secondMoments = tensorList(info[2]);
  if (firstMoments.size() != params.size() || secondMoments.size() != params.size()) {
    throw std::invalid_argument("adamwStep: one first and one second moment per parameter");
  }
  double lr = toDouble(info[3]), beta1 = toDouble(info[4]), beta2 = toDouble(info[5]), eps = toDouble(info[6]), weightDecay = toDouble(info[7]);
  double step = toDouble(info[8]);
  double biasCorrection1 = 1 - std::pow(beta1, step), biasCorrection2Sqrt = std::sqrt(1 - std::pow(beta2, step));
  at::NoGradGuard noGrad;
  for (size_t i = 0; i < params.size(); i++) {
    auto &p = params[i], &m = firstMoments[i], &v = secondMoments[i];
    const auto& g = p.grad();
    if (!g.defined()) continue;
    if (fusedAdamwFits(p, g, m, v)) {
      auto *pData = p.data_ptr<float>(), *mData = m.data_ptr<float>(), *vData = v.data_ptr<float>();
      const auto* gData = g.data_ptr<float>();
      at::parallel_for(0, p.numel(), 1 << 16, [&](int64_t begin, int64_t end) {
        kernels::adamw(pData + begin, gData + begin, mData + begin, vData + begin, end - begin, lr, beta1, beta2, eps, weightDecay,
                       biasCorrection1, biasCorrection2Sqrt);
      });
      continue;
    }
    if (weightDecay != 0) p.mul_(1 - lr * weightDecay);
    m.lerp_(g, 1 - beta1);
    v.mul_(beta2).addcmul_(g, g, 1 - beta2);
    p.addcdiv_(m, v.sqrt().div_(biasCorrection2Sqrt).add_(eps), -lr / biasCorrection1);
  }
  return info.Env().Undefined();
}

// clipGradNorm(params[], maxNorm) -> the gradients' global L2 norm before clipping; when it exceeds maxNorm every
// gradient is scaled by maxNorm / (norm + 1e-6), as torch.nn.utils.clip_grad_norm_ does.
static Napi::Value ClipGradNorm(const Napi::CallbackInfo& info) {
  auto params = tensorList(info[0]);
  double maxNorm = toDouble(info[1]);
  at::NoGradGuard noGrad;
  std::vector<at::Tensor> grads;
  for (const auto& p : params) {
    if (p.grad().defined()) grads.push_back(p.grad());
  }
  if (grads.empty()) return Napi::Number::New(info.Env(), 0);
  std::vector<at::Tensor> norms;
  for (const auto& g : grads) norms.push_back(g.norm(2).to(at::kDouble));
  double norm = at::stack(norms).norm(2).item<double>();  // one read back (one device sync on a GPU)
  if (norm > maxNorm) {
    for (auto& g : grads) g.mul_(maxNorm / (norm + 1e-6));
  }
  return Napi::Number::New(info.Env(), norm);
}

void registerOptimizer(Napi::Env env, Napi::Object exports) {
  ATTUNE_EXPORT("adamwStep", AdamwStep);
  ATTUNE_EXPORT("clipGradNorm", ClipGradNorm);
}

}  // namespace attune
