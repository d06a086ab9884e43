// The Vertex resources a tuning job names (issue 11, item 2): endpoints/{n} and models/{n} get, list and delete,
// computeTokens on endpoints and publisher models, v1beta3 countTextTokens, and modelVersion on Vertex answers.
// Google's generated client @google-cloud/aiplatform over REST (fallback) calls getEndpoint, getModel, listModels,
// computeTokens and deleteModel (and over gRPC EndpointService and ModelService get, list and delete) against a real `attune serve` whose three jobs really train stories260K; plain
// HTTP covers what a client should never see succeed (another project, bad names, bad paging, deleted models).
import { before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import aiplatform from '@google-cloud/aiplatform';
import * as grpc from '@grpc/grpc-js';
import { OAuth2Client } from 'google-auth-library';
import { Tokenizer } from '../src/engine/tokenizer/tokenizer.js';
import { call, repoRoot, useServer, waitFor, type ApiResponse, type ServerFixture } from './helpers/server.js';

const project = 'resources-project';
const otherProject = 'resources-other';
const location = 'us-central1';
const bucket = 'resources-datasets';
/** An alias of the embedded stories260K, as Vertex users name their base. */
const baseModel = 'gemini-2.5-flash';

let fixture: ServerFixture;
const key = () => fixture.keys[project]!;
const otherKey = () => fixture.keys[otherProject]!;

const parent = (version = 'v1', p = project, l = location) => `/${version}/projects/${p}/locations/${l}`;
const rest = (route: string, options: { method?: string; body?: unknown; apiKey?: string } = {}) =>
  call(`${fixture.url}${route}`, { method: options.method, body: options.body, key: options.apiKey ?? key() });

/** AIP-193: google.rpc status, the HTTP code in the body, JSON. */
function assertRpcError(reply: ApiResponse, http: number, status: string, message?: RegExp): void {
  assert.equal(reply.status, http, reply.text);
  assert.match(reply.headers.get('content-type') ?? '', /application\/json/);
  assert.equal(reply.json?.error?.code, http, reply.text);
  assert.equal(reply.json.error.status, status, reply.text);
  if (message) assert.match(reply.json.error.message, message);
}

interface Job {
  name: string;
  number: string;
  displayName: string;
}
const jobs: Job[] = [];

/** The generated clients, over REST to the fixture, with an Attune key as the bearer token. */
function clientOptions(apiKey = key()) {
  const authClient = new OAuth2Client();
  authClient.setCredentials({ access_token: apiKey, expiry_date: Date.now() + 3_600_000 });
  const url = new URL(fixture.url);
  // google-gax brings its own google-auth-library (a newer major than ours): the types differ, the one method the
  // REST transport calls (getRequestHeaders) does not.
  type AuthClient = NonNullable<ConstructorParameters<typeof aiplatform.v1.ModelServiceClient>[0]>['authClient'];
  return { apiEndpoint: url.hostname, port: Number(url.port), protocol: 'http', fallback: 'rest' as const, authClient: authClient as unknown as AuthClient };
}

describe('Vertex endpoints and models', { concurrency: false }, () => {
  fixture = useServer({ projects: [project, otherProject], concurrency: 3, grpc: true });

  before(async () => {
    const pairs = readFileSync(`${repoRoot}/examples/numbers.jsonl`, 'utf8').trim().split('\n').map((line) => JSON.parse(line));
    const jsonl = pairs.map((p) => JSON.stringify({ contents: [{ role: 'user', parts: [{ text: p.text_input }] }, { role: 'model', parts: [{ text: p.output }] }] })).join('\n');
    const uploaded = await call(`${fixture.url}/upload/storage/v1/b/${bucket}/o?uploadType=media&name=train.jsonl`, {
      method: 'POST', key: key(), body: jsonl + '\n', headers: { 'content-type': 'application/jsonl' },
    });
    assert.equal(uploaded.status, 200, uploaded.text);
    for (const [i, displayName] of ['alpha numbers', 'beta numbers', 'gamma numbers'].entries()) {
      const created = await rest(`${parent()}/tuningJobs`, {
        method: 'POST',
        body: {
          baseModel,
          tunedModelDisplayName: displayName,
          labels: { team: i === 0 ? 'red' : 'blue' },
          supervisedTuningSpec: { trainingDatasetUri: `gs://${bucket}/train.jsonl`, hyperParameters: { epochCount: 1 } },
        },
      });
      assert.equal(created.status, 200, created.text);
      jobs.push({ name: created.json.name, number: created.json.name.split('/').at(-1), displayName });
    }
    for (const job of jobs) {
      const ended = await waitFor(`${job.name} to end`, async () => {
        const reply = await rest(`/v1/${job.name}`);
        return ['JOB_STATE_SUCCEEDED', 'JOB_STATE_FAILED'].includes(reply.json?.state) ? reply.json : undefined;
      }, { timeoutMs: 180_000, intervalMs: 200 });
      assert.equal(ended.state, 'JOB_STATE_SUCCEEDED', JSON.stringify(ended.error));
    }
  });

  const [alpha, beta, gamma] = [0, 1, 2].map((i) => () => jobs[i]!);
  const endpointOf = (job: Job, p = project) => `projects/${p}/locations/${location}/endpoints/${job.number}`;
  const modelOf = (job: Job, p = project) => `projects/${p}/locations/${location}/models/${job.number}`;

  test('aiplatform EndpointServiceClient.getEndpoint (REST): the endpoint tuningJob.tunedModel names, its deployed model version 1', async () => {
    const job = await rest(`/v1/${alpha().name}`);
    const client = new aiplatform.v1.EndpointServiceClient(clientOptions());
    const [endpoint] = await client.getEndpoint({ name: job.json.tunedModel.endpoint });
    assert.equal(endpoint.name, endpointOf(alpha()));
    assert.equal(endpoint.displayName, 'alpha numbers');
    assert.deepEqual(endpoint.labels, { team: 'red' });
    assert.equal(endpoint.deployedModels?.length, 1);
    const deployed = endpoint.deployedModels![0]!;
    assert.equal(deployed.model, modelOf(alpha()));
    assert.equal(`${deployed.model}@${deployed.modelVersionId}`, job.json.tunedModel.model);
    assert.deepEqual(endpoint.trafficSplit, { [deployed.id!]: 100 });
    assert.equal(new Date(Number(endpoint.createTime!.seconds) * 1000).toISOString().slice(0, 19), job.json.endTime.slice(0, 19));
    await client.close();
  });

  test('aiplatform ModelServiceClient.getModel (REST) by the versioned name the job gives, and by @default and the bare name', async () => {
    const job = await rest(`/v1/${alpha().name}`);
    const client = new aiplatform.v1.ModelServiceClient(clientOptions());
    for (const name of [job.json.tunedModel.model, `${modelOf(alpha())}@default`, modelOf(alpha())]) {
      const [model] = await client.getModel({ name });
      assert.equal(model.name, modelOf(alpha()), name);
      assert.equal(model.versionId, '1');
      assert.deepEqual(model.versionAliases, ['default']);
      assert.equal(model.displayName, 'alpha numbers');
      assert.deepEqual(model.deployedModels?.map((d) => d.endpoint), [job.json.tunedModel.endpoint]);
      // The REST fallback asks for integer enums ($alt=json;enum-encoding=int) and decodes them back to names.
      assert.equal(model.modelSourceInfo?.sourceType, 'GENIE');
    }
    await client.close();
  });

  test('aiplatform listModels and listEndpoints (REST): every page, newest first; filters on display_name and labels', async () => {
    const models = new aiplatform.v1.ModelServiceClient(clientOptions());
    const all: string[] = [];
    for await (const model of models.listModelsAsync({ parent: `projects/${project}/locations/${location}`, pageSize: 2 }, { autoPaginate: false })) all.push(model.name!);
    assert.deepEqual(all, [gamma(), beta(), alpha()].map((j) => modelOf(j)));
    const [blue] = await models.listModels({ parent: `projects/${project}/locations/${location}`, filter: 'labels.team = "blue" AND display_name:"numbers"' });
    assert.deepEqual(blue.map((m) => m.displayName), ['gamma numbers', 'beta numbers']);
    await models.close();
    const endpoints = new aiplatform.v1beta1.EndpointServiceClient(clientOptions());
    const [listed] = await endpoints.listEndpoints({ parent: `projects/${project}/locations/${location}`, filter: `endpoint = "${beta().number}"` });
    assert.deepEqual(listed.map((e) => e.name), [endpointOf(beta())]);
    await endpoints.close();

    // The same pages over plain HTTP: page tokens carry on, and the last page has none.
    const first = await rest(`${parent('v1beta1')}/models?pageSize=2`);
    assert.equal(first.status, 200, first.text);
    assert.equal(first.json.models.length, 2);
    const second = await rest(`${parent('v1beta1')}/models?pageSize=2&pageToken=${first.json.nextPageToken}`);
    assert.deepEqual(second.json.models.map((m: any) => m.name), [modelOf(alpha())]);
    assert.equal(second.json.nextPageToken, undefined);
    // Another location lists nothing (proto3 JSON leaves the empty list out).
    assert.deepEqual((await rest(`${parent('v1', project, 'europe-west4')}/endpoints`)).json, {});
  });

  test('over gRPC (EndpointService, ModelService; insecure, no fallback): the same resources from the same methods, and the same refusals', async () => {
    const options = { servicePath: '127.0.0.1', port: fixture.server.grpcPort!, sslCreds: grpc.credentials.createInsecure(), fallback: false as const, universeDomain: 'googleapis.com' };
    const as = (apiKey: string) => ({ otherArgs: { headers: { 'x-goog-api-key': apiKey } } });
    const endpoints = new aiplatform.v1.EndpointServiceClient(options);
    const models = new aiplatform.v1beta1.ModelServiceClient(options);
    const locationName = `projects/${project}/locations/${location}`;

    const [endpoint] = await endpoints.getEndpoint({ name: endpointOf(alpha()) }, as(key()));
    const viaRest = await rest(`/v1/${endpointOf(alpha())}`);
    assert.equal(endpoint.name, viaRest.json.name);
    assert.equal(endpoint.displayName, 'alpha numbers');
    assert.equal(endpoint.deployedModels?.[0]?.model, modelOf(alpha()));
    const [model] = await models.getModel({ name: `${modelOf(beta())}@1` }, as(key()));
    assert.equal(model.name, modelOf(beta()));
    assert.equal(model.versionId, '1');
    const [listedModels] = await models.listModels({ parent: locationName, filter: 'labels.team = "blue"' }, as(key()));
    assert.deepEqual(listedModels.map((m) => m.name), [gamma(), beta()].map((j) => modelOf(j)));
    const [listedEndpoints] = await endpoints.listEndpoints({ parent: locationName }, as(key()));
    assert.deepEqual(listedEndpoints.map((e) => e.name), [gamma(), beta(), alpha()].map((j) => endpointOf(j)));

    const rejects = (promise: Promise<unknown>, code: grpc.status, message?: RegExp) =>
      assert.rejects(promise, (error: { code: number; details: string }) => error.code === code && (!message || message.test(error.details)));
    await rejects(endpoints.deleteEndpoint({ name: endpointOf(alpha()) }, as(key())), grpc.status.FAILED_PRECONDITION, /deployed model/);
    await rejects(models.deleteModel({ name: `${modelOf(alpha())}@1` }, as(key())), grpc.status.INVALID_ARGUMENT, /without a version/);
    await rejects(models.getModel({ name: `${locationName}/models/1234567890123456789` }, as(key())), grpc.status.NOT_FOUND);
    await rejects(endpoints.listEndpoints({ parent: locationName, orderBy: 'display_name' }, as(key())), grpc.status.INVALID_ARGUMENT, /orderBy/);
    await rejects(endpoints.getEndpoint({ name: 'endpoints/1' }, as(key())), grpc.status.INVALID_ARGUMENT);
    // Another project: this project's path is refused, and this project's numbers under its own path are missing ones.
    await rejects(endpoints.getEndpoint({ name: endpointOf(alpha()) }, as(otherKey())), grpc.status.PERMISSION_DENIED);
    await rejects(endpoints.getEndpoint({ name: endpointOf(alpha(), otherProject) }, as(otherKey())), grpc.status.NOT_FOUND);
    await rejects(models.deleteModel({ name: modelOf(alpha(), otherProject) }, as(otherKey())), grpc.status.NOT_FOUND);
    const [theirs] = await models.listModels({ parent: `projects/${otherProject}/locations/${location}` }, as(otherKey()));
    assert.deepEqual(theirs, []);
    await endpoints.close();
    await models.close();
  });

  test('aiplatform LlmUtilityServiceClient.computeTokens (REST) on a publisher model and on an endpoint: the tokenizer\'s ids and bytes', async () => {
    const tokenizer = await Tokenizer.load(path.join(repoRoot, 'models', 'stories260K'));
    const client = new aiplatform.v1.LlmUtilityServiceClient(clientOptions());
    const text = 'Once upon a time, twenty two';
    const expected = tokenizer.encode(text, { addSpecialTokens: false });
    for (const endpoint of [`projects/${project}/locations/${location}/publishers/google/models/${baseModel}`, endpointOf(alpha())]) {
      const [response] = await client.computeTokens({
        endpoint,
        contents: [{ role: 'user', parts: [{ text }] }, { role: 'model', parts: [{ text: 'twenty three' }] }],
      });
      const [user, model] = response.tokensInfo!;
      assert.deepEqual(user!.tokenIds!.map(Number), expected, endpoint);
      assert.equal(user!.role, 'user');
      assert.equal(model!.role, 'model');
      // SentencePiece marks word starts with "▁", which the bytes spell as a space: the pieces rebuild the text.
      const joined = Buffer.concat(user!.tokens!.map((t) => Buffer.from(t as Uint8Array))).toString('utf8');
      assert.equal(joined.trimStart(), text);
      assert.equal(Buffer.concat(model!.tokens!.map((t) => Buffer.from(t as Uint8Array))).toString('utf8').trimStart(), 'twenty three');
    }
    await client.close();

    // The wire itself: bytes as base64, int64 ids as strings; PaLM-era instances get one TokensInfo each, without a role.
    const reply = await rest(`/v1beta1/publishers/google/models/${baseModel}:computeTokens`, { method: 'POST', body: { instances: [{ prompt: 'twenty' }, { content: 'two' }] } });
    assert.equal(reply.status, 200, reply.text);
    assert.equal(reply.json.tokensInfo.length, 2);
    for (const [i, word] of ['twenty', 'two'].entries()) {
      const info = reply.json.tokensInfo[i];
      assert.equal(info.role, undefined);
      assert.ok(info.tokenIds.every((id: unknown) => typeof id === 'string' && /^\d+$/.test(id)), reply.text);
      assert.deepEqual(info.tokenIds.map(Number), tokenizer.encode(word, { addSpecialTokens: false }));
      assert.equal(Buffer.concat(info.tokens.map((t: string) => Buffer.from(t, 'base64'))).toString('utf8').trimStart(), word);
    }
  });

  test('modelVersion on Vertex answers names the base model (as Vertex does), on the Gemini API the tuned model', async () => {
    const request = { contents: [{ role: 'user', parts: [{ text: 'twenty two' }] }], generationConfig: { temperature: 0, maxOutputTokens: 4 } };
    const tuned = await rest(`/v1/${endpointOf(alpha())}:generateContent`, { method: 'POST', body: request });
    assert.equal(tuned.status, 200, tuned.text);
    assert.equal(tuned.json.modelVersion, baseModel);
    const publisher = await rest(`${parent()}/publishers/google/models/${baseModel}:generateContent`, { method: 'POST', body: request });
    assert.equal(publisher.json.modelVersion, baseModel);
    const streamed = await rest(`/v1beta1/${endpointOf(alpha())}:streamGenerateContent`, { method: 'POST', body: request });
    assert.ok(streamed.json.length >= 1 && streamed.json.every((chunk: any) => chunk.modelVersion === baseModel), streamed.text);
    const gemini = await rest(`/v1beta/tunedModels/${alpha().number}:generateContent`, { method: 'POST', body: request });
    assert.match(gemini.json.modelVersion, /^tunedModels\/alpha-numbers-/);
  });

  test('v1beta3 models/*:countTextTokens: the prompt\'s tokens as generateText frames it', async () => {
    const text = 'Once upon a time';
    const counted = await rest('/v1beta3/models/text-bison-001:countTextTokens', { method: 'POST', body: { prompt: { text } } });
    assert.equal(counted.status, 200, counted.text);
    const viaContents = await rest('/v1beta/models/text-bison-001:countTokens', { method: 'POST', body: { contents: [{ parts: [{ text }] }] } });
    assert.equal(counted.json.tokenCount, viaContents.json.totalTokens);
    assert.ok(counted.json.tokenCount >= 4, counted.text);
    assertRpcError(await rest('/v1beta3/models/text-bison-001:countTextTokens', { method: 'POST', body: {} }), 400, 'INVALID_ARGUMENT', /prompt/);
    assertRpcError(await rest('/v1/models/text-bison-001:countTextTokens', { method: 'POST', body: { prompt: { text } } }), 404, 'NOT_FOUND');
    assertRpcError(await rest('/v1beta3/models/no-such-model:countTextTokens', { method: 'POST', body: { prompt: { text } } }), 404, 'NOT_FOUND');
  });

  test('another project: its key on this project\'s path is 403; this project\'s numbers on its own path are 404, as missing ones', async () => {
    for (const route of [`/v1/${endpointOf(alpha())}`, `/v1/${modelOf(alpha())}`, `${parent()}/models`, `${parent()}/endpoints`]) {
      assertRpcError(await rest(route, { apiKey: otherKey() }), 403, 'PERMISSION_DENIED');
    }
    const missing = '1234567890123456789';
    for (const kind of ['endpoints', 'models'] as const) {
      const theirs = await rest(`${parent('v1', otherProject)}/${kind}/${alpha().number}`, { apiKey: otherKey() });
      const none = await rest(`${parent('v1', otherProject)}/${kind}/${missing}`, { apiKey: otherKey() });
      assertRpcError(theirs, 404, 'NOT_FOUND');
      assertRpcError(none, 404, 'NOT_FOUND');
      assert.equal(theirs.json.error.message.replace(alpha().number, 'N'), none.json.error.message.replace(missing, 'N'));
      assertRpcError(await rest(`${parent('v1', otherProject)}/${kind}/${alpha().number}`, { method: 'DELETE', apiKey: otherKey() }), 404, 'NOT_FOUND');
    }
    assert.deepEqual((await rest(`${parent('v1', otherProject)}/models`, { apiKey: otherKey() })).json, {});
    for (const route of [`${parent('v1', otherProject)}/endpoints/${alpha().number}:computeTokens`, `/v1/endpoints/${alpha().number}:computeTokens`]) {
      assertRpcError(await rest(route, { method: 'POST', apiKey: otherKey(), body: { contents: [{ parts: [{ text: 'x' }] }] } }), 404, 'NOT_FOUND');
    }
    // The generated client sees the same 404 as a GoogleError with code 5.
    const client = new aiplatform.v1.ModelServiceClient(clientOptions(otherKey()));
    await assert.rejects(client.getModel({ name: modelOf(alpha(), otherProject) }), (error: any) => error.code === 5 && /not found/.test(error.message));
    await client.close();
  });

  test('bad names, locations, paging, filters and bodies: 400 or 404 with google.rpc bodies, never a 5xx', async () => {
    const n = alpha().number;
    for (const route of [
      `${parent()}/endpoints/abc`, `${parent()}/endpoints/${n}@1`, `${parent()}/models/${n}@2`, `${parent()}/models/${n}@1@1`,
      `${parent()}/models/-1`, `${parent('v1', project, 'europe-west4')}/endpoints/${n}`, `${parent('v1', project, 'europe-west4')}/models/${n}`,
      `${parent('v2')}/models/${n}`, `${parent('v1')}/endpoints/${'9'.repeat(400)}`,
    ]) {
      assertRpcError(await rest(route), 404, 'NOT_FOUND');
    }
    for (const query of ['pageSize=-1', 'pageSize=abc', 'pageToken=not-a-token', 'filter=colour%20%3D%20%22red%22', 'filter=display_name%20%3D', 'orderBy=display_name']) {
      for (const kind of ['endpoints', 'models']) assertRpcError(await rest(`${parent()}/${kind}?${query}`), 400, 'INVALID_ARGUMENT');
    }
    const computeTokens = (body: unknown) => rest(`${parent()}/publishers/google/models/${baseModel}:computeTokens`, { method: 'POST', body });
    for (const body of [{}, { contents: [] }, { contents: 5 }, { instances: [5] }, { instances: 'x' }, { contents: [{ parts: [{ inlineData: {} }] }] }, { contents: [{ parts: [{ text: 'a' }] }], instances: [{ prompt: 'b' }] }]) {
      assertRpcError(await computeTokens(body), 400, 'INVALID_ARGUMENT');
    }
    assertRpcError(await computeTokens({ contents: [{ parts: [{ text: 'x'.repeat(40_001) }] }] }), 400, 'INVALID_ARGUMENT', /promptChars/);
    assertRpcError(await rest(`${parent()}/publishers/google/models/no-such-model:computeTokens`, { method: 'POST', body: { contents: [{ parts: [{ text: 'x' }] }] } }), 404, 'NOT_FOUND');
  });

  test('a running job names no model or endpoint (404); once cancelled after it trained, it keeps what it reached: model, endpoint and checkpoint', async () => {
    const created = await rest(`${parent('v1beta1')}/tuningJobs`, {
      method: 'POST',
      body: { baseModel, tunedModelDisplayName: 'long run', supervisedTuningSpec: { trainingDatasetUri: `gs://${bucket}/train.jsonl`, hyperParameters: { epochCount: 500 } } },
    });
    assert.equal(created.status, 200, created.text);
    const number = created.json.name.split('/').at(-1);
    await waitFor('a completed step', async () => {
      const job = (await rest(`/v1/${created.json.name}`)).json;
      return Number(job.tuningJobMetadata?.completedStepCount ?? 0) >= 1 ? job : undefined;
    }, { intervalMs: 100 });
    const generate = { contents: [{ parts: [{ text: '1' }] }] };
    const noResources = async (when: string) => {
      for (const [method, route, body] of [
        ['GET', `${parent()}/endpoints/${number}`], ['GET', `${parent()}/models/${number}`], ['DELETE', `${parent()}/models/${number}`],
        ['POST', `${parent()}/endpoints/${number}:generateContent`, generate], ['POST', `${parent()}/endpoints/${number}:computeTokens`, generate],
      ] as [string, string, unknown?][]) {
        const reply = await rest(route, { method, body });
        assert.equal(reply.status, 404, `${when}: ${method} ${route}: ${reply.text}`);
      }
      const listed = await rest(`${parent()}/endpoints`);
      assert.ok(!listed.json.endpoints.some((e: any) => e.name.endsWith(`/${number}`)), when);
    };
    await noResources('running');
    assert.equal((await rest(`/v1/${created.json.name}:cancel`, { method: 'POST', body: {} })).status, 200);
    const ended = await waitFor('the cancel', async () => {
      const job = (await rest(`/v1/${created.json.name}`)).json;
      return job.state === 'JOB_STATE_CANCELLED' ? job : undefined;
    }, { intervalMs: 100 });
    // As at Vertex, the job stays CANCELLED (error code 1) and what it reached stays usable: the adapter at the step
    // it stopped is its last checkpoint, on the job's own endpoint, and the Model's default.
    assert.equal(ended.error.code, 1);
    assert.equal(ended.tunedModel.model, `${modelOf({ number } as Job)}@1`);
    assert.equal(ended.tunedModel.endpoint, `projects/${project}/locations/${location}/endpoints/${number}`);
    assert.equal(ended.tunedModel.checkpoints.at(-1).endpoint, ended.tunedModel.endpoint);
    assert.equal((await rest(`${parent()}/endpoints/${number}`)).status, 200);
    const model = (await rest(`${parent()}/models/${number}`)).json;
    assert.equal(model.defaultCheckpointId, ended.tunedModel.checkpoints.at(-1).checkpointId);
    assert.equal((await rest(`${parent()}/endpoints/${number}:generateContent`, { method: 'POST', body: generate })).status, 200);
    // The adapter it kept is still the Gemini API's tuned model, and the Gemini API deletes it.
    const gemini = await rest(`/v1beta/tunedModels/${number}`);
    assert.equal(gemini.json.state, 'ACTIVE', gemini.text);
    assert.equal((await rest(`/v1beta/tunedModels/${number}:generateContent`, { method: 'POST', body: generate })).status, 200);
    assert.equal((await rest(`/v1beta/tunedModels/${number}`, { method: 'DELETE' })).status, 200);
  });

  test('deleting: an endpoint with its deployed model is refused; deleting the model (aiplatform deleteModel LRO) removes the model, its endpoint and its job everywhere', async () => {
    const job = gamma();
    const refused = await rest(`/v1/${endpointOf(job)}`, { method: 'DELETE' });
    assertRpcError(refused, 400, 'FAILED_PRECONDITION', /deployed model/);
    assert.equal((await rest(`/v1/${endpointOf(job)}`)).status, 200, 'the refused delete changed nothing');
    assertRpcError(await rest(`/v1/${modelOf(job)}@1`, { method: 'DELETE' }), 400, 'INVALID_ARGUMENT');

    const client = new aiplatform.v1.ModelServiceClient(clientOptions());
    const [operation] = await client.deleteModel({ name: modelOf(job) });
    assert.match(operation.name!, new RegExp(`^projects/${project}/locations/${location}/operations/`));
    await operation.promise();
    assert.equal(operation.done, true);
    await assert.rejects(client.getModel({ name: modelOf(job) }), (error: any) => error.code === 5);
    await client.close();

    const generate = { contents: [{ parts: [{ text: 'x' }] }] };
    for (const [method, route, body] of [
      ['GET', `/v1/${modelOf(job)}`], ['GET', `/v1/${endpointOf(job)}`], ['DELETE', `/v1/${modelOf(job)}`], ['DELETE', `/v1/${endpointOf(job)}`],
      ['POST', `/v1/${endpointOf(job)}:generateContent`, generate], ['POST', `/v1beta1/endpoints/${job.number}:computeTokens`, generate],
      ['GET', `/v1/${job.name}`], ['GET', `/v1beta/tunedModels/${job.number}`], ['POST', `/v1beta/tunedModels/${job.number}:generateContent`, generate],
    ] as [string, string, unknown?][]) {
      assertRpcError(await rest(route, { method, body }), 404, 'NOT_FOUND');
    }
    const listed = await rest(`${parent()}/models`);
    assert.deepEqual(listed.json.models.map((m: any) => m.name), [beta(), alpha()].map((j) => modelOf(j)));
  });
});
