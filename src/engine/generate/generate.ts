// Autoregressive generation with a KV cache: candidates decode side by side as rows of one batch,
// text streams out as it is decided, and stop sequences are held back until they can be ruled out.
// Serving many prompts at once goes through batch-decoder.ts instead; both sample alike (sampling.ts).
import { ids, noGrad, tidy } from '../tensor/index.js';
import type { Transformer } from '../model/transformer.js';
import { KvCache } from '../model/kv-cache.js';
import type { Tokenizer } from '../tokenizer/tokenizer.js';
import { randomSeed, sampleRows, uniformStream, type SamplingOptions, type UniformStream } from './sampling.js';
import { CandidateText, effectiveStops, type Candidate, type FinishReason } from './candidate.js';

export type { Candidate, FinishReason };

export const generationDefaults = {
  temperature: 0,
  candidateCount: 1,
  maxOutputTokens: 256,
} as const;

export interface GenerateOptions {
  /** 0 means greedy. */
  temperature?: number;
  topP?: number;
  topK?: number;
  candidateCount?: number;
  maxOutputTokens?: number;
  /** Text that ends a candidate; it is not part of the output. */
  stopSequences?: string[];
  /** Tokens that end a candidate; the tokenizer's EOS tokens by default. */
  stopTokenIds?: number[];
  /** Candidate c samples from uniformStream(seed, c); without a seed, from a random one. */
  seed?: number;
  signal?: AbortSignal;
}

export interface Generation {
  candidates: Candidate[];
  promptTokenCount: number;
  /** Generated tokens over all candidates. */
  candidatesTokenCount: number;
}

/** A piece of new text for one candidate. */
export interface TextDelta {
  candidate: number;
  text: string;
}

/** The most tokens a prompt may still generate within the model's context. */
export function outputLimit(model: Transformer, promptIds: number[], maxOutputTokens: number = generationDefaults.maxOutputTokens): number {
  const { maxPositions } = model.config;
  if (promptIds.length === 0) throw new Error('the prompt has no tokens');
  if (promptIds.length >= maxPositions) {
    throw new Error(`the prompt has ${promptIds.length} tokens; the model's context holds ${maxPositions}`);
  }
  return Math.min(maxOutputTokens, maxPositions - promptIds.length);
}

export async function* streamGenerate(
  model: Transformer,
  tokenizer: Tokenizer,
  promptIds: number[],
  options: GenerateOptions = {},
): AsyncGenerator<TextDelta, Generation> {
  const count = options.candidateCount ?? generationDefaults.candidateCount;
  const stopSequences = effectiveStops(options.stopSequences);
  const stopTokens = new Set(options.stopTokenIds ?? tokenizer.eosTokenIds);
  const { config } = model;
  const maxOutput = outputLimit(model, promptIds, options.maxOutputTokens);
  const seed = options.seed ?? randomSeed();
  const streams = Array.from({ length: count }, (_, c) => uniformStream(seed, c));

  const states = Array.from({ length: count }, () => new CandidateText(tokenizer, promptIds, stopTokens, stopSequences));
  const cache = new KvCache(config.numLayers, count, config.numKvHeads, promptIds.length + maxOutput, config.headDim, {
    dtype: model.weights.embed.dtype,
    device: model.device,
  });
  const sampling = { temperature: options.temperature ?? generationDefaults.temperature, topK: options.topK, topP: options.topP };
  try {
    let tokens = Array.from({ length: count }, () => promptIds);
    for (let produced = 0; produced < maxOutput; produced++) {
      const next = nextTokens(model, tokens, cache, sampling, streams);
      for (const [c, state] of states.entries()) {
        if (state.finishReason) continue;
        const delta = state.push(next[c]);
        if (delta) yield { candidate: c, text: delta };
      }
      if (states.every((s) => s.finishReason) || options.signal?.aborted) break;
      tokens = next.map((t) => [t]);
      await new Promise<void>((resolve) => setImmediate(resolve)); // lets other requests and cancellation in
    }
    for (const [c, state] of states.entries()) {
      if (state.finishReason) continue;
      const rest = state.finishAtLimit();
      if (rest) yield { candidate: c, text: rest };
    }
  } finally {
    cache.dispose();
  }
  const candidates = states.map((s) => s.result());
  return {
    candidates,
    promptTokenCount: promptIds.length,
    candidatesTokenCount: candidates.reduce((n, c) => n + c.tokenIds.length, 0),
  };
}

export async function generate(
  model: Transformer,
  tokenizer: Tokenizer,
  promptIds: number[],
  options: GenerateOptions = {},
): Promise<Generation> {
  const stream = streamGenerate(model, tokenizer, promptIds, options);
  for (;;) {
    const step = await stream.next();
    if (step.done) return step.value;
  }
}

/** Runs each row's new tokens through the model and samples one more token per row. */
function nextTokens(model: Transformer, rows: number[][], cache: KvCache, sampling: SamplingOptions, streams: UniformStream[]): number[] {
  return noGrad(() =>
    tidy(() => {
      const hidden = model.hiddenStates(ids(rows.flat(), [rows.length, rows[0].length], model.device), { cache });
      const logits = model.logits(hidden.select(1, hidden.size(1) - 1)); // only the last position matters
      return sampleRows(logits, rows.map(() => sampling), (row) => streams[row]());
    }),
  );
}
