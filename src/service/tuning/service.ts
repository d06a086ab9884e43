// Tuned models as a project sees them: create (which queues a training run), read, list, update,
// delete, cancel; and the run's lifecycle as the worker holding its lease reports it. Every lifecycle write
// carries the lease and is fenced: a worker whose lease was taken changes nothing. What changes is published
// on the event bus, so workers and every API server's streams hear of it.
import { createReadStream } from 'node:fs';
import { readdir } from 'node:fs/promises';
import path from 'node:path';
import { Tokenizer } from '../../engine/tokenizer/tokenizer.js';
import { totalStepsFor } from '../../engine/train/trainer.js';
import { baseLearningRate, trainingDefaults } from '../../engine/train/defaults.js';
import { machineBudget, planTraining } from '../../engine/train/memory-plan.js';
import { readModelConfig } from '../../engine/model/load.js';
import { parameterCount, type ModelConfig } from '../../engine/model/config.js';
import { dtypeOnWorker, formatBytes, planRun } from '../jobs/capacity.js';
import { resolvePlacement, type PlacementRequest } from '../../engine/placement.js';
import { serviceDefaults } from '../config.js';
import type { CpuPool } from '../cpu/pool.js';
import { ServiceError, invalidArgument } from '../errors.js';
import type { ServiceLimits } from '../limits.js';
import type { BaseModelInfo, BaseModelRegistry } from '../models/registry.js';
import type { ObjectStore } from '../storage/object-store.js';
import type { ArtifactStore } from '../storage/artifacts.js';
import { isUniqueViolation, type Database } from '../store/database.js';
import type { EventBus, ServiceEvent } from '../store/events.js';
import type { JobQueue, Lease } from '../store/jobs.js';
import type { ListPosition, ListScope, TunedModelStore } from '../store/tuned-models.js';
import { everyone, type PermissionStore } from '../store/permissions.js';
import type { Schema } from '../store/schema.js';
import type { Kysely } from 'kysely';
import { loadDataset, type DatasetSource } from './datasets.js';
import { defaultBatchSize, defaultEpochsFor, pageSizes, tuningDefaults, tuningLimits, type Surface } from './defaults.js';
import { jobNumber, operationId, randomId, tunedModelIdFor, tunedModelIdPattern } from './ids.js';
import { now, type Hyperparameters, type StepMetric, type TunedModel, type TuningMethod } from './tuned-model.js';
import { checkpointPlan, type TunedCheckpoint } from './checkpoints.js';
import { epochsCompleted } from '../../engine/train/trainer.js';

export interface CreateTunedModelRequest {
  surface: Surface;
  project: string;
  apiVersion: string;
  /** Vertex's location; Gemini-API models get the default one. */
  location?: string;
  tunedModelId?: string;
  displayName?: string;
  description?: string;
  labels?: Record<string, string>;
  baseModel?: string;
  /**
   * Continuous tuning: the caller's tuned model to continue (its id or Vertex number). The run starts from its
   * adapter, on its base model, at its rank; on Vertex, without a new display name, it becomes the next version
   * of that model's Vertex Model.
   */
  sourceTunedModel?: string;
  /** Which of the source's checkpoints to start from; by default the one it serves. */
  sourceCheckpointId?: string;
  /** Supervised by default; preference datasets are `{contents, completions}` lines. */
  tuningMethod?: TuningMethod;
  temperature?: number;
  topP?: number;
  topK?: number;
  hyperparameters?: Partial<Hyperparameters>;
  training: DatasetSource;
  validation?: DatasetSource;
  /** Vertex customBaseModel: gs://bucket/folder/ of a Hugging Face model in one of the project's buckets. */
  customBaseModel?: string;
  /** Vertex outputUri: gs://bucket/prefix in one of the project's buckets, where the PEFT files are written. */
  outputUri?: string;
  /** Vertex exportLastCheckpointOnly: keep no intermediate checkpoints. */
  exportLastCheckpointOnly?: boolean;
}

/** A tuned model as create() would store it, with its parsed datasets (JSON, as the store keeps them; only for create). */
export interface TuningPlan {
  model: TunedModel;
  training?: string;
  validation?: string;
  /** A continued run's source adapter (its storage key), copied to model.sourceAdapterKey at create. */
  sourceAdapter?: string;
  /** This server does not train and no worker is registered: the job waits in the queue until one starts. */
  waitsForWorker?: boolean;
}

/** What the service is given besides its stores. */
export interface TuningOptions {
  limits: ServiceLimits;
  /** Runs dataset parsing and framing off the event loop. */
  cpu: CpuPool;
  /** The one local directory dataset URIs may name (`attune serve --dataset-dir`). */
  datasetDir?: string;
  /** Where and in which dtype runs train (`attune serve --device --dtype`); auto by default. */
  placement?: PlacementRequest;
  /**
   * Whether this process trains (true by default). An API-only server (`attune serve --concurrency 0`) plans
   * each job against the live registered workers instead of its own machine.
   */
  trainsHere?: boolean;
  /** How recently a worker must have heartbeat to count as live (the lease duration). */
  workerLiveMs?: number;
}

export type TunedModelPatch = Partial<Pick<TunedModel, 'displayName' | 'description' | 'temperature' | 'topP' | 'topK'>>;
export const patchableFields = ['displayName', 'description', 'temperature', 'topP', 'topK'] as const;

export interface Page<T> {
  items: T[];
  nextPageToken?: string;
}

/** Roles on a tuned model, each a superset of the one before (permission.proto): use; update and share; delete and transfer. */
export type Role = 'READER' | 'WRITER' | 'OWNER';
const roleRank: Record<Role, number> = { READER: 1, WRITER: 2, OWNER: 3 };

const alreadyExists = (id: string) => new ServiceError('ALREADY_EXISTS', `Tuned model tunedModels/${id} already exists.`);

export class TuningService {
  private readonly tokenizers = new Map<string, Promise<Tokenizer>>();

