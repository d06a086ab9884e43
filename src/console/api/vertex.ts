// Vertex AI tuningJobs (v1beta1) as Attune serves them, plus its metrics extension. int64 fields arrive
// as JSON strings, as Google sends them.
import { getSettings } from '../settings';
import { apiFetch, apiJson } from './http';
import { sseData } from './sse';

export type JobState =
  | 'JOB_STATE_PENDING'
  | 'JOB_STATE_RUNNING'
  | 'JOB_STATE_CANCELLING'
  | 'JOB_STATE_SUCCEEDED'
  | 'JOB_STATE_FAILED'
  | 'JOB_STATE_CANCELLED';

export type Int64 = string | number;

export interface HyperParameters {
  epochCount?: Int64;
  batchSize?: Int64;
  learningRate?: number;
  learningRateMultiplier?: number;
  adapterSize?: string;
  /** Preference tuning only. */
  beta?: number;
}

export interface SupervisedTuningSpec {
  trainingDatasetUri: string;
  validationDatasetUri?: string;
  hyperParameters?: HyperParameters;
}

export interface Distribution {
  sum?: Int64;
  billableSum?: Int64;
  min?: number;
  max?: number;
  mean?: number;
  median?: number;
  p5?: number;
  p95?: number;
}

export interface SupervisedTuningDataStats {
  tuningDatasetExampleCount?: Int64;
  totalTuningCharacterCount?: Int64;
  totalBillableTokenCount?: Int64;
  tuningStepCount?: Int64;
  userInputTokenDistribution?: Distribution;
  userOutputTokenDistribution?: Distribution;
  userMessagePerExampleDistribution?: Distribution;
  totalTruncatedExampleCount?: Int64;
  truncatedExampleIndices?: Int64[];
  droppedExampleReasons?: string[];
}

/** A continued run's source: a version of a tuned Model. */
export interface PreTunedModel {
  tunedModelName: string;
  baseModel?: string;
}

export interface TuningJob {
  name: string;
  tunedModelDisplayName?: string;
  description?: string;
  baseModel?: string;
  preTunedModel?: PreTunedModel;
  state: JobState;
  createTime?: string;
  startTime?: string;
  endTime?: string;
  updateTime?: string;
  error?: { code?: number; message?: string };
  labels?: Record<string, string>;
  supervisedTuningSpec?: SupervisedTuningSpec;
  /** Preference tuning (DPO): the same fields, hyperParameters.beta too. */
  preferenceOptimizationSpec?: SupervisedTuningSpec;
  /** Once its run kept an adapter; endpoint is the default checkpoint's. */
  tunedModel?: { model?: string; endpoint?: string; checkpoints?: TunedModelCheckpoint[] };
  tuningDataStats?: { supervisedTuningDataStats?: SupervisedTuningDataStats; preferenceOptimizationDataStats?: SupervisedTuningDataStats };
  tuningJobMetadata?: { completedStepCount?: Int64; completedEpochCount?: Int64 };
}

/** One of a tuned model's checkpoints, each served on an endpoint of its own (a full resource name). */
export interface TunedModelCheckpoint {
  checkpointId: string;
  epoch?: Int64;
  step?: Int64;
  endpoint: string;
}

export interface NewTuningJob {
  /** One of baseModel and preTunedModel. */
  baseModel?: string;
  preTunedModel?: { tunedModelName: string };
  tunedModelDisplayName?: string;
  description?: string;
  labels?: Record<string, string>;
  /** One of the two specs. */
  supervisedTuningSpec?: SupervisedTuningSpec;
  preferenceOptimizationSpec?: SupervisedTuningSpec;
}

/** The base model a job tunes: its own, or (a continued run) its pre-tuned model's. */
export const baseModelOf = (job: Pick<TuningJob, 'baseModel' | 'preTunedModel'>): string | undefined => job.baseModel ?? job.preTunedModel?.baseModel;

/** Whether a job is preference tuning (DPO) rather than supervised. */
export const isPreferenceJob = (job: Pick<TuningJob, 'preferenceOptimizationSpec'>): boolean => !!job.preferenceOptimizationSpec;

/** The job's tuning spec, whichever its method. */
export const specOf = (job: Pick<TuningJob, 'supervisedTuningSpec' | 'preferenceOptimizationSpec'>): SupervisedTuningSpec | undefined =>
  job.preferenceOptimizationSpec ?? job.supervisedTuningSpec;

/** The job's data statistics, whichever its method. */
export const dataStatsOf = (job: Pick<TuningJob, 'tuningDataStats'> | undefined): SupervisedTuningDataStats | undefined =>
  job?.tuningDataStats?.supervisedTuningDataStats ?? job?.tuningDataStats?.preferenceOptimizationDataStats;

export interface MetricPoint {
  step: Int64;
  wallTime: string;
  scalar: { value: number };
}

