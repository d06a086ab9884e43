// Several LoRA adapters resident on one base model at once, so that one batch mixes them: vLLM's LoRA
// slots (after Punica and S-LoRA), with plain tensor ops.
//
// Each projection keeps every slot's A stacked as [slots × rank, in] and every slot's B, transposed and
// with alpha/r folded in, as [slots × rank, out]; an adapter of a smaller rank (or one that skips this
// projection) is zero-padded to the largest resident rank. Before a forward, `setRoute` names each token's
// slot (-1: the base model alone), and every projection adds its tokens' adapters' contribution one of two
// ways, whichever costs less for the forward's mix:
//
// - mask: delta = ((x · A_allᵀ) ⊙ onehot(slot of each token)) · B_allᵀ — the shrink for every used slot in
//   one matrix product, a one-hot mask keeping each token's own slot block (a gather by row), the expand in
//   a second product. Three ops whatever the mix, but every token pays for every used slot: best when the
//   model is small and per-op overhead dominates.
// - group: tokens gathered by slot into [slots used, most tokens of one slot, in] (padded), one batched
//   matmul with the used slots' A, one with their B, and the results gathered back into token order:
//   segmented GEMM, each token paying for its own adapter only.
//
// vLLM's CPU path instead gathers each row's A and B and runs a batched matmul per row (bgmv); at the
// SmolLM2-135M shape, 32 rows over 8 rank-8 adapters, that took 2.2× the base projections' time on this
// machine, as it copies every row's adapter weights on every step. A forward whose tokens all share one
// slot uses that slot's blocks directly.
import { ids, keep, linear, noGrad, tensor, tidy, zeros, type Tensor } from '../tensor/index.js';
import type { Transformer } from '../model/transformer.js';
import type { Linear, TokenLora } from '../model/linear.js';
import type { LoraAdapter } from './lora.js';

/** How mixed forwards apply adapters: chosen per forward by cost, or pinned (tests, benchmarks). */
export type MixStrategy = 'auto' | 'mask' | 'group';

/** Where the next forward's tokens go. */
type Route =
  | { kind: 'none' }
  | { kind: 'single'; slot: number }
  | { kind: 'mask'; usedSlots: number; mask: Tensor }
  | {
      kind: 'group';
      /** [groups] the slots used, in group order. */
      slots: Tensor;
      slotList: number[];
      groups: number;
      /** Tokens per group (the largest group; the others are padded). */
      width: number;
      /** [groups × width] the token at each grouped position (padding repeats a token). */
      gather: Tensor;
      /** [tokens] each token's grouped position. */
      scatter: Tensor;
      /** [tokens, 1]: 0 for base-model tokens; null when every token has an adapter. */
      keep: Tensor | null;
      tokens: number;
    };

/**
 * Multiply-adds the mask strategy may waste per projection before grouping (a dozen more ops) is chosen: at
 * the SmolLM2-135M shape, 32 rows over 8 rank-8 adapters (2M wasted) measured the same either way.
 */
const GROUPING_PAYS_AFTER_MACS = 1 << 22;

export class AdapterStack {
  /** Rank every slot is padded to (grows when a larger adapter is installed). */
  private rank = 0;
  private readonly projections = new Map<string, StackedProjection>();
  private route: Route = { kind: 'none' };

  constructor(
    private readonly model: Transformer,
    readonly slots: number,
    private readonly strategy: MixStrategy = 'auto',
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
    const groups = new Map<number, number[]>();
    tokenSlots.forEach((slot, token) => slot >= 0 && (groups.get(slot) ?? groups.set(slot, []).get(slot)!).push(token));
    const width = Math.max(...[...groups.values()].map((g) => g.length));
    const usedSlots = Math.max(...used) + 1;
    const { hiddenSize } = this.model.config;
    const wasted = (tokenSlots.length * usedSlots - groups.size * width) * this.rank * 2 * hiddenSize;
    const group = this.strategy === 'group' || (this.strategy === 'auto' && wasted > GROUPING_PAYS_AFTER_MACS);
    this.route = tidy(() => keep(group ? this.groupRoute(tokenSlots, groups, width) : this.maskRoute(tokenSlots, shape, usedSlots)));
  }

  private maskRoute(tokenSlots: number[], shape: number[], usedSlots: number): Route {
    const width = usedSlots * this.rank;
    const onehot = new Float32Array(tokenSlots.length * width);
    tokenSlots.forEach((slot, token) => {
      if (slot >= 0) onehot.fill(1, token * width + slot * this.rank, token * width + (slot + 1) * this.rank);
    });
    const mask = tensor(onehot, [...shape, width], { device: this.model.device }).to({ dtype: this.model.weights.embed.dtype });
    return { kind: 'mask', usedSlots, mask };
  }

  private groupRoute(tokenSlots: number[], groups: Map<number, number[]>, width: number): Route {
    const device = this.model.device;
    const slotList = [...groups.keys()];
    const gather: number[] = [];
    const scatter = new Array<number>(tokenSlots.length).fill(0);
    slotList.forEach((slot, g) => {
      const members = groups.get(slot)!;
      members.forEach((token, k) => {
        gather.push(token);
        scatter[token] = g * width + k;
      });
      for (let k = members.length; k < width; k++) gather.push(members[0]); // padding: computed, never read
    });
    const based = tokenSlots.some((s) => s < 0);
    const keepValues = tokenSlots.map((s) => (s >= 0 ? 1 : 0));
    return {
      kind: 'group',
      slots: ids(slotList, [slotList.length], device),
      slotList,
      groups: slotList.length,
      width,
      gather: ids(gather, [gather.length], device),
      scatter: ids(scatter, [scatter.length], device),
      keep: based ? tensor(keepValues, [keepValues.length, 1], { device }).to({ dtype: this.model.weights.embed.dtype }) : null,
      tokens: tokenSlots.length,
    };
  }

  clearRoute(): void {
    const route = this.route;
    if (route.kind === 'mask') route.mask.dispose();
    if (route.kind === 'group') for (const t of [route.slots, route.gather, route.scatter, route.keep]) t?.dispose();
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
    if (route.kind === 'mask') {
      const width = route.usedSlots * rank;
      return linear(x, this.a.slice(0, 0, width)).mul(route.mask).matmul(this.bt.slice(0, 0, width));
    }
    if (!route.slotList.some((slot) => this.filled.has(slot))) return null;
    const { inFeatures, outFeatures } = this.linear;
    const slots = this.stack.slots;
    const grouped = x.reshape(route.tokens, inFeatures).indexSelect(0, route.gather).view(route.groups, route.width, inFeatures);
    const a = this.a.view(slots, rank, inFeatures).indexSelect(0, route.slots); // [groups, rank, in]
    const bt = this.bt.view(slots, rank, outFeatures).indexSelect(0, route.slots); // [groups, rank, out]
    const y = grouped.matmul(a.transpose(1, 2)).matmul(bt).view(route.groups * route.width, outFeatures);
    const back = y.indexSelect(0, route.scatter);
    return (route.keep ? back.mul(route.keep) : back).view(...x.shape.slice(0, -1), outFeatures);
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
