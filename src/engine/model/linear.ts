// A frozen linear projection that may carry a LoRA adapter: y = x Wᵀ + b + scale · (dropout(x) Aᵀ) Bᵀ.
import { linear, dropout, type Tensor } from '../tensor/index.js';

export interface LoraWeights {
  /** [rank, in] */
  a: Tensor;
  /** [out, rank] */
  b: Tensor;
  scale: number;
  dropout: number;
}

export class Linear {
  lora: LoraWeights | null = null;

  constructor(
    public weight: Tensor,
    public bias: Tensor | null = null,
  ) {}

  get inFeatures(): number { return this.weight.size(1); }
  get outFeatures(): number { return this.weight.size(0); }

  forward(x: Tensor, train = false): Tensor {
    const y = linear(x, this.weight, this.bias);
    if (!this.lora) return y;
    const { a, b, scale, dropout: p } = this.lora;
    // In place is safe: linear's backward needs its inputs, not its output.
    return y.addScaled_(linear(linear(dropout(x, p, train), a), b), scale);
  }
}