export interface TimeSeries {
  displayName: string;
  valueType?: string;
  values: MetricPoint[];
}

export interface EpochEnd {
  epoch: Int64;
  /** The step at which the epoch ended. */
  step: Int64;
}

export interface JobMetrics {
  timeSeriesData?: TimeSeries[];
  epochs?: EpochEnd[];
}

/** One event of the metrics stream: new points, and/or the job when its state changed. */
export interface MetricsEvent extends JobMetrics {
  tuningJob?: TuningJob;
}

export const metricNames = {
  trainLoss: '/train_total_loss',
  trainAccuracy: '/train_fraction_of_correct_next_step_preds',
  trainPredictions: '/train_num_predictions',
  evalLoss: '/eval_total_loss',
  evalAccuracy: '/eval_fraction_of_correct_next_step_preds',
  evalPredictions: '/eval_num_predictions',
  trainRewardAccuracy: '/train_reward_accuracy',
  trainRewardMargin: '/train_reward_margin',
  evalRewardAccuracy: '/eval_reward_accuracy',
  evalRewardMargin: '/eval_reward_margin',
} as const;

/** The numeric id at the end of a job's resource name. */
export const jobId = (name: string): string => name.split('/').at(-1) ?? name;

export function jobsPath(): string {
  const { project, location } = getSettings();
  return `/v1beta1/projects/${encodeURIComponent(project)}/locations/${encodeURIComponent(location)}/tuningJobs`;
}

export interface JobPage {
  tuningJobs?: TuningJob[];
  nextPageToken?: string;
}

export function listJobs(query: { pageSize?: number; pageToken?: string; filter?: string }, signal?: AbortSignal): Promise<JobPage> {
  return apiJson<JobPage>(jobsPath(), { query, signal });
}

export function getJob(id: string, signal?: AbortSignal): Promise<TuningJob> {
  return apiJson<TuningJob>(`${jobsPath()}/${encodeURIComponent(id)}`, { signal });
}

/** Creates the job; with validateOnly the server checks the dataset and answers the would-be job. */
export function createJob(job: NewTuningJob, { validateOnly = false, signal }: { validateOnly?: boolean; signal?: AbortSignal } = {}): Promise<TuningJob> {
  return apiJson<TuningJob>(jobsPath(), { method: 'POST', body: job, query: { validateOnly: validateOnly || undefined }, signal });
}

export function cancelJob(id: string): Promise<unknown> {
  return apiJson(`${jobsPath()}/${encodeURIComponent(id)}:cancel`, { method: 'POST', body: {} });
}

export function getMetrics(id: string, signal?: AbortSignal): Promise<JobMetrics> {
  return apiJson<JobMetrics>(`${jobsPath()}/${encodeURIComponent(id)}/metrics`, { signal });
}

/** Everything so far, then new points and state changes as they happen; ends once the job is terminal. */
export async function* streamMetrics(id: string, signal: AbortSignal): AsyncGenerator<MetricsEvent> {
  const response = await apiFetch(`${jobsPath()}/${encodeURIComponent(id)}/metrics`, { query: { alt: 'sse' }, signal });
  for await (const data of sseData(response)) yield JSON.parse(data) as MetricsEvent;
}

export interface JobEvent {
  time: string;
  type: 'created' | 'waiting' | 'started' | 'epoch' | 'evaluation' | 'checkpoint' | 'kept' | 'succeeded' | 'failed' | 'cancelled';
  level: 'info' | 'warning' | 'error';
  message: string;
  step?: number;
  trainedTokens?: number;
}

export interface JobEvents {
  events: JobEvent[];
  /** Tokens trained on so far (int64 as a string). */
  trainedTokens: Int64;
  seed: number;
}

/** A job's log of events, oldest first (an Attune extension beside its metrics). */
export function getJobEvents(id: string, signal?: AbortSignal): Promise<JobEvents> {
  return apiJson<JobEvents>(`${jobsPath()}/${encodeURIComponent(id)}/events`, { signal });
}

/** Asks one checkpoint's endpoint, greedily (Vertex PredictionService.generateContent). */
export function generateOnEndpoint(endpoint: string, text: string, signal?: AbortSignal): Promise<{ candidates?: { content?: { parts?: { text?: string }[] } }[] }> {
  const body = { contents: [{ role: 'user', parts: [{ text }] }], generationConfig: { temperature: 0, maxOutputTokens: 64 } };
  return apiJson(`/v1beta1/${endpoint}:generateContent`, { method: 'POST', body, signal });
}

/** Makes a checkpoint the one the model serves (Vertex models.patch with updateMask defaultCheckpointId). */
export function setDefaultCheckpoint(model: string, checkpointId: string): Promise<unknown> {
  return apiJson(`/v1beta1/${model.replace(/@[^/]*$/, '')}`, { method: 'PATCH', query: { updateMask: 'defaultCheckpointId' }, body: { defaultCheckpointId: checkpointId } });
}
