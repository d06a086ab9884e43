// Bad input gets a clear error: datasets, model directories, safetensors files, adapter
// directories, and the CLI (plain messages, no stack traces, exit codes).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { copyFileSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { DatasetError, parseJsonl } from '../src/engine/data/examples.js';
import { MAX_INPUT_CHARS, MAX_OUTPUT_CHARS } from '../src/engine/data/limits.js';
import { loadTransformer } from '../src/engine/model/load.js';
import { loadBaseModel } from '../src/engine/base-model.js';
import { parseModelConfig } from '../src/engine/model/config.js';
import { readSafetensors } from '../src/engine/io/safetensors.js';
import { LoraAdapter, loraConfig } from '../src/engine/lora/lora.js';
import { loadAdapter, saveAdapter } from '../src/engine/lora/peft.js';
import type { BaseModel } from '../src/engine/base-model.js';
import { embeddedBaseModelDir, loadStories, runCli, tempDir } from './helpers/engine.js';

let shared: Promise<BaseModel> | undefined;
const stories = () => (shared ??= loadStories());
const storiesFile = (name: string) => path.join(embeddedBaseModelDir, name);

/** Asserts that fn throws an Error whose message matches every pattern. */
function throwsWith(fn: () => unknown, ...patterns: RegExp[]): Error {
  let caught: unknown;
  try {
    fn();
  } catch (error) {
    caught = error;
  }
  assert.ok(caught instanceof Error, `expected an Error, got ${String(caught)}`);
  for (const pattern of patterns) assert.match(caught.message, pattern);
  return caught;
}

const line = (input: string, output: string) => JSON.stringify({ text_input: input, output });

test('a malformed JSONL line is named by its line number', () => {
  const text = [line('1', '2'), '', line('3', '4'), '{"text_input": "5", "output": ', line('7', '8')].join('\n');
  const error = throwsWith(() => parseJsonl(text), /^line 4: invalid JSON: /);
  assert.ok(error instanceof DatasetError);
  assert.equal(error.line, 4, 'the 1-based line, blank lines counted');
  assert.equal(error.index, 2, 'the 0-based example, blank lines not counted');
  // Valid JSON that is not an example.
  throwsWith(() => parseJsonl(`${line('1', '2')}\n[1, 2]`), /^line 2: expected a JSON object/);
  throwsWith(() => parseJsonl(`${line('1', '2')}\n{"text_input": "3"}`), /^line 2: missing the output/);
  throwsWith(() => parseJsonl(`{"text_input": 3, "output": "4"}`), /^line 1: "text_input" must be a string/);
});

test('an input over 40,000 characters is refused', () => {
  assert.equal(MAX_INPUT_CHARS, 40_000);
  const ok = line('x'.repeat(MAX_INPUT_CHARS), 'y');
  assert.equal(parseJsonl(ok).examples.length, 1, 'exactly at the limit is fine');
  const text = `${line('1', '2')}\n${line('x'.repeat(MAX_INPUT_CHARS + 1), 'y')}`;
  const error = throwsWith(() => parseJsonl(text), /^line 2: an input is 40001 characters; the limit is 40000$/);
  assert.equal((error as DatasetError).line, 2);
  // Characters are code points: 40,000 emoji are 80,000 UTF-16 units but within the limit.
  assert.equal(parseJsonl(line('😀'.repeat(MAX_INPUT_CHARS), 'y')).examples.length, 1);
  // With overLength 'skip' the example is left out and reported.
  const skipped = parseJsonl(text, { overLength: 'skip' });
  assert.equal(skipped.examples.length, 1);
  assert.deepEqual(skipped.skipped, [{ line: 2, index: 1, reason: 'an input is 40001 characters; the limit is 40000' }]);
});

test('an output over 5,000 characters is refused', () => {
  assert.equal(MAX_OUTPUT_CHARS, 5_000);
  assert.equal(parseJsonl(line('1', 'z'.repeat(MAX_OUTPUT_CHARS))).examples.length, 1);
  throwsWith(() => parseJsonl(line('1', 'z'.repeat(MAX_OUTPUT_CHARS + 1))), /^line 1: an output is 5001 characters; the limit is 5000$/);
});

test('an empty dataset is refused', () => {
  for (const text of ['', '\n', '  \n\n\t\n', '\uFEFF']) {
    const error = throwsWith(() => parseJsonl(text), /^the dataset has no examples$/);
    assert.ok(error instanceof DatasetError);
    assert.equal((error as DatasetError).line, undefined);
  }
  throwsWith(
    () => parseJsonl(line('x'.repeat(MAX_INPUT_CHARS + 1), 'y'), { overLength: 'skip' }),
    /the dataset has no examples within the length limits \(1 skipped\)/,
  );
});

