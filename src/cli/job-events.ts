// One human-readable line per job event (started, finished, failed, cancelled, deleted), written beside
// the server's JSON log so that someone watching `attune serve` sees what their runs do.
import type { TuningService } from '../service/tuning/service.js';
import type { TunedModel } from '../service/tuning/tuned-model.js';
import type { ServiceEvent } from '../service/store/events.js';
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

/**
 * Events are hints (see store/events.ts): each is followed by a read of the model, one at a time so that lines
 * keep their order. With a shared database every server prints the runs any worker reports.
 */
export function printJobEvents(tuning: TuningService, write: (line: string) => void = (line) => process.stderr.write(line + '\n')): () => void {
  const states = new Map<string, JobState>();
  const name = (model: TunedModel) => `tunedModels/${model.id}${model.displayName ? ` (${model.displayName})` : ''}`;
  const lastLoss = async (id: string) => (await tuning.store.metrics(id, 'train')).at(-1)?.loss;
  const print = async (event: ServiceEvent) => {
    if (event.type === 'deleted') {
      states.delete(event.id);
      write(`[${time()}] tunedModels/${event.id}: deleted`);
      return;
    }
    if (event.type !== 'change') return;
    const model = await tuning.store.get(event.id);
    if (!model) return;
    const state = jobStateOf(model);
    if (states.get(model.id) === state) return;
    states.set(model.id, state);
    const line = describe(model, state, state === 'JOB_STATE_SUCCEEDED' ? await lastLoss(model.id) : undefined);
    if (line) write(`[${time()}] ${name(model)}: ${line}`);
  };
  let printed = Promise.resolve();
  return tuning.events.subscribe((event) => {
    printed = printed.then(() => print(event)).catch(() => {}); // the database is away: a line is lost, not the server
  });
}
