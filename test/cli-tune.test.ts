// `attune tune` beyond a fresh supervised run, through the CLI binary on stories260K, as a user runs it:
//   - --from continues a tuned adapter: the first step's loss is the source's final loss, at the source's rank;
//   - preference tuning (DPO) on preference lines, detected or by --method dpo: the first step's loss is ln 2, a PEFT
//     adapter is written, and continued from a supervised adapter (as Google recommends) it moves the greedy answer
//     to the chosen completion;
//   - bad flags and bad data are plain messages, never stack traces.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { cpSync, existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { loadTunedAdapter } from '../src/engine/lora/tuned-adapter.js';
import { LoraAdapter } from '../src/engine/lora/lora.js';
import { framePrompt, stopSequencesFor } from '../src/engine/data/framing.js';
import { generate } from '../src/engine/generate/generate.js';
import type { BaseModel } from '../src/engine/base-model.js';
import { embeddedBaseModelDir, loadStories, numbersJsonl, repoPath, runCli, tempDir, type CliResult } from './helpers/engine.js';

const content = (role: string, text: string) => ({ role, parts: [{ text }] });
const prompts = Array.from({ length: 30 }, (_, i) => 10 + i);
const jsonl = (rows: unknown[]) => rows.map((r) => (typeof r === 'string' ? r : JSON.stringify(r))).join('\n') + '\n';
/** Number successors: "n" → "n+1" preferred over "n−1". */
const preferenceLine = (n: number) => ({
  contents: [content('user', String(n))],
  completions: [{ score: 0, completion: content('model', String(n - 1)) }, { score: 1, completion: content('model', String(n + 1)) }],
});
/** Supervised tuning on both answers of each preference. */
const bothAnswers = prompts.flatMap((n) => [n + 1, n - 1].map((answer) => ({ contents: [content('user', String(n)), content('model', String(answer))] })));

async function tuneCli(args: string[]): Promise<CliResult> {
  const result = await runCli(['tune', ...args], { timeoutMs: 180_000 });
  assert.equal(result.code, 0, result.stderr);
  return result;
}

/** The first and last step's loss, as the CLI's closing line prints them. */
function losses(stderr: string): { first: number; last: number } {
  const match = /tuned \d+ steps: loss (\d+\.\d+) → (\d+\.\d+)/.exec(stderr);
  assert.ok(match, stderr);
  return { first: Number(match[1]), last: Number(match[2]) };
}

const record = (dir: string) => JSON.parse(readFileSync(path.join(dir, 'attune.json'), 'utf8'));
const rankOf = (dir: string) => JSON.parse(readFileSync(path.join(dir, 'adapter_config.json'), 'utf8')).r;

function assertPlainError(result: CliResult, message: RegExp, code?: number): void {
  assert.notEqual(result.code, 0, `expected a failure, got:\n${result.stderr}`);
  if (code !== undefined) assert.equal(result.code, code, result.stderr);
  assert.match(result.stderr, message);
  assert.match(result.stderr, /^attune tune: /m);
  assert.doesNotMatch(result.stderr, /\n\s+at .+\(.+:\d+:\d+\)/, 'a stack trace');
}

