// The console's pure helpers (src/console/lib), run under node:test: compiled by test/tsconfig.console-lib.json.
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { etaSeconds, halfLifeFor, paceDefaults, secondsPerStep } from '../src/console/lib/eta.js';
import { epochStride, thinEpochMarks } from '../src/console/lib/epoch-ticks.js';
import { smooth, type SeriesPoint } from '../src/console/lib/series.js';
import { csvToJsonl, looksLikeCsv } from '../src/console/lib/csv-import.js';
import { mulberry32 } from '../src/engine/train/mulberry32.js';
import { checkHyperparameters, emptyHyperparameters, fieldOfViolation, type HyperparameterFields } from '../src/console/lib/hyperparameters.js';

/** Points for steps 1..n, each step taking stepSeconds(step) seconds after a start-up of startSeconds. */
function run(n: number, stepSeconds: (step: number) => number, startSeconds = 0): SeriesPoint[] {
  const points: SeriesPoint[] = [];
  let wallMs = startSeconds * 1000;
  for (let step = 1; step <= n; step++) {
    wallMs += stepSeconds(step) * 1000;
    points.push({ step, value: 1, wallMs });
  }
  return points;
}

describe('time left (eta.ts)', () => {
  test('a steady pace is measured exactly, however few steps (bias-corrected, not pulled towards zero)', () => {
    const points = run(8, () => 0.5);
    assert.equal(secondsPerStep(points)!.toFixed(9), (0.5).toFixed(9));
    assert.equal(etaSeconds(points, 100, points.at(-1)!.wallMs)!.toFixed(6), (92 * 0.5).toFixed(6));
  });

  test('no estimate until a few steps after the warm-up are timed; the warm-up steps do not count', () => {
    const { warmupSteps, minSteps } = paceDefaults;
    // The first steps are slow (model load, first allocations); the rest take 0.1 s.
    const points = run(warmupSteps + minSteps + 1, (step) => (step <= warmupSteps ? 30 : 0.1));
    assert.equal(secondsPerStep(points.slice(0, warmupSteps + minSteps - 1)), undefined);
    assert.equal(secondsPerStep(points.slice(0, warmupSteps + minSteps))!.toFixed(9), (0.1).toFixed(9));
    assert.equal(secondsPerStep(points)!.toFixed(9), (0.1).toFixed(9));
  });

  test('the time since the newest point counts as spent, and the estimate never goes below zero', () => {
    const points = run(20, () => 1);
    const last = points.at(-1)!.wallMs;
    assert.equal(Math.round(etaSeconds(points, 40, last)!), 20);
    assert.equal(Math.round(etaSeconds(points, 40, last + 5000)!), 15);
    assert.equal(etaSeconds(points, 40, last + 60_000), 0);
    assert.equal(etaSeconds(points, undefined, last), undefined);
    assert.equal(etaSeconds([], 40, last), undefined);
  });

  test('on a noisy 7,500-step run the estimate stays steady where a 20-step window swung', () => {
    // 40 ms steps with ±50% jitter, an evaluation and a checkpoint adding 1.9 s every 375 steps (twenty in
    // the run), and now and then a step the machine made 10× slower.
    const next = mulberry32(7);
    const total = 7500;
    const stepSeconds = (step: number) => 0.04 * (0.5 + next()) + (step % 375 === 0 ? 1.9 : 0) + (next() < 0.01 ? 0.4 : 0);
    const points = run(total, stepSeconds, 20);
    const finish = points.at(-1)!.wallMs;
    const runMs = finish - points[0]!.wallMs;
    const windowed = (i: number) => {
      const recent = points.slice(Math.max(0, i - 19), i + 1);
      const pace = (recent.at(-1)!.wallMs - recent[0]!.wallMs) / 1000 / (recent.at(-1)!.step - recent[0]!.step);
      return (total - points[i]!.step) * pace;
    };
    /** Over every 5 s of the run, how far the predicted finish time moved, as a fraction of the time left. */
    const worstSwing = (eta: (i: number) => number) => {
      let worst = 0;
      let windowStart = 750;
      let low = Infinity;
      let high = -Infinity;
      // From a tenth of the way in to 90%: the estimates a user watching the run sees.
      for (let i = 750; i < 6750; i++) {
        const predicted = points[i]!.wallMs + eta(i) * 1000;
        low = Math.min(low, predicted);
        high = Math.max(high, predicted);
        if (points[i]!.wallMs - points[windowStart]!.wallMs >= 5000) {
          worst = Math.max(worst, (high - low) / (finish - points[i]!.wallMs));
          windowStart = i;
          low = high = predicted;
        }
      }
      return worst;
    };
    const smoothed = (i: number) => etaSeconds(points.slice(0, i + 1), total, points[i]!.wallMs)!;
    const swingWindowed = worstSwing(windowed);
    const swingSmoothed = worstSwing(smoothed);
    assert.ok(swingWindowed > 0.5, `a 20-step window swung by at most ${(swingWindowed * 100).toFixed(0)}%: the test run is not noisy enough`);
    assert.ok(swingSmoothed < 0.1, `the smoothed estimate swung by ${(swingSmoothed * 100).toFixed(0)}% of the time left within 5 s`);
    // And it is right: every estimate from 10% on predicts the finish within 8% of the run's length.
    for (let i = 750; i < 6750; i += 50) {
      const off = Math.abs(points[i]!.wallMs + smoothed(i) * 1000 - finish) / runMs;
      assert.ok(off < 0.08, `at step ${i + 1} the predicted finish was off by ${(off * 100).toFixed(1)}% of the run`);
    }
  });

  test('a lasting change of pace is followed within a few half-lives', () => {
    const total = 2000;
    const halfLifeSteps = halfLifeFor(total);
    // The machine gets twice as slow at step 1,000 (another job started beside it).
    const points = run(1000 + 4 * halfLifeSteps, (step) => (step <= 1000 ? 0.1 : 0.2));
    const pace = secondsPerStep(points, { halfLifeSteps })!;
    assert.ok(pace > 0.19 && pace < 0.2, `pace ${pace} after four half-lives at 0.2 s per step`);
  });
});

