// Several LoRA adapters resident on one base model at once, so that one batch mixes them: vLLM's LoRA
// slots (after Punica and S-LoRA), with plain tensor ops.
//
// Each projection keeps every slot's A stacked as [slots × rank, in] and every slot's B, transposed and
// with alpha/r folded in, as [slots × rank, out]; an adapter of a smaller rank (or one that skips this
// projection) is zero-padded to the largest resident rank. Before a forward, `route` names each token's
// slot (-1: the base model alone). A projection then computes
//
//   delta = ((x · A_allᵀ) ⊙ onehot(slot of each token)) · B_allᵀ
//
// the shrink for every slot in one matrix product, the one-hot mask keeping each token's own slot block (a
// gather by row), and the expand in a second product. vLLM's CPU path instead gathers each row's A and B
// and runs a batched matmul (bgmv); on this machine, 32 rows over 8 rank-8 adapters at the SmolLM2-135M
// shape, that took 2.2× the base projections' time against 1.2× for the masked products, because it
// copies every row's adapter weights on every step. The products only span the slots up to the highest one
// the forward uses, and a forward whose tokens share one slot uses that slot's blocks without a mask.
import { keep, linear, noGrad, tensor, tidy, zeros, type Tensor } from '../tensor/index.js';
import type { Transformer } from '../model/transformer.js';
import type { Linear, TokenLora } from '../model/linear.js';
import type { LoraAdapter } from './lora.js';

/** Where the next forward's tokens go: one slot for all, or a mask over the used slots' blocks. */
type Route = { kind: 'none' } | { kind: 'single'; slot: number } | { kind: 'mixed'; usedSlots: number; mask: Tensor };

export class AdapterStack {
  /** Rank every slot is padded to (grows when a larger adapter is installed). */
  private rank = 0;
  private readonly projections = new Map<string, StackedProjection>();
  private route: Route = { kind: 'none' };

  constructor(
    private readonly model: Transformer,
    readonly slots: number,
  ) {
    if (!(Number.isInteger(slots) && slots >= 1)) throw new Error(`adapter slots must be a positive integer, not ${slots}`);
    for (const [path, linear] of model.linears()) {
      const projection = new StackedProjection(this, linear);
      this.projections.set(path, projection);
      linear.tokenLora = projection;
    }
  }

  /** Copies an adapter's weights into a slot (B scaled by alpha/r); the adapter may be disposed afterwards. */
  install(slot: number, adapter: LoraAdapter): void {
    this.checkSlot(slot);
    if (adapter.config.rank > this.rank) this.growRank(adapter.config.rank);
    noGrad(() =>
      tidy(() => {
        for (const [path, projection] of this.projections) projection.write(slot, this.rank, adapter.weights.get(path) ?? null);
      }),
    );
  }

  /** Empties a slot (its blocks become zeros). */
  clear(slot: number): void {
    this.checkSlot(slot);
    noGrad(() =>
      tidy(() => {
        for (const projection of this.projections.values()) projection.write(slot, this.rank, null);
      }),
    );
  }

  /** Each token's slot for the next forward, in the order of the flattened leading dims of x ([B, T] → B·T). */
  setRoute(tokenSlots: number[], shape: number[]): void {
    this.clearRoute();
    const used = new Set(tokenSlots.filter((s) => s >= 0));
    for (const s of used) this.checkSlot(s);
    if (used.size === 0 || this.rank === 0) return;
    if (used.size === 1 && tokenSlots.every((s) => s >= 0)) {
      this.route = { kind: 'single', slot: tokenSlots[0] };
      return;
    }
    const usedSlots = Math.max(...used) + 1;
    const width = usedSlots * this.rank;
    const onehot = new Float32Array(tokenSlots.length * width);
    tokenSlots.forEach((slot, token) => {
      if (slot >= 0) onehot.fill(1, token * width + slot * this.rank, token * width + (slot + 1) * this.rank);
    });
    const dtype = this.model.weights.embed.dtype;
    const mask = tidy(() => keep(tensor(onehot, [...shape, width], { device: this.model.device }).to({ dtype })));
    this.route = { kind: 'mixed', usedSlots, mask };
  }

