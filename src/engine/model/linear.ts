// Frozen linear projections that may carry LoRA adapters: y = x Wᵀ + b + scale · (dropout(x) Aᵀ) Bᵀ.
import { cat, linear, dropout, keep, noGrad, type Tensor } from '../tensor/index.js';

export interface LoraWeights {
  /** [rank, in] */
  a: Tensor;
  /** [out, rank] */
  b: Tensor;
  scale: number;
  dropout: number;
}

/** Batched serving's LoRA: every token its own adapter (lora/adapter-stack.ts). */
export interface TokenLora {
  /** x [..., in] → the adapters' contribution [..., out], or null when no token of this forward has one here. */
  delta(x: Tensor): Tensor | null;
}

export class Linear {
  lora: LoraWeights | null = null;
  /** While set, used instead of `lora`. */
  tokenLora: TokenLora | null = null;

  constructor(
    public weight: Tensor,
    public bias: Tensor | null = null,
  ) {}

  get inFeatures(): number { return this.weight.size(1); }
  get outFeatures(): number { return this.weight.size(0); }

  forward(x: Tensor, train = false): Tensor {
    const y = linear(x, this.weight, this.bias);
    if (this.tokenLora) return addDelta(y, this.tokenLora.delta(x));
    // In place is safe: linear's backward needs its inputs, not its output.
    return this.lora ? y.addScaled_(this.loraPath(x, train, this.lora), this.lora.scale) : y;
  }

  /** The adapter's contribution before scaling: (dropout(x) Aᵀ) Bᵀ. */
  loraPath(x: Tensor, train: boolean, { a, b, dropout: p }: LoraWeights): Tensor {
    return linear(linear(dropout(x, p, train), a), b);
  }
}

/**
 * Projections that read the same input (q/k/v, gate/up) computed as one matrix product: the base
 * weights are concatenated once, and each part's weight becomes a view into the fused one, so
 * merging an adapter into a part updates the fused weight too.
 */
export class FusedLinear {
  private readonly weight: Tensor;
  private readonly bias: Tensor | null;
  private readonly sizes: number[];

  constructor(readonly parts: Linear[]) {
    this.sizes = parts.map((p) => p.outFeatures);
    const biased = parts.every((p) => p.bias);
    [this.weight, this.bias] = noGrad(() => [
      keep(cat(parts.map((p) => p.weight), 0)),
      biased ? keep(cat(parts.map((p) => p.bias!), 0)) : null,
    ]);
    if (!biased && parts.some((p) => p.bias)) throw new Error('fused projections must all have biases or none');
    let offset = 0;
    for (const part of parts) {
      const rows = part.outFeatures;
      const old = [part.weight, part.bias];
      part.weight = keep(this.weight.slice(0, offset, offset + rows));
      part.bias = this.bias ? keep(this.bias.slice(0, offset, offset + rows)) : null;
      for (const t of old) t?.dispose();
      offset += rows;
    }
  }

  /** Each part's output, in order. */
  forward(x: Tensor, train = false): Tensor[] {
    const outputs = linear(x, this.weight, this.bias).split(this.sizes, -1);
    return outputs.map((y, i) => {
      const { tokenLora } = this.parts[i];
      if (tokenLora) return addDelta(y, tokenLora.delta(x));
      const lora = this.parts[i].lora;
      return lora ? y.add(this.parts[i].loraPath(x, train, lora).mul(lora.scale)) : y;
    });
  }
}

const addDelta = (y: Tensor, delta: Tensor | null): Tensor => (delta ? y.add(delta) : y);
