// A tuned model's intermediate checkpoints (issue 11, item 3) and Vertex's open-model fields (item 7), against a
// real `attune serve` that really trains stories260K: a 4-epoch job lists 4 checkpoints, each on its own endpoint
// that answers generateContent through Google's @google-cloud/aiplatform client over REST and over gRPC; models.patch
// changes the default checkpoint (what tunedModel.endpoint and the Gemini API serve); each checkpoint downloads as
// PEFT files; exportLastCheckpointOnly keeps the last only; checkpoints count against the project's storage quota.
// customBaseModel tunes a model folder uploaded to the project's own bucket and outputUri receives the PEFT files;
// TUNING_MODE_FULL, another project's bucket and path tricks are refused.
import { before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, readdirSync, rmSync } from 'node:fs';
import os from 'node:os';
import { Readable } from 'node:stream';
import path from 'node:path';
import * as grpc from '@grpc/grpc-js';
import aiplatform from '@google-cloud/aiplatform';
import { OAuth2Client } from 'google-auth-library';
import { unzipStored } from '../src/api/export/unzip.js';
import { checkpointPlan } from '../src/service/tuning/checkpoints.js';
import { call, repoRoot, useServer, waitFor, type ServerFixture } from './helpers/server.js';

const project = 'ckpt-project';
const otherProject = 'ckpt-other';
const location = 'us-central1';
const bucket = 'ckpt-datasets';
const parent = (version = 'v1', p = project) => `/${version}/projects/${p}/locations/${location}`;
const resourceParent = `projects/${project}/locations/${location}`;

const numbers = readFileSync(`${repoRoot}/examples/numbers.jsonl`, 'utf8').trim().split('\n').map((line) => JSON.parse(line) as { text_input: string; output: string });
const jsonl = numbers.map((p) => JSON.stringify({ contents: [{ role: 'user', parts: [{ text: p.text_input }] }, { role: 'model', parts: [{ text: p.output }] }] })).join('\n') + '\n';
const prompt = { contents: [{ role: 'user', parts: [{ text: numbers[0]!.text_input }] }], generationConfig: { temperature: 0, maxOutputTokens: 8 } };

async function upload(fixture: ServerFixture, key: string, bucketName: string, name: string, body: string | Buffer, contentType = 'application/octet-stream') {
  const reply = await call(`${fixture.url}/upload/storage/v1/b/${bucketName}/o?uploadType=media&name=${encodeURIComponent(name)}`, {
    method: 'POST', key, body, headers: { 'content-type': contentType },
  });
  assert.equal(reply.status, 200, reply.text);
}

async function tuned(fixture: ServerFixture, key: string, body: object, version = 'v1'): Promise<any> {
  const created = await call(`${fixture.url}${parent(version)}/tuningJobs`, { method: 'POST', key, body });
  assert.equal(created.status, 200, created.text);
  return waitFor('the job to end', async () => {
    const job = (await call(`${fixture.url}/${version}/${created.json.name}`, { key })).json;
    if (job.state === 'JOB_STATE_FAILED') assert.fail(JSON.stringify(job.error));
    return job.state === 'JOB_STATE_SUCCEEDED' ? job : undefined;
  }, { timeoutMs: 240_000, intervalMs: 200 });
}

const numberOf = (name: string) => name.split('/').at(-1)!;

test('the checkpoint cadence: one per epoch under 10 epochs, else 10 spread evenly ending at the last step; exportLastCheckpointOnly keeps the last', () => {
  const steps = (epochs: number, examples: number, batchSize: number, exportLastCheckpointOnly = false) =>
    checkpointPlan({ epochs, examples, batchSize, exportLastCheckpointOnly }).map((c) => [c.checkpointId, c.step, c.epoch]);
  assert.deepEqual(steps(4, 15, 4), [['1', 4, 1], ['2', 8, 2], ['3', 12, 3], ['4', 15, 4]]);
  const twenty = steps(20, 100, 10);
  assert.equal(twenty.length, 10);
  assert.deepEqual(twenty.map(([, step]) => step), [20, 40, 60, 80, 100, 120, 140, 160, 180, 200]);
  assert.deepEqual(steps(25, 8, 4).map(([, , epoch]) => epoch), [3, 5, 8, 10, 13, 15, 18, 20, 23, 25]);
  assert.deepEqual(steps(4, 15, 4, true), [['1', 15, 4]]);
  // A batch larger than the dataset ends several epochs in one step: one checkpoint each step.
  assert.deepEqual(steps(4, 2, 4), [['1', 1, 2], ['2', 2, 4]]);
});

