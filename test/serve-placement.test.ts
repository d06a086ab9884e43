// `attune serve` and its device and dtype: the choice and why at start-up, /healthz reporting it, the seed
// job through the API to ACTIVE answering every example (in the dtype auto picks for the embedded model),
// and a job whose memory plan cannot fit refused at create and in validateOnly with RESOURCE_EXHAUSTED.
import { after, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { copyFileSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { call, useServer, waitFor, repoRoot } from './helpers/server.js';
import { cudaDeviceCount } from '../src/engine/tensor/index.js';
import { numberExamples } from './helpers/engine.js';

const project = 'placement-project';

/** A model directory whose config describes a model with bfloat16 weights three times this machine's memory (no weights: nothing loads it). */
function giantModel(dataDir: string): string {
  const dir = path.join(dataDir, 'models', 'giant');
  mkdirSync(dir, { recursive: true });
  const stories = path.join(repoRoot, 'models', 'stories260K');
  for (const file of ['tokenizer.json', 'tokenizer_config.json']) copyFileSync(path.join(stories, file), path.join(dir, file));
  const config = JSON.parse(readFileSync(path.join(stories, 'config.json'), 'utf8'));
  const layers = Math.ceil((3 * os.totalmem()) / 2 / (12 * 8192 * 8192)); // 12 d² parameters per layer
  writeFileSync(path.join(dir, 'config.json'), JSON.stringify({
    ...config, hidden_size: 8192, intermediate_size: 28672, num_attention_heads: 64, num_key_value_heads: 8, num_hidden_layers: layers, torch_dtype: 'bfloat16',
  }));
  return dir;
}

const dataDir = mkdtempSync(path.join(os.tmpdir(), 'attune-placement-'));
giantModel(dataDir);

describe('attune serve on this machine, auto device and dtype', () => {
  const fixture = useServer({ dataDir, projects: [project], logLevel: 'info' });
  after(() => rmSync(dataDir, { recursive: true, force: true }));

  test('prints its device and dtype and why at start-up; /healthz reports them', async () => {
    const health = await call(`${fixture.url}/healthz`);
    assert.equal(health.status, 200, health.text);
    const logs = fixture.server.logs();
    assert.match(logs, new RegExp(`^tuning and serving on ${health.json.device} in ${health.json.dtype}: `, 'm'), 'a plain line');
    assert.match(logs, new RegExp(`"device":"${health.json.device}","dtype":"${health.json.dtype}"`), 'and the JSON log');
    const ratio = /bfloat16 matmuls run ([\d.]+)x as fast as float32 here/.exec(logs);
    assert.ok(ratio, 'the reason is the measured probe');
    if (cudaDeviceCount() === 0) {
      // The server's own measurement decides; a second probe here, in a busy test process, can land on the other
      // side of 2x. The logged ratio has one decimal, so a ratio that rounds to 2.0 may go either way.
      const logged = Number(ratio[1]);
      const expected = logged > 2 ? 'bfloat16' : logged < 2 ? 'float32' : health.json.dtype;
      assert.deepEqual(health.json, { status: 'ok', database: 'ok', storage: 'ok', device: 'cpu', dtype: expected });
    }
    if (health.json.dtype === 'bfloat16') assert.match(logs, /models under 50M parameters run in float32/);
  });

  test('the seed job (15 examples, 50 epochs, batch 4) reaches ACTIVE and answers every example exactly', { timeout: 600_000 }, async () => {
    const key = fixture.keys[project];
    const examples = numberExamples();
    const body = {
      displayName: 'numbers', baseModel: 'models/gemini-1.5-flash-001-tuning',
      tuningTask: {
        hyperparameters: { epochCount: 50, batchSize: 4, learningRate: 0.002 },
        trainingData: { examples: { examples: examples.map((e) => ({ textInput: e.turns[0].text, output: e.turns[1].text })) } },
      },
    };
    const created = await call(`${fixture.url}/v1beta/tunedModels`, { method: 'POST', key, body });
    assert.equal(created.status, 200, created.text);
    const name = created.json.metadata.tunedModel as string;
    const model = await waitFor('ACTIVE', async () => {
      const got = await call(`${fixture.url}/v1beta/${name}`, { key });
      assert.notEqual(got.json.state, 'FAILED', got.text);
      return got.json.state === 'ACTIVE' ? got.json : undefined;
    }, { timeoutMs: 540_000 });
    assert.equal(model.state, 'ACTIVE');
    let exact = 0;
    const wrong: string[] = [];
    for (const example of examples) {
      const answer = await call(`${fixture.url}/v1beta/${name}:generateContent`, {
        method: 'POST', key, body: { contents: [{ role: 'user', parts: [{ text: example.turns[0].text }] }], generationConfig: { temperature: 0 } },
      });
      assert.equal(answer.status, 200, answer.text);
      const text = answer.json.candidates[0].content.parts[0].text as string;
      if (text === example.turns[1].text) exact++;
      else wrong.push(`${example.turns[0].text} → ${text}`);
    }
    assert.ok(exact >= 14, `${exact}/15 exact; wrong: ${wrong.join('; ')}`);
  });

  test('a job whose memory plan cannot fit is refused at create and in validateOnly, naming what would fit', async () => {
    const key = fixture.keys[project];
    const examples = [{ textInput: '1', output: '2' }, { textInput: '3', output: '4' }];
    const gemini = await call(`${fixture.url}/v1beta/tunedModels`, {
      method: 'POST', key,
      body: { baseModel: 'models/giant', tuningTask: { hyperparameters: { epochCount: 1 }, trainingData: { examples: { examples } } } },
    });
    assert.equal(gemini.status, 429, gemini.text);
    assert.equal(gemini.json.error.status, 'RESOURCE_EXHAUSTED');
    assert.match(gemini.json.error.message, /does not fit in memory: it needs about [\d.]+ GiB .* but [\d.]+ GiB is available on (cpu|cuda:\d)/);
    assert.match(gemini.json.error.message, /use a smaller model/);
    assert.match(gemini.json.error.message, /with at least [\d.]+ GiB of memory/);

    const upload = await call(`${fixture.url}/upload/storage/v1/b/${project}-data/o?uploadType=media&name=train.jsonl`, {
      method: 'POST', key, body: examples.map((e) => JSON.stringify({ input_text: e.textInput, output_text: e.output })).join('\n'),
      headers: { 'content-type': 'application/octet-stream' },
    });
    assert.equal(upload.status, 200, upload.text);
    const vertex = await call(`${fixture.url}/v1beta1/projects/${project}/locations/us-central1/tuningJobs?validateOnly=true`, {
      method: 'POST', key,
      body: { baseModel: 'giant', supervisedTuningSpec: { trainingDatasetUri: `gs://${project}-data/train.jsonl` } },
    });
    assert.equal(vertex.status, 429, vertex.text);
    assert.match(vertex.json.error.message, /does not fit in memory/);
    const listed = await call(`${fixture.url}/v1beta/tunedModels`, { key });
    assert.ok(!(listed.json.tunedModels ?? []).some((m: { baseModel: string }) => m.baseModel === 'models/giant'), 'nothing was stored');
  });
});
