// Real llama.cpp for the export tests: node-llama-cpp's prebuilt CPU binaries (from npm, never built or
// downloaded at run time). Greedy decoding of a prompt, tokenized by llama.cpp itself from the GGUF's
// vocabulary, with an optional LoRA adapter applied.
import { getLlama, LlamaLogLevel, type Llama, type LlamaModel, type Token } from 'node-llama-cpp';

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
