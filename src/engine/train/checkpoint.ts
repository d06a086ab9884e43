// Checkpoints of a run in progress: the adapter, the optimizer's moments and the metrics so far.
// state.json is written last and names the tensor file, so a crash mid-write leaves the previous
// checkpoint intact. Both files are written durably (temporary file, fsync, rename, directory fsync), so
// a power loss cannot leave a state.json that names a tensor file not yet on disk.
import { existsSync, readFileSync, mkdirSync, rmSync, readdirSync } from 'node:fs';
import path from 'node:path';
import { replaceFileDurably, writeFileDurably } from '../io/durable.js';
import { noGrad, tidy, type Tensor } from '../tensor/index.js';
import { readSafetensors, writeSafetensors } from '../io/safetensors.js';
import type { LoraAdapter } from '../lora/lora.js';
import type { AdamW } from './optimizer.js';
import type { EvalMetrics, StepMetrics } from './trainer.js';

interface CheckpointState {
  completedSteps: number;
  tensors: string;
  history: StepMetrics[];
  evaluations: EvalMetrics[];
}

export function saveCheckpoint(
  dir: string,
  adapter: LoraAdapter,
  optimizer: AdamW,
  progress: { completedSteps: number; history: StepMetrics[]; evaluations: EvalMetrics[] },
): void {
  mkdirSync(dir, { recursive: true });
  const tensorsFile = `checkpoint-${progress.completedSteps}.safetensors`;
  replaceFileDurably(path.join(dir, tensorsFile), (temporary) => writeSafetensors(temporary, namedTensors(adapter, optimizer)));
  const state: CheckpointState = { ...progress, tensors: tensorsFile };
  writeFileDurably(path.join(dir, 'state.json'), JSON.stringify(state));
  for (const file of readdirSync(dir)) {
    if (file.startsWith('checkpoint-') && file !== tensorsFile) rmSync(path.join(dir, file), { force: true });
  }
}

/** Whether dir holds a checkpoint a run would resume from. */
export function hasCheckpoint(dir: string): boolean {
  return existsSync(path.join(dir, 'state.json'));
}

/** Restores adapter and optimizer from dir; returns the progress to resume from, or null when there is none. */
export function loadCheckpoint(
  dir: string,
  adapter: LoraAdapter,
  optimizer: AdamW,
): Pick<CheckpointState, 'completedSteps' | 'history' | 'evaluations'> | null {
  const stateFile = path.join(dir, 'state.json');
  if (!existsSync(stateFile)) return null;
  const state = JSON.parse(readFileSync(stateFile, 'utf8')) as CheckpointState;
  const saved = readSafetensors(path.join(dir, state.tensors));
  noGrad(() =>
    tidy(() => {
      for (const [name, target] of namedTensors(adapter, optimizer)) {
        const source = saved.get(name);
        if (!source) throw new Error(`checkpoint ${state.tensors} lacks ${name}; it belongs to another run`);
        target.copy_(source);
      }
    }),
  );
  optimizer.steps = state.completedSteps;
  return { completedSteps: state.completedSteps, history: state.history, evaluations: state.evaluations };
}

function namedTensors(adapter: LoraAdapter, optimizer: AdamW): Map<string, Tensor> {
  const named = new Map<string, Tensor>();
  for (const [module, { a, b }] of adapter.weights) {
    named.set(`${module}.lora_A`, a);
    named.set(`${module}.lora_B`, b);
  }
  optimizer.parameters.forEach((_, i) => {
    named.set(`optimizer.${i}.m`, optimizer.firstMoments[i]);
    named.set(`optimizer.${i}.v`, optimizer.secondMoments[i]);
  });
  return named;
}
