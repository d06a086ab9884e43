// Preference tuning (DPO) and continued tuning in the engine, on stories260K: preference lines parsed with
// their problems by line number; the first DPO step's loss is ln 2, from a fresh adapter and from a tuned one
// (the reference is where the run starts); a continued run starts at the source run's final loss.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { DatasetError, parseJsonl } from '../src/engine/data/examples.js';
import { chooseFraming, frameCompletion, frameExample, IGNORE_INDEX } from '../src/engine/data/framing.js';
import { tune } from '../src/engine/tuning.js';
import { scorePairs } from '../src/engine/train/preference.js';
import { unboundedStepPlan } from '../src/engine/train/step.js';
import { ids as idTensor, noGrad, tidy } from '../src/engine/tensor/index.js';
import type { BaseModel } from '../src/engine/base-model.js';
import type { Example } from '../src/engine/data/examples.js';
import { loadStories, numberExamples, tempDir } from './helpers/engine.js';

let shared: Promise<BaseModel> | undefined;
const stories = () => (shared ??= loadStories());

const content = (role: string, text: string) => ({ role, parts: [{ text }] });
const preferenceLine = (prompt: string, chosen: string, rejected: string) =>
  JSON.stringify({ contents: [content('user', prompt)], completions: [{ score: 0, completion: content('model', rejected) }, { score: 1, completion: content('model', chosen) }] });

/** Number successors preferred over predecessors: "14" → "15" rather than "13". */
export function successorPreferences(from: number, to: number): Example[] {
  const lines = [];
  for (let n = from; n < to; n++) lines.push(preferenceLine(String(n), String(n + 1), String(n - 1)));
  return parseJsonl(lines.join('\n'), { kind: 'preference' }).examples;
}