test('a missing model directory', async (t) => {
  const missing = path.join(tempDir(t), 'no-such-model');
  throwsWith(() => loadTransformer(missing), /model directory not found/, new RegExp(missing));
  await assert.rejects(loadBaseModel(missing), /model directory not found/);
  // A file is not a directory either.
  throwsWith(() => loadTransformer(storiesFile('config.json')), /model directory not found/);
});

test('a directory without config.json', (t) => {
  const dir = tempDir(t);
  copyFileSync(storiesFile('model.safetensors'), path.join(dir, 'model.safetensors'));
  throwsWith(() => loadTransformer(dir), /is not a Hugging Face model directory: config\.json is missing/, new RegExp(dir));
});

test('a config.json that is not JSON, or lacks a field', (t) => {
  const dir = tempDir(t);
  writeFileSync(path.join(dir, 'config.json'), '{"architectures": ["LlamaForCausalLM"],');
  throwsWith(() => loadTransformer(dir), /config\.json is not valid JSON/);
  const raw = JSON.parse(readFileSync(storiesFile('config.json'), 'utf8'));
  delete raw.hidden_size;
  throwsWith(() => parseModelConfig(raw, 'x/config.json'), /^x\/config\.json: missing or non-numeric 'hidden_size'$/);
  throwsWith(() => parseModelConfig({ ...raw, hidden_size: 64, hidden_act: 'gelu' }), /unsupported hidden_act 'gelu'/);
});

test('an unsupported architecture names itself and the supported ones', (t) => {
  const dir = tempDir(t);
  const raw = JSON.parse(readFileSync(storiesFile('config.json'), 'utf8'));
  writeFileSync(path.join(dir, 'config.json'), JSON.stringify({ ...raw, architectures: ['GPT2LMHeadModel'], model_type: 'gpt2' }));
  copyFileSync(storiesFile('model.safetensors'), path.join(dir, 'model.safetensors'));
  throwsWith(
    () => loadTransformer(dir),
    /unsupported architecture 'GPT2LMHeadModel'/,
    /supported: LlamaForCausalLM, Qwen2ForCausalLM, Qwen3ForCausalLM, Gemma3ForCausalLM/,
    new RegExp(`${dir}/config\\.json`),
  );
});

test('a model directory without weights, or with a missing weight', (t) => {
  const dir = tempDir(t);
  copyFileSync(storiesFile('config.json'), path.join(dir, 'config.json'));
  throwsWith(() => loadTransformer(dir), /has neither model\.safetensors nor model\.safetensors\.index\.json/);
  // Weights of another shape of model: one layer's weights are absent.
  const raw = JSON.parse(readFileSync(storiesFile('config.json'), 'utf8'));
  writeFileSync(path.join(dir, 'config.json'), JSON.stringify({ ...raw, num_hidden_layers: 6 }));
  copyFileSync(storiesFile('model.safetensors'), path.join(dir, 'model.safetensors'));
  throwsWith(() => loadTransformer(dir), /weight 'model\.layers\.5\.input_layernorm\.weight' is missing/);
});

test('a corrupt safetensors file: too short, bad header length, unreadable header, bad dtype', (t) => {
  const dir = tempDir(t);
  copyFileSync(storiesFile('config.json'), path.join(dir, 'config.json'));
  const file = path.join(dir, 'model.safetensors');
  const header = (json: string, extra = 0) => {
    const prefix = Buffer.alloc(8);
    prefix.writeBigUInt64LE(BigInt(Buffer.byteLength(json)));
    return Buffer.concat([prefix, Buffer.from(json), Buffer.alloc(extra)]);
  };
  const cases: [Buffer, RegExp][] = [
    [Buffer.alloc(0), /is not a safetensors file \(too short\)/],
    [Buffer.from('garbage!garbage!garbage!'), /is not a safetensors file \(bad header length\)/],
    [header('{"a": nope}'), /is not a safetensors file \(unreadable header\)/],
    [header('{"w": {"dtype": "F8_E4M3", "shape": [1], "data_offsets": [0, 1]}}', 8), /tensor w has unsupported dtype F8_E4M3/],
  ];
  for (const [bytes, pattern] of cases) {
    writeFileSync(file, bytes);
    throwsWith(() => loadTransformer(dir), pattern, new RegExp(file));
  }
});

