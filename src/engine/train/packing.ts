// Packs a step's examples into as few rows as possible. Each token keeps its sequence's position
// (restarting at 0) and segment id, so attention never crosses from one example (or one of an example's
// sequences) into another.
import { tensor, type Tensor } from '../tensor/index.js';
import { IGNORE_INDEX, type FramedExample } from '../data/framing.js';

export interface PackedBatch {
  /** [rows, length] */
  ids: Tensor;
  targets: Tensor;
  positions: Tensor;
  segments: Tensor;
  /** Flat indices (into rows × length) of the tokens whose next token is trained. */
  trainedIndices: Tensor;
  predictedTokens: number;
  /** Per example, in the order given, the flat indices of its trained tokens (a completion's log-probability sums over them). */
  trainedByExample: number[][];
}

/** Lays out examples (already truncated to maxLength) with first-fit decreasing into rows of the longest example's length. */
export function packRows<T extends { ids: readonly number[] }>(examples: T[]): T[][] {
  const capacity = Math.max(...examples.map((e) => e.ids.length));
  const rows: { used: number; members: T[] }[] = [];
  for (const example of [...examples].sort((a, b) => b.ids.length - a.ids.length)) {
    const row = rows.find((r) => r.used + example.ids.length <= capacity);
    if (row) {
      row.members.push(example);
      row.used += example.ids.length;
    } else rows.push({ used: example.ids.length, members: [example] });
  }
  return rows.map((r) => r.members);
}

export function truncate(example: FramedExample, maxLength: number): FramedExample {
  if (example.ids.length <= maxLength) return example;
  const targets = example.targets.slice(0, maxLength);
  targets[maxLength - 1] = IGNORE_INDEX; // its next token was cut off
  const starts = example.starts?.filter((s) => s < maxLength);
  return { ids: example.ids.slice(0, maxLength), targets, ...(starts?.length ? { starts } : {}) };
}

export function packBatch(examples: FramedExample[], device = 'cpu'): PackedBatch {
  const rows = packRows(examples.map((example, index) => ({ ...example, index })));
  const length = Math.max(...examples.map((e) => e.ids.length));
  const trainedByExample: number[][] = examples.map(() => []);
  const ids: number[] = [];
  const targets: number[] = [];
  const positions: number[] = [];
  const segments: number[] = [];
  let segment = 0;
  for (const row of rows) {
    let used = 0;
    for (const example of row) {
      example.targets.forEach((t, i) => t !== IGNORE_INDEX && trainedByExample[example.index]!.push(ids.length + i));
      ids.push(...example.ids);
      targets.push(...example.targets);
      // An example framed as several sequences (FramedExample.starts) is several segments.
      const starts = new Set([0, ...(example.starts ?? [])]);
      let start = 0;
      for (let i = 0; i < example.ids.length; i++) {
        if (starts.has(i)) {
          start = i;
          segment++;
        }
        positions.push(i - start);
        segments.push(segment);
      }
      used += example.ids.length;
    }
    const pad = length - used;
    ids.push(...Array(pad).fill(0));
    targets.push(...Array(pad).fill(IGNORE_INDEX));
    positions.push(...Array(pad).fill(0));
    segments.push(...Array(pad).fill(0)); // padding only ever attends to padding
  }
  const trained = targets.flatMap((t, i) => (t === IGNORE_INDEX ? [] : [i]));
  const shape = [rows.length, length];
  const int64 = { dtype: 'int64' as const, device };
  return {
    ids: tensor(ids, shape, int64),
    targets: tensor(targets, shape, int64),
    positions: tensor(positions, shape, int64),
    segments: tensor(segments, shape, int64),
    trainedIndices: tensor(trained, [trained.length], int64),
    predictedTokens: trained.length,
    trainedByExample,
  };
}