test('preference lines: the higher score is chosen, and every problem names its line', () => {
  const [example] = parseJsonl(
    JSON.stringify({
      system_instruction: { parts: [{ text: 'Count.' }] },
      contents: [content('user', '1')],
      completions: [{ score: 0, completion: content('model', '0') }, { score: 1, completion: content('model', '2') }],
    }),
    { kind: 'preference' },
  ).examples;
  assert.deepEqual(example, { systemInstruction: 'Count.', turns: [{ role: 'user', text: '1' }, { role: 'model', text: '2' }], rejected: '0' });

  const bad: [unknown, RegExp][] = [
    [{ contents: [content('user', '1'), content('model', '2')], completions: [] }, /end with the user's turn/],
    [{ contents: [content('user', '1')] }, /exactly two completions/],
    [{ contents: [content('user', '1')], completions: [{ score: 1, completion: content('model', 'a') }] }, /exactly two completions/],
    [{ contents: [content('user', '1')], completions: [{ score: 1, completion: content('model', 'a') }, { score: 1, completion: content('model', 'b') }] }, /same score/],
    [{ contents: [content('user', '1')], completions: [{ score: 'high', completion: content('model', 'a') }, { score: 0, completion: content('model', 'b') }] }, /score must be a number/],
    [{ contents: [content('user', '1')], completions: [{ score: 1, completion: content('user', 'a') }, { score: 0, completion: content('model', 'b') }] }, /role must be "model"/],
    [{ text_input: '1', output: '2' }, /needs "contents"/],
  ];
  for (const [line, problem] of bad) {
    const text = [preferenceLine('1', '2', '0'), '', JSON.stringify(line)].join('\n');
    assert.throws(() => parseJsonl(text, { kind: 'preference' }), (error: unknown) => {
      assert.ok(error instanceof DatasetError);
      assert.equal(error.line, 3, error.message);
      assert.match(error.message, /^line 3: /);
      assert.match(error.message, problem);
      return true;
    });
  }
});

test('a completion is framed as the last model turn of a supervised example is', async () => {
  const { tokenizer } = await stories();
  const [example] = successorPreferences(14, 15);
  const framing = chooseFraming(tokenizer, [example!]);
  const supervised = frameExample(tokenizer, framing, { turns: example!.turns });
  const completion = frameCompletion(tokenizer, framing, { turns: example!.turns.slice(0, 1) }, '15');
  assert.deepEqual(completion, supervised);
  const rejected = frameCompletion(tokenizer, framing, { turns: example!.turns.slice(0, 1) }, example!.rejected!);
  assert.ok(rejected.targets.some((t) => t !== IGNORE_INDEX));
});

test('a completion\'s log-probability, packed with others, is the sum of its tokens\' log-softmax computed alone', async () => {
  const { tokenizer, transformer } = await stories();
  const examples = [...successorPreferences(8, 11), ...successorPreferences(98, 100)];
  const framing = chooseFraming(tokenizer, examples);
  const pairs = examples.map((e) => {
    const prompt = { turns: e.turns.slice(0, 1) };
    return { chosen: frameCompletion(tokenizer, framing, prompt, e.turns[1]!.text), rejected: frameCompletion(tokenizer, framing, prompt, e.rejected!) };
  });
  const scored = scorePairs(transformer, pairs, unboundedStepPlan);
  const alone = (sequence: { ids: number[]; targets: number[] }) =>
    noGrad(() =>
      tidy(() => {
        const logProbs = transformer.forward(idTensor(sequence.ids, [1, sequence.ids.length])).logSoftmax(-1).toFloat32Array();
        const vocab = transformer.config.vocabSize;
        return sequence.targets.reduce((sum, target, i) => (target === IGNORE_INDEX ? sum : sum + logProbs[i * vocab + target]!), 0);
      }),
    );
  scored.forEach((pair, i) => {
    assert.ok(Math.abs(pair.reference[0] - alone(pairs[i]!.chosen)) < 1e-3, `pair ${i} chosen: ${pair.reference[0]} vs ${alone(pairs[i]!.chosen)}`);
    assert.ok(Math.abs(pair.reference[1] - alone(pairs[i]!.rejected)) < 1e-3, `pair ${i} rejected`);
  });
});

test('DPO: the first step loss is ln 2 and the reward margin grows; a continued run starts where its source ended', async (t) => {
  const base = await stories();
  const preferences = successorPreferences(10, 30);
  const both = preferences.flatMap((e) => [{ turns: e.turns }, { turns: [e.turns[0]!, { role: 'model' as const, text: e.rejected! }] }]);

  // Supervised on both answers, as Google recommends before preference tuning.
  const supervisedDir = tempDir(t);
  const supervised = await tune(base, { examples: both, training: { epochs: 8, batchSize: 8 }, outDir: supervisedDir });
  const supervisedFinal = supervised.history.at(-1)!.loss;

  // Continued supervised tuning starts at the source's final loss, not at the base model's.
  const continued = await tune(base, { examples: both, startFrom: supervisedDir, training: { epochs: 1, batchSize: 8 }, outDir: tempDir(t) });
  const fresh = supervised.history[0]!.loss;
  assert.ok(Math.abs(continued.history[0]!.loss - supervisedFinal) < 0.5 * (fresh - supervisedFinal), `continued ${continued.history[0]!.loss}, source final ${supervisedFinal}, fresh ${fresh}`);

  for (const startFrom of [undefined, supervisedDir]) {
    const outcome = await tune(base, {
      examples: preferences,
      validation: successorPreferences(40, 44),
      startFrom,
      preference: { beta: 0.1 },
      training: { epochs: 3, batchSize: 4, learningRate: 1e-3 },
      outDir: tempDir(t),
    });
    const [first] = outcome.history;
    assert.ok(Math.abs(first!.loss - Math.LN2) < 1e-4, `first DPO loss ${first!.loss} from ${startFrom ?? 'the base'}`);
    assert.equal(first!.rewardMargin, 0);
    assert.equal(outcome.evaluations.length > 0, true);
    assert.ok(outcome.evaluations.every((e) => e.rewardMargin !== undefined && e.accuracy >= 0 && e.accuracy <= 1));
    const last = outcome.history.slice(-5);
    const meanMargin = last.reduce((n, m) => n + m.rewardMargin!, 0) / last.length;
    assert.ok(meanMargin > 0, `reward margins at the end: ${last.map((m) => m.rewardMargin)}`);
  }
});

test('numberExamples still frame and tune as before with the shared objective loop', async (t) => {
  const outcome = await tune(await stories(), { examples: numberExamples(), training: { epochs: 1, batchSize: 4 }, outDir: tempDir(t) });
  assert.equal(outcome.completedSteps, 4);
  assert.equal(outcome.history[0]!.rewardMargin, undefined);
});
