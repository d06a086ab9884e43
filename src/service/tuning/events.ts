// A tuning job's log of events (as OpenAI's fine-tuning jobs list them): created, while it is queued on a server
// that has no worker to train it that it waits for one, started, each epoch's end, each evaluation of the
// validation set, while it runs the latest checkpoint (the one a restart resumes from; a finished run keeps
// none), each of the tuned model's checkpoints kept (Vertex's tunedModel.checkpoints), and how it ended.
// Nothing here is stored as an event:
// each is derived from what the store already holds (the tuned model's times, hyperparameters and error, its
// metrics and the checkpoints its run reported), so the log can never disagree with the job.
import { trainingDefaults } from '../../engine/train/defaults.js';
import { now, type StepMetric, type TunedModel } from './tuned-model.js';
import type { TunedCheckpoint } from './checkpoints.js';
import { learningRateOf } from './service.js';

export type JobEventType = 'created' | 'waiting' | 'started' | 'epoch' | 'evaluation' | 'checkpoint' | 'kept' | 'succeeded' | 'failed' | 'cancelled';

export interface JobEvent {
  time: string;
  type: JobEventType;
  /** 'error' for a failure, 'warning' for a cancellation, else 'info'. */
  level: 'info' | 'warning' | 'error';
  message: string;
  step?: number;
  epoch?: number;
  loss?: number;
  accuracy?: number;
  /** Tokens trained on so far (the predictions of every training step up to this one). */
  trainedTokens?: number;
}

export interface JobEventLog {
  events: JobEvent[];
  /** Tokens trained on in all (so far, while it runs). */
  trainedTokens: number;
  seed: number;
}

const count = (n: number) => n.toLocaleString('en-US');
const lossText = (loss: number) => loss.toPrecision(4);
const percent = (fraction: number) => `${(fraction * 100).toFixed(1)}%`;

/** `waitingForWorker`: the job is queued on a server that does not train, and no worker is registered (now). */
export function jobEvents(
  model: TunedModel,
  train: StepMetric[],
  evals: StepMetric[],
  checkpoints: { step: number; time: string }[],
  kept: readonly TunedCheckpoint[] = [],
  { waitingForWorker = false } = {},
): JobEventLog {
  const h = model.hyperparameters;
  const seed = h.seed ?? trainingDefaults.seed;
  const events: JobEvent[] = [];
  const rate = h.learningRate !== undefined ? `learning rate ${h.learningRate}` : `learning rate ${learningRateOf(model)} (${h.learningRateMultiplier ?? 1} × the default)`;
  events.push({
    time: model.createTime,
    type: 'created',
    level: 'info',
    message:
      `Job created: ${model.tuningMethod === 'preference' ? `preference tuning (DPO, beta ${h.beta}) on ` : ''}` +
      `${count(model.dataStats.exampleCount)} examples (${count(model.dataStats.tokenCount)} tokens), ` +
      `${count(h.epochCount)} epochs of batch ${h.batchSize}, ${count(model.totalSteps)} steps, ${rate}, LoRA rank ${h.adapterRank}, seed ${seed}` +
      `${model.preTunedModel ? `, continuing ${model.preTunedModel.split('/').slice(-2).join('/')}` : ''}.`,
  });
  if (waitingForWorker) {
    events.push({
      time: now(),
      type: 'waiting',
      level: 'warning',
      message: 'Waiting for a worker: this server does not train, and no worker is registered yet (start attune worker on this database); the job stays queued until one that can hold it starts.',
    });
  }
  if (model.startTime) {
    events.push({ time: model.startTime, type: 'started', level: 'info', message: `Training started on ${model.baseModel.replace(/^models\//, '')}.` });
  }

  let trained = 0;
  let epoch = 0;
  for (const m of train) {
    trained += m.predictions;
    // The step at which an epoch's last batch was trained ends it (a batch may span two epochs' ends).
    while (epoch < m.epoch) {
      epoch++;
      events.push({
        time: m.time,
        type: 'epoch',
        level: 'info',
        step: m.step,
        epoch,
        loss: m.loss,
        accuracy: m.accuracy,
        trainedTokens: trained,
        message: `Epoch ${epoch} of ${h.epochCount} ended at step ${m.step}: loss ${lossText(m.loss)}, ${count(trained)} tokens trained so far.`,
      });
    }
  }
  for (const m of evals) {
    events.push({
      time: m.time,
      type: 'evaluation',
      level: 'info',
      step: m.step,
      loss: m.loss,
      accuracy: m.accuracy,
      message:
        model.tuningMethod === 'preference'
          ? `Validation at step ${m.step}: DPO loss ${lossText(m.loss)}, reward accuracy ${percent(m.accuracy)}, reward margin ${lossText(m.rewardMargin ?? 0)}.`
          : `Validation at step ${m.step}: loss ${lossText(m.loss)}, next-token accuracy ${percent(m.accuracy)} over ${count(m.predictions)} tokens.`,
    });
  }
  for (const c of kept) {
    events.push({
      time: c.createTime,
      type: 'kept',
      level: 'info',
      step: c.step,
      epoch: c.epoch,
      message: `Checkpoint ${c.checkpointId} kept at step ${c.step} (epoch ${c.epoch}), served on endpoints/${c.endpointNumber}.`,
    });
  }
  const latest = checkpoints.at(-1);
  if (latest && !model.operationDone) {
    events.push({ time: latest.time, type: 'checkpoint', level: 'info', step: latest.step, message: `Checkpoint saved at step ${latest.step}: a restart resumes from here.` });
  }

  if (model.operationDone && model.completeTime) {
    const last = train.at(-1);
    const steps = `${count(model.completedSteps)} of ${count(model.totalSteps)} steps`;
    const tokens = `${count(trained)} tokens trained`;
    if (model.error?.code === 1) {
      const kept = model.state === 'ACTIVE' ? 'the adapter of the steps so far is kept' : 'no step had completed, so there is no adapter';
      events.push({ time: model.completeTime, type: 'cancelled', level: 'warning', step: model.completedSteps, trainedTokens: trained, message: `Cancelled after ${steps} (${tokens}); ${kept}.` });
    } else if (model.state === 'FAILED') {
      events.push({ time: model.completeTime, type: 'failed', level: 'error', step: model.completedSteps, trainedTokens: trained, message: `Failed after ${steps}: ${model.error?.message ?? 'unknown error'}` });
    } else {
      const final = last ? `, final loss ${lossText(last.loss)}` : '';
      events.push({ time: model.completeTime, type: 'succeeded', level: 'info', step: model.completedSteps, trainedTokens: trained, message: `Finished: ${steps}, ${tokens}${final}.` });
    }
  }
  // Chronological; at the same instant, in the order a run produces them (an epoch's end before its evaluation and checkpoint).
  const order: JobEventType[] = ['created', 'waiting', 'started', 'epoch', 'evaluation', 'checkpoint', 'kept', 'succeeded', 'failed', 'cancelled'];
  events.sort((a, b) => (a.time < b.time ? -1 : a.time > b.time ? 1 : (a.step ?? 0) - (b.step ?? 0) || order.indexOf(a.type) - order.indexOf(b.type)));
  return { events, trainedTokens: trained, seed };
}
