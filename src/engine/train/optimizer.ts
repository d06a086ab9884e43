// AdamW with decoupled weight decay, step for step as torch.optim.AdamW's single-tensor path.
import { adamwStep, zeros, keep, type Tensor } from '../tensor/index.js';

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
    const { beta1, beta2, eps, weightDecay, steps: step } = this;
    adamwStep(this.parameters, [this.firstMoments, this.secondMoments], { learningRate, beta1, beta2, eps, weightDecay, step });
  }

  zeroGrad(): void {
    for (const param of this.parameters) param.clearGrad();
  }

  /** Frees the moments (not the parameters, which belong to the adapter). */
  dispose(): void {
    for (const t of [...this.firstMoments, ...this.secondMoments]) t.dispose();
  }
}

export { clipGradNorm } from '../tensor/index.js';
