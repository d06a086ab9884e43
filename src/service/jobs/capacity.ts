// What a worker can run: its device and dtype, the memory it offers, its base models. A job goes only to a
// worker that can hold it; one that cannot says why and leaves the job for another.
//
// The memory a run needs is a simple estimate from the base model's config (weights at the worker's dtype,
// the LoRA adapter with its gradients and AdamW moments, activations for one step of the batch, the process
// itself). It is a stand-in: the memory plan of the real-scale engine work replaces `estimateTrainingBytes`.
import os from 'node:os';
import { existsSync } from 'node:fs';
import { readModelConfig } from '../../engine/model/load.js';
import type { ModelConfig } from '../../engine/model/config.js';
import type { BaseModelRegistry } from '../models/registry.js';
import type { Candidate } from '../store/jobs.js';
import type { Hyperparameters } from '../tuning/tuned-model.js';

export type Dtype = 'float32' | 'bfloat16' | 'float16';
export const dtypes: readonly Dtype[] = ['float32', 'bfloat16', 'float16'];

const dtypeBytes: Record<Dtype, number> = { float32: 4, bfloat16: 2, float16: 2 };

/** Tokens of one example the estimate assumes at most (long contexts are rarely tuned at full length). */
const estimateTokensPerExample = 1024;
/** Node, libtorch and the tokenizer in the training process, before any tensor. */
const processBytes = 300 * 1024 * 1024;

function parameterCount(c: ModelConfig): { total: number; loraPerRank: number } {
  const q = c.numHeads * c.headDim;
  const kv = c.numKvHeads * c.headDim;
  const attention = c.hiddenSize * q + 2 * c.hiddenSize * kv + q * c.hiddenSize;
  const mlp = 3 * c.hiddenSize * c.intermediateSize;
  const embeddings = c.vocabSize * c.hiddenSize * (c.tieWordEmbeddings ? 1 : 2);
  // LoRA on every projection: rank × (in + out) each.
  const loraPerRank = c.numLayers * (c.hiddenSize + q + 2 * (c.hiddenSize + kv) + q + c.hiddenSize + 2 * (c.hiddenSize + c.intermediateSize) + c.intermediateSize + c.hiddenSize);
  return { total: c.numLayers * (attention + mlp) + embeddings, loraPerRank };
}

/** Bytes a training run of this base model and these hyperparameters needs at this dtype (an estimate). */
export function estimateTrainingBytes(config: ModelConfig, hyperparameters: Pick<Hyperparameters, 'batchSize' | 'adapterRank'>, dtype: Dtype): number {
  const { total, loraPerRank } = parameterCount(config);
  const weights = total * dtypeBytes[dtype];
  // The adapter in float32 with its gradient and two AdamW moments.
  const adapter = loraPerRank * hyperparameters.adapterRank * 4 * 4;
  const tokens = hyperparameters.batchSize * Math.min(config.maxPositions, estimateTokensPerExample);
  // Saved activations per layer (attention and MLP inputs and outputs) and the logits with their gradient.
  const activations = tokens * (config.numLayers * (10 * config.hiddenSize + 3 * config.intermediateSize) * dtypeBytes[dtype] + 2 * config.vocabSize * 4);
  return processBytes + weights + adapter + activations;
}

export const formatBytes = (bytes: number): string =>
  bytes >= 2 ** 30 ? `${(bytes / 2 ** 30).toFixed(1)} GiB` : `${Math.max(1, Math.round(bytes / 2 ** 20))} MiB`;

export interface CapacityOptions {
  device: string;
  dtype: Dtype;
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

  /** A claimed job runs here: its estimate counts against --memory until release(). */
  reserve(tunedModelId: string): void {
    this.reserved.set(tunedModelId, this.estimates.get(tunedModelId) ?? 0);
  }

  release(tunedModelId: string): void {
    this.reserved.delete(tunedModelId);
    this.estimates.delete(tunedModelId);
  }

  /** The base model's directory on this machine, by name (the API server's path may not exist here). */
  baseDirOf(baseModel: string, serverBaseDir: string): string | undefined {
    try {
      return this.registry.resolve(baseModel).dir;
    } catch {
      return existsSync(serverBaseDir) ? serverBaseDir : undefined;
    }
  }

  /** true, or why not. */
  canHold(candidate: Candidate): true | string {
    const baseDir = this.baseDirOf(candidate.baseModel, candidate.baseDir);
    if (!baseDir) return `its base model ${candidate.baseModel} is not on this worker (attune pull it into this worker's --data-dir)`;
    const available = this.availableBytes();
    if (available === undefined) return true;
    let config = this.configs.get(baseDir);
    if (!config) {
      config = readModelConfig(baseDir);
      this.configs.set(baseDir, config);
    }
    const needed = estimateTrainingBytes(config, JSON.parse(candidate.hyperparameters) as Hyperparameters, this.options.dtype);
    this.estimates.set(candidate.tunedModelId, needed);
    if (needed > available) {
      return `it needs about ${formatBytes(needed)} on ${this.options.device} (${this.options.dtype}) and this worker offers ${formatBytes(available)}`;
    }
    return true;
  }
}
