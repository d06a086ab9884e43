// Autoregressive generation with a KV cache: candidates decode side by side as rows of one batch,
// text streams out as it is decided, and stop sequences are held back until they can be ruled out.
import { ids, manualSeed, noGrad, tidy } from '../tensor/index.js';
import type { Transformer } from '../model/transformer.js';
import { KvCache } from '../model/kv-cache.js';
import type { Tokenizer } from '../tokenizer/tokenizer.js';
import { TextStreamer } from '../tokenizer/streamer.js';
import { sampleNext, type SamplingOptions } from './sampling.js';

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
  seed?: number;
  signal?: AbortSignal;
}

export type FinishReason = 'STOP' | 'MAX_TOKENS';

export interface Candidate {
  text: string;
  tokenIds: number[];
  finishReason: FinishReason;
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

class CandidateState {
  readonly tokenIds: number[] = [];
  text = '';
  emitted = 0;
  finishReason: FinishReason | null = null;
  readonly streamer: TextStreamer;

  constructor(tokenizer: Tokenizer, promptTail: number[]) {
    this.streamer = new TextStreamer(tokenizer, { contextIds: promptTail });
  }
}

export async function* streamGenerate(
  model: Transformer,
  tokenizer: Tokenizer,
  promptIds: number[],
  options: GenerateOptions = {},
): AsyncGenerator<TextDelta, Generation> {
  const temperature = options.temperature ?? generationDefaults.temperature;
  const count = options.candidateCount ?? generationDefaults.candidateCount;
  const stopSequences = (options.stopSequences ?? []).filter((s) => s.length > 0);
  const stopTokens = new Set(options.stopTokenIds ?? tokenizer.eosTokenIds);
  const { config } = model;
  if (promptIds.length === 0) throw new Error('the prompt has no tokens');
  if (promptIds.length >= config.maxPositions) {
    throw new Error(`the prompt has ${promptIds.length} tokens; the model's context holds ${config.maxPositions}`);
  }
  const maxOutput = Math.min(options.maxOutputTokens ?? generationDefaults.maxOutputTokens, config.maxPositions - promptIds.length);
  if (options.seed !== undefined) manualSeed(options.seed);

  const states = Array.from({ length: count }, () => new CandidateState(tokenizer, promptIds.slice(-4)));
  const cache = new KvCache(config.numLayers, count, config.numKvHeads, promptIds.length + maxOutput, config.headDim, {
    dtype: model.weights.embed.dtype,
    device: model.device,
  });
  const sampling = { temperature, topK: options.topK, topP: options.topP };
  try {
    let tokens = Array.from({ length: count }, () => promptIds);
    for (let produced = 0; produced < maxOutput; produced++) {
      const next = nextTokens(model, tokens, cache, sampling);
      for (const [c, state] of states.entries()) {
        if (state.finishReason) continue;
        const delta = advance(state, next[c], stopTokens, stopSequences);
        if (delta) yield { candidate: c, text: delta };
      }
      if (states.every((s) => s.finishReason) || options.signal?.aborted) break;
      tokens = next.map((t) => [t]);
      await new Promise<void>((resolve) => setImmediate(resolve)); // lets other requests and cancellation in
    }
    for (const [c, state] of states.entries()) {
      if (state.finishReason) continue;
      state.finishReason = 'MAX_TOKENS';
      state.text += state.streamer.flush();
      const rest = release(state, state.text.length);
      if (rest) yield { candidate: c, text: rest };
    }
  } finally {
    cache.dispose();
  }
  const candidates = states.map((s) => ({ text: s.text, tokenIds: s.tokenIds, finishReason: s.finishReason ?? 'MAX_TOKENS' }));
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
function nextTokens(model: Transformer, rows: number[][], cache: KvCache, sampling: SamplingOptions): number[] {
  return noGrad(() =>
    tidy(() => {
      const hidden = model.hiddenStates(ids(rows.flat(), [rows.length, rows[0].length], model.device), { cache });
      const logits = model.logits(hidden.select(1, hidden.size(1) - 1)); // only the last position matters
      return sampleNext(logits, sampling).toNumbers();
    }),
  );
}

/** Adds one token to a candidate; returns the text that is now safe to show. */
function advance(state: CandidateState, token: number, stopTokens: Set<number>, stopSequences: string[]): string {
  if (stopTokens.has(token)) {
    state.finishReason = 'STOP';
    return release(state, state.text.length);
  }
  state.tokenIds.push(token);
  state.text += state.streamer.push(token);
  for (const stop of stopSequences) {
    const at = state.text.indexOf(stop);
    if (at >= 0) {
      state.text = state.text.slice(0, at);
      state.finishReason = 'STOP';
      return release(state, at);
    }
  }
  return release(state, state.text.length - heldBack(state.text, stopSequences));
}

function release(state: CandidateState, upTo: number): string {
  const delta = state.text.slice(state.emitted, upTo);
  state.emitted = Math.max(state.emitted, upTo);
  return delta;
}

/** Length of the longest end of text that could still grow into a stop sequence. */
function heldBack(text: string, stopSequences: string[]): number {
  let hold = 0;
  for (const stop of stopSequences) {
    for (let k = Math.min(stop.length - 1, text.length); k > hold; k--) {
      if (text.endsWith(stop.slice(0, k))) {
        hold = k;
        break;
      }
    }
  }
  return hold;
}