  constructor(
    private readonly database: Database,
    readonly store: TunedModelStore,
    readonly permissions: PermissionStore,
    private readonly jobs: JobQueue,
    readonly registry: BaseModelRegistry,
    readonly objects: ObjectStore,
    readonly artifacts: ArtifactStore,
    /** 'queued', 'cancel', 'deleted', 'change' and 'metric' go out here. */
    readonly events: EventBus,
    private readonly options: TuningOptions,
  ) {}

  /** Where and in which dtype runs train, as asked (`auto` is resolved per base model by each run). */
  get placement(): PlacementRequest {
    return this.options.placement ?? {};
  }

  /** Called after a tuned model is deleted, through whichever server (serving frees its adapter). */
  onDeleted(listener: (id: string) => void): () => void {
    return this.events.subscribe((event) => event.type === 'deleted' && listener(event.id));
  }

  /**
   * A local directory holding the adapter of one of the model's checkpoints, or by default the one it serves
   * (its default checkpoint: the last unless models.patch changed it), from the shared storage or a cached copy.
   */
  async adapterDirectory(model: TunedModel, checkpointId = model.defaultCheckpointId): Promise<string> {
    const key = checkpointId === undefined ? model.adapterKey : (await this.checkpoint(model, checkpointId)).adapterKey;
    if (!key) throw new ServiceError('FAILED_PRECONDITION', `Tuned model tunedModels/${model.id} has no adapter.`);
    return this.artifacts.localDirectory(key);
  }

  /** The model's checkpoints, in the order its run reached them (none for models tuned before checkpoints were kept). */
  checkpoints(model: TunedModel): Promise<TunedCheckpoint[]> {
    return this.store.tunedCheckpoints(model.id);
  }

  async checkpoint(model: TunedModel, checkpointId: string): Promise<TunedCheckpoint> {
    const found = (await this.checkpoints(model)).find((c) => c.checkpointId === checkpointId);
    if (!found) throw new ServiceError('NOT_FOUND', `Tuned model tunedModels/${model.id} has no checkpoint ${JSON.stringify(checkpointId)}.`);
    return found;
  }

  /** The tuned model and checkpoint a checkpoint's endpoint number names, within the project. */
  async checkpointOfEndpoint(project: string, endpointNumber: string): Promise<{ model: TunedModel; checkpointId: string } | undefined> {
    const found = await this.store.checkpointOfEndpoint(endpointNumber);
    if (!found) return undefined;
    const model = await this.store.get(found.tunedModelId);
    return model && model.project === project ? { model, checkpointId: found.checkpointId } : undefined;
  }

  /** Makes a checkpoint the one the model serves (Vertex models.patch defaultCheckpointId). */
  async setDefaultCheckpoint(project: string, idOrNumber: string, checkpointId: string): Promise<TunedModel> {
    const model = await this.get(project, idOrNumber);
    const checkpoints = await this.checkpoints(model);
    if (!checkpoints.some((c) => c.checkpointId === checkpointId)) {
      const ids = checkpoints.map((c) => c.checkpointId).join(', ') || 'none';
      throw invalidArgument(`Checkpoint ${JSON.stringify(checkpointId)} does not exist in model ${model.jobNumber}; its checkpoints are ${ids}.`, 'model.default_checkpoint_id');
    }
    // The last checkpoint is the default anyway: storing none keeps "the last" meaning the last.
    const changes = { defaultCheckpointId: checkpoints.at(-1)!.checkpointId === checkpointId ? undefined : checkpointId, updateTime: now() };
    await this.store.update(model.id, changes);
    await this.publish({ type: 'change', id: model.id });
    return { ...model, ...changes };
  }

  /** The steps at which the model's run keeps checkpoints (the last is its end). */
  checkpointPlan(model: TunedModel) {
    const { epochCount, batchSize } = model.hyperparameters;
    return checkpointPlan({ epochs: epochCount, batchSize, examples: trainedExamples(model), exportLastCheckpointOnly: model.exportLastCheckpointOnly ?? false });
  }

  /**
   * Records an intermediate checkpoint the run stored under adapterKey (fenced by its lease). Its bytes count
   * against the project's storage quota with its objects: one that would pass storageBytesPerProject is not
   * kept ('over-quota'; the caller removes the stored copy), and the run goes on. `replaced` names the copy a
   * resumed run's checkpoint replaced.
   */
  async checkpointReached(
    lease: Lease,
    checkpoint: { checkpointId: string; step: number; adapterKey: string; bytes: number },
  ): Promise<{ outcome: 'recorded' | 'over-quota'; replaced?: string }> {
    // The object store's usage is a walk of the project's buckets: measured before the job's row is locked, so
    // the fenced transaction stays short (a worker frozen inside one would keep others from taking the job over).
    const owner = await this.store.get(lease.tunedModelId);
    const objectBytes = owner ? await this.objects.usage(owner.project) : 0;
    const outcome = await this.jobs.fenced(lease, async (trx) => {
      const model = await this.store.in(trx).get(lease.tunedModelId);
      if (!model) return { outcome: 'over-quota' as const };
      const limit = this.options.limits.storageBytesPerProject;
      const previous = (await this.store.in(trx).tunedCheckpoints(model.id)).find((c) => c.checkpointId === checkpoint.checkpointId);
      const used = objectBytes + (await this.store.in(trx).checkpointBytes(model.project)) - (previous?.bytes ?? 0);
      if (used + checkpoint.bytes > limit) return { outcome: 'over-quota' as const };
      await this.store.in(trx).putTunedCheckpoint(model.id, model.project, {
        ...checkpoint,
        epoch: epochsCompleted(checkpoint.step, model.hyperparameters.batchSize, trainedExamples(model)),
        endpointNumber: previous?.endpointNumber ?? jobNumber(),
        createTime: now(),
      });
      // A resumed run that reached it again replaces the earlier run's copy, which the caller removes.
      return { outcome: 'recorded' as const, replaced: previous && previous.adapterKey !== checkpoint.adapterKey ? previous.adapterKey : undefined };
    });
    if (outcome.outcome === 'recorded') await this.publish({ type: 'change', id: lease.tunedModelId });
    return outcome;
  }

