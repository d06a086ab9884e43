// Statistics of a training set as Vertex reports them (SupervisedTuningDataStats, vertex-api.md §2.5),
// computed from the exact token ids training will use: each example is framed as the worker frames it.
import type { Dataset } from '../../engine/data/examples.js';
import { checkEmbeddable, chooseFraming, frameCompletion, frameExample, FramingError, IGNORE_INDEX, type FramedExample } from '../../engine/data/framing.js';
import { charCount } from '../../engine/data/limits.js';
import type { Tokenizer } from '../../engine/tokenizer/tokenizer.js';
import { invalidArgument } from '../errors.js';
import type { DataStats, Distribution } from './tuned-model.js';

const histogramBuckets = 10;

/**
 * `field` names the dataset in errors; a framing problem, or a token the model cannot embed (ids from
 * `vocabSize` on), names the example's line.
 */
export function dataStatsOf(dataset: Dataset, tokenizer: Tokenizer, field: string, vocabSize = Infinity): DataStats {
  const { examples, positions, skipped } = dataset;
  const framing = chooseFraming(tokenizer, examples);
  const input: number[] = [];
  const output: number[] = [];
  let longest = 0;
  let characterCount = 0;
  examples.forEach((example, i) => {
    let framed: FramedExample[];
    try {
      framed = [frameExample(tokenizer, framing, example)];
      // A preference example's rejected completion is framed too: billed tokens are both completions and the prompt twice.
      if (example.rejected !== undefined) {
        const prompt = { systemInstruction: example.systemInstruction, turns: example.turns.slice(0, -1) };
        framed.push(frameCompletion(tokenizer, framing, prompt, example.rejected));
      }
      for (const f of framed) checkEmbeddable(f.ids, vocabSize, tokenizer);
    } catch (error) {
      if (!(error instanceof FramingError)) throw error;
      const { line, index } = positions[i]!;
      throw invalidArgument(`${line !== undefined ? `line ${line}` : `example ${index + 1}`}: ${error.message}`, field);
    }
    const trained = framed.map((f) => f.targets.filter((t) => t !== IGNORE_INDEX).length);
    input.push(framed.reduce((n, f, i) => n + f.ids.length - trained[i]!, 0));
    output.push(sum(trained));
    longest = Math.max(longest, ...framed.map((f) => f.ids.length));
    characterCount += charCount(example.systemInstruction ?? '') + example.turns.reduce((n, t) => n + charCount(t.text), 0) + charCount(example.rejected ?? '');
  });
  return {
    exampleCount: examples.length + skipped.length,
    characterCount,
    tokenCount: sum(input) + sum(output),
    inputTokens: distributionOf(input),
    outputTokens: distributionOf(output),
    messagesPerExample: distributionOf(examples.map((e) => e.turns.length)),
    sample: examples[0]?.turns ?? [],
    dropped: skipped.map((s) => ({ index: s.index + 1, reason: s.reason })),
    longestExampleTokens: longest,
  };
}

const sum = (values: number[]) => values.reduce((a, b) => a + b, 0);

/** Percentiles by the nearest rank, as the official token-count notebook computes them. */
export function distributionOf(values: number[]): Distribution {
  if (values.length === 0) return { sum: 0, min: 0, max: 0, mean: 0, median: 0, p5: 0, p95: 0, buckets: [] };
  const sorted = [...values].sort((a, b) => a - b);
  const at = (q: number) => sorted[Math.round(q * (sorted.length - 1))]!;
  const min = sorted[0]!;
  const max = sorted.at(-1)!;
  const mid = sorted.length >> 1;
  const median = sorted.length % 2 ? sorted[mid]! : (sorted[mid - 1]! + sorted[mid]!) / 2;
  return { sum: sum(sorted), min, max, mean: sum(sorted) / sorted.length, median, p5: at(0.05), p95: at(0.95), buckets: histogram(sorted, min, max) };
}

function histogram(sorted: number[], min: number, max: number): Distribution['buckets'] {
  const width = Math.max(1, Math.ceil((max - min + 1) / histogramBuckets));
  const buckets: Distribution['buckets'] = [];
  for (let left = min; left <= max; left += width) {
    const right = left + width;
    buckets.push({ count: sorted.filter((v) => v >= left && v < right).length, left, right });
  }
  return buckets;
}
