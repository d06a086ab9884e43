// Domain ↔ Vertex JSON (vertex-api.md §2, §3): the TuningJob view of a tuned model, its job state, its
// data statistics and its metric time series. int64 values are strings; enums are names unless the caller
// asked for integers.
import { adapterSizeRanks } from '../../engine/lora/lora.js';
import { epochsCompleted } from '../../engine/train/trainer.js';
import type { DataStats, Distribution, StepMetric, TunedModel, TuningMethod } from '../../service/tuning/tuned-model.js';
import type { TunedCheckpoint } from '../../service/tuning/checkpoints.js';
import { int64, nonZero, type WireOptions } from '../proto-json.js';
import { endpointName, modelName, tuningJobName, type VertexVersion } from './names.js';

/** google.cloud.aiplatform.v1.JobState; Attune uses PENDING, RUNNING, CANCELLING and the three terminal states. */
export const jobStates = {
  JOB_STATE_UNSPECIFIED: 0,
  JOB_STATE_QUEUED: 1,
  JOB_STATE_PENDING: 2,
  JOB_STATE_RUNNING: 3,
  JOB_STATE_SUCCEEDED: 4,
  JOB_STATE_FAILED: 5,
  JOB_STATE_CANCELLING: 6,
  JOB_STATE_CANCELLED: 7,
  JOB_STATE_PAUSED: 8,
  JOB_STATE_EXPIRED: 9,
  JOB_STATE_UPDATING: 10,
  JOB_STATE_PARTIALLY_SUCCEEDED: 11,
} as const;
export type JobState = keyof typeof jobStates;

/** AdapterSize's wire integers are not the sizes: TWO was added last, as 6. */
export const adapterSizeNumbers: Record<keyof typeof adapterSizeRanks, number> = {
  ADAPTER_SIZE_ONE: 1,
  ADAPTER_SIZE_TWO: 6,
  ADAPTER_SIZE_FOUR: 2,
  ADAPTER_SIZE_EIGHT: 3,
  ADAPTER_SIZE_SIXTEEN: 4,
  ADAPTER_SIZE_THIRTY_TWO: 5,
};

const adapterSizeOfRank = (rank: number) =>
  (Object.keys(adapterSizeRanks) as (keyof typeof adapterSizeRanks)[]).find((name) => adapterSizeRanks[name] === rank);

/**
 * The job state a tuned model shows. A cancelled run is CANCELLED even when its adapter was kept (the Gemini
 * API shows that model ACTIVE); a run asked to cancel is CANCELLING until its worker stops.
 */
export function jobStateOf(model: TunedModel): JobState {
  if (model.state === 'CREATING') {
    if (model.cancelRequested) return 'JOB_STATE_CANCELLING';
    return model.startTime ? 'JOB_STATE_RUNNING' : 'JOB_STATE_PENDING';
  }
  if (model.error?.code === 1) return 'JOB_STATE_CANCELLED';
  return model.state === 'ACTIVE' ? 'JOB_STATE_SUCCEEDED' : 'JOB_STATE_FAILED';
}

export const terminalStates: readonly JobState[] = ['JOB_STATE_SUCCEEDED', 'JOB_STATE_FAILED', 'JOB_STATE_CANCELLED'];

const enumValue = <T extends string>(name: T, numbers: Record<T, number>, options: WireOptions) => (options.integerEnums ? numbers[name] : name);

/** Examples training iterates over: those kept after dropping the over-long ones. */
const trainedExamples = (stats: DataStats) => stats.exampleCount - stats.dropped.length;

/**
 * The checkpoint a model serves: its default one (models.patch defaultCheckpointId), else its last. Undefined
 * for models tuned before checkpoints were kept (they serve their adapter, on the job number's endpoint).
 */
export function defaultCheckpointOf(model: TunedModel, checkpoints: readonly TunedCheckpoint[]): TunedCheckpoint | undefined {
  return checkpoints.find((c) => c.checkpointId === model.defaultCheckpointId) ?? checkpoints.at(-1);
}

