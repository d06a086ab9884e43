// AdamW with decoupled weight decay, step for step as torch.optim.AdamW's single-tensor path.
import { zeros, noGrad, tidy, keep, type Tensor } from '../tensor/index.js';

export interface AdamWOptions {
  betas?: [number, number];
  eps?: number;
  weightDecay?: number;
}

export class AdamW {
  readonly firstMoments: Tensor[];
  readonly secondMoments: Tensor[];
  steps = 0;
  private readonly beta1: number;
  private readonly beta2: number;
  private readonly eps: number;
  private readonly weightDecay: number;

  constructor(
    readonly parameters: Tensor[],
    { betas = [0.9, 0.999], eps = 1e-8, weightDecay = 0 }: AdamWOptions = {},
  ) {
    [this.beta1, this.beta2] = betas;
    this.eps = eps;
    this.weightDecay = weightDecay;
    this.firstMoments = parameters.map((p) => keep(zeros(p.shape, { device: p.device })));
    this.secondMoments = parameters.map((p) => keep(zeros(p.shape, { device: p.device })));
  }

  step(learningRate: number): void {
    this.steps++;
    const { beta1, beta2, eps } = this;
    const biasCorrection1 = 1 - beta1 ** this.steps;
    const biasCorrection2Sqrt = Math.sqrt(1 - beta2 ** this.steps);
    noGrad(() =>
      tidy(() => {
        for (const [i, param] of this.parameters.entries()) {
          const grad = param.grad;
          if (!grad) continue;
          if (this.weightDecay) param.mul_(1 - learningRate * this.weightDecay);
          this.firstMoments[i].lerp_(grad, 1 - beta1);
          this.secondMoments[i].mul_(beta2).addcmul_(grad, grad, 1 - beta2);
          const denominator = this.secondMoments[i].sqrt().div_(biasCorrection2Sqrt).add_(eps);
          param.addcdiv_(this.firstMoments[i], denominator, -learningRate / biasCorrection1);
        }
      }),
    );
  }

  zeroGrad(): void {
    for (const param of this.parameters) param.clearGrad();
  }

  /** Frees the moments (not the parameters, which belong to the adapter). */
  dispose(): void {
    for (const t of [...this.firstMoments, ...this.secondMoments]) t.dispose();
  }
}

/** Scales gradients so their global L2 norm is at most maxNorm; returns the norm before clipping. */
export function clipGradNorm(parameters: Tensor[], maxNorm: number): number {
  return noGrad(() =>
    tidy(() => {
      const grads = parameters.map((p) => p.grad).filter((g): g is Tensor => g !== null);
      if (grads.length === 0) return 0;
      const norms = grads.map((g) => g.norm(2));
      let total = norms[0].mul(norms[0]);
      for (const n of norms.slice(1)) total = total.add(n.mul(n));
      const norm = Math.sqrt(total.item());
      if (norm > maxNorm) for (const g of grads) g.mul_(maxNorm / (norm + 1e-6));
      return norm;
    }),
  );
}