describe('intermediate checkpoints', { concurrency: false }, () => {
  const fixture = useServer({ projects: [project, otherProject], grpc: true, concurrency: 2 });
  const key = () => fixture.keys[project]!;
  const rest = (route: string, options: { method?: string; body?: unknown; apiKey?: string } = {}) =>
    call(`${fixture.url}${route}`, { method: options.method, body: options.body, key: options.apiKey ?? key() });
  let job: any;

  const restClient = () => {
    const authClient = new OAuth2Client();
    authClient.setCredentials({ access_token: key(), expiry_date: Date.now() + 3_600_000 });
    const url = new URL(fixture.url);
    type AuthClient = NonNullable<ConstructorParameters<typeof aiplatform.v1.PredictionServiceClient>[0]>['authClient'];
    return { apiEndpoint: url.hostname, port: Number(url.port), protocol: 'http', fallback: 'rest' as const, authClient: authClient as unknown as AuthClient };
  };
  const grpcClient = () => ({
    servicePath: '127.0.0.1', port: fixture.server.grpcPort!, sslCreds: grpc.credentials.createInsecure(), fallback: false as const, universeDomain: 'googleapis.com',
  });
  const withKey = () => ({ otherArgs: { headers: { 'x-goog-api-key': key() } } });

  before(async () => {
    await upload(fixture, key(), bucket, 'train.jsonl', jsonl, 'application/jsonl');
    job = await tuned(fixture, key(), {
      baseModel: 'gemini-2.5-flash',
      tunedModelDisplayName: 'four epochs',
      supervisedTuningSpec: { trainingDatasetUri: `gs://${bucket}/train.jsonl`, hyperParameters: { epochCount: 4, batchSize: 4 } },
    }, 'v1beta1');
  });

  test('a 4-epoch job lists 4 checkpoints, one per epoch; the last is on the job\'s own endpoint, the default', () => {
    const { checkpoints, endpoint, model } = job.tunedModel;
    // 15 examples, batch 4: epochs end at steps 4, 8, 12 and 15.
    assert.deepEqual(checkpoints.map((c: any) => [c.checkpointId, c.epoch, c.step]), [['1', '1', '4'], ['2', '2', '8'], ['3', '3', '12'], ['4', '4', '15']]);
    const number = numberOf(job.name);
    assert.equal(model, `${resourceParent}/models/${number}@1`);
    assert.equal(endpoint, `${resourceParent}/endpoints/${number}`);
    assert.equal(checkpoints[3].endpoint, endpoint);
    const endpoints = new Set(checkpoints.map((c: any) => c.endpoint));
    assert.equal(endpoints.size, 4, 'each checkpoint has an endpoint of its own');
    for (const c of checkpoints) assert.match(c.endpoint, new RegExp(`^${resourceParent}/endpoints/\\d{19}$`));
  });

  test('the job\'s events say where each checkpoint was kept, before the end', async () => {
    const { events } = (await rest(`/v1/${job.name}/events`)).json;
    const kept = events.filter((e: any) => e.type === 'kept');
    assert.deepEqual(kept.map((e: any) => e.step), [4, 8, 12, 15]);
    assert.match(kept[0].message, /^Checkpoint 1 kept at step 4 \(epoch 1\), served on endpoints\/\d{19}\.$/);
    assert.equal(events.at(-1).type, 'succeeded');
  });

  test('every checkpoint\'s endpoint answers generateContent: aiplatform over REST and over gRPC, and plain HTTP', { timeout: 120_000 }, async () => {
    const rests = new aiplatform.v1.PredictionServiceClient(restClient());
    const grpcs = new aiplatform.v1.PredictionServiceClient(grpcClient());
    const endpoints = new aiplatform.v1.EndpointServiceClient(restClient());
    try {
      for (const checkpoint of job.tunedModel.checkpoints) {
        const request = { model: checkpoint.endpoint, ...prompt };
        const [overRest] = await rests.generateContent(request);
        const [overGrpc] = await grpcs.generateContent(request, withKey());
        const plain = await rest(`/v1/${checkpoint.endpoint}:generateContent`, { method: 'POST', body: prompt });
        assert.equal(plain.status, 200, plain.text);
        const text = plain.json.candidates[0].content.parts[0].text;
        assert.equal(typeof text, 'string');
        assert.equal(overRest.candidates?.[0]?.content?.parts?.[0]?.text, text, `checkpoint ${checkpoint.checkpointId} over REST`);
        assert.equal(overGrpc.candidates?.[0]?.content?.parts?.[0]?.text, text, `checkpoint ${checkpoint.checkpointId} over gRPC`);
        const [resource] = await endpoints.getEndpoint({ name: checkpoint.endpoint });
        assert.equal(resource.deployedModels?.[0]?.checkpointId, checkpoint.checkpointId);
        assert.equal(resource.deployedModels?.[0]?.model, job.tunedModel.model.replace(/@1$/, ''));
      }
    } finally {
      await Promise.all([rests.close(), grpcs.close(), endpoints.close()]);
    }
    // Another project sees none of them.
    const other = await rest(`/v1/${job.tunedModel.checkpoints[0].endpoint.replace(project, otherProject)}:generateContent`, {
      method: 'POST', body: prompt, apiKey: fixture.keys[otherProject],
    });
    assert.equal(other.status, 404, other.text);
  });

  test('the checkpoints are different adapters: each downloads as PEFT files of its own', async () => {
    const number = numberOf(job.name);
    const weights: string[] = [];
    for (const checkpoint of job.tunedModel.checkpoints) {
      const reply = await fetch(`${fixture.url}/v1beta/tunedModels/${number}/export?format=peft&checkpoint=${checkpoint.checkpointId}`, { headers: { 'x-goog-api-key': key() } });
      assert.equal(reply.status, 200, await reply.clone().text());
      const dir = mkdtempSync(path.join(os.tmpdir(), 'attune-ckpt-'));
      try {
        const names = await unzipStored(Readable.from([Buffer.from(await reply.arrayBuffer())]), dir);
        assert.ok(names.includes('adapter_config.json') && names.includes('adapter_model.safetensors'), names.join(', '));
        weights.push(readFileSync(path.join(dir, 'adapter_model.safetensors')).toString('base64'));
        const record = JSON.parse(readFileSync(path.join(dir, 'attune.json'), 'utf8'));
        if (checkpoint.checkpointId !== '4') assert.equal(record.training?.completedSteps, Number(checkpoint.step));
      } finally {
        rmSync(dir, { recursive: true, force: true });
      }
    }
    assert.equal(new Set(weights).size, 4, 'four different adapters');
    const missing = await rest(`/v1beta/tunedModels/${number}/export?format=peft&checkpoint=9`);
    assert.equal(missing.status, 404, missing.text);
    const bad = await rest(`/v1beta/tunedModels/${number}/export?format=peft&checkpoint=../1`);
    assert.equal(bad.status, 400, bad.text);
  });

  test('models.patch(defaultCheckpointId) changes the default: Model, tunedModel.endpoint and the Gemini API serve it', async () => {
    const number = numberOf(job.name);
    const models = new aiplatform.v1beta1.ModelServiceClient(restClient());
    try {
      const [model] = await models.getModel({ name: `${resourceParent}/models/${number}` });
      assert.equal(model.defaultCheckpointId, '4');
      assert.deepEqual(model.checkpoints?.map((c) => c.checkpointId), ['1', '2', '3', '4']);
      const [updated] = await models.updateModel({ model: { name: `${resourceParent}/models/${number}`, defaultCheckpointId: '2' }, updateMask: { paths: ['default_checkpoint_id'] } });
      assert.equal(updated.defaultCheckpointId, '2');
    } finally {
      await models.close();
    }
    const second = job.tunedModel.checkpoints[1];
    const after = (await rest(`/v1/${job.name}`)).json;
    assert.equal(after.tunedModel.endpoint, second.endpoint);
    const viaCheckpoint = await rest(`/v1/${second.endpoint}:generateContent`, { method: 'POST', body: prompt });
    const viaGemini = await rest(`/v1beta/tunedModels/${number}:generateContent`, { method: 'POST', body: prompt });
    assert.equal(viaGemini.json.candidates[0].content.parts[0].text, viaCheckpoint.json.candidates[0].content.parts[0].text);
    const listed = await rest(`/v1beta1/${resourceParent}/models/${number}:listCheckpoints`);
    assert.deepEqual(listed.json.checkpoints.map((c: any) => c.checkpointId), ['1', '2', '3', '4']);
    // A checkpoint that does not exist, and a field Attune does not change, are 400s.
    const unknown = await rest(`/v1/${resourceParent}/models/${number}?updateMask=defaultCheckpointId`, { method: 'PATCH', body: { defaultCheckpointId: '7' } });
    assert.equal(unknown.status, 400, unknown.text);
    assert.match(unknown.json.error.message, /checkpoints are 1, 2, 3, 4/);
    const field = await rest(`/v1/${resourceParent}/models/${number}?updateMask=artifactUri`, { method: 'PATCH', body: {} });
    assert.equal(field.status, 400, field.text);
    // The same over gRPC: ModelService.UpdateModel and (v1beta1) ListModelVersionCheckpoints.
    const overGrpc = new aiplatform.v1beta1.ModelServiceClient(grpcClient());
    try {
      const [listedOverGrpc] = await overGrpc.listModelVersionCheckpoints({ name: `${resourceParent}/models/${number}` }, withKey());
      assert.deepEqual(listedOverGrpc.map((c) => [c.checkpointId, String(c.epoch), String(c.step)]), [['1', '1', '4'], ['2', '2', '8'], ['3', '3', '12'], ['4', '4', '15']]);
      const [back] = await overGrpc.updateModel({ model: { name: `${resourceParent}/models/${number}`, defaultCheckpointId: '4' }, updateMask: { paths: ['default_checkpoint_id'] } }, withKey());
      assert.equal(back.defaultCheckpointId, '4');
    } finally {
      await overGrpc.close();
    }
    assert.equal((await rest(`/v1/${job.name}`)).json.tunedModel.endpoint, job.tunedModel.endpoint);
  });

  test('exportLastCheckpointOnly keeps the last checkpoint only', { timeout: 240_000 }, async () => {
    const lastOnly = await tuned(fixture, key(), {
      baseModel: 'gemini-2.5-flash',
      supervisedTuningSpec: { trainingDatasetUri: `gs://${bucket}/train.jsonl`, hyperParameters: { epochCount: 3 }, exportLastCheckpointOnly: true },
    });
    assert.equal(lastOnly.supervisedTuningSpec.exportLastCheckpointOnly, true);
    assert.equal(lastOnly.tunedModel.checkpoints, undefined);
    const model = (await rest(`/v1/${resourceParent}/models/${numberOf(lastOnly.name)}`)).json;
    assert.deepEqual(model.checkpoints.map((c: any) => c.checkpointId), ['1']);
    const stored = readdirSync(path.join(fixture.server.dataDir, 'adapters', (await rest(`/v1beta/tunedModels/${numberOf(lastOnly.name)}`)).json.name.split('/')[1]));
    assert.equal(stored.length, 1, stored.join(', '));
  });

  test('a cancelled run keeps the checkpoints it reached, and the adapter where it stopped as its last; each answers', { timeout: 240_000 }, async () => {
    // One step per epoch (batch = the 15 examples), 10,000 epochs: a checkpoint every 1,000 steps.
    const created = await rest(`${parent()}/tuningJobs`, {
      method: 'POST',
      body: { baseModel: 'gemini-2.5-flash', supervisedTuningSpec: { trainingDatasetUri: `gs://${bucket}/train.jsonl`, hyperParameters: { epochCount: 10_000, batchSize: 15 } } },
    });
    assert.equal(created.status, 200, created.text);
    await waitFor('a first checkpoint kept', async () => {
      const { events } = (await rest(`/v1/${created.json.name}/events`)).json;
      return events.some((e: any) => e.type === 'kept') ? true : undefined;
    }, { timeoutMs: 180_000, intervalMs: 100 });
    assert.equal((await rest(`/v1/${created.json.name}:cancel`, { method: 'POST', body: {} })).status, 200);
    const ended = await waitFor('the cancel', async () => {
      const current = (await rest(`/v1/${created.json.name}`)).json;
      return current.state === 'JOB_STATE_CANCELLED' ? current : undefined;
    }, { intervalMs: 100 });
    assert.equal(ended.error.code, 1);
    const { checkpoints, endpoint } = ended.tunedModel;
    const done = Number(ended.tuningJobMetadata.completedStepCount);
    assert.ok(checkpoints.length >= 2, JSON.stringify(checkpoints));
    assert.deepEqual(checkpoints.slice(0, -1).map((c: any) => c.step), checkpoints.slice(0, -1).map((_: unknown, i: number) => String(1000 * (i + 1))));
    assert.equal(checkpoints.at(-1).step, String(done));
    assert.equal(checkpoints.at(-1).endpoint, endpoint);
    assert.equal(endpoint, `${resourceParent}/endpoints/${numberOf(created.json.name)}`);
    for (const c of checkpoints) {
      const reply = await rest(`/v1/${c.endpoint}:generateContent`, { method: 'POST', body: prompt });
      assert.equal(reply.status, 200, `checkpoint ${c.checkpointId}: ${reply.text}`);
    }
  });

  test('deleting the model removes every checkpoint\'s adapter and endpoint', { timeout: 240_000 }, async () => {
    const doomed = await tuned(fixture, key(), {
      baseModel: 'gemini-2.5-flash',
      supervisedTuningSpec: { trainingDatasetUri: `gs://${bucket}/train.jsonl`, hyperParameters: { epochCount: 2 } },
    });
    const id = (await rest(`/v1beta/tunedModels/${numberOf(doomed.name)}`)).json.name.split('/')[1];
    assert.equal(readdirSync(path.join(fixture.server.dataDir, 'adapters', id)).length, 2);
    assert.equal((await rest(`/v1/${resourceParent}/models/${numberOf(doomed.name)}`, { method: 'DELETE' })).status, 200);
    for (const c of doomed.tunedModel.checkpoints) {
      assert.equal((await rest(`/v1/${c.endpoint}`)).status, 404);
      assert.equal((await rest(`/v1/${c.endpoint}:generateContent`, { method: 'POST', body: prompt })).status, 404);
    }
    assert.throws(() => readdirSync(path.join(fixture.server.dataDir, 'adapters', id)));
  });
});

