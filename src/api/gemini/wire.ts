// Domain ↔ Gemini API JSON: camelCase names, zero values omitted (proto3 JSON), enums as names unless the
// caller asked for integers with $alt=json;enum-encoding=int.
import type { StepMetric, TunedModel } from '../../service/tuning/tuned-model.js';
import { nonZero, type WireOptions } from '../proto-json.js';

const stateNumbers = { STATE_UNSPECIFIED: 0, CREATING: 1, ACTIVE: 2, FAILED: 3 } as const;

const typePackage = (model: TunedModel) => `google.ai.generativelanguage.${model.apiVersion === 'v1beta3' ? 'v1beta3' : 'v1beta'}`;

export function snapshotWire(metric: StepMetric) {
  return { step: metric.step, epoch: nonZero(metric.epoch), meanLoss: metric.loss, computeTime: metric.time };
}

export function tunedModelWire(model: TunedModel, snapshots: StepMetric[], options: WireOptions) {
  const { epochCount, batchSize, learningRate, learningRateMultiplier } = model.hyperparameters;
  return {
    name: `tunedModels/${model.id}`,
    ...(model.sourceTunedModel
      ? { tunedModelSource: { tunedModel: model.sourceTunedModel, baseModel: model.baseModel } }
      : { baseModel: model.baseModel }),
    displayName: nonZero(model.displayName),
    description: nonZero(model.description),
    state: options.integerEnums ? stateNumbers[model.state] : model.state,
    createTime: model.createTime,
    updateTime: model.updateTime,
    tuningTask: {
      startTime: model.startTime,
      completeTime: model.completeTime,
      // Google lists snapshots on the model once tuning is over; progress is on the operation.
      snapshots: model.operationDone ? nonZero(snapshots.map(snapshotWire)) : undefined,
      hyperparameters: { epochCount, batchSize, learningRate, learningRateMultiplier },
    },
    temperature: model.temperature,
    topP: model.topP,
    topK: model.topK,
  };
}

export function operationName(model: TunedModel): string {
  return `tunedModels/${model.id}/operations/${model.operationId}`;
}

export function operationWire(model: TunedModel, snapshots: StepMetric[], options: WireOptions) {
  const completedPercent = model.totalSteps ? (model.completedSteps / model.totalSteps) * 100 : 0;
  const outcome = !model.operationDone
    ? {}
    : model.error
      ? { error: { code: model.error.code, message: model.error.message } }
      : { response: { '@type': `type.googleapis.com/${typePackage(model)}.TunedModel`, ...tunedModelWire(model, snapshots, options) } };
  return {
    name: operationName(model),
    metadata: {
      '@type': `type.googleapis.com/${typePackage(model)}.CreateTunedModelMetadata`,
      tunedModel: `tunedModels/${model.id}`,
      totalSteps: model.totalSteps,
      completedSteps: nonZero(model.completedSteps),
      completedPercent: nonZero(Math.round(completedPercent * 1e4) / 1e4),
      snapshots: nonZero(snapshots.map(snapshotWire)),
    },
    done: nonZero(model.operationDone),
    ...outcome,
  };
}