/**
 * A model with an adapter (a run that SUCCEEDED, or one CANCELLED after it trained) is a Vertex Model with an
 * Endpoint per checkpoint; tunedModel.endpoint is its default checkpoint's, as Vertex's is.
 */
export function tunedModelWire(model: TunedModel, checkpoints: readonly TunedCheckpoint[]) {
  if (model.state !== 'ACTIVE') return undefined;
  const served = defaultCheckpointOf(model, checkpoints);
  return {
    model: modelName(model),
    endpoint: endpointName(model, served?.endpointNumber),
    // Vertex lists them only when intermediate checkpoints were kept.
    checkpoints: model.exportLastCheckpointOnly ? undefined : nonZero(checkpoints.map((c) => ({
      checkpointId: c.checkpointId, epoch: int64(c.epoch), step: int64(c.step), endpoint: endpointName(model, c.endpointNumber),
    }))),
  };
}

/** batchSize, learningRate, customBaseModel and outputUri are v1beta1 fields: a strict v1 parser would refuse them. */
export function tuningJobWire(model: TunedModel, options: WireOptions, version: VertexVersion, checkpoints: readonly TunedCheckpoint[] = []) {
  const beta = version === 'v1beta1';
  const state = jobStateOf(model);
  const { epochCount, batchSize, learningRate, learningRateMultiplier, adapterRank } = model.hyperparameters;
  const adapterSize = adapterSizeOfRank(adapterRank);
  const ended = terminalStates.includes(state);
  const preference = model.tuningMethod === 'preference';
  const spec = {
    trainingDatasetUri: model.trainingDatasetUri,
    validationDatasetUri: model.validationDatasetUri,
    hyperParameters: {
      epochCount: int64(epochCount),
      learningRateMultiplier,
      learningRate: beta ? learningRate : undefined,
      adapterSize: adapterSize && enumValue(adapterSize, adapterSizeNumbers, options),
      batchSize: beta ? int64(batchSize) : undefined,
      beta: model.hyperparameters.beta,
    },
    exportLastCheckpointOnly: model.exportLastCheckpointOnly || undefined,
  };
  const baseModel = model.baseModel.replace(/^models\//, '');
  return {
    name: tuningJobName(model),
    tunedModelDisplayName: nonZero(model.displayName),
    description: nonZero(model.description),
    // One of the two (the proto's oneof source_model): a continued run names the model it continues.
    baseModel: model.preTunedModel ? undefined : baseModel,
    preTunedModel: model.preTunedModel ? { tunedModelName: model.preTunedModel, baseModel } : undefined,
    supervisedTuningSpec: preference ? undefined : spec,
    preferenceOptimizationSpec: preference ? spec : undefined,
    customBaseModel: beta ? model.customBaseModel : undefined,
    outputUri: beta ? model.outputUri : undefined,
    state: enumValue(state, jobStates, options),
    createTime: model.createTime,
    startTime: model.startTime,
    endTime: ended ? model.completeTime : undefined,
    updateTime: model.updateTime,
    error: ended && model.error ? { code: model.error.code, message: model.error.message } : undefined,
    labels: Object.keys(model.labels).length ? model.labels : undefined,
    tunedModel: tunedModelWire(model, checkpoints),
    tuningDataStats:
      model.dataStats &&
      (preference
        ? { preferenceOptimizationDataStats: preferenceDataStatsWire(model.dataStats, model.totalSteps) }
        : { supervisedTuningDataStats: dataStatsWire(model.dataStats, model.totalSteps) }),
    tuningJobMetadata: model.dataStats && {
      completedEpochCount: int64(epochsCompleted(model.completedSteps, batchSize, trainedExamples(model.dataStats))),
      completedStepCount: int64(model.completedSteps),
    },
  };
}

function distributionWire(d: Distribution, billable: boolean) {
  const { sum, min, max, mean, median, p5, p95, buckets } = d;
  return { sum: int64(sum), billableSum: billable ? int64(sum) : undefined, min, max, mean, median, p5, p95, buckets: nonZero(buckets) };
}

function dataStatsWire(stats: DataStats, steps: number) {
  return {
    tuningDatasetExampleCount: int64(stats.exampleCount),
    totalTuningCharacterCount: int64(stats.characterCount),
    totalBillableTokenCount: int64(stats.tokenCount),
    tuningStepCount: int64(steps),
    userInputTokenDistribution: distributionWire(stats.inputTokens, true),
    userOutputTokenDistribution: distributionWire(stats.outputTokens, true),
    userMessagePerExampleDistribution: distributionWire(stats.messagesPerExample, false),
    userDatasetExamples: nonZero(stats.sample.map((turn) => ({ role: turn.role, parts: [{ text: turn.text }] }))),
    totalTruncatedExampleCount: int64(stats.dropped.length),
    truncatedExampleIndices: nonZero(stats.dropped.map((d) => String(d.index))),
    droppedExampleReasons: nonZero(stats.dropped.map((d) => d.reason)),
  };
}

/** PreferenceOptimizationDataStats: tokens count the prompt twice and both completions, as Google bills them. */
function preferenceDataStatsWire(stats: DataStats, steps: number) {
  return {
    tuningDatasetExampleCount: int64(stats.exampleCount),
    totalBillableTokenCount: int64(stats.tokenCount),
    tuningStepCount: int64(steps),
    userInputTokenDistribution: distributionWire(stats.inputTokens, true),
    userOutputTokenDistribution: distributionWire(stats.outputTokens, true),
    droppedExampleIndices: nonZero(stats.dropped.map((d) => String(d.index))),
    droppedExampleReasons: nonZero(stats.dropped.map((d) => d.reason)),
  };
}

// ---------------------------------------------------------------------------------------------------
// Metrics: the six series Vertex's tuning dashboards plot (vertex-api.md §7.1), shaped like TensorBoard's
// TimeSeriesData so that code reading Vertex's metrics ports directly. Preference runs plot the DPO loss, the
// reward accuracy and the reward margin instead (Google's names for these are not published: these are Attune's).

type Series = Record<string, (m: StepMetric) => number>;
const series: Record<TuningMethod, Record<'train' | 'eval', Series>> = {
  supervised: {
    train: {
      '/train_total_loss': (m) => m.loss,
      '/train_fraction_of_correct_next_step_preds': (m) => m.accuracy,
      '/train_num_predictions': (m) => m.predictions,
    },
    eval: {
      '/eval_total_loss': (m) => m.loss,
      '/eval_fraction_of_correct_next_step_preds': (m) => m.accuracy,
      '/eval_num_predictions': (m) => m.predictions,
    },
  },
  preference: {
    train: {
      '/train_total_loss': (m) => m.loss,
      '/train_reward_accuracy': (m) => m.accuracy,
      '/train_reward_margin': (m) => m.rewardMargin ?? 0,
      '/train_num_predictions': (m) => m.predictions,
    },
    eval: {
      '/eval_total_loss': (m) => m.loss,
      '/eval_reward_accuracy': (m) => m.accuracy,
      '/eval_reward_margin': (m) => m.rewardMargin ?? 0,
      '/eval_num_predictions': (m) => m.predictions,
    },
  },
};

/** The step at which each epoch ended, from the epochs completed after each train step. */
export function epochEnds(train: StepMetric[], previousEpoch = 0): { epoch: string; step: string }[] {
  const ends: { epoch: string; step: string }[] = [];
  let epoch = previousEpoch;
  for (const m of train) {
    while (epoch < m.epoch) ends.push({ epoch: String(++epoch), step: String(m.step) });
  }
  return ends;
}

/** Points of the given metrics as TimeSeriesData; series without points are left out. */
export function timeSeriesWire(train: StepMetric[], evals: StepMetric[], method: TuningMethod = 'supervised') {
  const out = [];
  for (const [kind, points] of [['train', train], ['eval', evals]] as const) {
    if (points.length === 0) continue;
    for (const [displayName, value] of Object.entries(series[method][kind])) {
      out.push({
        displayName,
        valueType: 'SCALAR',
        values: points.map((m) => ({ wallTime: m.time, step: String(m.step), scalar: { value: value(m) } })),
      });
    }
  }
  return out;
}
