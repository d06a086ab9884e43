// What a new user trips over in the CLI: values that start with a dash, misspelt options, --version,
// an adapter used without its base (generate --adapter loads the base recorded in attune.json, or names
// it), and tune --out checked before training so an existing adapter is never silently overwritten.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { copyFileSync, existsSync, mkdirSync, readFileSync, readdirSync, renameSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { manualSeed, randn, type Tensor } from '../src/engine/tensor/index.js';
import { writeSafetensors } from '../src/engine/io/safetensors.js';
import { embeddedBaseModelDir, numbersJsonl, packageRoot, runCli, tempDir } from './helpers/engine.js';

const text = (r: { stdout: Buffer }) => r.stdout.toString('utf8');

test('a value may start with a dash: --prompt -3 is the prompt "-3", --learning-rate -1 a range error', async () => {
  const spaced = await runCli(['generate', '--prompt', '-3', '--temperature', '0', '--max-output-tokens', '4']);
  assert.equal(spaced.code, 0, spaced.stderr);
  const joined = await runCli(['generate', '--prompt=-3', '--temperature', '0', '--max-output-tokens', '4']);
  assert.equal(text(spaced), text(joined));

  const negative = await runCli(['tune', '--data', numbersJsonl, '--out', '/tmp/never-written', '--learning-rate', '-1']);
  assert.equal(negative.code, 2);
  assert.match(negative.stderr, /^attune tune: --learning-rate must be a positive number, not '-1'/);
  assert.doesNotMatch(negative.stderr, /ambiguous/);
});

test('a missing value is named, not taken from the next option', async () => {
  const result = await runCli(['generate', '--prompt', '--temperature', '0']);
  assert.equal(result.code, 2);
  assert.match(result.stderr, /^attune generate: --prompt needs a value/);
  const atEnd = await runCli(['generate', '--prompt']);
  assert.match(atEnd.stderr, /^attune generate: --prompt needs a value/);
});

test('an unknown option or command gets a "did you mean"', async () => {
  const option = await runCli(['generate', '--promt', 'hi']);
  assert.equal(option.code, 2);
  assert.match(option.stderr, /^attune generate: unknown option '--promt'; did you mean --prompt\?/);
  const epochs = await runCli(['tune', '--epoch', '3']);
  assert.match(epochs.stderr, /unknown option '--epoch'; did you mean --epochs\?/);
  const far = await runCli(['tune', '--colour', 'red']);
  assert.match(far.stderr, /^attune tune: unknown option '--colour'\n/);
  const command = await runCli(['genrate']);
  assert.equal(command.code, 2);
  assert.match(command.stderr, /^attune: unknown command 'genrate'; did you mean 'generate'\?/);
});

test('attune --version prints the package version', async () => {
  const { version } = JSON.parse(readFileSync(path.join(packageRoot, 'package.json'), 'utf8'));
  const result = await runCli(['--version']);
  assert.equal(result.code, 0);
  assert.equal(text(result), `attune ${version}\n`);
});

/** A small random Llama with stories260K's tokenizer but other shapes (hidden 32, 2 layers). */
function writeOtherBase(dir: string): void {
  mkdirSync(dir, { recursive: true });
  for (const file of readdirSync(embeddedBaseModelDir)) {
    if (file !== 'model.safetensors' && file !== 'config.json') copyFileSync(path.join(embeddedBaseModelDir, file), path.join(dir, file));
  }
  const config = JSON.parse(readFileSync(path.join(embeddedBaseModelDir, 'config.json'), 'utf8'));
  Object.assign(config, { hidden_size: 32, intermediate_size: 64, num_hidden_layers: 2, num_attention_heads: 4, num_key_value_heads: 2, head_dim: 8 });
  writeFileSync(path.join(dir, 'config.json'), JSON.stringify(config));
  manualSeed(3);
  const w = (...shape: number[]): Tensor => randn(shape).mul(0.1);
  const tensors = new Map<string, Tensor>([['model.embed_tokens.weight', w(512, 32)], ['model.norm.weight', w(32).add(1)]]);
  for (let i = 0; i < 2; i++) {
    const p = `model.layers.${i}`;
    tensors.set(`${p}.input_layernorm.weight`, w(32).add(1));
    tensors.set(`${p}.post_attention_layernorm.weight`, w(32).add(1));
    tensors.set(`${p}.self_attn.q_proj.weight`, w(32, 32));
    tensors.set(`${p}.self_attn.k_proj.weight`, w(16, 32));
    tensors.set(`${p}.self_attn.v_proj.weight`, w(16, 32));
    tensors.set(`${p}.self_attn.o_proj.weight`, w(32, 32));
    tensors.set(`${p}.mlp.gate_proj.weight`, w(64, 32));
    tensors.set(`${p}.mlp.up_proj.weight`, w(64, 32));
    tensors.set(`${p}.mlp.down_proj.weight`, w(32, 64));
  }
  writeSafetensors(path.join(dir, 'model.safetensors'), tensors, { format: 'pt' });
}