  clearRoute(): void {
    if (this.route.kind === 'mixed') this.route.mask.dispose();
    this.route = { kind: 'none' };
  }

  /** Detaches from the model and frees the stacks. */
  dispose(): void {
    this.clearRoute();
    for (const projection of this.projections.values()) projection.dispose();
    this.projections.clear();
  }

  /** @internal the route and padded rank the projections read. */
  get current(): { route: Route; rank: number } {
    return { route: this.route, rank: this.rank };
  }

  private growRank(rank: number): void {
    noGrad(() =>
      tidy(() => {
        for (const projection of this.projections.values()) projection.regrow(this.slots, this.rank, rank);
      }),
    );
    this.rank = rank;
  }

  private checkSlot(slot: number): void {
    if (!(Number.isInteger(slot) && slot >= 0 && slot < this.slots)) throw new Error(`adapter slot ${slot} is not in 0..${this.slots - 1}`);
  }
}

class StackedProjection implements TokenLora {
  /** [slots × rank, in] and [slots × rank, out]; null until some adapter targets this projection. */
  private a: Tensor | null = null;
  private bt: Tensor | null = null;
  /** Slots holding weights for this projection. */
  private readonly filled = new Set<number>();

  constructor(
    private readonly stack: AdapterStack,
    private readonly linear: Linear,
  ) {}

  delta(x: Tensor): Tensor | null {
    const { route, rank } = this.stack.current;
    if (route.kind === 'none' || !this.a || !this.bt) return null;
    if (route.kind === 'single') {
      if (!this.filled.has(route.slot)) return null;
      const span = [route.slot * rank, (route.slot + 1) * rank] as const;
      return linear(x, this.a.slice(0, ...span)).matmul(this.bt.slice(0, ...span));
    }
    const width = route.usedSlots * rank;
    return linear(x, this.a.slice(0, 0, width)).mul(route.mask).matmul(this.bt.slice(0, 0, width));
  }

  write(slot: number, rank: number, weights: { a: Tensor; b: Tensor; scale: number } | null): void {
    if (!weights) {
      if (this.filled.delete(slot)) {
        this.a!.slice(0, slot * rank, (slot + 1) * rank).zero_();
        this.bt!.slice(0, slot * rank, (slot + 1) * rank).zero_();
      }
      return;
    }
    if (!this.a || !this.bt) this.allocate(rank);
    const r = weights.a.size(0);
    const a = this.a!.slice(0, slot * rank, (slot + 1) * rank);
    const bt = this.bt!.slice(0, slot * rank, (slot + 1) * rank);
    a.zero_();
    bt.zero_();
    a.slice(0, 0, r).copy_(weights.a);
    bt.slice(0, 0, r).copy_(weights.b.transpose(0, 1).mul(weights.scale));
    this.filled.add(slot);
  }

  /** Re-pads every slot from one rank to a larger one. */
  regrow(slots: number, from: number, to: number): void {
    const [a, bt] = [this.a, this.bt];
    if (!a || !bt) return;
    this.allocate(to);
    if (from > 0) {
      this.a!.view(slots, to, -1).slice(1, 0, from).copy_(a.view(slots, from, -1));
      this.bt!.view(slots, to, -1).slice(1, 0, from).copy_(bt.view(slots, from, -1));
    }
    a.dispose();
    bt.dispose();
  }

  dispose(): void {
    this.a?.dispose();
    this.bt?.dispose();
    this.a = this.bt = null;
    if (this.linear.tokenLora === this) this.linear.tokenLora = null;
  }

  private allocate(rank: number): void {
    const placement = { dtype: this.linear.weight.dtype, device: this.linear.weight.device };
    const slots = this.stack.slots;
    this.a = keep(zeros([slots * rank, this.linear.inFeatures], placement));
    this.bt = keep(zeros([slots * rank, this.linear.outFeatures], placement));
  }
}
