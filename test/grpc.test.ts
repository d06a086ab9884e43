// Google's generated clients over gRPC against a real `attune serve --grpc-port N` that really trains
// stories260K (issue 11, item 1): @google-cloud/aiplatform v1 (GenAiTuningService create/get/list/cancel,
// PredictionService generate and stream on the tuned endpoint, LlmUtilityService countTokens) and
// @google-ai/generativelanguage (v1beta createTunedModel with operation.promise(), generate on the tuned model,
// v1beta3 generateText), with insecure channel credentials and no REST fallback. Also: the same records over REST,
// auth refused without a key, bad input as INVALID_ARGUMENT with google.rpc BadRequest details, another project's
// resources as NOT_FOUND, and a message over the body limit refused.
import { before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import * as grpc from '@grpc/grpc-js';
import type protobuf from 'protobufjs';
import { v1 as aiplatform, v1beta1 as aiplatformBeta, protos as vertexProtos } from '@google-cloud/aiplatform';
import { v1beta, v1beta3, protos as geminiProtos } from '@google-ai/generativelanguage';
import fc from 'fast-check';
import { loadDescriptors } from '../src/api/grpc/descriptors.js';
import { timeoutOf } from '../src/api/grpc/bind.js';
import { call, repoRoot, useServer, waitFor, type ServerFixture } from './helpers/server.js';

const project = 'grpc-project';
const otherProject = 'grpc-other';
const location = 'us-central1';
const parent = `projects/${project}/locations/${location}`;
const bucket = 'grpc-datasets';

interface Pair {
  text_input: string;
  output: string;
}
const numbers: Pair[] = readFileSync(`${repoRoot}/examples/numbers.jsonl`, 'utf8').trim().split('\n').map((line) => JSON.parse(line));

/** A gRPC error as Google's clients raise it (GoogleError). */
interface GrpcError {
  code: number;
  details: string;
  statusDetails?: { fieldViolations?: { field: string; description: string }[] }[];
}

/**
 * A generated client on the server's gRPC port: plaintext (insecure channel credentials, so the client sends no
 * Google credentials), no REST fallback. The universe domain is given so that google-auth-library does not
 * probe for a GCE metadata server.
 */
const grpcClientOptions = (fixture: ServerFixture, extra: Record<string, unknown> = {}) => ({
  servicePath: '127.0.0.1',
  port: fixture.server.grpcPort!,
  sslCreds: grpc.credentials.createInsecure(),
  fallback: false as const,
  universeDomain: 'googleapis.com',
  ...extra,
});

async function rejectsWith(promise: Promise<unknown>, code: grpc.status, message?: RegExp): Promise<GrpcError> {
  try {
    await promise;
  } catch (error) {
    const e = error as GrpcError;
    assert.equal(e.code, code, `expected ${grpc.status[code]}, got ${e.code}: ${e.details}`);
    if (message) assert.match(e.details, message);
    return e;
  }
  assert.fail(`expected ${grpc.status[code]}, but the call succeeded`);
}

describe('gRPC: Google clients, insecure credentials, no fallback', () => {
  const fixture: ServerFixture = useServer({ grpc: true, projects: [project, otherProject], concurrency: 2, logLevel: 'info' });
  const clientOptions = () => grpcClientOptions(fixture);
  /** Call options carrying a key as metadata (x-goog-api-key, or Authorization: Bearer). */
  const as = (key: string | undefined, style: 'api-key' | 'bearer' = 'api-key') => ({
    otherArgs: { headers: key === undefined ? {} : style === 'api-key' ? { 'x-goog-api-key': key } : { authorization: `Bearer ${key}` } },
  });
  const key = () => fixture.keys[project]!;
  const otherKey = () => fixture.keys[otherProject]!;

  let datasetUri = '';
  before(async () => {
    const jsonl = numbers.map((p) => JSON.stringify({ contents: [{ role: 'user', parts: [{ text: p.text_input }] }, { role: 'model', parts: [{ text: p.output }] }] })).join('\n');
    const reply = await call(`${fixture.url}/upload/storage/v1/b/${bucket}/o?uploadType=media&name=numbers.jsonl`, {
      method: 'POST',
      key: key(),
      body: jsonl,
      headers: { 'content-type': 'application/jsonl' },
    });
    assert.equal(reply.status, 200, reply.text);
    datasetUri = `gs://${bucket}/numbers.jsonl`;
  });

  describe('Vertex AI v1 (@google-cloud/aiplatform)', () => {
    const tuning = () => new aiplatform.GenAiTuningServiceClient(clientOptions());
    const prediction = () => new aiplatform.PredictionServiceClient(clientOptions());
    const utility = () => new aiplatform.LlmUtilityServiceClient(clientOptions());
    const tuningJob = (epochs: number, displayName: string) => ({
      baseModel: 'gemini-2.5-flash',
      tunedModelDisplayName: displayName,
      supervisedTuningSpec: { trainingDatasetUri: datasetUri, hyperParameters: { epochCount: epochs, adapterSize: 'ADAPTER_SIZE_FOUR' as const } },
    });

    test('create, get, list, wait, then generate, stream and count tokens on the tuned endpoint', { timeout: 300_000 }, async () => {
      const client = tuning();
      const [created] = await client.createTuningJob({ parent, tuningJob: tuningJob(2, 'grpc vertex') }, as(key()));
      assert.match(created.name ?? '', new RegExp(`^${parent}/tuningJobs/\\d{19}$`));
      assert.equal(created.baseModel, 'gemini-2.5-flash');
      assert.equal(created.supervisedTuningSpec?.trainingDatasetUri, datasetUri);
      assert.equal(String(created.supervisedTuningSpec?.hyperParameters?.epochCount), '2');
      assert.ok(['JOB_STATE_PENDING', 'JOB_STATE_RUNNING'].includes(String(created.state)), String(created.state));
      assert.ok(created.createTime?.seconds, 'createTime is a Timestamp');

      // One domain: the job is the same record over REST, by key in the Bearer header too.
      const [got] = await client.getTuningJob({ name: created.name }, as(key(), 'bearer'));
      assert.equal(got.name, created.name);
      const rest = await call(`${fixture.url}/v1/${created.name}`, { key: key() });
      assert.equal(rest.status, 200, rest.text);
      assert.equal(rest.json.name, created.name);
      assert.equal(rest.json.tunedModelDisplayName, 'grpc vertex');

      const [listed] = await client.listTuningJobs({ parent }, as(key()));
      assert.ok(listed.some((j) => j.name === created.name));

      const done = await waitFor('the job to end', async () => {
        const [job] = await client.getTuningJob({ name: created.name }, as(key()));
        return ['JOB_STATE_SUCCEEDED', 'JOB_STATE_FAILED', 'JOB_STATE_CANCELLED'].includes(String(job.state)) ? job : undefined;
      }, { timeoutMs: 240_000, intervalMs: 500 });
      assert.equal(done.state, 'JOB_STATE_SUCCEEDED', JSON.stringify(done.error));
      const endpoint = done.tunedModel?.endpoint ?? '';
      assert.match(endpoint, new RegExp(`^${parent}/endpoints/\\d{19}$`));
      assert.match(done.tunedModel?.model ?? '', new RegExp(`^${parent}/models/\\d{19}@1$`));

      const contents = [{ role: 'user', parts: [{ text: 'twenty two' }] }];
      const [answer] = await prediction().generateContent({ model: endpoint, contents, generationConfig: { temperature: 0, maxOutputTokens: 8 } }, as(key()));
      const text = answer.candidates?.[0]?.content?.parts?.map((p) => p.text).join('') ?? '';
      assert.ok(text.length > 0, 'the tuned endpoint answers');
      assert.equal(answer.candidates?.[0]?.finishReason !== undefined, true);
      assert.ok(Number(answer.usageMetadata?.promptTokenCount) > 0);

      // Streaming: the chunks together give the same greedy text, the last one carries the finish reason.
      const stream = prediction().streamGenerateContent({ model: endpoint, contents, generationConfig: { temperature: 0, maxOutputTokens: 8 } }, as(key()));
      const chunks: vertexProtos.google.cloud.aiplatform.v1.IGenerateContentResponse[] = [];
      for await (const chunk of stream) chunks.push(chunk);
      assert.ok(chunks.length >= 1);
      assert.equal(chunks.map((c) => c.candidates?.[0]?.content?.parts?.map((p) => p.text).join('') ?? '').join(''), text);
      assert.ok(chunks.at(-1)!.candidates?.[0]?.finishReason, 'the last chunk has the finish reason');

      const [counted] = await utility().countTokens({ endpoint, contents }, as(key()));
      assert.equal(counted.totalTokens, answer.usageMetadata?.promptTokenCount);
      const [computed] = await utility().computeTokens({ endpoint, contents }, as(key()));
      assert.equal(computed.tokensInfo?.length, 1);
      assert.ok((computed.tokensInfo?.[0]?.tokenIds?.length ?? 0) > 0);
      assert.equal(computed.tokensInfo?.[0]?.tokens?.length, computed.tokensInfo?.[0]?.tokenIds?.length);

      // v1beta1, as vertexai.preview.tuning.sft speaks it: the same job with its v1beta1 fields, countTokens on PredictionService.
      const [beta] = await new aiplatformBeta.GenAiTuningServiceClient(clientOptions()).getTuningJob({ name: created.name }, as(key()));
      assert.equal(beta.name, created.name);
      assert.equal(String(beta.supervisedTuningSpec?.hyperParameters?.batchSize), '4');
      const [betaCount] = await new aiplatformBeta.PredictionServiceClient(clientOptions()).countTokens({ endpoint, contents }, as(key()));
      assert.equal(betaCount.totalTokens, counted.totalTokens);

      // Cancelling a finished job is refused, as Vertex does.
      await rejectsWith(client.cancelTuningJob({ name: created.name }, as(key())), grpc.status.FAILED_PRECONDITION, /SUCCEEDED/);
    });

    test('cancel a job while it runs', { timeout: 240_000 }, async () => {
      const client = tuning();
      const [created] = await client.createTuningJob({ parent, tuningJob: tuningJob(2000, 'grpc cancel') }, as(key()));
      await waitFor('the job to run', async () => {
        const [job] = await client.getTuningJob({ name: created.name }, as(key()));
        return job.state === 'JOB_STATE_RUNNING' ? job : undefined;
      }, { timeoutMs: 120_000 });
      await client.cancelTuningJob({ name: created.name }, as(key()));
      const ended = await waitFor('the job to be cancelled', async () => {
        const [job] = await client.getTuningJob({ name: created.name }, as(key()));
        return job.state === 'JOB_STATE_CANCELLED' ? job : undefined;
      }, { timeoutMs: 120_000 });
      assert.equal(ended.error?.code, grpc.status.CANCELLED);
    });

    test('refused: no key, a bad key, another project, bad input, a missing job', { timeout: 60_000 }, async () => {
      const client = tuning();
      const name = `${parent}/tuningJobs/1234567890123456789`;
      await rejectsWith(client.getTuningJob({ name }, as(undefined)), grpc.status.PERMISSION_DENIED, /unregistered callers/);
      await rejectsWith(client.getTuningJob({ name }, as('not-a-key')), grpc.status.INVALID_ARGUMENT, /API key not valid/);
      await rejectsWith(client.getTuningJob({ name }, as('not-a-key', 'bearer')), grpc.status.UNAUTHENTICATED);
      // A key acts for its own project only; another project's name is refused as over REST.
      await rejectsWith(client.listTuningJobs({ parent }, as(otherKey())), grpc.status.PERMISSION_DENIED, new RegExp(project));

      // Bad input: INVALID_ARGUMENT with google.rpc.BadRequest naming the field.
      const noData = { parent, tuningJob: { baseModel: 'gemini-2.5-flash', supervisedTuningSpec: {} } };
      const error = await rejectsWith(client.createTuningJob(noData, as(key())), grpc.status.INVALID_ARGUMENT, /trainingDatasetUri is required/);
      assert.deepEqual(
        error.statusDetails?.flatMap((d) => d.fieldViolations ?? []).map((v) => v.field),
        ['tuning_job.supervised_tuning_spec.training_dataset_uri'],
      );
      await rejectsWith(client.getTuningJob({ name: 'tuningJobs/1' }, as(key())), grpc.status.INVALID_ARGUMENT, /projects\/\{project\}/);
      await rejectsWith(client.listTuningJobs({ parent, pageSize: -1 }, { ...as(key()), autoPaginate: false }), grpc.status.INVALID_ARGUMENT, /pageSize/);
      const badEpochs = { parent, tuningJob: tuningJob(0, 'x') };
      badEpochs.tuningJob.supervisedTuningSpec.hyperParameters.epochCount = 100_000;
      await rejectsWith(client.createTuningJob(badEpochs, as(key())), grpc.status.INVALID_ARGUMENT);
      await rejectsWith(client.getTuningJob({ name }, as(key())), grpc.status.NOT_FOUND);

      // Another project's job, named under the caller's own project, is exactly a missing one.
      const [mine] = await client.listTuningJobs({ parent }, as(key()));
      const number = mine[0]!.name!.split('/').at(-1);
      const otherParent = `projects/${otherProject}/locations/${location}`;
      const missing = await rejectsWith(client.getTuningJob({ name: `${otherParent}/tuningJobs/${number}` }, as(otherKey())), grpc.status.NOT_FOUND);
      assert.equal(missing.details, `The TuningJob does not exist: ${otherParent}/tuningJobs/${number}.`);
      await rejectsWith(client.cancelTuningJob({ name: `${otherParent}/tuningJobs/${number}` }, as(otherKey())), grpc.status.NOT_FOUND);
      await rejectsWith(
        prediction().generateContent({ model: `${otherParent}/endpoints/${number}`, contents: [{ role: 'user', parts: [{ text: 'x' }] }] }, as(otherKey())),
        grpc.status.NOT_FOUND,
      );
      const [theirs] = await client.listTuningJobs({ parent: otherParent }, as(otherKey()));
      assert.deepEqual(theirs, []);
    });
  });

  describe('Gemini API (@google-ai/generativelanguage)', () => {
    const models = () => new v1beta.ModelServiceClient(clientOptions());
    const generative = () => new v1beta.GenerativeServiceClient(clientOptions());
    const text = () => new v1beta3.TextServiceClient(clientOptions());

    test('v1beta createTunedModel resolves through operation.promise(); generate on it, and v1beta3 generateText', { timeout: 300_000 }, async () => {
      const client = models();
      const [operation] = await client.createTunedModel(
        {
          tunedModel: {
            displayName: 'grpc gemini',
            baseModel: 'models/gemini-1.5-flash-001-tuning',
            tuningTask: {
              hyperparameters: { epochCount: 2, batchSize: 4, learningRate: 0.001 },
              trainingData: { examples: { examples: numbers.map((p) => ({ textInput: p.text_input, output: p.output })) } },
            },
          },
        },
        as(key()),
      );
      assert.match(operation.name ?? '', /^tunedModels\/[a-z0-9-]+\/operations\/[a-z0-9-]+$/);
      const [tuned] = await operation.promise();
      // The client decodes the operation's Any-packed result itself: enums as numbers.
      assert.equal(tuned.state, geminiProtos.google.ai.generativelanguage.v1beta.TunedModel.State.ACTIVE);
      const name = tuned.name!;
      assert.match(name, /^tunedModels\//);
      assert.equal(tuned.displayName, 'grpc gemini');
      assert.equal(tuned.tuningTask?.hyperparameters?.epochCount, 2);
      assert.ok((tuned.tuningTask?.snapshots?.length ?? 0) > 0, 'the snapshots of the run');

      // One domain: the same model over REST, and in the gRPC list.
      const rest = await call(`${fixture.url}/v1beta/${name}`, { key: key() });
      assert.equal(rest.status, 200, rest.text);
      assert.equal(rest.json.state, 'ACTIVE');
      const [got] = await client.getTunedModel({ name }, as(key()));
      assert.equal(got.name, name);
      const [listed] = await client.listTunedModels({}, as(key()));
      assert.ok(listed.some((m) => m.name === name));

      const contents = [{ role: 'user', parts: [{ text: 'twenty two' }] }];
      const [answer] = await generative().generateContent({ model: name, contents, generationConfig: { temperature: 0, maxOutputTokens: 8 } }, as(key()));
      const greedy = answer.candidates?.[0]?.content?.parts?.map((p) => p.text).join('') ?? '';
      assert.ok(greedy.length > 0);
      const chunks: geminiProtos.google.ai.generativelanguage.v1beta.IGenerateContentResponse[] = [];
      for await (const chunk of generative().streamGenerateContent({ model: name, contents, generationConfig: { temperature: 0, maxOutputTokens: 8 } }, as(key()))) {
        chunks.push(chunk as geminiProtos.google.ai.generativelanguage.v1beta.IGenerateContentResponse);
      }
      assert.equal(chunks.map((c) => c.candidates?.[0]?.content?.parts?.map((p) => p.text).join('') ?? '').join(''), greedy);
      const [counted] = await generative().countTokens({ model: name, contents }, as(key()));
      assert.equal(counted.totalTokens, answer.usageMetadata?.promptTokenCount);

      const [palm] = await text().generateText({ model: name, prompt: { text: 'twenty two' }, temperature: 0, maxOutputTokens: 8 }, as(key()));
      assert.equal(palm.candidates?.length, 1);
      assert.equal(typeof palm.candidates?.[0]?.output, 'string');
      const [textTokens] = await text().countTextTokens({ model: 'models/text-bison-001', prompt: { text: 'twenty two' } }, as(key()));
      assert.ok(Number(textTokens.tokenCount) > 0);

      // Another project sees none of it.
      await rejectsWith(client.getTunedModel({ name }, as(otherKey())), grpc.status.NOT_FOUND);
      await rejectsWith(generative().generateContent({ model: name, contents }, as(otherKey())), grpc.status.NOT_FOUND);
      await rejectsWith(text().generateText({ model: name, prompt: { text: 'x' } }, as(otherKey())), grpc.status.NOT_FOUND);
      await rejectsWith(client.deleteTunedModel({ name }, as(otherKey())), grpc.status.NOT_FOUND);
      await rejectsWith(client.operationsClient.getOperation(new geminiProtos.google.longrunning.GetOperationRequest({ name: operation.name! }), as(otherKey())), grpc.status.NOT_FOUND);
      const [polled] = await client.operationsClient.getOperation(new geminiProtos.google.longrunning.GetOperationRequest({ name: operation.name! }), as(key()));
      assert.equal(polled.done, true);

      const [renamed] = await client.updateTunedModel({ tunedModel: { name, displayName: 'renamed over gRPC' }, updateMask: { paths: ['display_name'] } }, as(key()));
      assert.equal(renamed.displayName, 'renamed over gRPC');
      assert.equal((await call(`${fixture.url}/v1beta/${name}`, { key: key() })).json.displayName, 'renamed over gRPC');

      await client.deleteTunedModel({ name }, as(key()));
      await rejectsWith(client.getTunedModel({ name }, as(key())), grpc.status.NOT_FOUND);
      assert.equal((await call(`${fixture.url}/v1beta/${name}`, { key: key() })).status, 404);
    });

    test('base models: list and get', { timeout: 60_000 }, async () => {
      const [listed] = await models().listModels({}, as(key()));
      assert.ok(listed.some((m) => m.name === 'models/gemini-1.5-flash-001-tuning'));
      const [model] = await models().getModel({ name: 'models/gemini-1.5-flash-001-tuning' }, as(key()));
      assert.equal(model.name, 'models/gemini-1.5-flash-001-tuning');
      assert.ok(Number(model.inputTokenLimit) > 0);
      await rejectsWith(models().getModel({ name: 'models/no-such-model' }, as(key())), grpc.status.NOT_FOUND);
    });

    test('refused: no key, bad input', { timeout: 60_000 }, async () => {
      const client = models();
      await rejectsWith(client.listTunedModels({}, as(undefined)), grpc.status.PERMISSION_DENIED);
      const error = await rejectsWith(
        client.createTunedModel({ tunedModel: { baseModel: 'models/gemini-1.5-flash-001-tuning', tuningTask: {} } }, as(key())),
        grpc.status.INVALID_ARGUMENT,
        /at least one training example/,
      );
      assert.equal(error.statusDetails?.[0]?.fieldViolations?.[0]?.field, 'tuned_model.tuning_task.training_data');
      await rejectsWith(client.getTunedModel({ name: 'nothing' }, as(key())), grpc.status.INVALID_ARGUMENT, /tunedModels\/\{id\}/);
      await rejectsWith(
        generative().generateContent({ model: 'models/gemini-2.5-flash', contents: [{ role: 'user', parts: [{ text: 'x' }] }], generationConfig: { temperature: 5 } }, as(key())),
        grpc.status.INVALID_ARGUMENT,
        /temperature/,
      );
    });
  });

  test('fuzz: bytes that are no message and mangled messages get a client error, never INTERNAL, on every method', { timeout: 240_000 }, async () => {
    const { vertex, gemini } = loadDescriptors();
    const tuningParent = parent;
    // One valid request per method, which the fuzzer truncates and flips bits in.
    const valid: Record<string, [protobuf.Root, Record<string, unknown>]> = {
      'google.cloud.aiplatform.v1.GenAiTuningService/CreateTuningJob': [vertex, { parent: tuningParent, tuningJob: { baseModel: 'gemini-2.5-flash', supervisedTuningSpec: { trainingDatasetUri: datasetUri, hyperParameters: { epochCount: 1 } } } }],
      'google.cloud.aiplatform.v1.GenAiTuningService/GetTuningJob': [vertex, { name: `${tuningParent}/tuningJobs/1234567890123456789` }],
      'google.cloud.aiplatform.v1.GenAiTuningService/ListTuningJobs': [vertex, { parent: tuningParent, pageSize: 2, filter: 'state="JOB_STATE_SUCCEEDED"' }],
      'google.cloud.aiplatform.v1.GenAiTuningService/CancelTuningJob': [vertex, { name: `${tuningParent}/tuningJobs/1234567890123456789` }],
      'google.cloud.aiplatform.v1.PredictionService/GenerateContent': [vertex, { model: `${tuningParent}/publishers/google/models/gemini-2.5-flash`, contents: [{ role: 'user', parts: [{ text: 'one' }] }], generationConfig: { maxOutputTokens: 2 } }],
      'google.cloud.aiplatform.v1.LlmUtilityService/CountTokens': [vertex, { endpoint: `${tuningParent}/publishers/google/models/gemini-2.5-flash`, contents: [{ role: 'user', parts: [{ text: 'one' }] }] }],
      'google.ai.generativelanguage.v1beta.ModelService/CreateTunedModel': [gemini, { tunedModel: { baseModel: 'models/gemini-1.5-flash-001-tuning', tuningTask: { hyperparameters: { epochCount: 1 }, trainingData: { examples: { examples: [{ textInput: '1', output: '2' }] } } } } }],
      'google.ai.generativelanguage.v1beta.ModelService/GetTunedModel': [gemini, { name: 'tunedModels/nothing-here' }],
      'google.ai.generativelanguage.v1beta.ModelService/ListTunedModels': [gemini, { pageSize: 3, filter: 'owner:me' }],
      'google.ai.generativelanguage.v1beta.ModelService/UpdateTunedModel': [gemini, { tunedModel: { name: 'tunedModels/nothing-here', displayName: 'x' }, updateMask: { paths: ['display_name'] } }],
      'google.ai.generativelanguage.v1beta.GenerativeService/GenerateContent': [gemini, { model: 'models/gemini-2.5-flash', contents: [{ role: 'user', parts: [{ text: 'one' }] }], generationConfig: { maxOutputTokens: 2, temperature: 0.5 } }],
      'google.ai.generativelanguage.v1beta.GenerativeService/CountTokens': [gemini, { model: 'models/gemini-2.5-flash', contents: [{ role: 'user', parts: [{ text: 'one' }] }] }],
      'google.ai.generativelanguage.v1beta3.TextService/GenerateText': [gemini, { model: 'models/gemini-2.5-flash', prompt: { text: 'one' }, maxOutputTokens: 2 }],
      'google.longrunning.Operations/GetOperation': [gemini, { name: 'tunedModels/nothing-here/operations/x' }],
      'google.ai.generativelanguage.v1beta.PermissionService/CreatePermission': [gemini, { parent: 'tunedModels/nothing-here', permission: { granteeType: 'EVERYONE', role: 'READER' } }],
      'google.ai.generativelanguage.v1beta.PermissionService/ListPermissions': [gemini, { parent: 'tunedModels/nothing-here', pageSize: 2 }],
      'google.ai.generativelanguage.v1beta.PermissionService/UpdatePermission': [gemini, { permission: { name: 'tunedModels/nothing-here/permissions/everyone', role: 'READER' }, updateMask: { paths: ['role'] } }],
      'google.ai.generativelanguage.v1beta.PermissionService/TransferOwnership': [gemini, { name: 'tunedModels/nothing-here', emailAddress: 'x@projects.attune.internal' }],
      'google.cloud.aiplatform.v1.EndpointService/ListEndpoints': [vertex, { parent: tuningParent, pageSize: 2, filter: 'display_name:"x"' }],
      'google.cloud.aiplatform.v1.ModelService/GetModel': [vertex, { name: `${tuningParent}/models/1234567890123456789@1` }],
    };
    const methods = Object.entries(valid).map(([path, [root, request]]) => {
      const [serviceName, methodName] = path.split('/') as [string, string];
      const method = root.lookupService(serviceName).methods[methodName]!;
      method.resolve();
      const type = method.resolvedRequestType!;
      return { path: `/${path}`, bytes: Buffer.from(type.encode(type.fromObject(request)).finish()) };
    });
    const client = new grpc.Client(`127.0.0.1:${fixture.server.grpcPort}`, grpc.credentials.createInsecure());
    const metadata = new grpc.Metadata();
    metadata.set('x-goog-api-key', key());
    const send = (path: string, bytes: Buffer) =>
      new Promise<grpc.status>((resolve) => {
        const identity = (b: Buffer) => b;
        client.makeUnaryRequest(path, identity, identity, bytes, metadata, { deadline: Date.now() + 30_000 }, (error) => resolve(error?.code ?? grpc.status.OK));
      });
    const mangled = fc.oneof(
      fc.uint8Array({ maxLength: 64 }).map((b) => ({ kind: 'random', at: 0, bytes: Buffer.from(b) })),
      fc.record({ at: fc.nat(), bit: fc.integer({ min: 0, max: 7 }), cut: fc.boolean() }).map(({ at, bit, cut }) => ({ kind: 'flip', at, bit, cut, bytes: Buffer.alloc(0) })),
    );
    const seen = new Map<number, number>();
    await fc.assert(
      fc.asyncProperty(fc.nat({ max: methods.length - 1 }), mangled, async (index, m) => {
        const { path, bytes: valid } = methods[index]!;
        let bytes = m.bytes;
        if (m.kind === 'flip') {
          bytes = Buffer.from(valid);
          const at = m.at % bytes.length;
          bytes[at]! ^= 1 << (m as { bit: number }).bit;
          if ((m as { cut: boolean }).cut) bytes = bytes.subarray(0, at);
        }
        const code = await send(path, bytes);
        seen.set(code, (seen.get(code) ?? 0) + 1);
        assert.ok(![grpc.status.INTERNAL, grpc.status.UNKNOWN, grpc.status.UNAVAILABLE].includes(code), `${path} answered ${grpc.status[code]} to ${bytes.toString('hex')}`);
      }),
      { seed: 20261201, numRuns: 800 },
    );
    client.close();
    assert.ok((seen.get(grpc.status.INVALID_ARGUMENT) ?? 0) > 0, JSON.stringify([...seen]));
    // The server still answers.
    const [jobs] = await new aiplatform.GenAiTuningServiceClient(clientOptions()).listTuningJobs({ parent }, as(key()));
    assert.ok(Array.isArray(jobs));
  });

  test('a message over the body limit is refused before it is decoded', { timeout: 60_000 }, async () => {
    const client = new aiplatform.PredictionServiceClient(clientOptions());
    const huge = 'x'.repeat(33 * 1024 * 1024);
    await rejectsWith(
      client.generateContent({ model: `${parent}/publishers/google/models/gemini-2.5-flash`, contents: [{ role: 'user', parts: [{ text: huge }] }] }, as(key())),
      grpc.status.RESOURCE_EXHAUSTED,
    );
  });

  test('the log has a line per call and refusal, and no key', { timeout: 60_000 }, async () => {
    const client = new aiplatform.GenAiTuningServiceClient(clientOptions());
    await client.listTuningJobs({ parent }, { ...as(key(), 'bearer'), autoPaginate: false });
    await rejectsWith(client.listTuningJobs({ parent }, as(`${key()}x`)), grpc.status.INVALID_ARGUMENT);
    const logs = await waitFor('the log lines', async () => {
      const text = fixture.server.logs();
      return /"code":"INVALID_ARGUMENT","msg":"gRPC call refused"/.test(text) ? text : undefined;
    }, { timeoutMs: 10_000 });
    assert.match(logs, /"method":"\/google\.cloud\.aiplatform\.v1\.GenAiTuningService\/ListTuningJobs","code":"OK"/);
    for (const secret of [key(), otherKey()]) assert.ok(!logs.includes(secret), 'a key reached the log');
  });
});

describe('gRPC on a keyless server', () => {
  const fixture: ServerFixture = useServer({ grpc: true, keyless: true, projects: ['keyed-project'] });
  const options = (extra: Record<string, unknown> = {}) => grpcClientOptions(fixture, extra);

  test('answers without a key for the project the name gives, under a loopback :authority only', { timeout: 60_000 }, async () => {
    const client = new aiplatform.GenAiTuningServiceClient(options());
    const [jobs] = await client.listTuningJobs({ parent: `projects/local/locations/${location}` });
    assert.deepEqual(jobs, []);
    // A project with API keys needs one, keyless or not.
    await rejectsWith(client.listTuningJobs({ parent: `projects/keyed-project/locations/${location}` }), grpc.status.PERMISSION_DENIED, /requires an API key/);
    // A DNS-rebinding name is refused, before the message is read.
    const rebound = new aiplatform.GenAiTuningServiceClient(options({ 'grpc.default_authority': 'attacker.example:8081' }));
    await rejectsWith(rebound.listTuningJobs({ parent: `projects/local/locations/${location}` }), grpc.status.PERMISSION_DENIED, /loopback host names/);
  });
});

test("a call's deadline is the serving timeout: the seconds left, none without one (as X-Server-Timeout over REST)", () => {
  assert.equal(timeoutOf({ getDeadline: () => Infinity }), undefined);
  const left = timeoutOf({ getDeadline: () => new Date(Date.now() + 30_000) })!;
  assert.ok(left > 29 && left <= 30, String(left));
  assert.ok(timeoutOf({ getDeadline: () => Date.now() + 5_000 })! <= 5);
  assert.equal(timeoutOf({ getDeadline: () => Date.now() - 1_000 }), 0.001, 'a deadline already past leaves no time, never an unlimited one');
});
