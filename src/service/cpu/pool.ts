// CPU-heavy request work off the event loop: a small pool of worker threads (piscina) runs tasks.ts, so that
// tokenizing a 10 MB dataset or a 40,000-character prompt never stalls other requests (or /healthz). Threads
// start on first use and end when idle; each keeps its own tokenizers.
import { availableParallelism } from 'node:os';
import { Piscina } from 'piscina';
import type { FileHandle } from 'node:fs/promises';
import type { ParseOptions } from '../../engine/data/examples.js';
import { ServiceError } from '../errors.js';
import { datasetTooLarge } from '../tuning/dataset-files.js';
import type { PromptFormat, PromptText } from '../serving/prompt.js';
import type { DatasetTask, PreparedDataset, PromptTask, TaskFailure, TaskOutcome, TextsTask } from './tasks.js';

export const cpuPoolDefaults = {
  /** Threads at most: half the cores (the other half trains and serves), 1 or 2 (each holds its own tokenizers). */
  maxThreads: Math.max(1, Math.min(2, Math.floor(availableParallelism() / 2))),
  /** A thread idle this long ends, freeing its tokenizers. */
  idleTimeoutMs: 60_000,
  /** Prompts longer than this (in UTF-16 units) are tokenized in the pool; shorter ones cost less than the trip. */
  inlinePromptChars: 4_096,
} as const;

/** Where a dataset comes from, and how its errors are named. */
export type DatasetInput = { file: FileHandle; uri: string; maxBytes: number } | { examples: unknown[] };

export interface DatasetRequest {
  input: DatasetInput;
  parse: ParseOptions;
  stats?: { baseDir: string; vocabSize: number; field: string };
  keepExamples: boolean;
}

export class CpuPool {
  private readonly pool = new Piscina({
    filename: new URL('./tasks.js', import.meta.url).href,
    minThreads: 0,
    maxThreads: cpuPoolDefaults.maxThreads,
    idleTimeout: cpuPoolDefaults.idleTimeoutMs,
  });

  /** Parses a dataset (and frames it for statistics) in a worker thread; dataset errors come back as DatasetFailure. */
  async prepareDataset({ input, parse, stats, keepExamples }: DatasetRequest): Promise<PreparedDataset> {
    const source: DatasetTask['source'] = 'file' in input ? { fd: input.file.fd, maxBytes: input.maxBytes } : { examples: input.examples };
    const task: DatasetTask = { source, parse, stats, keepExamples };
    const outcome = (await this.pool.run(task, { name: 'prepareDataset' })) as TaskOutcome<PreparedDataset>;
    if (outcome.failure) throw failureError(outcome.failure, 'file' in input ? input : undefined);
    return outcome.ok;
  }

  /** A prompt's token ids, framed as generation frames it, tokenized in a worker thread. */
  async promptTokenIds(baseDir: string, format: PromptFormat, prompt: PromptText): Promise<number[]> {
    const task: PromptTask = { baseDir, format, systemInstruction: prompt.systemInstruction, turns: prompt.turns };
    const outcome = (await this.pool.run(task, { name: 'tokenizePrompt' })) as TaskOutcome<number[]>;
    if (outcome.failure) throw failureError(outcome.failure);
    return outcome.ok;
  }

  /** Each text's token ids on its own, tokenized in a worker thread. */
  async textTokenIds(baseDir: string, texts: string[]): Promise<number[][]> {
    const task: TextsTask = { baseDir, texts };
    const outcome = (await this.pool.run(task, { name: 'tokenizeTexts' })) as TaskOutcome<number[][]>;
    if (outcome.failure) throw failureError(outcome.failure);
    return outcome.ok;
  }

  close(): Promise<void> {
    return this.pool.destroy();
  }
}

/** A dataset's own problem, as the engine reported it from the worker (the caller names the dataset). */
export class DatasetFailure extends Error {
  constructor(
    message: string,
    /** Set when the dataset has more examples than ParseOptions.maxExamples. */
    readonly tooManyExamples?: number,
  ) {
    super(message);
    this.name = 'DatasetFailure';
  }
}

function failureError(failure: TaskFailure, file?: { uri: string; maxBytes: number }): Error {
  switch (failure.kind) {
    case 'dataset':
      return new DatasetFailure(failure.message, failure.tooManyExamples);
    case 'fileTooLarge':
      return datasetTooLarge(file!.uri, file!.maxBytes);
    case 'service':
      return new ServiceError(failure.status, failure.message, failure.fieldViolations);
  }
}
