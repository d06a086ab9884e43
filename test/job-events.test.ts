// A job's log of events (service/tuning/events.ts) from what the store holds: epochs with the tokens trained
// so far, the latest checkpoint only while the run is in progress, how it ended.
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { jobEvents } from '../src/service/tuning/events.js';
import type { StepMetric, TunedModel } from '../src/service/tuning/tuned-model.js';

const at = (second: number) => `2026-12-01T12:00:${String(second).padStart(2, '0')}.000000Z`;

/** A run of 4 examples, 2 epochs of batch 2: 4 steps, epochs ending at steps 2 and 4. */
function run(done: boolean): { model: TunedModel; train: StepMetric[] } {
  const train = [1, 2, 3, 4].map((step) => ({ kind: 'train' as const, step, epoch: Math.floor(step / 2), loss: 2 / step, accuracy: step / 4, predictions: 10 + step, time: at(step + 1) }));
  const model = {
    id: 'numbers-1',
    baseModel: 'models/stories260K',
    state: done ? 'ACTIVE' : 'CREATING',
    createTime: at(0),
    startTime: at(1),
    completeTime: done ? at(6) : undefined,
    operationDone: done,
    totalSteps: 4,
    completedSteps: done ? 4 : 3,
    hyperparameters: { epochCount: 2, batchSize: 2, learningRateMultiplier: 1, adapterRank: 8, seed: 7 },
    dataStats: { exampleCount: 4, tokenCount: 40 },
  } as unknown as TunedModel;
  return { model, train: done ? train : train.slice(0, 3) };
}

describe('job events', () => {
  test('a running job: epochs with the tokens trained so far, and the latest checkpoint, where a restart resumes', () => {
    const { model, train } = run(false);
    const log = jobEvents(model, train, [], [
      { step: 1, time: at(2) },
      { step: 3, time: at(4) },
    ]);
    assert.equal(log.seed, 7);
    assert.equal(log.trainedTokens, 11 + 12 + 13);
    assert.deepEqual(
      log.events.map((e) => `${e.type}@${e.step ?? '-'}`),
      ['created@-', 'started@-', 'epoch@2', 'checkpoint@3'],
    );
    assert.equal(log.events[2]!.trainedTokens, 11 + 12);
    assert.equal(log.events[3]!.message, 'Checkpoint saved at step 3: a restart resumes from here.');
  });

  test('a finished job keeps no checkpoint, so its log names none; it ends with the totals', () => {
    const { model, train } = run(true);
    const log = jobEvents(model, train, [], [{ step: 3, time: at(4) }]);
    assert.deepEqual(
      log.events.map((e) => e.type),
      ['created', 'started', 'epoch', 'epoch', 'succeeded'],
    );
    assert.equal(log.events.at(-1)!.message, 'Finished: 4 of 4 steps, 50 tokens trained, final loss 0.5000.');
  });
});
