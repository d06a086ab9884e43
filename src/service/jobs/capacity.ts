// What a worker can run: its device and dtype, the memory it offers, its base models. A job goes only to a
// worker that can hold it; one that cannot says why and leaves the job for another.
//
// The memory a run needs is the engine's memory plan (engine/train/memory-plan.ts) at the dtype the engine's
// placement gives this base model on this worker's device (engine/placement.ts): one place for each.
import os from 'node:os';
import { existsSync } from 'node:fs';
import { readModelConfig } from '../../engine/model/load.js';
import { parameterCount, type ModelConfig } from '../../engine/model/config.js';
import { dtypeChoices, float32BelowParameters, resolvePlacement, type ComputeDtype, type DtypeChoice } from '../../engine/placement.js';
import { planTraining, type TrainingPlan } from '../../engine/train/memory-plan.js';
import type { BaseModelRegistry } from '../models/registry.js';
import type { Candidate } from '../store/jobs.js';
import type { Hyperparameters } from '../tuning/tuned-model.js';

export type Dtype = ComputeDtype;
export const dtypes: readonly DtypeChoice[] = dtypeChoices;

/** Tokens of one example the plan assumes (the job's examples are not read at claim time). */
const estimateTokensPerExample = 1024;

/** The memory plan of a training run of this base model and these hyperparameters, on the device, in the dtype, against the budget. */
export function planRun(config: ModelConfig, hyperparameters: Pick<Hyperparameters, 'batchSize' | 'adapterRank' | 'beta'>, device: string, dtype: Dtype, budgetBytes?: number): TrainingPlan {
  const longest = Math.min(config.maxPositions, estimateTokensPerExample);
  // A preference example (a job with a beta) is two sequences, its chosen and its rejected completion.
  const sequences = hyperparameters.batchSize * (hyperparameters.beta === undefined ? 1 : 2);
  return planTraining({ config, dtype, device, rank: hyperparameters.adapterRank, lengths: Array(sequences).fill(longest), budgetBytes });
}

/**
 * The dtype a worker records: its --dtype, or for auto what auto gives models of real size on its device
 * (`auto:bfloat16`), so that a server without that device (or with another CPU) can plan for it.
 */
export function recordedDtype(device: string, dtype: DtypeChoice): string {
  return dtype === 'auto' ? `auto:${resolvePlacement({ device, dtype }).dtype}` : dtype;
}

/** The compute dtype a worker that recorded this dtype gives a base model of this size (auto: tiny models in float32). */
export function dtypeOnWorker(recorded: string, parameters: number): Dtype {
  if (!recorded.startsWith('auto')) return recorded as Dtype;
  const large = (recorded.slice('auto:'.length) || 'float32') as Dtype; // a bare `auto` (an older worker): plan for float32
  return parameters < float32BelowParameters ? 'float32' : large;
}

export const formatBytes = (bytes: number): string =>
  bytes >= 2 ** 30 ? `${(bytes / 2 ** 30).toFixed(1)} GiB` : `${Math.max(1, Math.round(bytes / 2 ** 20))} MiB`;

export interface CapacityOptions {
  /** A resolved device (cpu, cuda:N). */
  device: string;
  /** auto: what the engine's placement gives each base model on the device. */
  dtype: DtypeChoice;
  /** Memory offered to training; default: the host's free memory at each claim (CPU), unchecked (GPU). */
  memoryBytes?: number;
}

export class WorkerCapacity {
  private readonly configs = new Map<string, ModelConfig>();
  /** Estimates of the jobs this worker runs, held against an explicit --memory. */
  private readonly reserved = new Map<string, number>();
  private readonly estimates = new Map<string, number>();

  constructor(
    readonly options: CapacityOptions,
    private readonly registry: BaseModelRegistry,
  ) {}

  /**
   * The memory this worker offers now (undefined: not known, e.g. a GPU without --memory). Free memory
   * already reflects running jobs; an explicit --memory has their estimates taken off.
   */
  availableBytes(): number | undefined {
    if (this.options.memoryBytes !== undefined) return this.options.memoryBytes - [...this.reserved.values()].reduce((a, b) => a + b, 0);
    return this.options.device === 'cpu' ? os.freemem() : undefined;
  }

  /**
   * The memory one job alone could have here, recorded for API servers that plan for this worker: --memory, or
   * (CPU) the free memory plus the estimates of the jobs it runs; undefined where not checked (a GPU without --memory).
   */
  offerBytes(): number | undefined {
    if (this.options.memoryBytes !== undefined) return this.options.memoryBytes;
    return this.options.device === 'cpu' ? os.freemem() + [...this.reserved.values()].reduce((a, b) => a + b, 0) : undefined;
  }

  /** A claimed job runs here: its estimate counts against --memory until release(). */
  reserve(tunedModelId: string): void {
    this.reserved.set(tunedModelId, this.estimates.get(tunedModelId) ?? 0);
  }

  release(tunedModelId: string): void {
    this.reserved.delete(tunedModelId);
    this.estimates.delete(tunedModelId);
  }

  /**
   * The base model's directory on this machine, by name (the API server's path may not exist here); a custom base
   * model (a folder in the object store) is its path in the shared storage.
   */
  baseDirOf(baseModel: string, serverBaseDir: string, customBaseModel?: string): string | undefined {
    if (customBaseModel) return existsSync(serverBaseDir) ? serverBaseDir : undefined;
    try {
      return this.registry.resolve(baseModel).dir;
    } catch {
      return existsSync(serverBaseDir) ? serverBaseDir : undefined;
    }
  }

  /** true, or why not. */
  canHold(candidate: Candidate): true | string {
    const baseDir = this.baseDirOf(candidate.baseModel, candidate.baseDir, candidate.customBaseModel);
    if (!baseDir) return `its base model ${candidate.baseModel} is not on this worker (attune pull it into this worker's --data-dir)`;
    const available = this.availableBytes();
    if (available === undefined) return true;
    let config = this.configs.get(baseDir);
    if (!config) {
      config = readModelConfig(baseDir);
      this.configs.set(baseDir, config);
    }
    const dtype = resolvePlacement({ device: this.options.device, dtype: this.options.dtype }, parameterCount(config)).dtype;
    const plan = planRun(config, JSON.parse(candidate.hyperparameters) as Hyperparameters, this.options.device, dtype, available);
    this.estimates.set(candidate.tunedModelId, plan.estimate.totalBytes);
    if (!plan.fits) {
      // The plan's budget is what this worker offers (its free memory, or --memory less its running jobs).
      return `it ${plan.summary} (in ${dtype}), and this worker offers ${formatBytes(available)}`;
    }
    return true;
  }
}