  /**
   * Validates a request and returns what create() would store, storing nothing (AIP-163 validateOnly). The
   * cheap checks come first; the datasets are read, parsed and framed in the CPU pool last.
   */
  async plan(request: CreateTunedModelRequest, { keepExamples = false } = {}): Promise<TuningPlan> {
    const { surface, project } = request;
    const maxName = tuningLimits.displayNameChars[surface];
    if ([...(request.displayName ?? '')].length > maxName) {
      throw invalidArgument(`displayName must be at most ${maxName} characters`, displayNameField[surface]);
    }
    validateSampling(request);
    const method = request.tuningMethod ?? 'supervised';
    const source = await this.sourceOf(request);
    const base = await this.baseOf(request, source);
    // Vertex: a continued run "by default use[s] the same display name as the pre-tuned model. If a new display
    // name is provided, the tuning job will create a new model instead of a new version."
    const newVersion = source !== undefined && surface === 'vertex' && (request.displayName === undefined || request.displayName === source.displayName);
    if (request.outputUri) await this.checkOutputUri(project, request.outputUri);
    // Vertex: "If not set, a random name is generated."
    const displayName = newVersion
      ? source.displayName
      : (request.displayName ?? (surface === 'vertex' ? `${base.name.replace(/^models\//, '')}-${randomId(8)}` : ''));
    const id = request.tunedModelId ?? tunedModelIdFor(displayName);
    if (!tunedModelIdPattern.test(id)) {
      throw invalidArgument(`tunedModelId '${id}' must match ${tunedModelIdPattern.source}`, 'tuned_model_id');
    }
    if (await this.store.exists(id)) throw alreadyExists(id);
    await this.checkProjectQuotas(project);
    checkHyperparameterRanges(request.hyperparameters ?? {}, surface, method);

    const training = await this.dataset(request.training, request, { stats: { baseDir: base.dir, vocabSize: base.vocabSize }, keepExamples });
    const validation = request.validation && (await this.dataset(request.validation, request, { keepExamples }));
    if (validation && validation.exampleCount > tuningLimits.maxValidationExamples) {
      throw invalidArgument(
        `The validation dataset has ${validation.exampleCount} examples; at most ${tuningLimits.maxValidationExamples} are allowed.`,
        request.validation!.field,
      );
    }
    const hyperparameters = resolveHyperparameters(request.hyperparameters ?? {}, training.exampleCount, base, surface, method, source);
    this.checkJobSize(training.exampleCount, hyperparameters, surface, method);
    const waitsForWorker = await this.checkMemory(base.dir, hyperparameters, training.stats!.longestExampleTokens ?? 0, method);
    const time = now();
    const number = jobNumber();
    const model: TunedModel = {
      id,
      jobNumber: number,
      modelNumber: newVersion ? source.modelNumber : number,
      modelVersion: newVersion ? (await this.store.lastModelVersion(source.modelNumber)) + 1 : 1,
      tuningMethod: method,
      project,
      location: request.location ?? serviceDefaults.location,
      labels: request.labels ?? {},
      apiVersion: request.apiVersion,
      displayName,
      description: request.description ?? '',
      baseModel: base.name,
      baseDir: base.dir,
      sourceTunedModel: source && `tunedModels/${source.id}`,
      preTunedModel: source && `projects/${source.project}/locations/${source.location}/models/${source.modelNumber}@${source.modelVersion}`,
      sourceAdapterKey: source && `adapters/${id}/source-${number}`,
      state: 'CREATING',
      createTime: time,
      updateTime: time,
      temperature: request.temperature ?? base.sampling.temperature,
      topP: request.topP ?? base.sampling.topP,
      topK: request.topK ?? base.sampling.topK,
      hyperparameters,
      trainingDatasetUri: 'uri' in request.training ? request.training.uri : undefined,
      validationDatasetUri: request.validation && 'uri' in request.validation ? request.validation.uri : undefined,
      dataStats: training.stats!,
      totalSteps: totalStepsFor(training.exampleCount, hyperparameters.epochCount, hyperparameters.batchSize),
      completedSteps: 0,
      operationId: operationId(),
      operationDone: false,
      cancelRequested: false,
      exportLastCheckpointOnly: request.exportLastCheckpointOnly || undefined,
      customBaseModel: request.customBaseModel ?? source?.customBaseModel,
      outputUri: request.outputUri,
    };
    return { model, training: training.examplesJson, validation: validation?.examplesJson, sourceAdapter: source?.adapterKey, waitsForWorker };
  }