describe('chart helpers', () => {
  test('smoothing is TensorBoard\'s debiased moving average; 0 leaves the points as they are', () => {
    const points = [4, 2, 2, 2].map((y, x) => ({ x, y }));
    assert.equal(smooth(points, 0), points);
    const smoothed = smooth(points, 0.5).map((p) => +p.y.toFixed(6));
    // 4 → 4 (debiased, not 2); then (0.5·2 + 0.5·2)/0.75 = 2.666667; …
    assert.deepEqual(smoothed, [4, 2.666667, 2.285714, 2.133333]);
    assert.deepEqual(smooth(points, 0.5).map((p) => p.x), [0, 1, 2, 3]);
    // A flat series stays flat.
    assert.ok(smooth([1, 1, 1].map((y, x) => ({ x, y })), 0.9).every((p) => Math.abs(p.y - 1) < 1e-12));
  });

  test('50 epoch ends on a wide chart become every 5th; on a phone every 20th; few epochs all stay', () => {
    const marks = (epochs: number, widthPx: number) => Array.from({ length: epochs }, (_, i) => ({ epoch: i + 1, px: ((i + 1) / epochs) * widthPx }));
    const wide = thinEpochMarks(marks(50, 1000), 56);
    assert.equal(wide.stride, 5);
    assert.deepEqual(wide.shown.map((m) => m.epoch), [5, 10, 15, 20, 25, 30, 35, 40, 45, 50]);
    assert.equal(thinEpochMarks(marks(50, 300), 56).stride, 10);
    assert.equal(thinEpochMarks(marks(1000, 1000), 56).stride, 100);
    assert.deepEqual(thinEpochMarks(marks(5, 1000), 56).shown.map((m) => m.epoch), [1, 2, 3, 4, 5]);
    assert.deepEqual(thinEpochMarks([{ epoch: 1, px: 10 }], 56).shown.map((m) => m.epoch), [1]);
    assert.equal(epochStride(0, 56), 1);
  });
});

