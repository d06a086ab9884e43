// Picks the next token of each row from its logits, each row by its own settings: greedy at temperature 0,
// otherwise temperature, top-k and nucleus (top-p) filtering, then inverse transform sampling with the row's
// own uniform number. Every candidate draws from its own seeded stream rather than libtorch's process-wide
// generator, so a seeded candidate samples the same tokens whatever else shares its batch or the process.
import { randomInt } from 'node:crypto';
import { xoroshiro128plusFromState } from 'pure-rand/generator/xoroshiro128plus';
import { uniformFloat64 } from 'pure-rand/distribution/uniformFloat64';
import { ids, tensor, where, type Tensor } from '../tensor/index.js';

export interface SamplingOptions {
  temperature: number;
  topK?: number;
  topP?: number;
}

/** Uniform numbers in (0, 1]. */
export type UniformStream = () => number;

/**
 * Candidate `index`'s stream for a seed: xoroshiro128+ seeded once and jumped 2^64 draws per candidate, so
 * candidates are independent and candidate 0 of a request is the same whether it asked for one or eight.
 * Its state comes from SplitMix64, as xoroshiro's authors advise: seeded with the bare number (pure-rand's
 * xoroshiro128plus(seed)), every small seed's first draw was within 1e-5 of 0, so seeded requests all began
 * with the same token.
 */
export function uniformStream(seed: number, index = 0): UniformStream {
  const next = splitMix64(seed);
  const [s0, s1] = [next(), next()];
  const word = (x: bigint, shift: bigint) => Number(BigInt.asIntN(32, x >> shift));
  const generator = xoroshiro128plusFromState([word(s0, 32n), word(s0, 0n), word(s1, 32n), word(s1, 0n)]);
  for (let i = 0; i < index; i++) generator.jump();
  return () => 1 - uniformFloat64(generator); // [0, 1) → (0, 1]: a draw of 0 could pick a token of probability 0
}

/** SplitMix64 (Steele, Lea and Flood) from an integer seed: well-mixed 64-bit words even from 0, 1, 2… */
function splitMix64(seed: number): () => bigint {
  let state = BigInt.asUintN(64, BigInt(Math.trunc(seed)));
  return () => {
    state = BigInt.asUintN(64, state + 0x9e3779b97f4a7c15n);
    let z = state;
    z = BigInt.asUintN(64, (z ^ (z >> 30n)) * 0xbf58476d1ce4e5b9n);
    z = BigInt.asUintN(64, (z ^ (z >> 27n)) * 0x94d049bb133111ebn);
    return z ^ (z >> 31n);
  };
}

/** A seed for a request that gave none. */
export const randomSeed = (): number => randomInt(2 ** 31);

/**
 * Greedy rows: temperature 0, and temperatures so small that 1/temperature overflows float32 (their
 * distribution is the argmax's anyway, and scaling by them would turn the top logit into NaN).
 */
export function isGreedy({ temperature }: SamplingOptions): boolean {
  return !(temperature > 0 && Math.fround(1 / temperature) < Infinity);
}

/** logits [rows, vocab] → one token id per row; `draw(row)` is called once for each row that samples. */
export function sampleRows(logits: Tensor, rows: SamplingOptions[], draw: (row: number) => number): number[] {
  const tokens: number[] = new Array(rows.length);
  const greedy = rows.flatMap((o, r) => (isGreedy(o) ? [r] : []));
  const sampled = rows.flatMap((o, r) => (isGreedy(o) ? [] : [r]));
  const pick = (which: number[]) => (which.length === rows.length ? logits : logits.indexSelect(0, ids(which, [which.length], logits.device)));
  if (greedy.length) {
    const argmax = pick(greedy).argmax(-1).toNumbers();
    greedy.forEach((r, i) => (tokens[r] = argmax[i]));
  }
  if (sampled.length) {
    const options = sampled.map((r) => rows[r]);
    const probs = filteredProbabilities(pick(sampled), options);
    const uniforms = sampled.map((r) => draw(r));
    const drawn = inverseTransform(probs, uniforms);
    sampled.forEach((r, i) => (tokens[r] = drawn[i]));
  }
  return tokens;
}

/** Each row's distribution after its temperature, top-k and top-p: [rows, vocab] float32. */
function filteredProbabilities(logits: Tensor, rows: SamplingOptions[]): Tensor {
  const device = logits.device;
  const column = (values: number[], dtype: 'float32' | 'int64' | 'bool' = 'float32') => tensor(values, [values.length, 1], { dtype, device });
  const vocab = logits.size(-1);
  const raw = logits.float();
  // Shifted by the row's maximum first, so the top logit scales to exactly 0 however small the temperature.
  let scaled = raw.sub(raw.amax(-1, true)).mul(column(rows.map((o) => Math.fround(1 / o.temperature))));
  const topKs = rows.map((o) => (o.topK && o.topK > 0 && o.topK < vocab ? o.topK : vocab));
  const widest = Math.max(...topKs);
  if (topKs.some((k) => k < vocab)) {
    const [kept] = scaled.topk(widest, -1);
    const kth = kept.gather(-1, column(topKs.map((k) => Math.min(k, widest) - 1), 'int64')); // [rows, 1]
    const threshold = where(column(topKs.map((k) => (k < vocab ? 1 : 0)), 'bool'), kth, -Infinity);
    scaled = scaled.maskedFill(scaled.lt(threshold), -Infinity);
  }
  const topPs = rows.map((o) => (o.topP !== undefined && o.topP > 0 && o.topP < 1 ? o.topP : Infinity));
  if (topPs.some((p) => p < Infinity)) {
    const [sorted] = scaled.sort(-1, true);
    const probs = sorted.softmax(-1);
    // A token stays while the tokens ranked above it have not yet reached topP; the first always stays.
    const kept = probs.cumsum(-1).sub(probs).lt(column(topPs)).sum(-1, true); // [rows, 1]
    const smallestKept = sorted.gather(-1, kept.sub(1));
    scaled = scaled.maskedFill(scaled.lt(smallestKept), -Infinity);
  }
  return scaled.softmax(-1);
}

/** The token whose cumulative probability first reaches u × total, per row (a token of probability 0 never does). */
function inverseTransform(probs: Tensor, uniforms: number[]): number[] {
  const cumulative = probs.cumsum(-1); // [rows, vocab]
  const vocab = probs.size(-1);
  const targets = cumulative.slice(-1, vocab - 1, vocab).mul(tensor(uniforms, [uniforms.length, 1], { device: probs.device }));
  return cumulative.lt(targets).sum(-1).clamp(0, vocab - 1).toNumbers();
}