test('attune tune --from continues an adapter: its first step is where the source ended, at its rank', async (t) => {
  const dir = tempDir(t);
  const source = path.join(dir, 'source');
  // The source's last validation pass scores its final adapter on every example.
  const tuned = await tuneCli(['--data', numbersJsonl, '--validation', numbersJsonl, '--epochs', '20', '--adapter-size', '4', '--out', source]);
  const fresh = losses(tuned.stderr).first;
  const finalValidation = Number(/validation at step 75: loss (\d+\.\d+)/.exec(tuned.stderr)?.[1]);
  assert.ok(finalValidation < fresh / 10, `the source learned the task: ${fresh} → ${finalValidation}`);

  // One step over all 15 examples: its loss is the source adapter's on the whole dataset, before any update.
  const continued = path.join(dir, 'continued');
  const run = await tuneCli(['--from', source, '--data', numbersJsonl, '--epochs', '1', '--batch-size', '15', '--out', continued]);
  assert.match(run.stderr, /continuing .*source/);
  const first = losses(run.stderr).first;
  assert.ok(Math.abs(first - finalValidation) <= 2e-4, `continued first-step loss ${first}, the source's final loss ${finalValidation} (from scratch: ${fresh})`);
  assert.equal(rankOf(continued), 4, 'the source adapter rank, with no --adapter-size');
  assert.equal(record(continued).training.continued, true);
  assert.equal(path.resolve(record(continued).baseModel), path.resolve(embeddedBaseModelDir));

  // Another rank, or another base model that is here, is refused in words.
  assertPlainError(await runCli(['tune', '--from', source, '--data', numbersJsonl, '--adapter-size', '8', '--out', path.join(dir, 'x')]), /the adapter to continue from has rank 4; this run asks for rank 8/);
  const other = path.join(dir, 'other-base');
  mkdirSync(other);
  cpSync(repoPath('test', 'fixtures', 'models', 'llama-tiny'), other, { recursive: true });
  for (const file of ['tokenizer.json', 'tokenizer_config.json', 'tokenizer.model']) cpSync(path.join(embeddedBaseModelDir, file), path.join(other, file));
  assertPlainError(
    await runCli(['tune', '--from', source, '--base', other, '--data', numbersJsonl, '--out', path.join(dir, 'x')]),
    /was tuned on the base model .*stories260K, not --base .*other-base; a run continues its adapter on the same base/,
    2,
  );
  // An adapter whose base is not on this machine continues on --base, which must fit it.
  const moved = path.join(dir, 'moved');
  cpSync(source, moved, { recursive: true });
  writeFileSync(path.join(moved, 'attune.json'), JSON.stringify({ ...record(source), baseModel: '/nowhere/stories260K' }));
  assertPlainError(await runCli(['tune', '--from', moved, '--data', numbersJsonl, '--out', path.join(dir, 'x')]), /was tuned on the base model \/nowhere\/stories260K, which is not here; pass --base/, 2);
  assertPlainError(await runCli(['tune', '--from', moved, '--base', other, '--data', numbersJsonl, '--out', path.join(dir, 'x')]), /has shapes that do not fit the base model/, 1);
  await tuneCli(['--from', moved, '--base', embeddedBaseModelDir, '--data', numbersJsonl, '--epochs', '1', '--out', path.join(dir, 'x')]);
});

/** How many of the prompts the adapter answers greedily with the chosen completion. */
async function chosenCount(base: BaseModel, adapterDir: string): Promise<number> {
  const { adapter, record } = loadTunedAdapter(adapterDir, base.transformer);
  adapter.attach(base.transformer);
  try {
    let chosen = 0;
    for (const n of prompts) {
      const prompt = framePrompt(base.tokenizer, record!.framing, { turns: [{ role: 'user', text: String(n) }] });
      const result = await generate(base.transformer, base.tokenizer, prompt, { temperature: 0, maxOutputTokens: 8, stopSequences: stopSequencesFor(record!.framing) });
      if (result.candidates[0]!.text === String(n + 1)) chosen++;
    }
    return chosen;
  } finally {
    LoraAdapter.detach(base.transformer);
    adapter.dispose();
  }
}