describe('hyperparameter checks at the field', () => {
  const fields = (patch: Partial<HyperparameterFields>): HyperparameterFields => ({ ...emptyHyperparameters(), ...patch });

  test('blank fields are the defaults; out-of-range ones are errors in words, not field names', () => {
    assert.deepEqual(checkHyperparameters(fields({})), { errors: {}, warnings: {} });
    const bad = checkHyperparameters(fields({ epochs: '0', batchSize: '2.5', learningRate: '-1' }));
    assert.equal(bad.errors.epochs, 'The number of epochs must be a whole number from 1 to 10,000, not 0.');
    assert.equal(bad.errors.batchSize, 'The batch size must be a whole number from 1 to 1,024, not 2.5.');
    assert.equal(bad.errors.learningRate, 'The learning rate multiplier must be a number above 0 and at most 500, not -1.');
    assert.doesNotMatch(JSON.stringify(bad), /epoch_count|batch_size|learning_rate/);
    assert.equal(checkHyperparameters(fields({ learningRateMode: 'rate', learningRate: '2' })).errors.learningRate, 'The learning rate must be a number above 0 and at most 1, not 2.');
  });

  test('a learning rate outside where LoRA usually tunes is a warning, not an error', () => {
    assert.deepEqual(checkHyperparameters(fields({ learningRate: '1' })), { errors: {}, warnings: {} });
    assert.deepEqual(checkHyperparameters(fields({ learningRate: '5' })).warnings, {}); // 0.01, the top of the usual range
    const high = checkHyperparameters(fields({ learningRate: '100' }));
    assert.deepEqual(high.errors, {});
    assert.match(high.warnings.learningRate!, /^A multiplier of 100 means a peak learning rate of 0\.2 \(the default is 0\.002\), above the 0\.00001 to 0\.01 .*diverge/);
    assert.match(checkHyperparameters(fields({ learningRateMode: 'rate', learningRate: '0.000001' })).warnings.learningRate!, /below .* barely change/);
  });

  test("a server's field violation maps to the form field", () => {
    assert.equal(fieldOfViolation('supervised_tuning_spec.hyper_parameters.epoch_count'), 'epochs');
    assert.equal(fieldOfViolation('tuning_task.hyperparameters.learning_rate_multiplier'), 'learningRate');
    assert.equal(fieldOfViolation('tuning_task.hyperparameters.batch_size'), 'batchSize');
    assert.equal(fieldOfViolation('supervised_tuning_spec.training_dataset_uri'), undefined);
  });
});

describe('CSV import', () => {
  test('a CSV with the usual column names becomes text_input/output JSONL; quotes, commas and newlines survive', () => {
    const csv = 'id,prompt,response\n1,"one, two","three\nfour"\n2,-3,-2\n3,,empty input\n';
    assert.equal(looksLikeCsv(csv), true);
    const imported = csvToJsonl(csv);
    assert.equal(imported.inputColumn, 'prompt');
    assert.equal(imported.outputColumn, 'response');
    assert.equal(imported.examples, 2);
    assert.equal(imported.skipped, 1);
    assert.deepEqual(imported.jsonl.trim().split('\n').map((l) => JSON.parse(l)), [
      { text_input: 'one, two', output: 'three\nfour' },
      { text_input: '-3', output: '-2' },
    ]);
  });

  test('unknown column names: the first two columns; JSONL and plain text are not CSV', () => {
    const imported = csvToJsonl('\uFEFFa;b\n'.replace(';', ',') + 'x,y\n');
    assert.deepEqual([imported.inputColumn, imported.outputColumn, imported.examples], ['a', 'b', 1]);
    assert.equal(looksLikeCsv('{"text_input": "1", "output": "2"}\n'), false);
    assert.equal(looksLikeCsv('just one line of prose'), false);
    assert.equal(looksLikeCsv(''), false);
  });
});
