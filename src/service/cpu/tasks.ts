// What the CPU pool's worker threads run (pool.ts): work that would otherwise stall the server's event loop
// for seconds. Reading and parsing a dataset, framing every example with the base model's tokenizer for its
// statistics, and tokenizing a long prompt. Each task answers { ok } or { failure }: errors cross the thread
// boundary as plain data, and pool.ts turns them back into the service's errors.
import { read as readCallback } from 'node:fs';
import { promisify } from 'node:util';
import {
  DatasetError, TooManyExamplesError, parseExamples, parseJsonlLines, utf8Lines, type Dataset, type ParseOptions,
} from '../../engine/data/examples.js';
import { Tokenizer } from '../../engine/tokenizer/tokenizer.js';
import { ServiceError, type CanonicalStatus, type FieldViolation } from '../errors.js';
import { promptTokenIds, textTokenIds, type PromptFormat, type PromptText } from '../serving/prompt.js';
import { dataStatsOf } from '../tuning/data-stats.js';
import type { DataStats } from '../tuning/tuned-model.js';

export interface DatasetTask {
  /**
   * A file descriptor the server's thread opened and vetted (it closes it afterwards), read here at most
   * maxBytes; or the examples of a request body.
   */
  source: { fd: number; maxBytes: number } | { examples: unknown[] };
  parse: ParseOptions;
  /**
   * Frame every example with this base model's tokenizer for the data statistics, refusing tokens the model
   * cannot embed (from vocabSize on); `field` is named in errors.
   */
  stats?: { baseDir: string; vocabSize: number; field: string };
  /** Send the parsed examples back (as JSON, which is how the store keeps them); validateOnly does not need them. */
  keepExamples: boolean;
}

export interface PreparedDataset {
  /** Examples kept (within the length limits). */
  exampleCount: number;
  examplesJson?: string;
  stats?: DataStats;
}

export interface PromptTask extends PromptText {
  baseDir: string;
  format: PromptFormat;
}

export interface TextsTask {
  baseDir: string;
  texts: string[];
}

export type TaskFailure =
  | { kind: 'dataset'; message: string; tooManyExamples?: number }
  | { kind: 'fileTooLarge' }
  | { kind: 'service'; status: CanonicalStatus; message: string; fieldViolations: FieldViolation[] };

export type TaskOutcome<T> = { ok: T; failure?: undefined } | { failure: TaskFailure };

export async function prepareDataset(task: DatasetTask): Promise<TaskOutcome<PreparedDataset>> {
  return outcome(async () => {
    const dataset = 'examples' in task.source ? parseExamples(task.source.examples, task.parse) : await readJsonl(task.source, task.parse);
    const stats = task.stats && dataStatsOf(dataset, await tokenizer(task.stats.baseDir), task.stats.field, task.stats.vocabSize);
    return {
      exampleCount: dataset.examples.length,
      examplesJson: task.keepExamples ? JSON.stringify(dataset.examples) : undefined,
      stats,
    };
  });
}

export async function tokenizePrompt(task: PromptTask): Promise<TaskOutcome<number[]>> {
  return outcome(async () => promptTokenIds(await tokenizer(task.baseDir), task.format, task));
}

/** Each text's token ids on its own, without special tokens (computeTokens). */
export async function tokenizeTexts(task: TextsTask): Promise<TaskOutcome<number[][]>> {
  return outcome(async () => textTokenIds(await tokenizer(task.baseDir), task.texts));
}

class FileTooLarge extends Error {}

const read = promisify(readCallback);

function readJsonl({ fd, maxBytes }: { fd: number; maxBytes: number }, parse: ParseOptions): Promise<Dataset> {
  return parseJsonlLines(utf8Lines(chunksOf(fd, maxBytes)), parse);
}

/** The file's bytes from offset 0 (pread: the descriptor stays its owner's, position and all), at most maxBytes. */
async function* chunksOf(fd: number, maxBytes: number): AsyncGenerator<Uint8Array> {
  let position = 0;
  for (;;) {
    const buffer = Buffer.allocUnsafe(1 << 20);
    const { bytesRead } = await read(fd, buffer, 0, buffer.length, position);
    if (bytesRead === 0) return;
    position += bytesRead;
    if (position > maxBytes) throw new FileTooLarge();
    yield buffer.subarray(0, bytesRead);
  }
}

/** Tokenizers by base model directory, loaded once per thread (a handful of base models at most). */
const tokenizers = new Map<string, Promise<Tokenizer>>();

function tokenizer(baseDir: string): Promise<Tokenizer> {
  let loaded = tokenizers.get(baseDir);
  if (!loaded) {
    loaded = Tokenizer.load(baseDir);
    loaded.catch(() => tokenizers.delete(baseDir));
    tokenizers.set(baseDir, loaded);
  }
  return loaded;
}

async function outcome<T>(work: () => Promise<T>): Promise<TaskOutcome<T>> {
  try {
    return { ok: await work() };
  } catch (error) {
    if (error instanceof FileTooLarge) return { failure: { kind: 'fileTooLarge' } };
    if (error instanceof TooManyExamplesError) return { failure: { kind: 'dataset', message: error.message, tooManyExamples: error.limit } };
    if (error instanceof DatasetError) return { failure: { kind: 'dataset', message: error.message } };
    if (error instanceof ServiceError) {
      return { failure: { kind: 'service', status: error.status, message: error.message, fieldViolations: error.fieldViolations } };
    }
    throw error; // a bug: the pool rejects with it, and the caller answers INTERNAL
  }
}