  /**
   * The tuned model a continued run starts from: the caller's own (another project's answers 404 as a missing one),
   * with an adapter to start from.
   */
  private async sourceOf(request: CreateTunedModelRequest): Promise<TunedModel | undefined> {
    if (request.sourceTunedModel === undefined) return undefined;
    const field = sourceField[request.surface];
    if (request.baseModel) throw invalidArgument(`set ${request.surface === 'vertex' ? 'baseModel or preTunedModel' : 'baseModel or tunedModelSource'}, not both`, field);
    const source = await this.get(request.project, request.sourceTunedModel.replace(/^tunedModels\//, ''));
    if (source.state !== 'ACTIVE' || !source.adapterKey) {
      throw new ServiceError('FAILED_PRECONDITION', `Tuned model tunedModels/${source.id} has no tuned adapter to continue from (it is ${source.state}).`, [
        { field, description: 'the source model must have finished tuning' },
      ]);
    }
    // It continues from one of the source's checkpoints: the one named, else its default (the last unless changed).
    const checkpointId = request.sourceCheckpointId || source.defaultCheckpointId;
    if (checkpointId === undefined) return source;
    const checkpoints = await this.checkpoints(source);
    const checkpoint = checkpoints.find((c) => c.checkpointId === checkpointId);
    if (!checkpoint) {
      throw invalidArgument(
        `checkpointId ${JSON.stringify(checkpointId)} does not exist in tunedModels/${source.id}; its checkpoints are ${checkpoints.map((c) => c.checkpointId).join(', ') || 'none'}.`,
        `${field}.checkpoint_id`,
      );
    }
    return { ...source, adapterKey: checkpoint.adapterKey };
  }

  /** A Vertex Model's version (a number or the alias "default": the latest version whose run succeeded), within the caller's project. */
  async modelVersion(project: string, modelNumber: string, version: string, served: (model: TunedModel) => boolean): Promise<TunedModel | undefined> {
    const versions = (await this.store.modelVersions(project, modelNumber)).filter(served);
    return version === 'default' ? versions.at(-1) : versions.find((m) => String(m.modelVersion) === version);
  }

  /**
   * Vertex customBaseModel: a Hugging Face model folder the project uploaded to one of its own buckets
   * (gs://bucket/models/x/), found through the object store's ownership check; the client never names a path.
   * baseModel, which Vertex requires beside it, names it (the URI when absent).
   */
  private async customBase(request: CreateTunedModelRequest): Promise<BaseModelInfo> {
    const field = 'tuning_job.custom_base_model';
    const uri = request.customBaseModel!;
    if (request.sourceTunedModel) throw invalidArgument('Set customBaseModel or preTunedModel, not both.', field);
    const gs = /^gs:\/\/([^/]+)\/(.+)$/.exec(uri);
    if (!gs) throw invalidArgument(`customBaseModel must be a folder in one of this project's buckets, gs://BUCKET/FOLDER/, not ${JSON.stringify(uri)}.`, field);
    let dir: string;
    try {
      dir = await this.objects.folderOf(request.project, gs[1]!, gs[2]!);
    } catch (error) {
      if (error instanceof ServiceError && error.status === 'NOT_FOUND') {
        throw new ServiceError('NOT_FOUND', `customBaseModel ${uri} not found: upload the model's files (config.json, model.safetensors, tokenizer.json, …) under that prefix of a bucket of project ${request.project}.`);
      }
      throw error;
    }
    try {
      return this.registry.inspect(dir, request.baseModel ?? uri);
    } catch (error) {
      throw new ServiceError('FAILED_PRECONDITION', `customBaseModel ${uri} is not a model Attune can tune: ${(error as Error).message}`);
    }
  }

  /** Vertex outputUri: a prefix in one of the project's own buckets (NOT_FOUND for any other, as for datasets). */
  private async checkOutputUri(project: string, uri: string): Promise<void> {
    const gs = /^gs:\/\/([^/]+)\/(.+)$/.exec(uri.replace(/\/+$/, '') + '/');
    if (!gs) throw invalidArgument(`outputUri must be a prefix in one of this project's buckets, gs://BUCKET/PREFIX, not ${JSON.stringify(uri)}.`, 'tuning_job.output_uri');
    try {
      await this.objects.checkWritablePrefix(project, gs[1]!, gs[2]!);
    } catch (error) {
      if (error instanceof ServiceError && error.status === 'NOT_FOUND') {
        throw new ServiceError('NOT_FOUND', `outputUri ${uri}: the bucket ${gs[1]} does not exist in project ${project}. Create it (upload an object) first.`);
      }
      throw error;
    }
  }

  /**
   * Copies a stored adapter's files (PEFT adapter_config.json and adapter_model.safetensors, and attune.json) to
   * the model's outputUri, under `subfolder`, in the project's bucket and within its storage quota.
   */
  async writeOutput(model: TunedModel, adapterKey: string, subfolder: string): Promise<void> {
    if (!model.outputUri) return;
    const [, bucket, prefix] = /^gs:\/\/([^/]+)\/(.+?)\/*$/.exec(model.outputUri)!;
    const dir = await this.artifacts.localDirectory(adapterKey);
    for (const entry of await readdir(dir, { withFileTypes: true })) {
      if (!entry.isFile()) continue;
      await this.objects.put(model.project, bucket!, `${prefix}/${subfolder}/${entry.name}`, createReadStream(path.join(dir, entry.name)), {
        contentType: entry.name.endsWith('.json') ? 'application/json' : 'application/octet-stream',
      });
    }
  }

  /** RESOURCE_EXHAUSTED when the project holds as many tuned models, or has as many jobs waiting or running, as its limits allow. */
  private async checkProjectQuotas(project: string, trx?: Kysely<Schema>): Promise<void> {
    const { tunedModelsPerProject, queuedJobsPerProject } = this.options.limits;
    const models = await (trx ? this.store.in(trx) : this.store).count(project);
    if (models >= tunedModelsPerProject) {
      throw new ServiceError(
        'RESOURCE_EXHAUSTED',
        `Project ${project} has ${models} tuned models, the limit tunedModelsPerProject (${tunedModelsPerProject}). Delete some to create more.`,
      );
    }
    const jobs = await (trx ? this.jobs.in(trx) : this.jobs).unfinishedCount(project);
    if (jobs >= queuedJobsPerProject) {
      throw new ServiceError(
        'RESOURCE_EXHAUSTED',
        `Project ${project} has ${jobs} tuning jobs queued or running, the limit queuedJobsPerProject (${queuedJobsPerProject}). Wait for some to finish, or cancel some.`,
      );
    }
  }

  /**
   * RESOURCE_EXHAUSTED when the run's memory plan cannot fit on this machine's device even alone (with
   * activation checkpointing and one example per micro-batch), naming what would fit. A server that does not
   * train checks the workers instead (checkWorkerMemory); true when none is registered yet.
   */
  private async checkMemory(baseDir: string, h: Hyperparameters, longestExample: number, method: TuningMethod): Promise<boolean> {
    const config = readModelConfig(baseDir);
    if (this.options.trainsHere === false) return this.checkWorkerMemory(config, h);
    const { device, dtype } = resolvePlacement(this.options.placement, parameterCount(config));
    const longest = Math.min(Math.max(1, longestExample), trainingDefaults.maxSequenceLength, config.maxPositions);
    const plan = planTraining({
      config, dtype, device, rank: h.adapterRank, lengths: Array(h.batchSize * (method === 'preference' ? 2 : 1)).fill(longest), budgetBytes: machineBudget(device),
    });
    if (!plan.fits) throw new ServiceError('RESOURCE_EXHAUSTED', `This tuning job does not fit in memory: it ${plan.summary}.`);
    return false;
  }

  /** Whether the job is queued on this server, which does not train, while no worker is registered to train it. */
  async waitingForWorker(model: TunedModel): Promise<boolean> {
    if (this.options.trainsHere !== false || model.state !== 'CREATING' || model.startTime) return false;
    return (await this.liveWorkers()).length === 0;
  }

  /** Workers that heartbeat within a lease's duration (services.ts passes it; 30 s is the scheduler's default). */
  private liveWorkers() {
    return this.jobs.liveWorkers(this.options.workerLiveMs ?? 30_000);
  }

  /**
   * The run must fit one live worker alone: its memory plan at the worker's device and dtype, against the memory
   * it offers, as the worker's own claim judges it (capacity.ts). A worker whose memory is not measured (a GPU
   * without --memory) takes any job. With no worker registered the job is accepted (true): the queue holds it.
   */
  private async checkWorkerMemory(config: ModelConfig, h: Hyperparameters): Promise<boolean> {
    const workers = await this.liveWorkers();
    if (workers.length === 0) return true;
    const parameters = parameterCount(config);
    let largest: { id: string; device: string; dtype: string; offer: number; summary: string } | undefined;
    for (const worker of workers) {
      if (worker.memory_bytes === null) return false;
      const offer = Number(worker.memory_bytes); // PostgreSQL's bigint arrives as text
      const dtype = dtypeOnWorker(worker.dtype, parameters);
      const plan = planRun(config, h, worker.device, dtype, offer);
      if (plan.fits) return false;
      if (!largest || offer > largest.offer) largest = { id: worker.id, device: worker.device, dtype, offer, summary: plan.summary };
    }
    const count = workers.length === 1 ? 'the one live worker' : `any of the ${workers.length} live workers`;
    throw new ServiceError(
      'RESOURCE_EXHAUSTED',
      `This tuning job does not fit in memory on ${count}: the largest, ${largest!.id} (${largest!.device}, ${largest!.dtype}), offers ${formatBytes(largest!.offer)}, and there it ${largest!.summary}.`,
    );
  }

  /** One job may train on at most limits.trainedExamplesPerJob examples (epochs × examples). */
  private checkJobSize(examples: number, h: Hyperparameters, surface: Surface, method: TuningMethod): void {
    const limit = this.options.limits.trainedExamplesPerJob;
    const trained = examples * h.epochCount;
    if (trained > limit) {
      throw invalidArgument(
        `This job would train on ${trained} examples (${examples} examples × ${h.epochCount} epochs), more than ${limit}, the limit trainedExamplesPerJob. Use fewer epochs or a smaller dataset.`,
        `${hyperparametersFieldOf(surface, method)}.epoch_count`,
      );
    }
  }

  async create(request: CreateTunedModelRequest): Promise<TunedModel> {
    const { model, training, validation, sourceAdapter, waitsForWorker } = await this.plan(request, { keepExamples: true });
    if (waitsForWorker) console.error(`attune: tuned model ${model.id} is queued while no worker is registered: it waits until one that can hold it starts`);
    // The source's adapter is copied for this run, which then starts from it even if the source is deleted meanwhile.
    if (sourceAdapter && model.sourceAdapterKey) await this.artifacts.putDirectory(model.sourceAdapterKey, await this.artifacts.localDirectory(sourceAdapter));
    try {
      await this.database.transaction(async (trx) => {
        // Creates of one project take turns here, so two servers cannot both pass the quota with the last slot.
        await this.database.lockProject(trx, model.project);
        // Checked again: another create may have taken the id, or the quota, while this one read its dataset.
        if (await this.store.in(trx).exists(model.id)) throw alreadyExists(model.id);
        await this.checkProjectQuotas(model.project, trx);
        // A version number is taken under the project's lock (a Model's versions are all its project's).
        if (model.modelNumber !== model.jobNumber) model.modelVersion = (await this.store.in(trx).lastModelVersion(model.modelNumber)) + 1;
        await this.store.in(trx).insert(model, training!, validation); // a model is never stored without its job
        await this.jobs.in(trx).enqueue(model.id, model.project);
      });
    } catch (error) {
      if (model.sourceAdapterKey) await this.artifacts.deletePrefix(model.sourceAdapterKey).catch(() => {});
      // Two creates of one id on different connections: the second insert breaks the primary key.
      throw isUniqueViolation(error) ? alreadyExists(model.id) : error;
    }
    await this.publish({ type: 'queued' });
    return model;
  }

  /**
   * A model the project may see, by Gemini id or Vertex number. Another project's answers exactly like a
   * missing one (AIP-193), so that whether it exists does not leak across projects.
   */
  async get(project: string, id: string): Promise<TunedModel> {
    const model = await this.store.get(id);
    if (!model || model.project !== project) throw missingModel(id);
    return model;
  }

  /**
   * A model the project may `action` (use, update, share, delete): its own, or one granted to it or to everyone.
   * A model it holds no role on answers exactly like a missing one; one whose role is below `need`,
   * PERMISSION_DENIED (the project can see it exists).
   */
  async access(project: string, id: string, need: Role, action: string): Promise<{ model: TunedModel; role: Role }> {
    const model = await this.store.get(id);
    if (!model) throw missingModel(id);
    const role = await this.roleOf(model, project);
    if (!role) throw missingModel(id);
    if (roleRank[role] < roleRank[need]) {
      throw new ServiceError(
        'PERMISSION_DENIED',
        `You do not have permission to ${action} tuned model tunedModels/${model.id}: that takes the ${need} role, and project ${project} is a ${role}.`,
      );
    }
    return { model, role };
  }

  /** The project's role on the model: OWNER of its own, else the higher of its grant and everyone's, if any. */
  async roleOf(model: TunedModel, project: string): Promise<Role | undefined> {
    if (model.project === project) return 'OWNER';
    let best: Role | undefined;
    for (const grant of await this.permissions.grants(model.id)) {
      if ((grant.grantee === project || grant.grantee === everyone) && (!best || roleRank[grant.role] > roleRank[best])) best = grant.role;
    }
    return best;
  }

  /** A page of the models a Gemini list shows (ListScope), oldest first; `text` searches display names and descriptions. */
  async list(project: string, pageSize?: number, pageToken?: string, { show = ['owned'], text }: { show?: ListScope['show']; text?: string } = {}): Promise<Page<TunedModel>> {
    const size = pageSizeOf('gemini', pageSize);
    const after = pageToken ? decodePageToken(pageToken) : undefined;
    const rows = await this.store.list({ project, show }, after, size + 1, text);
    const items = rows.slice(0, size);
    const last = items.at(-1);
    return { items, nextPageToken: rows.length > size && last ? encodePageToken({ createTime: last.createTime, id: last.id }) : undefined };
  }

  /** A page of a project's models, newest first, that `keep` accepts (Vertex lists filter on derived states). */
  async listMatching(project: string, keep: (model: TunedModel) => boolean, pageSize?: number, pageToken?: string): Promise<Page<TunedModel>> {
    const size = pageSizeOf('vertex', pageSize);
    const after = pageToken ? decodePageToken(pageToken) : undefined;
    const older = (m: TunedModel) => !after || m.createTime < after.createTime || (m.createTime === after.createTime && m.id < after.id);
    const rows = (await this.store.all(project)).filter((m) => older(m) && keep(m));
    const items = rows.slice(0, size);
    const last = items.at(-1);
    return { items, nextPageToken: rows.length > size && last ? encodePageToken({ createTime: last.createTime, id: last.id }) : undefined };
  }

  /** A WRITER's change (the owner's, or a project's the model is shared with as WRITER). */
  async patch(project: string, id: string, patch: TunedModelPatch): Promise<TunedModel> {
    const { model } = await this.access(project, id, 'WRITER', 'update');
    const maxName = tuningLimits.displayNameChars.gemini;
    if (patch.displayName !== undefined && [...patch.displayName].length > maxName) {
      throw invalidArgument(`displayName must be at most ${maxName} characters`, displayNameField.gemini);
    }
    validateSampling(patch);
    const changes = { ...definedOnly(patch), updateTime: now() };
    await this.store.update(model.id, changes);
    return { ...model, ...changes };
  }

  /** Removes the model, its metrics, job, adapter and checkpoints; a worker training it stops (it hears of it). */
  async delete(project: string, idOrNumber: string): Promise<void> {
    const { id } = await this.get(project, idOrNumber);
    await this.store.delete(id);
    await this.artifacts.deletePrefix(`adapters/${id}`);
    await this.artifacts.deletePrefix(`checkpoints/${id}`);
    await this.publish({ type: 'deleted', id });
  }

  /**
   * Asks a run to stop; the model ends ACTIVE if a step completed (the adapter is usable), else FAILED. A
   * queued job that never trained ends at once; a running one ends when its worker hears of the cancel.
   */
  async cancel(project: string, idOrNumber: string): Promise<TunedModel> {
    const model = await this.get(project, idOrNumber);
    if (model.state !== 'CREATING') return model;
    const endedNow = await this.database.transaction(async (trx) => {
      const job = await this.jobs.in(trx).requestCancel(model.id);
      if (job?.state !== 'queued' || job.checkpoint) return false; // a requeued job with a checkpoint saves its steps as an adapter
      await this.store.in(trx).update(model.id, this.outcome({ state: 'FAILED', error: cancelledError }));
      await this.jobs.in(trx).finishUnleased(model.id);
      return true;
    });
    await this.publish(endedNow ? { type: 'change', id: model.id } : { type: 'cancel', id: model.id });
    return endedNow ? ((await this.store.get(model.id)) ?? model) : model;
  }

  // The run's lifecycle, reported by the worker holding the job's lease (LeaseLostError when it no longer does).

  /** Training began, from a checkpoint's step or 0: metrics past it are recorded again. */
  async runStarted(lease: Lease, resumedFromStep: number): Promise<void> {
    await this.jobs.fenced(lease, async (trx) => {
      const model = await this.store.in(trx).get(lease.tunedModelId);
      await this.store.in(trx).truncateMetrics(lease.tunedModelId, resumedFromStep);
      await this.store.in(trx).update(lease.tunedModelId, { completedSteps: resumedFromStep, ...(model?.startTime ? {} : { startTime: now() }) });
    });
    await this.publish({ type: 'change', id: lease.tunedModelId });
  }

  /**
   * Records a step's or an evaluation's metric. One that is not a finite number means the run diverged: it is
   * not stored, the run is failed, and 'diverged' tells the worker to abandon it (kill it, keep nothing).
   */
  async recordMetric(lease: Lease, metric: StepMetric): Promise<'recorded' | 'diverged'> {
    if (!Number.isFinite(metric.loss) || !Number.isFinite(metric.accuracy)) {
      const which = metric.kind === 'eval' ? 'validation ' : '';
      await this.failed(lease, `Training diverged at step ${metric.step}: the ${which}loss is ${metric.loss}. Try a lower learning rate.`, 3);
      return 'diverged';
    }
    await this.jobs.fenced(lease, async (trx) => {
      await this.store.in(trx).addMetric(lease.tunedModelId, metric, lease.token);
      if (metric.kind === 'train') await this.store.in(trx).update(lease.tunedModelId, { completedSteps: metric.step });
    });
    await this.publish({ type: 'metric', id: lease.tunedModelId, kind: metric.kind, step: metric.step });
    return 'recorded';
  }

  /** The adapter is in storage under adapterKey; it is also the run's last checkpoint. */
  async succeeded(lease: Lease, adapterKey: string): Promise<void> {
    await this.finish(lease, { state: 'ACTIVE', adapterKey }, 'succeeded');
  }

  async failed(lease: Lease, message: string, code = 13): Promise<void> {
    await this.finish(lease, { state: 'FAILED', error: { code, message } });
  }

  /** A cancelled run keeps its adapter only if at least one step completed (then it was saved, under adapterKey). */
  async cancelled(lease: Lease, adapterKey: string | undefined): Promise<void> {
    await this.finish(lease, adapterKey ? { state: 'ACTIVE', error: cancelledError, adapterKey } : { state: 'FAILED', error: cancelledError }, 'cancelled');
  }

  /**
   * The model's outcome and the job's end, in one fenced transaction. A run that kept an adapter records it as
   * its last checkpoint, on the job's own endpoint number: a finished run at the plan's last id, a cancelled one
   * after the checkpoints it reached (which it keeps).
   */
  private async finish(lease: Lease, outcome: Outcome, how?: 'succeeded' | 'cancelled'): Promise<void> {
    await this.jobs.fenced(lease, async (trx) => {
      const store = this.store.in(trx);
      const ended = this.outcome(outcome);
      await store.update(lease.tunedModelId, ended);
      const model = outcome.adapterKey && how ? await store.get(lease.tunedModelId) : undefined;
      if (model && outcome.adapterKey) {
        const reached = await store.tunedCheckpoints(model.id);
        const step = how === 'succeeded' ? model.totalSteps : model.completedSteps;
        const checkpointId = how === 'succeeded' ? this.checkpointPlan(model).at(-1)!.checkpointId : String(Math.max(0, ...reached.map((c) => Number(c.checkpointId))) + 1);
        await store.putTunedCheckpoint(model.id, model.project, {
          checkpointId, step, epoch: epochsCompleted(step, model.hyperparameters.batchSize, trainedExamples(model)),
          endpointNumber: model.jobNumber, adapterKey: outcome.adapterKey, bytes: 0, createTime: ended.completeTime!,
        });
      }
      await this.jobs.in(trx).finish(lease);
    });
    await this.publish({ type: 'change', id: lease.tunedModelId });
  }

  private outcome(outcome: Outcome): Partial<TunedModel> {
    const completeTime = now();
    return { ...outcome, completeTime, updateTime: completeTime, operationDone: true };
  }

  /** Events are hints (readers re-read the database): one that cannot be sent is not an error of the request. */
  private async publish(event: ServiceEvent): Promise<void> {
    try {
      await this.events.publish(event);
    } catch (error) {
      console.error(`attune: could not publish the ${event.type} event: ${(error as Error).message}`);
    }
  }

  /** Over-long examples fail a Gemini-API request; Vertex drops them and reports them in the data stats. */
  private dataset(source: DatasetSource, { surface, project, tuningMethod }: CreateTunedModelRequest, use: { stats?: { baseDir: string; vocabSize: number }; keepExamples: boolean }) {
    const { limits, cpu, datasetDir } = this.options;
    return loadDataset(source, {
      cpu,
      access: { project, objects: this.objects, datasetDir, maxBytes: limits.datasetFileBytes },
      parse: { overLength: surface === 'vertex' ? 'skip' : 'throw', maxExamples: limits.datasetExamples, kind: tuningMethod ?? 'supervised' },
      ...use,
    });
  }

  /**
   * A base model's tokenizer, loaded once per process (real ones take seconds and hundreds of MB); serving shares
   * it. (The CPU pool's threads load their own, for the work done there.)
   */
  tokenizer(baseDir: string): Promise<Tokenizer> {
    let tokenizer = this.tokenizers.get(baseDir);
    if (!tokenizer) {
      tokenizer = Tokenizer.load(baseDir);
      tokenizer.catch(() => this.tokenizers.delete(baseDir));
      this.tokenizers.set(baseDir, tokenizer);
    }
    return tokenizer;
  }

  private async baseOf(request: CreateTunedModelRequest, source: TunedModel | undefined) {
    if (request.customBaseModel) return this.customBase(request);
    // A model tuned from a custom base continues on that same folder.
    if (source?.customBaseModel) return this.registry.inspect(source.baseDir, source.baseModel);
    if (source) return this.registry.resolve(source.baseModel, request.apiVersion, 'createTunedModel');
    if (!request.baseModel) throw invalidArgument('baseModel is required', 'tuned_model.base_model');
    return this.registry.resolve(request.baseModel, request.apiVersion, 'createTunedModel');
  }
}

/** Sampling defaults a tuned model may carry: temperature 0–2, topP 0–1, topK a non-negative integer. */
function validateSampling({ temperature, topP, topK }: { temperature?: number; topP?: number; topK?: number }): void {
  if (temperature !== undefined && !(temperature >= 0 && temperature <= 2)) {
    throw invalidArgument(`temperature must be between 0 and 2, not ${temperature}`, 'tuned_model.temperature');
  }
  if (topP !== undefined && !(topP >= 0 && topP <= 1)) throw invalidArgument(`topP must be between 0 and 1, not ${topP}`, 'tuned_model.top_p');
  if (topK !== undefined && !(Number.isInteger(topK) && topK >= 0)) {
    throw invalidArgument(`topK must be a non-negative integer, not ${topK}`, 'tuned_model.top_k');
  }
}

/** Hyperparameters within their ranges: anything else is refused at create, before a run can diverge on it. */
function checkHyperparameterRanges(given: Partial<Hyperparameters>, surface: Surface, method: TuningMethod): void {
  const { epochCount, batchSize, learningRate, learningRateMultiplier, beta } = given;
  const field = (name: string) => `${hyperparametersFieldOf(surface, method)}.${name}`;
  if (beta !== undefined && method !== 'preference') throw invalidArgument('beta applies to preference tuning only', field('beta'));
  if (beta !== undefined && !(beta > 0 && beta <= tuningLimits.maxBeta)) {
    throw invalidArgument(`beta must be greater than 0 and at most ${tuningLimits.maxBeta}, not ${beta} (Google's guidance: 0.01 to 0.5)`, field('beta'));
  }
  const integerIn = (value: number | undefined, name: string, max: number) => {
    if (value !== undefined && !(Number.isInteger(value) && value >= 1 && value <= max)) {
      throw invalidArgument(`${name} must be an integer from 1 to ${max}, not ${value}`, field(name));
    }
  };
  integerIn(epochCount, 'epoch_count', tuningLimits.maxEpochCount);
  integerIn(batchSize, 'batch_size', tuningLimits.maxBatchSize);
  if (learningRate !== undefined && learningRateMultiplier !== undefined) {
    throw invalidArgument('set learningRate or learningRateMultiplier, not both', hyperparametersFieldOf(surface, method));
  }
  const maxMultiplier = tuningLimits.maxLearningRate / baseLearningRateOf(method);
  for (const [name, value, max] of [
    ['learning_rate', learningRate, tuningLimits.maxLearningRate],
    ['learning_rate_multiplier', learningRateMultiplier, maxMultiplier],
  ] as const) {
    if (value !== undefined && !(value > 0 && value <= max)) {
      throw invalidArgument(`${name} must be greater than 0 and at most ${max}, not ${value}`, field(name));
    }
  }
}

function resolveHyperparameters(
  given: Partial<Hyperparameters>,
  examples: number,
  base: BaseModelInfo,
  surface: Surface,
  method: TuningMethod,
  source: TunedModel | undefined,
): Hyperparameters {
  const { epochCount, batchSize, learningRate, learningRateMultiplier, adapterRank } = given;
  const field = (name: string) => `${hyperparametersFieldOf(surface, method)}.${name}`;
  const sourceRank = source?.hyperparameters.adapterRank;
  if (sourceRank !== undefined && adapterRank !== undefined && adapterRank !== sourceRank) {
    throw invalidArgument(
      `The adapter size must be the source model's (rank ${sourceRank}), or be left out: a continued run trains tunedModels/${source!.id}'s adapter further.`,
      field('adapter_size'),
    );
  }
  if (adapterRank !== undefined && !base.adapterRanks.includes(adapterRank)) {
    throw invalidArgument(
      `The adapter size is not supported for this base model. ${base.name} takes ${base.adapterRanks.join(', ')}.`,
      field('adapter_size'),
    );
  }
  const resolved: Hyperparameters = {
    epochCount: epochCount ?? defaultEpochsFor(surface, examples),
    batchSize: batchSize ?? defaultBatchSize(examples),
    adapterRank: sourceRank ?? adapterRank ?? base.defaultAdapterRank,
    seed: trainingDefaults.seed,
  };
  if (method === 'preference') resolved.beta = given.beta ?? tuningDefaults.beta;
  if (learningRate !== undefined) resolved.learningRate = learningRate;
  else if (surface === 'vertex' || learningRateMultiplier !== undefined) resolved.learningRateMultiplier = learningRateMultiplier ?? 1;
  else resolved.learningRate = baseLearningRateOf(method);
  return resolved;
}

/** The learning rate a multiplier of 1.0 means for a tuning method. */
export const baseLearningRateOf = (method: TuningMethod): number => baseLearningRate(method);

/** Request fields named in errors, per surface. */
const displayNameField: Record<Surface, string> = { gemini: 'tuned_model.display_name', vertex: 'tuning_job.tuned_model_display_name' };
const hyperparametersFieldOf = (surface: Surface, method: TuningMethod): string =>
  surface === 'gemini'
    ? 'tuned_model.tuning_task.hyperparameters'
    : `tuning_job.${method === 'preference' ? 'preference_optimization_spec' : 'supervised_tuning_spec'}.hyper_parameters`;
const sourceField: Record<Surface, string> = { gemini: 'tuned_model.tuned_model_source', vertex: 'tuning_job.pre_tuned_model' };

/** The absolute peak learning rate a run uses. */
export function learningRateOf({ hyperparameters: h, tuningMethod }: Pick<TunedModel, 'hyperparameters' | 'tuningMethod'>): number {
  return h.learningRate ?? (h.learningRateMultiplier ?? 1) * baseLearningRateOf(tuningMethod);
}

const missingModel = (id: string) => new ServiceError('NOT_FOUND', `Tuned model tunedModels/${id} does not exist.`);

const cancelledError = { code: 1, message: 'Operation cancelled.' };

/** Examples the run trains on: those kept after dropping the over-long ones. */
const trainedExamples = (model: TunedModel) => Math.max(1, (model.dataStats?.exampleCount ?? 1) - (model.dataStats?.dropped.length ?? 0));

type Outcome = Pick<TunedModel, 'state'> & Partial<Pick<TunedModel, 'error' | 'adapterKey'>>;

const pageSizeOf = (surface: Surface, requested: number | undefined) =>
  Math.min(Math.max(1, requested || pageSizes[surface].default), pageSizes[surface].max);

const encodePageToken = (position: ListPosition) => Buffer.from(JSON.stringify([position.createTime, position.id])).toString('base64url');

function decodePageToken(token: string): ListPosition {
  try {
    const [createTime, id] = JSON.parse(Buffer.from(token, 'base64url').toString('utf8'));
    if (typeof createTime === 'string' && typeof id === 'string') return { createTime, id };
  } catch {
    // falls through to the error below
  }
  throw invalidArgument('pageToken is invalid: pass the nextPageToken of a previous list call', 'page_token');
}

function definedOnly<T extends object>(o: T): Partial<T> {
  return Object.fromEntries(Object.entries(o).filter(([, v]) => v !== undefined)) as Partial<T>;
}
