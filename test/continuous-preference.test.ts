// Continuous and preference tuning through a real `attune serve` that trains stories260K (issue 11, items 4 and 5),
// driven by @google/genai in Vertex mode as a user would, and by REST where the SDK cannot say it:
//   - supervised tuning on both answers of number-successor preferences ("14" → "15" preferred over "13");
//   - a continued run (preTunedModel, which @google/genai sends for a baseModel of projects/…/models/{n}): it
//     starts at its source's final loss, becomes version @2 of the source's Model with its own endpoint, and the
//     job echoes preTunedModel; baseModel with preTunedModel, another adapter size, a checkpoint id or another
//     project's model are refused;
//   - the Gemini API's tunedModelSource continues a model too; the Gemini API refuses preference tuning;
//   - preference tuning (DPO) continued from the supervised model, as Google recommends: SUCCEEDED, first loss ln 2,
//     reward metrics, and afterwards the greedy answer is the chosen completion on at least 70% of the training
//     prompts, at least 20 points above the supervised model; a malformed preference line is a 400 naming its line.
import { before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { AdapterSize, GoogleGenAI, TuningMethod, type TuningJob } from '@google/genai';
import { OAuth2Client } from 'google-auth-library';
import { call, useServer, waitFor, type ApiResponse, type ServerFixture } from './helpers/server.js';

const project = 'continuous-project';
const otherProject = 'continuous-other';
const location = 'us-central1';
const bucket = 'continuous-datasets';

let fixture: ServerFixture;
const key = () => fixture.keys[project]!;

const content = (role: string, text: string) => ({ role, parts: [{ text }] });
const prompts = Array.from({ length: 30 }, (_, i) => 10 + i);
const chosenOf = (n: number) => String(n + 1);
const rejectedOf = (n: number) => String(n - 1);
const jsonl = (rows: unknown[]) => rows.map((r) => (typeof r === 'string' ? r : JSON.stringify(r))).join('\n') + '\n';
const preferenceLine = (n: number) => ({
  contents: [content('user', String(n))],
  completions: [{ score: 1, completion: content('model', chosenOf(n)) }, { score: 0, completion: content('model', rejectedOf(n)) }],
});
/** Supervised tuning on both answers of each preference, the chosen then the rejected. */
const bothAnswers = prompts.flatMap((n) => [chosenOf(n), rejectedOf(n)].map((answer) => ({ contents: [content('user', String(n)), content('model', answer)] })));

const parent = (p = project) => `/v1beta1/projects/${p}/locations/${location}`;
const rest = (route: string, options: { method?: string; body?: unknown; apiKey?: string } = {}) =>
  call(`${fixture.url}${route}`, { method: options.method, body: options.body, key: options.apiKey ?? key() });

function assertRpcError(reply: ApiResponse, http: number, message: RegExp, field?: string): void {
  assert.equal(reply.status, http, reply.text);
  assert.match(reply.json.error.message, message);
  if (field) {
    const fields = (reply.json.error.details ?? []).flatMap((d: any) => (d.fieldViolations ?? []).map((v: any) => v.field));
    assert.ok(fields.includes(field), `${field} in ${JSON.stringify(fields)}`);
  }
}

async function upload(name: string, text: string): Promise<string> {
  const reply = await call(`${fixture.url}/upload/storage/v1/b/${bucket}/o?uploadType=media&name=${encodeURIComponent(name)}`, {
    method: 'POST', key: key(), body: text, headers: { 'content-type': 'application/jsonl' },
  });
  assert.equal(reply.status, 200, reply.text);
  return `gs://${bucket}/${name}`;
}

function vertexClient(): GoogleGenAI {
  const authClient = new OAuth2Client();
  authClient.setCredentials({ access_token: key(), expiry_date: Date.now() + 3600e3 });
  return new GoogleGenAI({ vertexai: true, project, location, httpOptions: { baseUrl: fixture.url }, googleAuthOptions: { authClient } });
}

async function finished(ai: GoogleGenAI, name: string): Promise<TuningJob> {
  return waitFor(`${name} to end`, async () => {
    const job = await ai.tunings.get({ name });
    return ['JOB_STATE_SUCCEEDED', 'JOB_STATE_FAILED', 'JOB_STATE_CANCELLED'].includes(job.state!) ? job : undefined;
  }, { timeoutMs: 300_000, intervalMs: 250 });
}

async function metricsOf(jobName: string): Promise<Record<string, number[]>> {
  const reply = await rest(`/v1beta1/${jobName}/metrics`);
  assert.equal(reply.status, 200, reply.text);
  return Object.fromEntries(reply.json.timeSeriesData.map((s: any) => [s.displayName, s.values.map((v: any) => v.scalar.value)]));
}

/** The share of training prompts whose greedy answer through the endpoint is the chosen completion. */
async function chosenShare(endpoint: string): Promise<{ share: number; answers: string[] }> {
  const answers: string[] = [];
  for (const n of prompts) {
    const reply = await rest(`/v1beta1/${endpoint}:generateContent`, {
      method: 'POST', body: { contents: [content('user', String(n))], generationConfig: { temperature: 0, maxOutputTokens: 8 } },
    });
    assert.equal(reply.status, 200, reply.text);
    answers.push((reply.json.candidates?.[0]?.content?.parts ?? []).map((p: any) => p.text).join(''));
  }
  return { share: answers.filter((a, i) => a === chosenOf(prompts[i]!)).length / prompts.length, answers };
}

describe('continuous and preference tuning on attune serve', () => {
  fixture = useServer({ projects: [project, otherProject], concurrency: 2 });
  const uris = {} as Record<'both' | 'preferences' | 'preferenceValidation', string>;
  let supervised: TuningJob;

  before(async () => {
    uris.both = await upload('both.jsonl', jsonl(bothAnswers));
    uris.preferences = await upload('preferences.jsonl', jsonl(prompts.map(preferenceLine)));
    uris.preferenceValidation = await upload('preference-validation.jsonl', jsonl([50, 60, 70].map(preferenceLine)));
  });

  test('supervised tuning on both answers', async () => {
    const ai = vertexClient();
    const created = await ai.tunings.tune({
      baseModel: 'gemini-2.5-flash',
      trainingDataset: { gcsUri: uris.both },
      config: { tunedModelDisplayName: 'successors', epochCount: 40, batchSize: 8, adapterSize: AdapterSize.ADAPTER_SIZE_EIGHT },
    });
    supervised = await finished(ai, created.name!);
    assert.equal(supervised.state, 'JOB_STATE_SUCCEEDED', JSON.stringify(supervised.error));
    assert.match(supervised.tunedModel!.model!, /\/models\/\d+@1$/);
  });

  test('a continued run starts at its source\'s final loss and becomes version 2 of its Model', async () => {
    const ai = vertexClient();
    const modelName = supervised.tunedModel!.model!.replace(/@1$/, '');
    const created = await ai.tunings.tune({ baseModel: modelName, trainingDataset: { gcsUri: uris.both }, config: { epochCount: 1, batchSize: 8 } });
    assert.equal(created.baseModel, undefined);
    assert.equal(created.preTunedModel?.tunedModelName, supervised.tunedModel!.model);
    assert.equal(created.preTunedModel?.baseModel, 'gemini-2.5-flash');
    assert.equal(created.tunedModelDisplayName, 'successors', 'a new version keeps its Model\'s display name');
    const job = await finished(ai, created.name!);
    assert.equal(job.state, 'JOB_STATE_SUCCEEDED', JSON.stringify(job.error));

    const [source, continued] = [await metricsOf(supervised.name!), await metricsOf(job.name!)];
    const sourceLoss = source['/train_total_loss']!;
    const first = continued['/train_total_loss']![0]!;
    const last = sourceLoss.slice(-10).reduce((a, b) => a + b, 0) / 10;
    assert.ok(Math.abs(first - last) < 0.25 * (sourceLoss[0]! - last), `first loss ${first}; the source began at ${sourceLoss[0]} and ended near ${last}`);

    const number = modelName.split('/').at(-1)!;
    assert.equal(job.tunedModel!.model, `${modelName}@2`);
    const endpoint = job.tunedModel!.endpoint!;
    assert.notEqual(endpoint, supervised.tunedModel!.endpoint);
    assert.equal((await rest(`/v1beta1/${modelName}@2`)).json.versionId, '2');
    const byDefault = await rest(`/v1beta1/${modelName}`);
    assert.equal(byDefault.json.versionId, '2', 'the latest version is the default');
    assert.deepEqual(byDefault.json.versionAliases, ['default']);
    assert.deepEqual((await rest(`/v1beta1/${modelName}@1`)).json.versionAliases, []);
    const listed = (await rest(`${parent()}/models`)).json.models.filter((m: any) => m.name.endsWith(`/models/${number}`));
    assert.equal(listed.length, 1, 'a Model is listed once');
    const answer = await rest(`/v1beta1/${endpoint}:generateContent`, { method: 'POST', body: { contents: [content('user', '14')] } });
    assert.equal(answer.status, 200, answer.text);
  });

  test('continued runs that cannot be are refused clearly', async () => {
    const modelName = supervised.tunedModel!.model!;
    const body = (extra: object) => ({
      supervisedTuningSpec: { trainingDatasetUri: uris.both },
      preTunedModel: { tunedModelName: modelName },
      ...extra,
    });
    const jobs = `${parent()}/tuningJobs`;
    assertRpcError(await rest(jobs, { method: 'POST', body: body({ baseModel: 'gemini-2.5-flash' }) }), 400, /baseModel or preTunedModel, not both/, 'tuning_job.base_model');
    assertRpcError(
      await rest(jobs, { method: 'POST', body: body({ supervisedTuningSpec: { trainingDatasetUri: uris.both, hyperParameters: { adapterSize: 'ADAPTER_SIZE_FOUR' } } }) }),
      400, /adapter size must be the source model's \(rank 8\)/, 'tuning_job.supervised_tuning_spec.hyper_parameters.adapter_size',
    );
    assertRpcError(await rest(jobs, { method: 'POST', body: body({ preTunedModel: { tunedModelName: modelName, checkpointId: '99' } }) }), 400, /checkpointId "99" does not exist/);
    // Another project's model is not there for this caller, exactly as a missing one.
    const theirs = await rest(`${parent(otherProject)}/tuningJobs`, {
      method: 'POST', apiKey: fixture.keys[otherProject], body: body({ preTunedModel: { tunedModelName: modelName.replace(project, otherProject) } }),
    });
    assertRpcError(theirs, 404, /does not exist/);
    const missing = await rest(jobs, { method: 'POST', body: body({ preTunedModel: { tunedModelName: `${modelName.replace(/\d+@1$/, '1234567890123456789')}` } }) });
    assertRpcError(missing, 404, /does not exist/);
    const sameAsTheirs = await rest(`${parent(otherProject)}/tuningJobs`, {
      method: 'POST', apiKey: fixture.keys[otherProject], body: body({}),
    });
    assertRpcError(sameAsTheirs, 404, /does not exist/);
  });

  test('the Gemini API continues a tuned model through tunedModelSource, and refuses preference tuning', async () => {
    const id = (await rest(`/v1beta/tunedModels/${supervised.name!.split('/').at(-1)}`)).json.name;
    const reply = await rest('/v1beta/tunedModels', {
      method: 'POST',
      body: {
        displayName: 'successors, continued',
        tunedModelSource: { tunedModel: id },
        tuningTask: { hyperparameters: { epochCount: 1, batchSize: 8 }, trainingData: { examples: { examples: [{ textInput: '14', output: '15' }] } } },
      },
    });
    assert.equal(reply.status, 200, reply.text);
    const created = reply.json.metadata.tunedModel;
    const model = await waitFor('the Gemini continued model', async () => {
      const got = await rest(`/v1beta/${created}`);
      return got.json.state === 'ACTIVE' || got.json.state === 'FAILED' ? got.json : undefined;
    }, { timeoutMs: 120_000 });
    assert.equal(model.state, 'ACTIVE', JSON.stringify(model));
    assert.deepEqual(model.tunedModelSource, { tunedModel: id, baseModel: 'models/gemini-2.5-flash' });
    assert.equal(model.baseModel, undefined);

    const preference = await rest('/v1beta/tunedModels', {
      method: 'POST',
      body: { baseModel: 'models/gemini-1.5-flash-001-tuning', preferenceOptimizationSpec: { trainingDatasetUri: uris.preferences } },
    });
    assertRpcError(preference, 400, /Preference tuning is not available in the Gemini API/);
    const examples = await rest('/v1beta/tunedModels', {
      method: 'POST',
      body: { baseModel: 'models/gemini-1.5-flash-001-tuning', tuningTask: { trainingData: { examples: { examples: [preferenceLine(3)] } } } },
    });
    assertRpcError(examples, 400, /example 1: a preference example .* is for preference tuning/);
  });

  test('a malformed preference line is a 400 that names its line', async () => {
    const bad = await upload('bad-preferences.jsonl', jsonl([preferenceLine(1), preferenceLine(2), { contents: [content('user', '3')], completions: [{ score: 1, completion: content('model', '4') }] }]));
    const reply = await rest(`${parent()}/tuningJobs?validateOnly=true`, {
      method: 'POST', body: { baseModel: 'gemini-2.5-flash', preferenceOptimizationSpec: { trainingDatasetUri: bad } },
    });
    assertRpcError(reply, 400, /line 3: "completions" must hold exactly two completions/, 'tuning_job.preference_optimization_spec.training_dataset_uri');
    const beta = await rest(`${parent()}/tuningJobs?validateOnly=true`, {
      method: 'POST', body: { baseModel: 'gemini-2.5-flash', preferenceOptimizationSpec: { trainingDatasetUri: uris.preferences, hyperParameters: { beta: 0 } } },
    });
    assertRpcError(beta, 400, /beta must be greater than 0/, 'tuning_job.preference_optimization_spec.hyper_parameters.beta');
    const both = await rest(`${parent()}/tuningJobs?validateOnly=true`, {
      method: 'POST',
      body: { baseModel: 'gemini-2.5-flash', supervisedTuningSpec: { trainingDatasetUri: uris.both }, preferenceOptimizationSpec: { trainingDatasetUri: uris.preferences } },
    });
    assertRpcError(both, 400, /not both/);
  });

  test('preference tuning continued from the supervised model prefers the chosen answers', async (t) => {
    const ai = vertexClient();
    const created = await ai.tunings.tune({
      baseModel: supervised.tunedModel!.model!,
      trainingDataset: { gcsUri: uris.preferences },
      config: {
        method: TuningMethod.PREFERENCE_TUNING,
        tunedModelDisplayName: 'successors, preferred',
        validationDataset: { gcsUri: uris.preferenceValidation },
        epochCount: 10,
        beta: 0.1,
      },
    });
    assert.equal(created.preferenceOptimizationSpec?.hyperParameters?.beta, 0.1);
    assert.equal(created.supervisedTuningSpec, undefined);
    assert.equal(created.tuningDataStats?.preferenceOptimizationDataStats?.tuningDatasetExampleCount, String(prompts.length));
    const job = await finished(ai, created.name!);
    assert.equal(job.state, 'JOB_STATE_SUCCEEDED', JSON.stringify(job.error));
    assert.match(job.tunedModel!.model!, /\/models\/\d+@1$/, 'a new display name makes a new Model');

    const metrics = await metricsOf(job.name!);
    assert.ok(Math.abs(metrics['/train_total_loss']![0]! - Math.LN2) < 1e-3, `first DPO loss ${metrics['/train_total_loss']![0]}`);
    assert.equal(metrics['/train_reward_margin']![0], 0);
    assert.ok(metrics['/train_reward_accuracy']!.every((a) => a >= 0 && a <= 1));
    assert.ok(metrics['/eval_reward_accuracy']!.length > 0 && metrics['/eval_reward_margin']!.length > 0);
    assert.equal(metrics['/train_fraction_of_correct_next_step_preds'], undefined);

    const before = await chosenShare(supervised.tunedModel!.endpoint!);
    const after = await chosenShare(job.tunedModel!.endpoint!);
    const report = `supervised ${before.share} (${before.answers.join(',')}), preference ${after.share} (${after.answers.join(',')})`;
    t.diagnostic(report);
    assert.ok(after.share >= 0.7, report);
    assert.ok(after.share >= before.share + 0.2, report);
  });
});