// A download cut short is the commonest corruption: the header is intact, the data is not. The
// tensor whose data runs past the end of the file reaches fromBytes() with too few bytes, and the
// error says only "buffer holds N bytes; shape and dtype need M", naming neither file nor tensor.
test('a truncated safetensors file names the file', (t) => {
  const dir = tempDir(t);
  copyFileSync(storiesFile('config.json'), path.join(dir, 'config.json'));
  const file = path.join(dir, 'model.safetensors');
  const whole = readFileSync(storiesFile('model.safetensors'));
  writeFileSync(file, whole.subarray(0, Math.floor(whole.length / 2)));
  throwsWith(() => readSafetensors(file), new RegExp(file));
  throwsWith(() => loadTransformer(dir), new RegExp(file));
});

test('a bad adapter directory', async (t) => {
  const { transformer } = await stories();
  const root = tempDir(t);
  // Missing, empty, or half an adapter.
  const missing = path.join(root, 'missing');
  throwsWith(() => loadAdapter(missing, transformer), /is not a LoRA adapter: it needs adapter_config\.json and adapter_model\.safetensors/);
  const empty = path.join(root, 'empty');
  mkdirSync(empty);
  throwsWith(() => loadAdapter(empty, transformer), /is not a LoRA adapter/, new RegExp(empty));

  // A good adapter to spoil in several ways.
  const good = path.join(root, 'good');
  const adapter = LoraAdapter.create(transformer, loraConfig({ rank: 2 }));
  saveAdapter(good, adapter, 'stories260K');
  adapter.dispose();
  const configText = readFileSync(path.join(good, 'adapter_config.json'), 'utf8');
  const config = JSON.parse(configText);
  const variant = (name: string, configValue: unknown, weights?: Buffer) => {
    const dir = path.join(root, name);
    mkdirSync(dir);
    writeFileSync(path.join(dir, 'adapter_config.json'), typeof configValue === 'string' ? configValue : JSON.stringify(configValue));
    if (weights) writeFileSync(path.join(dir, 'adapter_model.safetensors'), weights);
    else copyFileSync(path.join(good, 'adapter_model.safetensors'), path.join(dir, 'adapter_model.safetensors'));
    return dir;
  };
  throwsWith(() => loadAdapter(variant('prefix', { ...config, peft_type: 'PREFIX_TUNING' }), transformer), /peft_type 'PREFIX_TUNING' is not LORA/);
  throwsWith(() => loadAdapter(variant('dora', { ...config, use_dora: true }), transformer), /DoRA adapters are not supported/);
  throwsWith(() => loadAdapter(variant('modules', { ...config, target_modules: ['c_attn'] }), transformer), /unknown LoRA target modules: c_attn/);
  throwsWith(() => loadAdapter(variant('rank', { ...config, r: 0 }), transformer), /LoRA rank must be a positive integer/);
  throwsWith(() => loadAdapter(variant('corrupt', config, Buffer.from('xx')), transformer), /adapter_model\.safetensors is not a safetensors file/);

  // Weights for another model: shapes that do not fit, or no matching module names.
  const prefix = Buffer.alloc(8);
  const foreign = (entries: Record<string, number[]>) => {
    let offset = 0;
    const header: Record<string, unknown> = {};
    for (const [name, shape] of Object.entries(entries)) {
      const bytes = shape.reduce((a, b) => a * b, 1) * 4;
      header[name] = { dtype: 'F32', shape, data_offsets: [offset, offset + bytes] };
      offset += bytes;
    }
    let json = JSON.stringify(header);
    json += ' '.repeat((8 - ((8 + json.length) % 8)) % 8);
    prefix.writeBigUInt64LE(BigInt(json.length));
    return Buffer.concat([prefix, Buffer.from(json), Buffer.alloc(offset)]);
  };
  const q = 'base_model.model.model.layers.0.self_attn.q_proj';
  throwsWith(
    () => loadAdapter(variant('shapes', config, foreign({ [`${q}.lora_A.weight`]: [2, 128], [`${q}.lora_B.weight`]: [128, 2] })), transformer),
    /model\.layers\.0\.self_attn\.q_proj has shapes that do not fit the base model/,
  );
  throwsWith(
    () => loadAdapter(variant('names', config, foreign({ 'transformer.h.0.attn.c_attn.lora_A.weight': [2, 64] })), transformer),
    /has no LoRA weights for this base model's modules/,
  );
});