test('generate --adapter loads the base recorded in attune.json, or says which base it needs', async (t) => {
  const work = tempDir(t);
  const base = path.join(work, 'small-llama');
  writeOtherBase(base);
  const adapter = path.join(work, 'adapter');
  const tuned = await runCli(['tune', '--base', base, '--data', numbersJsonl, '--epochs', '1', '--out', adapter], { timeoutMs: 120_000 });
  assert.equal(tuned.code, 0, tuned.stderr);

  const recorded = await runCli(['generate', '--adapter', adapter, '--prompt', '1', '--temperature', '0', '--max-output-tokens', '3']);
  assert.equal(recorded.code, 0, recorded.stderr);
  const explicit = await runCli(['generate', '--adapter', adapter, '--base', base, '--prompt', '1', '--temperature', '0', '--max-output-tokens', '3']);
  assert.equal(text(recorded), text(explicit), 'the recorded base is the one used');

  const wrongBase = await runCli(['generate', '--adapter', adapter, '--base', embeddedBaseModelDir, '--prompt', '1']);
  assert.equal(wrongBase.code, 1);
  assert.match(wrongBase.stderr, new RegExp(`do not fit the base model; it was tuned on ${base.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}`));

  renameSync(base, `${base}-moved`);
  const moved = await runCli(['generate', '--adapter', adapter, '--prompt', '1']);
  assert.equal(moved.code, 2);
  assert.match(moved.stderr, /was tuned on the base model .*small-llama, which is not here; pass --base <model dir>/);
});

test('tune --out is checked before training: an existing adapter is kept unless --force', async (t) => {
  const work = tempDir(t);
  const out = path.join(work, 'adapter');
  mkdirSync(out);
  writeFileSync(path.join(out, 'adapter_config.json'), '{"mine": true}');
  const started = Date.now();
  const refused = await runCli(['tune', '--data', numbersJsonl, '--epochs', '1', '--out', out]);
  assert.equal(refused.code, 2);
  assert.match(refused.stderr, /^attune tune: --out .*adapter is not empty; pass --force to overwrite its files/);
  assert.doesNotMatch(refused.stderr, /step \d+\/\d+/, 'no training started');
  assert.ok(Date.now() - started < 20_000);
  assert.equal(readFileSync(path.join(out, 'adapter_config.json'), 'utf8'), '{"mine": true}');

  const file = path.join(work, 'a-file');
  writeFileSync(file, 'x');
  const onFile = await runCli(['tune', '--data', numbersJsonl, '--epochs', '1', '--out', file]);
  assert.equal(onFile.code, 2);
  assert.match(onFile.stderr, /--out .*a-file is a file, not a directory/);

  const forced = await runCli(['tune', '--data', numbersJsonl, '--epochs', '1', '--out', out, '--force'], { timeoutMs: 120_000 });
  assert.equal(forced.code, 0, forced.stderr);
  assert.equal(JSON.parse(readFileSync(path.join(out, 'adapter_config.json'), 'utf8')).peft_type, 'LORA');
  assert.ok(existsSync(path.join(out, 'attune.json')));
});
