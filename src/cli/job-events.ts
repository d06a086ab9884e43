// One human-readable line per job event (started, finished, failed, cancelled, deleted), written beside
// the server's JSON log so that someone watching `attune serve` sees what their runs do.
import type { TuningService } from '../service/tuning/service.js';
import type { StepMetric, TunedModel } from '../service/tuning/tuned-model.js';
import { jobStateOf, type JobState } from '../api/vertex/wire.js';

const time = () => new Date().toTimeString().slice(0, 8);

function describe(model: TunedModel, state: JobState, lastLoss: number | undefined): string | undefined {
  const steps = `${model.completedSteps}/${model.totalSteps} steps`;
  const loss = lastLoss === undefined ? '' : `, loss ${lastLoss.toFixed(4)}`;
  const seconds = model.startTime && model.completeTime ? ` in ${((Date.parse(model.completeTime) - Date.parse(model.startTime)) / 1000).toFixed(1)} s` : '';
  switch (state) {
    case 'JOB_STATE_RUNNING':
      return model.completedSteps > 0 ? `resumed at step ${steps}` : `training started: ${model.totalSteps} steps on ${model.baseModel}`;
    case 'JOB_STATE_CANCELLING':
      return 'cancel requested';
    case 'JOB_STATE_SUCCEEDED':
      return `succeeded: ${steps}${seconds}${loss}`;
    case 'JOB_STATE_CANCELLED':
      return `cancelled at ${steps}${model.state === 'ACTIVE' ? ' (the adapter so far is kept)' : ''}`;
    case 'JOB_STATE_FAILED':
      return `failed: ${model.error?.message ?? 'unknown error'}`;
    default:
      return undefined;
  }
}

export function printJobEvents(tuning: TuningService, write: (line: string) => void = (line) => process.stderr.write(line + '\n')): void {
  const states = new Map<string, JobState>();
  const losses = new Map<string, number>();
  const name = (model: TunedModel) => `tunedModels/${model.id}${model.displayName ? ` (${model.displayName})` : ''}`;
  tuning.events.on('metric', (id: string, metric: StepMetric) => {
    if (metric.kind === 'train') losses.set(id, metric.loss);
  });
  tuning.events.on('change', (model: TunedModel) => {
    const state = jobStateOf(model);
    if (states.get(model.id) === state) return;
    states.set(model.id, state);
    const line = describe(model, state, losses.get(model.id));
    if (line) write(`[${time()}] ${name(model)}: ${line}`);
  });
  tuning.events.on('deleted', (id: string) => {
    states.delete(id);
    losses.delete(id);
    write(`[${time()}] tunedModels/${id}: deleted`);
  });
}
