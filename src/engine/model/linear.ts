// Frozen linear projections that may carry LoRA adapters: y = x Wᵀ + b + scale · (dropout(x) Aᵀ) Bᵀ.
// The adapter's A and B are float32 master weights; each forward casts them to the weights' dtype, so
// their gradients come back in float32.
import { cat, linear, loraLinear, dropout, keep, noGrad, PackedMatrix, PackedWeight, type Tensor, type WeightPacking } from '../tensor/index.js';

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
  /** The weight packed (tensor/packed.ts) while a training run keeps it: its products read the packed copy. */
  packed: PackedWeight | null = null;

  constructor(
    public weight: Tensor,
    public bias: Tensor | null = null,
  ) {}

  get inFeatures(): number { return this.weight.size(1); }
  get outFeatures(): number { return this.weight.size(0); }

  forward(x: Tensor, train = false): Tensor {
    if (this.tokenLora) return addDelta(linear(x, this.weight, this.bias), this.tokenLora.delta(x));
    const lora = this.lora;
    if (!lora) return linear(x, this.weight, this.bias);
    const dtype = this.weight.dtype;
    const dropped = train && lora.dropout > 0 ? dropout(x, lora.dropout, true) : undefined;
    return loraLinear(x, this.weight, this.bias, lora.a.to({ dtype }), lora.b.to({ dtype }), lora.scale, dropped, this.packed);
  }

  /** Packs the weight where it has an adapter and its sizes fit the tiles; undone by unpack(). */
  pack(packing: WeightPacking): void {
    if (this.lora && !this.packed && PackedMatrix.fits(this.weight)) this.packed = PackedWeight.pack(this.weight, packing);
  }

  unpack(): void {
    this.packed?.dispose();
    this.packed = null;
  }
}

/**
 * Projections that read the same input (q/k/v, gate/up) computed as one matrix product over one fused
 * weight; each part's weight is a view into it, so merging an adapter into a part updates the fused
 * weight too. With an adapter on every part, the adapters share that product: their A matrices stacked,
 * each B adding into its part's columns.
 */
export class FusedLinear {
  readonly parts: Linear[];
  private readonly sizes: number[];
  /** The fused weight packed while a training run keeps it (as Linear.packed). */
  private packed: PackedWeight | null = null;

  /** Over a fused weight [Σ out, in] (and bias) whose row blocks are the parts, e.g. as loaded from disk. */
  constructor(
    private readonly weight: Tensor,
    private readonly bias: Tensor | null,
    sizes: number[],
  ) {
    this.sizes = sizes;
    let offset = 0;
    this.parts = sizes.map((rows) => {
      const part = new Linear(keep(weight.slice(0, offset, offset + rows)), bias ? keep(bias.slice(0, offset, offset + rows)) : null);
      offset += rows;
      return part;
    });
  }

  /** Fuses separate projections, copying their weights once into the fused one (theirs are freed). */
  static fromParts(parts: Linear[]): FusedLinear {
    const biased = parts.every((p) => p.bias);
    if (!biased && parts.some((p) => p.bias)) throw new Error('fused projections must all have biases or none');
    const [weight, bias] = noGrad(() => [
      keep(cat(parts.map((p) => p.weight), 0)),
      biased ? keep(cat(parts.map((p) => p.bias!), 0)) : null,
    ]);
    for (const part of parts) {
      part.weight.dispose();
      part.bias?.dispose();
    }
    return new FusedLinear(weight, bias, parts.map((p) => p.outFeatures));
  }

  /** All parts' outputs side by side [..., Σ out]. */
  forwardFused(x: Tensor, train = false): Tensor {
    if (this.servingPerToken()) return cat(this.forward(x, train), -1);
    const loras = this.parts.map((p) => p.lora);
    const dtype = this.weight.dtype;
    const first = loras[0];
    const uniform = first !== null && loras.every((l) => l && l.scale === first.scale && l.dropout === first.dropout);
    if (first && uniform && !(train && first.dropout > 0)) {
      const a = cat(loras.map((l) => l!.a), 0).to({ dtype });
      return loraLinear(x, this.weight, this.bias, a, loras.map((l) => l!.b.to({ dtype })), first.scale, undefined, this.packed);
    }
    if (loras.every((l) => !l)) return linear(x, this.weight, this.bias);
    return cat(this.parts.map((p) => p.forward(x, train)), -1);
  }

  /**
   * Packs the fused weight where one product serves all the adapters (every part adapted alike, without
   * dropout) and its sizes fit the tiles; undone by unpack().
   */
  pack(packing: WeightPacking): void {
    const loras = this.parts.map((p) => p.lora);
    const first = loras[0];
    const shared = first !== null && first.dropout === 0 && loras.every((l) => l && l.scale === first.scale && l.dropout === 0);
    if (!shared || this.packed || !PackedMatrix.fits(this.weight)) return;
    let start = 0;
    const views = this.parts.map((part) => {
      const view = { view: part.weight, start };
      start += part.outFeatures;
      return view;
    });
    this.packed = PackedWeight.pack(this.weight, packing, views);
  }

  unpack(): void {
    this.packed?.dispose();
    this.packed = null;
  }

  /** Batched serving has set per-token adapters (they take the place of `lora`, as in Linear). */
  private servingPerToken(): boolean {
    return this.parts.some((p) => p.tokenLora);
  }

  /** Each part's output, in order. */
  forward(x: Tensor, train = false): Tensor[] {
    if (this.servingPerToken()) {
      // One product for the frozen weight; each part then adds its tokens' adapters.
      const outputs = linear(x, this.weight, this.bias).split(this.sizes, -1);
      return outputs.map((y, i) => addDelta(y, this.parts[i].tokenLora?.delta(x) ?? null));
    }
    return this.forwardFused(x, train).split(this.sizes, -1);
  }
}

const addDelta = (y: Tensor, delta: Tensor | null): Tensor => (delta ? y.add(delta) : y);
