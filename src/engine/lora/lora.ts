// LoRA adapters on a transformer's projections: creation, attaching, merging, and their parameters.
import { zeros, empty, noGrad, keep, tidy, type Tensor } from '../tensor/index.js';
import type { Transformer, Projection } from '../model/transformer.js';
import type { Linear, LoraWeights } from '../model/linear.js';

/** Google's adapter sizes, as LoRA ranks. */
export const adapterSizeRanks = {
  ADAPTER_SIZE_ONE: 1,
  ADAPTER_SIZE_TWO: 2,
  ADAPTER_SIZE_FOUR: 4,
  ADAPTER_SIZE_EIGHT: 8,
  ADAPTER_SIZE_SIXTEEN: 16,
  ADAPTER_SIZE_THIRTY_TWO: 32,
} as const;

/** Hugging Face names of the projections LoRA may target, as PEFT's target_modules lists them. */
export const projectionModuleNames: Record<Projection, string> = {
  q: 'q_proj', k: 'k_proj', v: 'v_proj', o: 'o_proj', gate: 'gate_proj', up: 'up_proj', down: 'down_proj',
};
export const allProjectionModules = Object.values(projectionModuleNames);

export interface LoraConfig {
  rank: number;
  /** Scale is alpha / rank. Defaults to 2 × rank (scale 2). */
  alpha: number;
  dropout: number;
  /** PEFT module names, e.g. ['q_proj', 'v_proj']. */
  targetModules: string[];
}

export function loraConfig(partial: Partial<LoraConfig> = {}): LoraConfig {
  const rank = partial.rank ?? 8;
  if (!Number.isInteger(rank) || rank < 1) throw new Error(`LoRA rank must be a positive integer, not ${rank}`);
  const targetModules = partial.targetModules ?? allProjectionModules;
  const unknown = targetModules.filter((m) => !allProjectionModules.includes(m));
  if (unknown.length) throw new Error(`unknown LoRA target modules: ${unknown.join(', ')}; known: ${allProjectionModules.join(', ')}`);
  return { rank, alpha: partial.alpha ?? 2 * rank, dropout: partial.dropout ?? 0, targetModules };
}

/** The adapter's weights by PEFT module path (`model.layers.0.self_attn.q_proj`). */
export class LoraAdapter {
  constructor(
    readonly config: LoraConfig,
    readonly weights: Map<string, LoraWeights>,
  ) {}

  /** New adapter: A ~ U(±1/√in) as PEFT's Kaiming init gives, B = 0, so training starts from the base model. */
  static create(model: Transformer, config: LoraConfig): LoraAdapter {
    const weights = new Map<string, LoraWeights>();
    noGrad(() => {
      for (const [path, linear, projection] of model.linears()) {
        if (!config.targetModules.includes(projectionModuleNames[projection])) continue;
        const placement = { dtype: 'float32' as const, device: model.device };
        const bound = 1 / Math.sqrt(linear.inFeatures);
        const a = keep(empty([config.rank, linear.inFeatures], placement).uniform_(-bound, bound));
        const b = keep(zeros([linear.outFeatures, config.rank], placement));
        weights.set(path, { a, b, scale: config.alpha / config.rank, dropout: config.dropout });
      }
    });
    return new LoraAdapter(config, weights);
  }

  parameters(): Tensor[] {
    return [...this.weights.values()].flatMap(({ a, b }) => [a, b]);
  }

  /** Makes the model's projections use this adapter (replacing any other). */
  attach(model: Transformer): void {
    for (const [path, linear] of model.linears()) linear.lora = this.weights.get(path) ?? null;
  }

  static detach(model: Transformer): void {
    for (const [, linear] of model.linears()) linear.lora = null;
  }

  /** Folds the adapter into the base weights (W += scale·B·A), for adapter-free serving. */
  merge(model: Transformer): void {
    this.fold(model, +1);
  }

  /** Undoes merge(). */
  unmerge(model: Transformer): void {
    this.fold(model, -1);
  }

  private fold(model: Transformer, sign: 1 | -1): void {
    noGrad(() => {
      for (const [path, linear] of model.linears()) {
        const lora = this.weights.get(path);
        if (!lora) continue;
        tidy(() => foldInto(linear, lora, sign));
      }
    });
  }

  dispose(): void {
    for (const t of this.parameters()) t.dispose();
  }
}

function foldInto(linear: Linear, { a, b, scale }: LoraWeights, sign: number): void {
  const delta = b.matmul(a).to({ dtype: linear.weight.dtype });
  linear.weight.addScaled_(delta, sign * scale);
}