test('attune tune on preference lines runs DPO: ln 2 first, a PEFT adapter, and after supervised tuning the chosen answers', async (t) => {
  const dir = tempDir(t);
  const preferences = path.join(dir, 'preferences.jsonl');
  writeFileSync(preferences, jsonl(prompts.map(preferenceLine)));
  const both = path.join(dir, 'both.jsonl');
  writeFileSync(both, jsonl(bothAnswers));

  // From the base model, the method detected from the data: the reference is the base, so the first loss is ln 2.
  const fromBase = path.join(dir, 'dpo-base');
  const plain = await tuneCli(['--data', preferences, '--epochs', '1', '--out', fromBase]);
  assert.match(plain.stderr, /preference tuning \(DPO, beta 0\.1\)/);
  assert.equal(losses(plain.stderr).first, Number(Math.LN2.toFixed(4)));
  for (const file of ['adapter_config.json', 'adapter_model.safetensors', 'attune.json']) assert.ok(existsSync(path.join(fromBase, file)), file);
  assert.equal(JSON.parse(readFileSync(path.join(fromBase, 'adapter_config.json'), 'utf8')).peft_type, 'LORA');
  assert.deepEqual({ method: record(fromBase).training.method, beta: record(fromBase).training.beta, learningRate: record(fromBase).training.learningRate }, { method: 'preference', beta: 0.1, learningRate: 4e-5 });

  // As Google recommends: supervised tuning (here on both answers), then DPO continued from it, the reference
  // being the supervised model (first loss ln 2 again).
  const supervised = path.join(dir, 'sft');
  await tuneCli(['--data', both, '--epochs', '40', '--batch-size', '8', '--out', supervised]);
  const preferred = path.join(dir, 'dpo');
  const run = await tuneCli(['--from', supervised, '--method', 'dpo', '--beta', '0.1', '--data', preferences, '--validation', preferences, '--epochs', '10', '--out', preferred]);
  assert.equal(losses(run.stderr).first, Number(Math.LN2.toFixed(4)));
  assert.match(run.stderr, /validation at step 75: loss \d\.\d+, reward accuracy \d+\.\d%, margin -?\d\.\d+/);
  assert.match(run.stderr, /last step: reward accuracy \d+\.\d%, margin/);
  assert.equal(record(preferred).training.continued, true);

  const base = await loadStories();
  const before = await chosenCount(base, supervised);
  const after = await chosenCount(base, preferred);
  assert.ok(after >= 0.7 * prompts.length && after >= before + 0.2 * prompts.length, `chosen: ${before}/30 after supervised tuning, ${after}/30 after DPO`);
});

test('attune tune: bad flags and bad data are plain messages', async (t) => {
  const dir = tempDir(t);
  const out = path.join(dir, 'out');
  const preferences = path.join(dir, 'preferences.jsonl');
  writeFileSync(preferences, jsonl(prompts.slice(0, 3).map(preferenceLine)));
  const malformed = path.join(dir, 'malformed.jsonl');
  writeFileSync(malformed, jsonl([preferenceLine(10), { ...preferenceLine(11), completions: [preferenceLine(11).completions[0]] }]));
  const tuneWith = (...args: string[]) => runCli(['tune', '--out', out, ...args]);

  assertPlainError(await tuneWith('--data', preferences, '--method', 'rlhf'), /--method must be sft or dpo, not 'rlhf'/, 2);
  assertPlainError(await tuneWith('--data', preferences, '--beta', '0'), /--beta must be greater than 0 and at most 10, not '0'/, 2);
  assertPlainError(await tuneWith('--data', preferences, '--beta', 'high'), /--beta must be greater than 0 and at most 10, not 'high'/, 2);
  assertPlainError(await tuneWith('--data', numbersJsonl, '--beta', '0.2'), /--beta is for preference tuning \(--method dpo\)/, 2);
  assertPlainError(await tuneWith('--data', preferences, '--method', 'sft'), /holds preference lines .*; tune on them with --method dpo/, 2);
  assertPlainError(await tuneWith('--data', numbersJsonl, '--method', 'dpo'), /numbers\.jsonl: line 1: a preference example needs "contents" \(the prompt\) and "completions"/, 1);
  assertPlainError(await tuneWith('--data', malformed), /malformed\.jsonl: line 2: "completions" must hold exactly two completions/, 1);
  assertPlainError(await tuneWith('--data', preferences, '--validation', numbersJsonl), /numbers\.jsonl: line 1: a preference example needs/, 1);
  assertPlainError(await tuneWith('--data', dir), /is not a file: the dataset is a JSONL file/, 2);
  assertPlainError(await tuneWith('--data', preferences, '--from', path.join(dir, 'missing')), /adapter not found: .*missing/, 2);
  assertPlainError(await tuneWith('--data', preferences, '--from', dir), /is not a LoRA adapter: it needs adapter_config\.json and adapter_model\.safetensors/, 1);
  assertPlainError(await tuneWith('--data', preferences, '--from'), /--from needs a value/, 2);

  const help = await runCli(['tune', '--help']);
  assert.equal(help.code, 0);
  for (const flag of ['--from <adapter dir>', '--method sft|dpo', '--beta X']) assert.ok(help.stdout.toString('utf8').includes(flag), flag);
});
