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
  const file = path.join(dir, tuningRecordFile);
  if (!existsSync(file)) return { adapter }; // a PEFT adapter from elsewhere
  return { adapter, record: parseRecord(readFileSync(file, 'utf8')) };
}

/** loadTunedAdapter with the files read off the event loop. */
export async function loadTunedAdapterAsync(dir: string, model: Transformer): Promise<{ adapter: LoraAdapter; record?: TuningRecord }> {
  const [adapter, record] = await Promise.all([loadAdapterAsync(dir, model), readTuningRecord(dir)]);
  return { adapter, record };
}

/** attune.json alone (how prompts are framed), or undefined for a PEFT adapter from elsewhere. */
export async function readTuningRecord(dir: string): Promise<TuningRecord | undefined> {
  const file = path.join(dir, tuningRecordFile);
  if (!existsSync(file)) return undefined;
  return parseRecord(await readFile(file, 'utf8'));
}

function parseRecord(text: string): TuningRecord {
  const raw = JSON.parse(text);
  return { ...raw, framing: parseFraming(raw.framing) };
}
