// Which base model a tuned adapter needs: --base when given, else the base its attune.json records (or,
// for a PEFT adapter from elsewhere, adapter_config.json's base_model_name_or_path when that is a directory).
// A run that continues an adapter must train on the base it was tuned on.
import { existsSync, readFileSync, realpathSync } from 'node:fs';
import path from 'node:path';
import { adapterFiles, checkAdapterDir } from '../engine/lora/peft.js';
import { readTuningRecord } from '../engine/lora/tuned-adapter.js';
import { UsageError } from './usage-error.js';

export function recordedBase(adapterDir: string): string | undefined {
  const record = readTuningRecord(adapterDir);
  if (record?.baseModel) return record.baseModel;
  const configFile = path.join(adapterDir, adapterFiles.config);
  if (!existsSync(configFile)) return undefined;
  try {
    const named = JSON.parse(readFileSync(configFile, 'utf8')).base_model_name_or_path;
    return typeof named === 'string' && named ? named : undefined;
  } catch {
    return undefined;
  }
}

export function baseDirFor(adapterDir: string, explicit: string | undefined): string {
  if (!existsSync(adapterDir)) throw new UsageError(`adapter not found: ${adapterDir}`);
  checkAdapterDir(adapterDir);
  if (explicit) return explicit;
  const recorded = recordedBase(adapterDir);
  if (!recorded) throw new UsageError(`${adapterDir} does not record its base model; pass --base <model dir>`);
  if (!existsSync(path.join(recorded, 'config.json'))) {
    throw new UsageError(`${adapterDir} was tuned on the base model ${recorded}, which is not here; pass --base <model dir> with a copy of it`);
  }
  return recorded;
}

/**
 * The base model a continued run (`attune tune --from`) trains on: the adapter's own. --base may name it (or stand in
 * for it when the recorded base is not on this machine), but not another model that is here.
 */
export function continuedBaseDir(adapterDir: string, explicit: string | undefined): string {
  const baseDir = baseDirFor(adapterDir, explicit);
  const recorded = recordedBase(adapterDir);
  const here = (dir: string) => existsSync(path.join(dir, 'config.json'));
  if (explicit && recorded && here(recorded) && here(explicit) && realpathSync(recorded) !== realpathSync(explicit)) {
    throw new UsageError(`--from ${adapterDir} was tuned on the base model ${recorded}, not --base ${explicit}; a run continues its adapter on the same base (leave --base out)`);
  }
  return baseDir;
}

