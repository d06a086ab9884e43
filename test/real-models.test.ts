// Real tokenizers at real vocabulary sizes, end to end: tiny random-weight Qwen3, Gemma 3 and Llama 3.1
// models (test/helpers/real-tokenizers.ts) with the real tokenizer files and chat templates. For each family,
// `attune tune` then `attune generate` give back the trained answers exactly, and a Vertex job through a real
// `attune serve` (dataset in its object store) reaches SUCCEEDED, its endpoint answers every trained
// conversation (single-turn, with a system instruction, multi-turn) with the trained answer and nothing else,
// and `validateOnly` counts the tokens Hugging Face counts (test/fixtures/chat/<family>.json).
//
// Each family's server job trains while its CLI run does. The families take turns: at once they would hold
// about 6 GB (every process holds a real tokenizer, 150-300 MB each, beside libtorch) for little gain on 2 cores.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { call, createKey, runCli, waitFor, AttuneServer } from './helpers/server.js';
import { datasetJsonl, families, makeTinyModel, reference, type Family, type ReferenceExample } from './helpers/real-tokenizers.js';

const project = 'real-models';
const bucket = 'real-models';
/** Enough to memorise the five examples (final loss about 1e-3), measured on all three families. */
const hyperParameters = { epoch_count: 30, batch_size: 5, learning_rate: 0.03 };

const dataDir = mkdtempSync(path.join(os.tmpdir(), 'attune-real-models-'));
const modelId = (family: Family) => `${family}-tiny`;
const modelDir = (family: Family) => path.join(dataDir, 'models', modelId(family));
let server: AttuneServer;
let key: string;
let datasetUri: string;

const rest = (route: string, body?: unknown) => call(`${server.url}${route}`, { method: body === undefined ? 'GET' : 'POST', key, body });
const parent = `/v1/projects/${project}/locations/us-central1`;
const textOf = (response: any): string => (response?.candidates?.[0]?.content?.parts ?? []).map((p: any) => p.text ?? '').join('');

/** The request that asks for model turn `n` of `example`: its system instruction and the turns before it. */
function promptRequest(example: ReferenceExample, n: number) {
  const index = example.turns.findIndex((t, i) => t.role === 'model' && example.turns.slice(0, i + 1).filter((u) => u.role === 'model').length === n + 1);
  return {
    ...(example.systemInstruction ? { systemInstruction: { parts: [{ text: example.systemInstruction }] } } : {}),
    contents: example.turns.slice(0, index).map((t) => ({ role: t.role, parts: [{ text: t.text }] })),
  };
}
const answerOf = (example: ReferenceExample, n: number) => example.turns.filter((t) => t.role === 'model')[n]!.text;

before(async () => {
  for (const family of families) makeTinyModel(family, modelDir(family));
  key = await createKey(dataDir, project);
  server = await AttuneServer.start({ dataDir });
  const upload = await call(`${server.url}/upload/storage/v1/b/${bucket}/o?uploadType=media&name=dataset.jsonl`, {
    method: 'POST',
    key,
    body: readFileSync(datasetJsonl, 'utf8'),
    headers: { 'content-type': 'application/jsonl' },
  });
  assert.equal(upload.status, 200, upload.text);
  datasetUri = `gs://${bucket}/dataset.jsonl`;
});

after(async () => {
  await server?.stop();
  rmSync(dataDir, { recursive: true, force: true });
});

