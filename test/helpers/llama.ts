// Real llama.cpp for the export tests: node-llama-cpp's prebuilt CPU binaries (from npm, never built or
// downloaded at run time). Greedy decoding of a prompt, tokenized by llama.cpp itself from the GGUF's
// vocabulary, with an optional LoRA adapter applied; and Attune's greedy choices with their margins to compare.
import { getLlama, LlamaLogLevel, type Llama, type LlamaModel, type Token } from 'node-llama-cpp';
import { ids as idTensor, noGrad, tidy } from '../../src/engine/tensor/index.js';
import type { Transformer } from '../../src/engine/model/transformer.js';

let shared: Promise<Llama> | undefined;

export function llamaCpp(): Promise<Llama> {
  // One thread: these models are tiny, and the default thread pool can stall on a busy 2-core machine.
  shared ??= getLlama({ gpu: false, build: 'never', usePrebuiltBinaries: true, skipDownload: true, logLevel: LlamaLogLevel.error, maxThreads: 1 });
  return shared;
}

export interface LlamaAnswer {
  /** The prompt's token ids as llama.cpp tokenized it (with BOS when the GGUF asks for it). */
  promptIds: number[];
  /** The generated text before the stop text. */
  text: string;
}

export interface LlamaSession {
  model: LlamaModel;
  /** Greedy continuation of text until stop (or EOS, or maxTokens). */
  complete(text: string, options: { stop?: string; maxTokens?: number }): Promise<LlamaAnswer>;
  /** llama.cpp's token ids for text (with BOS when the GGUF asks for it). */
  tokenize(text: string): number[];
  /** Greedy continuation of token ids: up to count ids, ending before an end-of-generation token. */
  continueIds(ids: number[], count: number): Promise<number[]>;
  close(): Promise<void>;
}

export async function openLlamaSession(modelPath: string, loraPath?: string): Promise<LlamaSession> {
  const llama = await llamaCpp();
  const model = await llama.loadModel({ modelPath });
  const context = await model.createContext({
    contextSize: 512,
    threads: 1,
    // llama.cpp keeps its KV cache in f16 by default; f32 compares the export, not the cache's rounding.
    experimentalKvCacheKeyType: 'F32',
    experimentalKvCacheValueType: 'F32',
    ...(loraPath ? { lora: { adapters: [{ filePath: loraPath, scale: 1 }] } } : {}),
  });
  const sequence = context.getSequence();
  const tokenize = (text: string): Token[] => {
    const bos = model.tokens.shouldPrependBosToken && model.tokens.bos !== null ? [model.tokens.bos] : [];
    return [...bos, ...model.tokenize(text, false)];
  };
  return {
    model,
    tokenize: (text) => tokenize(text).map(Number),
    async continueIds(ids, count) {
      const generated: number[] = [];
      for await (const token of sequence.evaluate(ids as Token[], { temperature: 0 })) {
        if (model.isEogToken(token)) break;
        generated.push(token);
        if (generated.length >= count) break;
      }
      await sequence.clearHistory();
      return generated;
    },
    async complete(text, { stop, maxTokens = 64 }) {
      const promptTokens = tokenize(text);
      const generated: Token[] = [];
      let answer = '';
      for await (const token of sequence.evaluate(promptTokens, { temperature: 0 })) {
        if (model.isEogToken(token)) break;
        generated.push(token);
        answer = model.detokenize(generated);
        if ((stop && answer.includes(stop)) || generated.length >= maxTokens) break;
      }
      await sequence.clearHistory();
      return { promptIds: promptTokens.map(Number), text: stop && answer.includes(stop) ? answer.slice(0, answer.indexOf(stop)) : answer };
    },
    async close() {
      await context.dispose();
      await model.dispose();
    },
  };
}

export interface GreedyStep {
  id: number;
  /** Top-1 minus top-2 logit: how clear the greedy choice was. */
  margin: number;
  top: number;
}

/** Attune's greedy continuation of ids, with each choice's margin (full forward passes, no cache). */
export function attuneGreedySteps(transformer: Transformer, ids: number[], count: number, stopIds: number[]): GreedyStep[] {
  const steps: GreedyStep[] = [];
  const sequence = [...ids];
  for (let i = 0; i < count; i++) {
    const logits = noGrad(() =>
      tidy(() => transformer.logits(transformer.hiddenStates(idTensor(sequence, [1, sequence.length])).select(1, sequence.length - 1)).flatten().toFloat32Array()),
    );
    let best = 0;
    for (let v = 1; v < logits.length; v++) if (logits[v]! > logits[best]!) best = v;
    let second = -Infinity;
    for (let v = 0; v < logits.length; v++) if (v !== best) second = Math.max(second, logits[v]!);
    if (stopIds.includes(best)) break;
    steps.push({ id: best, margin: logits[best]! - second, top: logits[best]! });
    sequence.push(best);
  }
  return steps;
}

/**
 * Asserts llama.cpp's greedy ids equal Attune's up to the first near tie: where the top two logits are within
 * 1e-3 of the top one, the two engines' rounding (llama.cpp's kernels, f16 lookup tables) may pick either,
 * and everything after may differ. Returns how many ids were compared.
 */
export function assertSameGreedy(llamaIds: number[], steps: GreedyStep[], label: string): number {
  let compared = 0;
  for (const [i, step] of steps.entries()) {
    if (step.margin < 1e-3 * Math.max(1, Math.abs(step.top))) break;
    if (llamaIds[i] !== step.id) throw new Error(`${label}: token ${i} is ${llamaIds[i]} in llama.cpp, ${step.id} in Attune (margin ${step.margin.toFixed(4)}); llama.cpp ${JSON.stringify(llamaIds)}, Attune ${JSON.stringify(steps.map((s) => s.id))}`);
    compared++;
  }
  if (compared === steps.length && llamaIds.length !== steps.length) throw new Error(`${label}: llama.cpp gave ${llamaIds.length} ids, Attune ${steps.length}`);
  return compared;
}