describe('checkpoints and the storage quota', { concurrency: false }, () => {
  // Room for the dataset and a little more: intermediate checkpoints do not fit, the run's own adapter is the model.
  const fixture = useServer({ projects: [project], args: ['--limit', `storageBytesPerProject=${Buffer.byteLength(jsonl) + 64}`] });

  test('checkpoints over storageBytesPerProject are not kept; the run succeeds with its last', { timeout: 240_000 }, async () => {
    const key = fixture.keys[project]!;
    await upload(fixture, key, bucket, 'train.jsonl', jsonl, 'application/jsonl');
    const job = await tuned(fixture, key, {
      baseModel: 'gemini-2.5-flash', supervisedTuningSpec: { trainingDatasetUri: `gs://${bucket}/train.jsonl`, hyperParameters: { epochCount: 3 } },
    });
    assert.deepEqual(job.tunedModel.checkpoints.map((c: any) => c.checkpointId), ['3']);
    assert.equal((await call(`${fixture.url}/v1/${job.tunedModel.endpoint}:generateContent`, { method: 'POST', key, body: prompt })).status, 200);
  });
});

describe('Vertex open-model fields: customBaseModel, outputUri, tuningMode', { concurrency: false }, () => {
  const fixture = useServer({ projects: [project, otherProject] });
  const key = () => fixture.keys[project]!;
  const modelsBucket = 'ckpt-models';
  const stories = path.join(repoRoot, 'models', 'stories260K');

  before(async () => {
    await upload(fixture, key(), bucket, 'train.jsonl', jsonl, 'application/jsonl');
    for (const file of readdirSync(stories)) await upload(fixture, key(), modelsBucket, `models/my-stories/${file}`, readFileSync(path.join(stories, file)));
    await upload(fixture, fixture.keys[otherProject]!, 'ckpt-other-bucket', 'x.txt', 'x');
  });

  const create = (body: object, apiKey = key()) => call(`${fixture.url}${parent('v1beta1')}/tuningJobs`, { method: 'POST', key: apiKey, body });
  const spec = { trainingDatasetUri: `gs://${bucket}/train.jsonl`, hyperParameters: { epochCount: 2 } };

  test('customBaseModel tunes the uploaded folder; outputUri receives the PEFT files of the adapter and each checkpoint', { timeout: 240_000 }, async () => {
    const job = await tuned(fixture, key(), {
      baseModel: 'my-stories', customBaseModel: `gs://${modelsBucket}/models/my-stories/`, outputUri: `gs://${modelsBucket}/out/run1`,
      supervisedTuningSpec: { ...spec, tuningMode: 'TUNING_MODE_PEFT_ADAPTER' },
    }, 'v1beta1');
    assert.equal(job.customBaseModel, `gs://${modelsBucket}/models/my-stories/`);
    assert.equal(job.outputUri, `gs://${modelsBucket}/out/run1`);
    assert.equal(job.baseModel, 'my-stories');
    const listed = await call(`${fixture.url}/storage/v1/b/${modelsBucket}/o?prefix=out/run1/`, { key: key() });
    const names = listed.json.items.map((o: any) => o.name).sort();
    assert.deepEqual(names.filter((n: string) => n.endsWith('.safetensors')), ['out/run1/adapter/adapter_model.safetensors', 'out/run1/checkpoints/1/adapter_model.safetensors']);
    assert.ok(names.includes('out/run1/adapter/adapter_config.json'), names.join(', '));
    const answer = await call(`${fixture.url}/v1/${job.tunedModel.endpoint}:generateContent`, { method: 'POST', key: key(), body: prompt });
    assert.equal(answer.status, 200, answer.text);
  });

  test('refused: TUNING_MODE_FULL (FAILED_PRECONDITION), another project\'s bucket (404), paths and bad URIs (400 or 404), never a 5xx', async () => {
    const full = await create({ baseModel: 'gemini-2.5-flash', supervisedTuningSpec: { ...spec, tuningMode: 'TUNING_MODE_FULL' } });
    assert.equal(full.status, 400, full.text);
    assert.equal(full.json.error.status, 'FAILED_PRECONDITION');
    assert.match(full.json.error.message, /TUNING_MODE_FULL.*LoRA/);
    const fullByNumber = await create({ baseModel: 'gemini-2.5-flash', supervisedTuningSpec: { ...spec, tuningMode: 1 } });
    assert.equal(fullByNumber.json.error.status, 'FAILED_PRECONDITION', fullByNumber.text);
    const cases: [object, number][] = [
      [{ customBaseModel: 'gs://ckpt-other-bucket/' + 'x.txt' }, 404], // another project's bucket: as a missing one
      [{ customBaseModel: `gs://${modelsBucket}/models/absent/` }, 404],
      [{ customBaseModel: `gs://${modelsBucket}/models/../models/my-stories/` }, 400],
      [{ customBaseModel: '/etc/' }, 400],
      [{ customBaseModel: `file://${stories}` }, 400],
      [{ customBaseModel: `gs://${modelsBucket}/` }, 400],
      [{ customBaseModel: `gs://${bucket}/train.jsonl` }, 404], // an object, not a folder
      [{ customBaseModel: 42 }, 400],
      [{ outputUri: 'gs://ckpt-other-bucket/out' }, 404],
      [{ outputUri: '/tmp/out' }, 400],
      [{ outputUri: `gs://${modelsBucket}/a/../../b` }, 400],
    ];
    for (const [fields, status] of cases) {
      const reply = await create({ baseModel: 'gemini-2.5-flash', ...fields, supervisedTuningSpec: spec });
      assert.equal(reply.status, status, `${JSON.stringify(fields)}: ${reply.text}`);
      assert.ok(reply.json.error.message, reply.text);
    }
    // A folder that is not a model Attune can run: FAILED_PRECONDITION, saying why.
    await upload(fixture, key(), modelsBucket, 'models/broken/config.json', '{"model_type": "nope"}', 'application/json');
    const broken = await create({ baseModel: 'x', customBaseModel: `gs://${modelsBucket}/models/broken/`, supervisedTuningSpec: spec });
    assert.equal(broken.status, 400, broken.text);
    assert.equal(broken.json.error.status, 'FAILED_PRECONDITION');
  });
});