describe('real tokenizers with tiny random weights', () => {
  for (const family of families) {
    describe(family, () => {
      const expected = reference(family);
      const createBody = () => ({
        baseModel: modelId(family),
        supervisedTuningSpec: { training_dataset_uri: datasetUri, hyper_parameters: hyperParameters },
        tunedModelDisplayName: `${family} real tokenizer`,
      });
      let jobName: string;

      test('validateOnly counts the tokens Hugging Face counts', async () => {
        const reply = await rest(`${parent}/tuningJobs?validateOnly=true`, createBody());
        assert.equal(reply.status, 200, reply.text);
        const stats = reply.json.tuningDataStats.supervisedTuningDataStats;
        const inputs = expected.dataset.map((e) => e.inputTokens);
        const outputs = expected.dataset.map((e) => e.outputTokens);
        const sum = (values: number[]) => values.reduce((a, b) => a + b, 0);
        assert.equal(stats.userInputTokenDistribution.sum, String(sum(inputs)));
        assert.equal(stats.userOutputTokenDistribution.sum, String(sum(outputs)));
        assert.equal(stats.totalBillableTokenCount, String(sum(inputs) + sum(outputs)));
        assert.equal(stats.userInputTokenDistribution.max, Math.max(...inputs));
        assert.equal(stats.userOutputTokenDistribution.min, Math.min(...outputs));
        assert.equal(stats.tuningDatasetExampleCount, String(expected.dataset.length));
      });

      test('a Vertex job is created (it trains while the CLI does)', async () => {
        const reply = await rest(`${parent}/tuningJobs`, createBody());
        assert.equal(reply.status, 200, reply.text);
        jobName = reply.json.name;
      });

      test('attune tune, then attune generate gives back the trained answers', async (t) => {
        const out = mkdtempSync(path.join(os.tmpdir(), `attune-${family}-adapter-`));
        t.after(() => rmSync(out, { recursive: true, force: true }));
        const { epoch_count, batch_size, learning_rate } = hyperParameters;
        const tuned = await runCli(
          ['tune', '--base', modelDir(family), '--data', datasetJsonl, '--out', out, '--epochs', String(epoch_count), '--batch-size', String(batch_size), '--learning-rate', String(learning_rate)],
          { timeoutMs: 300_000 },
        );
        assert.equal(tuned.code, 0, tuned.stderr);
        // One process per prompt costs a model load each: the system example here, every turn through the endpoint.
        const example = expected.dataset.find((e) => e.systemInstruction)!;
        const generated = await runCli(
          ['generate', '--base', modelDir(family), '--adapter', out, '--temperature', '0', '--system', example.systemInstruction!, '--prompt', example.turns[0]!.text],
          { timeoutMs: 120_000 },
        );
        assert.equal(generated.code, 0, generated.stderr);
        assert.equal(generated.stdout, answerOf(example, 0));
      });

      test('the job succeeds and its endpoint answers every trained turn exactly', async () => {
        const job = await waitFor(`${jobName} to finish`, async () => {
          const reply = await rest(`/v1/${jobName}`);
          return ['JOB_STATE_SUCCEEDED', 'JOB_STATE_FAILED', 'JOB_STATE_CANCELLED'].includes(reply.json?.state) ? reply.json : undefined;
        }, { timeoutMs: 300_000 });
        assert.equal(job.state, 'JOB_STATE_SUCCEEDED', JSON.stringify(job.error));
        const endpoint = `/v1/${job.tunedModel.endpoint}`;
        for (const example of expected.dataset) {
          for (let n = 0; n < example.modelTurns.length; n++) {
            const request = promptRequest(example, n);
            const generated = await rest(`${endpoint}:generateContent`, { ...request, generationConfig: { temperature: 0 } });
            assert.equal(generated.status, 200, generated.text);
            assert.equal(textOf(generated.json), answerOf(example, n), JSON.stringify(request));
            assert.equal(generated.json.candidates[0].finishReason, 'STOP');
            const counted = await rest(`${endpoint}:countTokens`, request);
            assert.equal(counted.json.totalTokens, example.modelTurns[n]!.promptIds.length, 'the prompt is framed as Hugging Face frames it');
          }
        }
      });

      test('the base model frames prompts with its chat template too', async () => {
        const example = expected.dataset.find((e) => e.systemInstruction)!;
        const route = `/v1/publishers/google/models/${modelId(family)}`;
        const counted = await rest(`${route}:countTokens`, promptRequest(example, 0));
        assert.equal(counted.status, 200, counted.text);
        assert.equal(counted.json.totalTokens, example.modelTurns[0]!.promptIds.length);
        const generated = await rest(`${route}:generateContent`, { ...promptRequest(example, 0), generationConfig: { temperature: 0, maxOutputTokens: 4 } });
        assert.equal(generated.status, 200, generated.text);
      });

      if (family === 'gemma3') {
        test('a token the model has no embedding for is a client error (Gemma 3 1B: <image_soft_token>, id 262144)', async () => {
          const request = { contents: [{ role: 'user', parts: [{ text: 'What is <image_soft_token>?' }] }] };
          const generated = await rest(`/v1/publishers/google/models/${modelId(family)}:generateContent`, request);
          assert.equal(generated.status, 400, generated.text);
          assert.match(generated.json.error.message, /"<image_soft_token>" \(token 262144\), which this model has no embedding for/);
          const line = JSON.stringify({ ...request, contents: [...request.contents, { role: 'model', parts: [{ text: 'A token.' }] }] });
          const name = 'image-token.jsonl';
          const upload = await call(`${server.url}/upload/storage/v1/b/${bucket}/o?uploadType=media&name=${name}`, { method: 'POST', key, body: `${line}\n` });
          assert.equal(upload.status, 200, upload.text);
          const body = { ...createBody(), supervisedTuningSpec: { training_dataset_uri: `gs://${bucket}/${name}` } };
          const validated = await rest(`${parent}/tuningJobs?validateOnly=true`, body);
          assert.equal(validated.status, 400, validated.text);
          assert.match(validated.json.error.message, /line 1: the text contains "<image_soft_token>"/);
        });
      }
    });
  }
});