// JSON.parse's own message ("Unexpected token 'o', "not json" is not valid JSON") reaches the user
// without the file it came from; config.json in a model directory gets this right.
test('an adapter_config.json that is not JSON names the file', async (t) => {
  const { transformer } = await stories();
  const dir = tempDir(t);
  const adapter = LoraAdapter.create(transformer, loraConfig({ rank: 1 }));
  saveAdapter(dir, adapter, 'stories260K');
  adapter.dispose();
  writeFileSync(path.join(dir, 'adapter_config.json'), 'not json');
  throwsWith(() => loadAdapter(dir, transformer), /adapter_config\.json/);
});

test('attune tune on malformed JSONL: non-zero exit, a plain message naming the line, no stack trace', async (t) => {
  const dir = tempDir(t);
  const data = path.join(dir, 'bad.jsonl');
  writeFileSync(data, `${line('1', '2')}\n${line('3', '4')}\n{"text_input": "5" "output": "6"}\n`);
  const { code, stdout, stderr } = await runCli(['tune', '--data', data, '--out', path.join(dir, 'out')]);
  assert.notEqual(code, 0);
  assert.equal(code, 1);
  assert.match(stderr, /^attune tune: .*bad\.jsonl: line 3: invalid JSON/);
  assert.ok(!stderr.includes('    at '), `no stack trace:\n${stderr}`);
  assert.equal(stdout.length, 0);

  // An over-length example and a missing dataset, likewise.
  const long = path.join(dir, 'long.jsonl');
  writeFileSync(long, `${line('1', 'z'.repeat(MAX_OUTPUT_CHARS + 1))}\n`);
  const tooLong = await runCli(['tune', '--data', long, '--out', path.join(dir, 'out')]);
  assert.equal(tooLong.code, 1);
  assert.match(tooLong.stderr, /line 1: an output is 5001 characters; the limit is 5000/);
  assert.ok(!tooLong.stderr.includes('    at '));
  const absent = await runCli(['tune', '--data', path.join(dir, 'absent.jsonl'), '--out', path.join(dir, 'out')]);
  assert.equal(absent.code, 2);
  assert.match(absent.stderr, /dataset not found: .*absent\.jsonl/);
});

test('attune with unknown flags or commands exits 2 with usage', async () => {
  const tune = await runCli(['tune', '--data', 'x.jsonl', '--out', 'y', '--frobnicate']);
  assert.equal(tune.code, 2);
  assert.match(tune.stderr, /unknown option '--frobnicate'/i);
  assert.match(tune.stderr, /attune tune --data <file\.jsonl> --out <adapter dir> \[options\]/);
  assert.ok(!tune.stderr.includes('    at '));

  const generate = await runCli(['generate', '--prompt', 'hi', '--tempreature', '0']);
  assert.equal(generate.code, 2);
  assert.match(generate.stderr, /unknown option '--tempreature'; did you mean --temperature\?/i);
  assert.match(generate.stderr, /attune generate --prompt TEXT \[options\]/);

  const unknown = await runCli(['frobnicate']);
  assert.equal(unknown.code, 2);
  assert.match(unknown.stderr, /unknown command 'frobnicate'/);
  assert.match(unknown.stderr, /usage: attune <command>/);

  const none = await runCli([]);
  assert.equal(none.code, 2);
  assert.match(none.stdout.toString('utf8'), /usage: attune <command>/);

  const badNumber = await runCli(['tune', '--data', 'x.jsonl', '--out', 'y', '--epochs', '0']);
  assert.equal(badNumber.code, 2);
  assert.match(badNumber.stderr, /--epochs must be a positive integer, not '0'/);
  const badSize = await runCli(['tune', '--data', 'x.jsonl', '--out', 'y', '--adapter-size', '3']);
  assert.equal(badSize.code, 2);
  assert.match(badSize.stderr, /--adapter-size must be one of 1, 2, 4, 8, 16, 32, not '3'/);
  const noPrompt = await runCli(['generate']);
  assert.equal(noPrompt.code, 2);
  assert.match(noPrompt.stderr, /--prompt TEXT is required/);
});

test('attune generate with a missing base model or adapter: exit 1, plain message', async (t) => {
  const dir = tempDir(t);
  const base = await runCli(['generate', '--prompt', 'x', '--base', path.join(dir, 'nope')]);
  assert.equal(base.code, 1);
  assert.match(base.stderr, /^attune generate: model directory not found: .*nope/);
  assert.ok(!base.stderr.includes('    at '));
  const adapter = await runCli(['generate', '--prompt', 'x', '--adapter', dir]);
  assert.equal(adapter.code, 1);
  assert.match(adapter.stderr, /is not a LoRA adapter/);
  assert.ok(!adapter.stderr.includes('    at '));
});
