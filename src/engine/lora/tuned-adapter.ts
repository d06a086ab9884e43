// A tuned adapter directory: the PEFT files plus attune.json, which records the base model and how
// prompts were framed in training, so that generation frames them the same way.
import { existsSync, readFileSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { parseFraming, type Framing } from '../data/framing.js';
import type { Transformer } from '../model/transformer.js';
import type { LoraAdapter } from './lora.js';
import { loadAdapter, loadAdapterAsync, saveAdapter, writeJson } from './peft.js';

export const tuningRecordFile = 'attune.json';

export interface TuningRecord {
  baseModel: string;
  framing: Framing;
  /** Free-form facts about the run (hyperparameters, steps, final loss). */
  training?: Record<string, unknown>;
}

export function saveTunedAdapter(dir: string, adapter: LoraAdapter, record: TuningRecord): void {
  saveAdapter(dir, adapter, record.baseModel);
  writeJson(path.join(dir, tuningRecordFile), record);
}

export function loadTunedAdapter(dir: string, model: Transformer): { adapter: LoraAdapter; record?: TuningRecord } {
  const adapter = loadAdapter(dir, model);
  return { adapter, record: readTuningRecord(dir) };
}

/** loadTunedAdapter with the files read off the event loop. */
export async function loadTunedAdapterAsync(dir: string, model: Transformer): Promise<{ adapter: LoraAdapter; record?: TuningRecord }> {
  const [adapter, record] = await Promise.all([loadAdapterAsync(dir, model), readTuningRecordAsync(dir)]);
  return { adapter, record };
}

/** The adapter's attune.json, or undefined for a PEFT adapter from elsewhere. */
export function readTuningRecord(dir: string): TuningRecord | undefined {
  const file = path.join(dir, tuningRecordFile);
  return existsSync(file) ? parseRecord(readFileSync(file, 'utf8'), file) : undefined;
}

/** readTuningRecord with the file read off the event loop. */
export async function readTuningRecordAsync(dir: string): Promise<TuningRecord | undefined> {
  const file = path.join(dir, tuningRecordFile);
  return existsSync(file) ? parseRecord(await readFile(file, 'utf8'), file) : undefined;
}

function parseRecord(text: string, file: string): TuningRecord {
  let raw: Record<string, any>;
  try {
    raw = JSON.parse(text);
  } catch (error) {
    throw new Error(`${file} is not valid JSON: ${(error as Error).message}`);
  }
  return { ...raw, baseModel: String(raw.baseModel ?? ''), framing: parseFraming(raw.framing) };
}
