// Vertex AI tuningJobs against a real `attune serve` that really trains stories260K (issue 4): @google/genai in
// Vertex mode (tune, get, list with filter and pager, cancel while RUNNING, endpoint generate and stream, base
// models), @google-cloud/storage datasets, the docs' curl body and the Python SDK's integer-enum wire, metrics over
// REST and live SSE, dataset validation at create, and one domain shared with the Gemini API.
//
// Every job trains on the 15 number examples with batch 4. The six jobs run at once (the server gets concurrency 6)
// inside one concurrent suite; the tests that only read or that create nothing run after it.
import { before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { AdapterSize, GoogleGenAI, type TuningJob } from '@google/genai';
import { Storage } from '@google-cloud/storage';
import { OAuth2Client } from 'google-auth-library';
import { call, repoRoot, useServer, waitFor, type ApiResponse, type ServerFixture } from './helpers/server.js';

const project = 'vertex-project';
const otherProject = 'vertex-other';
const location = 'us-central1';
const bucket = 'vertex-datasets';

// Set inside the outer suite, whose hooks run one after another (Node 20 starts file-level `before` hooks without
// awaiting the previous one, so the uploads could run before the server is up).
let fixture: ServerFixture;
const key = () => fixture.keys[project]!;
const otherKey = () => fixture.keys[otherProject]!;

// ---------------------------------------------------------------------------------------------------
// Data

interface Pair {
  text_input: string;
  output: string;
}
const numbers: Pair[] = readFileSync(`${repoRoot}/examples/numbers.jsonl`, 'utf8').trim().split('\n').map((line) => JSON.parse(line));
const validationPairs: Pair[] = [
  { text_input: '5', output: '6' },
  { text_input: 'twelve', output: 'thirteen' },
  { text_input: 'forty', output: 'forty one' },
  { text_input: '-10', output: '-9' },
  { text_input: '2,000', output: '2,001' },
];
const jsonl = (rows: unknown[]) => rows.map((r) => (typeof r === 'string' ? r : JSON.stringify(r))).join('\n') + '\n';
const contentsOf = (p: Pair) => ({ contents: [{ role: 'user', parts: [{ text: p.text_input }] }, { role: 'model', parts: [{ text: p.output }] }] });
const messagesOf = (p: Pair) => ({ messages: [{ role: 'user', content: p.text_input }, { role: 'model', content: p.output }] });
const inputTextOf = (p: Pair) => ({ input_text: p.text_input, output_text: p.output });

const batchSize = 4;
/** Epochs after which stories260K answers "twenty two" with "twenty three" at temperature 0 (20 already does). */
const learnedEpochs = 30;
const stepsFor = (examples: number, epochs: number) => Math.ceil((examples * epochs) / batchSize);

const gs = (name: string) => `gs://${bucket}/${name}`;
/** Uploads one object through the Cloud Storage JSON API's media upload. */
async function upload(name: string, text: string): Promise<string> {
  const reply = await call(`${fixture.url}/upload/storage/v1/b/${bucket}/o?uploadType=media&name=${encodeURIComponent(name)}`, {
    method: 'POST',
    key: key(),
    body: text,
    headers: { 'content-type': 'application/jsonl' },
  });
  assert.equal(reply.status, 200, reply.text);
  return gs(name);
}

// ---------------------------------------------------------------------------------------------------
// Wire helpers

const parent = (version = 'v1beta1', p = project, l = location) => `/${version}/projects/${p}/locations/${l}`;
const jobNumberOf = (name: string) => name.split('/').at(-1)!;
const terminal = ['JOB_STATE_SUCCEEDED', 'JOB_STATE_FAILED', 'JOB_STATE_CANCELLED'];
const rfc3339 = /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d{1,9})?Z$/;

const rest = (route: string, options: { method?: string; body?: unknown; apiKey?: string; headers?: Record<string, string> } = {}) =>
  call(`${fixture.url}${route}`, { method: options.method, body: options.body, key: options.apiKey ?? key(), headers: options.headers });

function assertRpcError(reply: ApiResponse, http: number, status: string, message?: RegExp): void {
  assert.equal(reply.status, http, reply.text);
  assert.match(reply.headers.get('content-type') ?? '', /application\/json/);
  assert.equal(reply.json?.error?.code, http, reply.text);
  assert.equal(reply.json.error.status, status, reply.text);
  if (message) assert.match(reply.json.error.message, message);
}

/** The field violations of a google.rpc error (BadRequest details). */
const fieldsOf = (reply: ApiResponse): string[] =>
  (reply.json?.error?.details ?? []).flatMap((d: any) => (d.fieldViolations ?? []).map((v: any) => v.field as string));

/** Every tuning job name the project lists, newest first. */
async function listNames(apiKey = key()): Promise<string[]> {
  const reply = await rest(`${parent()}/tuningJobs?pageSize=100`, { apiKey });
  assert.equal(reply.status, 200, reply.text);
  assert.equal(reply.json.nextPageToken, undefined);
  return (reply.json.tuningJobs ?? []).map((j: any) => j.name as string);
}

/** Polls GET on a tuning job (REST) until its state is terminal; returns the last body and every state seen. */
async function untilEnded(name: string, query = ''): Promise<{ job: any; states: unknown[] }> {
  const states: unknown[] = [];
  const ended = [...terminal, 4, 5, 7];
  const job = await waitFor(`${name} to end`, async () => {
    const reply = await rest(`/v1beta1/${name}${query}`);
    assert.equal(reply.status, 200, reply.text);
    if (states.at(-1) !== reply.json.state) states.push(reply.json.state);
    return ended.includes(reply.json.state) ? reply.json : undefined;
  }, { timeoutMs: 180_000, intervalMs: 100 });
  return { job, states };
}

interface SseEvent {
  /** ms since the stream was opened */
  at: number;
  data: any;
}

/** Reads a text/event-stream to its end (the server closes it), parsing each `data:` event as JSON. */
async function readSse(url: string, init: RequestInit, timeoutMs = 180_000): Promise<{ status: number; contentType: string; events: SseEvent[]; comments: number }> {
  const started = Date.now();
  const response = await fetch(url, { ...init, signal: AbortSignal.timeout(timeoutMs) });
  const contentType = response.headers.get('content-type') ?? '';
  if (!response.ok || !response.body) return { status: response.status, contentType, events: [{ at: 0, data: await response.text() }], comments: 0 };
  const events: SseEvent[] = [];
  let comments = 0;
  let buffer = '';
  const decoder = new TextDecoder();
  const flush = (final: boolean) => {
    const blocks = buffer.split(/\r\n\r\n|\n\n|\r\r/);
    buffer = final ? '' : blocks.pop()!;
    for (const block of blocks) {
      if (!block.trim()) continue;
      const data = block.split(/\r\n|\n|\r/).filter((l) => l.startsWith('data:')).map((l) => l.slice(5).trimStart()).join('\n');
      if (data) events.push({ at: Date.now() - started, data: JSON.parse(data) });
      else comments++;
    }
  };
  for await (const chunk of response.body as unknown as AsyncIterable<Uint8Array>) {
    buffer += decoder.decode(chunk, { stream: true });
    flush(false);
  }
  flush(true);
  return { status: response.status, contentType, events, comments };
}

const textOf = (response: any): string => (response?.candidates?.[0]?.content?.parts ?? []).map((p: any) => p.text ?? '').join('');

/** @google/genai in Vertex mode, authenticated by an OAuth2 client whose access token is an Attune API key. */
function vertexClient(apiKey = key(), p = project): GoogleGenAI {
  const authClient = new OAuth2Client();
  authClient.setCredentials({ access_token: apiKey, expiry_date: Date.now() + 3600e3 });
  return new GoogleGenAI({ vertexai: true, project: p, location, httpOptions: { baseUrl: fixture.url }, googleAuthOptions: { authClient } });
}

/** Settles once; a rejection is observed so that a failed run fails only the tests that await it. */
function shared<T>(run: () => Promise<T>): () => Promise<T> {
  let promise: Promise<T> | undefined;
  return () => {
    if (!promise) {
      promise = run();
      promise.catch(() => {});
    }
    return promise;
  };
}

// ---------------------------------------------------------------------------------------------------
// Datasets, uploaded before the tests

const uris = {} as Record<'train' | 'validation' | 'messagesValidation' | 'overLong', string>;

describe('Vertex AI tuningJobs on attune serve', () => {
  fixture = useServer({ projects: [project, otherProject], concurrency: 6 });

  before(async () => {
    uris.train = await upload('numbers/train.jsonl', jsonl(numbers)); // text_input/output
    uris.validation = await upload('numbers/validation.jsonl', jsonl(validationPairs.map(contentsOf)));
    uris.messagesValidation = await upload('numbers/validation-messages.jsonl', jsonl(validationPairs.map(messagesOf)));
    // Line 7 has an output of 5,001 characters: Vertex drops it and reports it rather than failing.
    const overLong = numbers.map(inputTextOf) as unknown[];
    overLong.splice(6, 0, inputTextOf({ text_input: 'a long one', output: 'x'.repeat(5_001) }));
    uris.overLong = await upload('numbers/over-long.jsonl', jsonl(overLong));
  });

  // ---------------------------------------------------------------------------------------------------
  // Runs that train. Each is started by its test in the concurrent suite; later tests await the result.

  interface GenaiRun {
    created: TuningJob;
    finished: TuningJob;
    states: string[];
    /** The live metrics stream, opened right after create. */
    live: Promise<Awaited<ReturnType<typeof readSse>>>;
  }

  const genaiRun = shared(async (): Promise<GenaiRun> => {
    const ai = vertexClient();
    const created = await ai.tunings.tune({
      baseModel: 'gemini-2.5-flash',
      trainingDataset: { gcsUri: uris.train },
      config: {
        validationDataset: { gcsUri: uris.validation },
        epochCount: learnedEpochs,
        learningRateMultiplier: 1.0,
        adapterSize: AdapterSize.ADAPTER_SIZE_FOUR,
        tunedModelDisplayName: 'numbers through genai',
        description: 'the number successor, tuned through @google/genai',
        labels: { suite: 'vertex', sdk: 'genai', purpose: 'serve' },
      },
    });
    const live = readSse(`${fixture.url}/v1beta1/${created.name}/metrics?alt=sse`, { headers: { authorization: `Bearer ${key()}` } });
    live.catch(() => {});
    const states: string[] = [];
    const finished = await waitFor('the genai tuning job to end', async () => {
      const job = await ai.tunings.get({ name: created.name! });
      if (states.at(-1) !== job.state) states.push(job.state!);
      return terminal.includes(job.state!) ? job : undefined;
    }, { timeoutMs: 180_000, intervalMs: 100 });
    return { created, finished, states, live };
  });

  /** The docs' curl flow: a dataset put in the store by @google-cloud/storage, then the docs' create body on /v1. */
  const curlRun = shared(async () => {
    const storage = new Storage({ apiEndpoint: fixture.url, projectId: project, retryOptions: { autoRetry: false } });
    storage.interceptors.push({
      request: (options) => {
        options.headers = { ...options.headers, 'x-goog-api-key': key() };
        return options as Parameters<(typeof storage.interceptors)[number]['request']>[0] & { uri: string };
      },
    });
    const text = jsonl(numbers.map(contentsOf));
    const file = storage.bucket('gcs-client').file('curl/train.jsonl');
    await file.save(text, { resumable: false, contentType: 'application/jsonl' });
    const [downloaded] = await file.download();
    const [listed] = await storage.bucket('gcs-client').getFiles({ prefix: 'curl/' });

    const body = `{
      "baseModel": "gemini-2.5-flash",
      "supervisedTuningSpec": {
        "training_dataset_uri": "gs://gcs-client/curl/train.jsonl",
        "validation_dataset_uri": "${uris.messagesValidation}",
        "hyperParameters": {"epochCount": "${learnedEpochs}", "adapterSize": "ADAPTER_SIZE_FOUR", "learningRateMultiplier": "1.0"},
        "exportLastCheckpointOnly": false
      },
      "tunedModelDisplayName": "tuned_gemini",
      "encryptionSpec": {"kmsKeyName": "projects/p/locations/us-central1/keyRings/r/cryptoKeys/k"},
      "serviceAccount": "sa@p.iam.gserviceaccount.com",
    }`; // the trailing comma too: the docs' samples are hand-written JSON
    const created = await call(`${fixture.url}${parent('v1')}/tuningJobs`, {
      method: 'POST',
      body,
      headers: { authorization: `Bearer ${key()}`, 'content-type': 'application/json; charset=utf-8' },
    });
    return { uploaded: text, downloaded: downloaded.toString('utf8'), listed: listed.map((f) => f.name), created };
  });

  /** The Python SDK's REST wire: integer enums, int64 as strings, `$alt=json;enum-encoding=int`, in europe-west4. */
  const pythonQuery = '?%24alt=json%3Benum-encoding%3Dint';
  const pythonEpochs = 2;
  const pythonRun = shared(async () => {
    const created = await rest(`${parent('v1beta1', project, 'europe-west4')}/tuningJobs${pythonQuery}`, {
      method: 'POST',
      body: {
        tunedModelDisplayName: 'numbers through python',
        baseModel: 'gemini-2.5-flash',
        supervisedTuningSpec: { trainingDatasetUri: uris.overLong, hyperParameters: { epochCount: String(pythonEpochs), learningRateMultiplier: 1.0, adapterSize: 2 } },
        labels: { suite: 'vertex', sdk: 'python' },
      },
    });
    return created;
  });

  // ---------------------------------------------------------------------------------------------------

  describe('tuning on stories260K, jobs at once', { concurrency: true }, () => {
    test('@google/genai (Vertex mode): tunings.tune with gcsUri and a validation set → PENDING, get polls to SUCCEEDED, the endpoint answers', async () => {
      const { created, finished, states } = await genaiRun();
      assert.match(created.name ?? '', new RegExp(`^projects/${project}/locations/${location}/tuningJobs/\\d{19}$`));
      assert.equal(created.state, 'JOB_STATE_PENDING');
      assert.equal(created.experiment, undefined, 'experiment stays empty (vertex-api.md §10.1)');
      assert.equal(created.baseModel, 'gemini-2.5-flash');
      assert.equal(created.tunedModelDisplayName, 'numbers through genai');
      assert.equal(created.description, 'the number successor, tuned through @google/genai');
      assert.deepEqual(created.labels, { suite: 'vertex', sdk: 'genai', purpose: 'serve' });
      assert.equal(created.supervisedTuningSpec?.trainingDatasetUri, uris.train);
      assert.equal(created.supervisedTuningSpec?.validationDatasetUri, uris.validation);
      const hyper = created.supervisedTuningSpec?.hyperParameters;
      assert.equal(String(hyper?.epochCount), String(learnedEpochs));
      assert.equal(hyper?.learningRateMultiplier, 1);
      assert.equal(hyper?.adapterSize, 'ADAPTER_SIZE_FOUR');
      for (const time of [created.createTime, created.updateTime]) assert.match(time ?? '', rfc3339);
      const stats = created.tuningDataStats?.supervisedTuningDataStats;
      assert.equal(String(stats?.tuningDatasetExampleCount), '15');
      assert.equal(String(stats?.tuningStepCount), String(stepsFor(15, learnedEpochs)));

      assert.equal(finished.state, 'JOB_STATE_SUCCEEDED', JSON.stringify(finished.error));
      assert.ok(states.every((s) => ['JOB_STATE_PENDING', 'JOB_STATE_RUNNING', 'JOB_STATE_SUCCEEDED'].includes(s)), states.join(' → '));
      assert.equal(finished.name, created.name);
      assert.equal(finished.error, undefined);
      for (const time of [finished.startTime, finished.endTime, finished.updateTime]) assert.match(time ?? '', rfc3339);
      assert.ok(Date.parse(finished.createTime!) <= Date.parse(finished.startTime!) && Date.parse(finished.startTime!) <= Date.parse(finished.endTime!));
      const n = jobNumberOf(created.name!);
      assert.equal(finished.tunedModel?.model, `projects/${project}/locations/${location}/models/${n}@1`);
      assert.equal(finished.tunedModel?.endpoint, `projects/${project}/locations/${location}/endpoints/${n}`);
      assert.equal(String(finished.tuningJobMetadata?.completedStepCount), String(stepsFor(15, learnedEpochs)));
      assert.equal(String(finished.tuningJobMetadata?.completedEpochCount), String(learnedEpochs));

      const ai = vertexClient();
      const endpoint = finished.tunedModel!.endpoint!;
      const response = await ai.models.generateContent({ model: endpoint, contents: 'twenty two', config: { temperature: 0 } });
      assert.equal(response.text, 'twenty three');
      assert.equal(response.candidates?.[0]?.finishReason, 'STOP');
      assert.ok((response.usageMetadata?.totalTokenCount ?? 0) > 0);
      let streamed = '';
      let chunks = 0;
      for await (const chunk of await ai.models.generateContentStream({ model: endpoint, contents: 'twenty two', config: { temperature: 0 } })) {
        streamed += chunk.text ?? '';
        chunks++;
      }
      assert.equal(streamed, 'twenty three');
      assert.ok(chunks >= 1);
    });

    test('@google/genai: tunings.cancel on a RUNNING job → CANCELLING → CANCELLED with error.code 1', async () => {
      const ai = vertexClient();
      const created = await ai.tunings.tune({
        baseModel: 'gemini-2.5-flash',
        trainingDataset: { gcsUri: uris.train },
        config: { epochCount: 2_000, tunedModelDisplayName: 'numbers to cancel', labels: { suite: 'vertex', sdk: 'genai', purpose: 'cancel' } },
      });
      const total = stepsFor(15, 2_000);
      assert.equal(created.state, 'JOB_STATE_PENDING');
      // Running for real: the worker has reported at least one step.
      await waitFor('the job to be RUNNING with a step done', async () => {
        const job = await ai.tunings.get({ name: created.name! });
        assert.ok(['JOB_STATE_PENDING', 'JOB_STATE_RUNNING'].includes(job.state!), job.state);
        return job.state === 'JOB_STATE_RUNNING' && Number(job.tuningJobMetadata?.completedStepCount ?? 0) >= 1 ? job : undefined;
      }, { timeoutMs: 60_000, intervalMs: 100 });
      const cancelled = await ai.tunings.cancel({ name: created.name! });
      assert.ok(cancelled !== undefined);

      const states: string[] = [];
      const ended = await waitFor('the cancelled job to end', async () => {
        const job = await ai.tunings.get({ name: created.name! });
        if (states.at(-1) !== job.state) states.push(job.state!);
        return terminal.includes(job.state!) ? job : undefined;
      }, { timeoutMs: 30_000, intervalMs: 50 });
      assert.ok(states.every((s) => ['JOB_STATE_RUNNING', 'JOB_STATE_CANCELLING', 'JOB_STATE_CANCELLED'].includes(s)), states.join(' → '));
      assert.equal(ended.state, 'JOB_STATE_CANCELLED');
      assert.equal(ended.error?.code, 1, JSON.stringify(ended.error));
      assert.ok(ended.error?.message);
      assert.match(ended.endTime ?? '', rfc3339);
      const done = Number(ended.tuningJobMetadata?.completedStepCount ?? 0);
      assert.ok(done >= 1 && done < total, `stopped after ${done} of ${total} steps`);
      // It keeps what it reached (issue 11): the adapter at the step it stopped is its last checkpoint and its endpoint.
      const n = created.name!.split('/').at(-1);
      assert.equal(ended.tunedModel?.endpoint, `projects/${project}/locations/${location}/endpoints/${n}`);
      assert.equal(ended.tunedModel?.checkpoints?.at(-1)?.step, String(done));

      // Cancelling it again: the job has ended.
      const again = await rest(`/v1beta1/${created.name}:cancel`, { method: 'POST', body: {} });
      assertRpcError(again, 400, 'FAILED_PRECONDITION');
    });

    test('the docs\' curl cancel (POST …:cancel with -d "") right after create → {} and CANCELLED with error.code 1', async () => {
      const created = await rest(`${parent('v1')}/tuningJobs`, {
        method: 'POST',
        body: { base_model: 'gemini-2.5-flash', supervised_tuning_spec: { training_dataset_uri: uris.train, hyper_parameters: { epoch_count: '2000' } }, tuned_model_display_name: 'cancelled by curl' },
      });
      assert.equal(created.status, 200, created.text);
      assert.equal(created.json.state, 'JOB_STATE_PENDING');
      // curl -X POST -H "Content-Type: application/json; charset=utf-8" -d "" …:cancel sends an empty body.
      const cancel = await call(`${fixture.url}/v1/${created.json.name}:cancel`, {
        method: 'POST',
        body: '',
        headers: { authorization: `Bearer ${key()}`, 'content-type': 'application/json; charset=utf-8' },
      });
      assert.equal(cancel.status, 200, cancel.text);
      assert.deepEqual(cancel.json, {});
      const { job, states } = await untilEnded(created.json.name);
      assert.ok(states.every((s) => ['JOB_STATE_PENDING', 'JOB_STATE_RUNNING', 'JOB_STATE_CANCELLING', 'JOB_STATE_CANCELLED'].includes(s as string)), states.join(' → '));
      assert.equal(job.state, 'JOB_STATE_CANCELLED');
      assert.equal(job.error?.code, 1, JSON.stringify(job.error));
      assert.match(job.endTime ?? '', rfc3339);
      // A run cancelled before its first step keeps nothing; one that trained keeps the checkpoints it reached.
      const done = Number(job.tuningJobMetadata?.completedStepCount ?? 0);
      if (done === 0) assert.equal(job.tunedModel, undefined);
      else assert.equal(job.tunedModel?.checkpoints?.at(-1)?.step, String(done));
    });

    test('@google-cloud/storage puts the dataset in Attune\'s store; the docs\' curl body (snake_case, quoted numbers) on /v1 trains from that gs:// URI', async () => {
      const { uploaded, downloaded, listed, created } = await curlRun();
      assert.equal(downloaded, uploaded);
      assert.deepEqual(listed, ['curl/train.jsonl']);

      assert.equal(created.status, 200, created.text);
      const job = created.json;
      assert.match(job.name, new RegExp(`^projects/${project}/locations/${location}/tuningJobs/\\d{19}$`));
      assert.equal(job.state, 'JOB_STATE_PENDING');
      assert.equal(job.tunedModelDisplayName, 'tuned_gemini');
      assert.equal(job.supervisedTuningSpec.trainingDatasetUri, 'gs://gcs-client/curl/train.jsonl');
      assert.equal(job.supervisedTuningSpec.validationDatasetUri, uris.messagesValidation);
      assert.deepEqual(
        { epochCount: job.supervisedTuningSpec.hyperParameters.epochCount, adapterSize: job.supervisedTuningSpec.hyperParameters.adapterSize, learningRateMultiplier: job.supervisedTuningSpec.hyperParameters.learningRateMultiplier },
        { epochCount: String(learnedEpochs), adapterSize: 'ADAPTER_SIZE_FOUR', learningRateMultiplier: 1 },
        'int64 back as a string, the double as a number',
      );
      assert.equal(job.experiment, undefined);

      // The seed's flow: list, then get until SUCCEEDED (on /v1, as curl does).
      const list = await call(`${fixture.url}${parent('v1')}/tuningJobs`, { headers: { authorization: `Bearer ${key()}` } });
      assert.equal(list.status, 200, list.text);
      assert.ok(list.json.tuningJobs.some((j: any) => j.name === job.name));
      const { job: finished } = await untilEnded(job.name);
      assert.equal(finished.state, 'JOB_STATE_SUCCEEDED', JSON.stringify(finished.error));
      const v1 = await call(`${fixture.url}/v1/${job.name}`, { headers: { authorization: `Bearer ${key()}` } });
      assert.equal(v1.status, 200);
      assert.equal(v1.json.state, 'JOB_STATE_SUCCEEDED');
      assert.equal(v1.json.tunedModel.endpoint, finished.tunedModel.endpoint);
      const endpoint = `/v1/${finished.tunedModel.endpoint}`;

      // The docs' serving body: role "USER", parts as one object, generation_config in snake_case beside camelCase keys.
      const generated = await call(`${fixture.url}${endpoint}:generateContent`, {
        method: 'POST',
        body: { contents: [{ role: 'USER', parts: { text: 'twenty two' } }], generation_config: { temperature: 0, topP: 0.95, topK: 40, maxOutputTokens: 20 } },
        headers: { authorization: `Bearer ${key()}`, 'content-type': 'application/json; charset=utf-8' },
      });
      assert.equal(generated.status, 200, generated.text);
      assert.equal(textOf(generated.json), 'twenty three');
      assert.equal(generated.json.candidates[0].finishReason, 'STOP');
      assert.ok(generated.json.usageMetadata.promptTokenCount > 0 && generated.json.usageMetadata.candidatesTokenCount > 0);

      const request = { contents: [{ role: 'user', parts: [{ text: 'twenty two' }] }], generationConfig: { temperature: 0 } };
      for (const version of ['v1', 'v1beta1']) {
        const path = `/${version}/${finished.tunedModel.endpoint}`;
        const sse = await readSse(`${fixture.url}${path}:streamGenerateContent?alt=sse`, {
          method: 'POST',
          headers: { 'x-goog-api-key': key(), 'content-type': 'application/json' },
          body: JSON.stringify(request),
        });
        assert.equal(sse.status, 200, JSON.stringify(sse.events));
        assert.match(sse.contentType, /text\/event-stream/);
        assert.ok(sse.events.length >= 1);
        assert.equal(sse.events.map((e) => textOf(e.data)).join(''), 'twenty three', `${version} ?alt=sse`);
        assert.equal(sse.events.at(-1)!.data.candidates[0].finishReason, 'STOP');

        const array = await rest(`${path}:streamGenerateContent`, { method: 'POST', body: request });
        assert.equal(array.status, 200, array.text);
        assert.match(array.headers.get('content-type') ?? '', /application\/json/);
        assert.ok(Array.isArray(array.json) && array.json.length >= 1, array.text);
        assert.equal(array.json.map(textOf).join(''), 'twenty three', `${version} JSON array`);
        assert.equal(array.json.at(-1).candidates[0].finishReason, 'STOP');
      }
      // The endpoint without the projects/…/locations/… prefix names the same model.
      const bare = await rest(`/v1/endpoints/${jobNumberOf(job.name)}:generateContent`, { method: 'POST', body: request });
      assert.equal(bare.status, 200, bare.text);
      assert.equal(textOf(bare.json), 'twenty three');
    });

    test('the Python SDK\'s wire: integer enums in and (with $alt=json;enum-encoding=int) out, int64 as strings; over-long examples dropped and listed', async () => {
      const created = await pythonRun();
      assert.equal(created.status, 200, created.text);
      const job = created.json;
      assert.match(job.name, new RegExp(`^projects/${project}/locations/europe-west4/tuningJobs/\\d{19}$`), 'any real region name');
      assert.equal(job.state, 2, 'JOB_STATE_PENDING as its number');
      assert.equal(job.supervisedTuningSpec.hyperParameters.adapterSize, 2, 'adapterSize 2 is ADAPTER_SIZE_FOUR, sent back as 2');
      assert.equal(job.supervisedTuningSpec.hyperParameters.epochCount, String(pythonEpochs));
      assert.equal(job.supervisedTuningSpec.hyperParameters.learningRateMultiplier, 1);

      const stats = job.tuningDataStats.supervisedTuningDataStats;
      assert.equal(stats.tuningDatasetExampleCount, '16', 'the dropped example is still counted as read');
      assert.equal(stats.tuningStepCount, String(stepsFor(15, pythonEpochs)), 'steps cover the 15 kept examples');
      assert.equal(stats.totalTruncatedExampleCount, '1');
      assert.deepEqual(stats.truncatedExampleIndices, ['7'], '1-based, as int64 strings');
      assert.equal(stats.droppedExampleReasons?.length, 1);
      for (const field of ['totalTuningCharacterCount', 'totalBillableTokenCount']) {
        assert.equal(typeof stats[field], 'string', field);
        assert.ok(Number(stats[field]) > 0, field);
      }
      for (const field of ['userInputTokenDistribution', 'userOutputTokenDistribution']) {
        assert.equal(typeof stats[field].sum, 'string', `${field}.sum`);
        assert.equal(typeof stats[field].billableSum, 'string', `${field}.billableSum`);
        assert.equal(typeof stats[field].mean, 'number', `${field}.mean`);
      }
      assert.equal(Number(stats.userOutputTokenDistribution.sum) + Number(stats.userInputTokenDistribution.sum), Number(stats.totalBillableTokenCount));
      assert.equal(stats.userMessagePerExampleDistribution.sum, '30', '15 kept examples of 2 messages');

      const { job: finished, states } = await untilEnded(job.name, pythonQuery);
      assert.equal(finished.state, 4, `JOB_STATE_SUCCEEDED as its number (states ${states.join(' → ')})`);
      assert.ok(states.every((s) => [2, 3, 4].includes(s as number)), states.join(' → '));
      assert.equal(finished.tuningJobMetadata.completedStepCount, String(stepsFor(15, pythonEpochs)));

      const named = await rest(`/v1/${job.name}`);
      assert.equal(named.status, 200, named.text);
      assert.equal(named.json.state, 'JOB_STATE_SUCCEEDED', 'names without the query');
      assert.equal(named.json.supervisedTuningSpec.hyperParameters.adapterSize, 'ADAPTER_SIZE_FOUR');

      // Cancel of a finished job.
      const cancel = await rest(`/v1beta1/${job.name}:cancel${pythonQuery}`, { method: 'POST', body: {} });
      assertRpcError(cancel, 400, 'FAILED_PRECONDITION');
      assert.equal((await rest(`/v1/${job.name}`)).json.state, 'JOB_STATE_SUCCEEDED', 'unchanged by the refused cancel');
    });

    test('a tuned model created through the Gemini API (inline examples) is a tuning job on Vertex', async () => {
      const create = await rest('/v1beta/tunedModels', {
        method: 'POST',
        body: {
          display_name: 'numbers through gemini',
          base_model: 'models/gemini-1.5-flash-001-tuning',
          tuning_task: { hyperparameters: { batch_size: batchSize, epoch_count: 2 }, training_data: { examples: { examples: numbers } } },
        },
      });
      assert.equal(create.status, 200, create.text);
      const tunedModel: string = create.json.metadata.tunedModel;
      assert.match(tunedModel, /^tunedModels\/numbers-through-gemini-/);

      const listed = await rest(`${parent()}/tuningJobs?filter=${encodeURIComponent('display_name = "numbers through gemini"')}`);
      assert.equal(listed.status, 200, listed.text);
      assert.equal(listed.json.tuningJobs?.length, 1, listed.text);
      const job = listed.json.tuningJobs[0];
      assert.match(job.name, new RegExp(`^projects/${project}/locations/[a-z0-9-]+/tuningJobs/\\d{19}$`));
      assert.equal(job.tunedModelDisplayName, 'numbers through gemini');
      assert.equal(job.baseModel, 'gemini-1.5-flash-001-tuning');
      assert.ok(['JOB_STATE_PENDING', 'JOB_STATE_RUNNING', 'JOB_STATE_SUCCEEDED'].includes(job.state), job.state);
      assert.equal(job.supervisedTuningSpec.hyperParameters.epochCount, '2');
      assert.equal(job.tuningDataStats.supervisedTuningDataStats.tuningDatasetExampleCount, '15');

      const { job: finished } = await untilEnded(job.name);
      assert.equal(finished.state, 'JOB_STATE_SUCCEEDED', JSON.stringify(finished.error));
      const gemini = await rest(`/v1beta/${tunedModel}`);
      assert.equal(gemini.json.state, 'ACTIVE');
      // Its Vertex endpoint serves it.
      const generated = await rest(`/v1beta1/${finished.tunedModel.endpoint}:generateContent`, { method: 'POST', body: { contents: [{ role: 'user', parts: [{ text: '3' }] }], generationConfig: { temperature: 0, maxOutputTokens: 8 } } });
      assert.equal(generated.status, 200, generated.text);
      assert.ok(generated.json.candidates[0].content.role === 'model');
    });
  });

  // ---------------------------------------------------------------------------------------------------
  // Metrics

  describe('metrics', () => {
    test('GET …/tuningJobs/{n}/metrics: every train step, eval loss from the validation set, falling train loss, epochs', async () => {
      const { finished } = await genaiRun();
      assert.equal(finished.state, 'JOB_STATE_SUCCEEDED');
      const total = stepsFor(15, learnedEpochs);
      for (const version of ['v1', 'v1beta1']) {
        const reply = await rest(`/${version}/${finished.name}/metrics`);
        assert.equal(reply.status, 200, reply.text);
        const series = new Map<string, any[]>(reply.json.timeSeriesData.map((s: any) => [s.displayName, s.values]));
        assert.deepEqual([...series.keys()].sort(), [
          '/eval_fraction_of_correct_next_step_preds', '/eval_num_predictions', '/eval_total_loss',
          '/train_fraction_of_correct_next_step_preds', '/train_num_predictions', '/train_total_loss',
        ]);
        for (const s of reply.json.timeSeriesData) assert.equal(s.valueType, 'SCALAR');

        for (const name of ['/train_total_loss', '/train_fraction_of_correct_next_step_preds', '/train_num_predictions']) {
          const values = series.get(name)!;
          assert.deepEqual(values.map((v) => v.step), Array.from({ length: total }, (_, i) => String(i + 1)), `${name}: steps 1..${total}, int64 strings`);
          for (const v of values) {
            assert.match(v.wallTime, rfc3339);
            assert.equal(typeof v.scalar.value, 'number');
            assert.ok(Number.isFinite(v.scalar.value));
          }
        }
        const loss = series.get('/train_total_loss')!.map((v) => v.scalar.value as number);
        const mean = (xs: number[]) => xs.reduce((a, b) => a + b, 0) / xs.length;
        const first = mean(loss.slice(0, 5));
        const last = mean(loss.slice(-5));
        assert.ok(last < first / 4, `train loss falls: first steps ${first.toFixed(3)}, last steps ${last.toFixed(3)}`);
        for (const v of series.get('/train_fraction_of_correct_next_step_preds')!) assert.ok(v.scalar.value >= 0 && v.scalar.value <= 1);
        for (const v of series.get('/train_num_predictions')!) assert.ok(v.scalar.value > 0 && Number.isInteger(v.scalar.value));
        const accuracy = series.get('/train_fraction_of_correct_next_step_preds')!.map((v) => v.scalar.value as number);
        assert.ok(mean(accuracy.slice(-5)) > mean(accuracy.slice(0, 5)), 'train accuracy rises');

        const evalLoss = series.get('/eval_total_loss')!;
        assert.ok(evalLoss.length >= 2, `${evalLoss.length} evaluations`);
        const evalSteps = evalLoss.map((v) => Number(v.step));
        assert.ok(evalSteps.every((s, i) => s >= 1 && s <= total && (i === 0 || s > evalSteps[i - 1]!)), evalSteps.join(','));
        assert.equal(evalSteps.at(-1), total, 'the validation set is evaluated at the end');
        for (const v of evalLoss) assert.ok(Number.isFinite(v.scalar.value) && v.scalar.value > 0);
        for (const name of ['/eval_fraction_of_correct_next_step_preds', '/eval_num_predictions']) {
          assert.deepEqual(series.get(name)!.map((v) => v.step), evalLoss.map((v) => v.step), name);
        }
        // The validation set is 5 examples; every evaluation scores the same number of tokens.
        assert.equal(new Set(series.get('/eval_num_predictions')!.map((v) => v.scalar.value)).size, 1);

        // Epochs: one entry per epoch, ending at the step where the 15 examples had been seen that many times.
        assert.deepEqual(
          reply.json.epochs,
          Array.from({ length: learnedEpochs }, (_, i) => ({ epoch: String(i + 1), step: String(Math.ceil(((i + 1) * 15) / batchSize)) })),
        );
      }
    });

    test('GET …/metrics?alt=sse delivers points while the job runs and ends after the terminal TuningJob event', async () => {
      const { finished, live } = await genaiRun();
      const total = stepsFor(15, learnedEpochs);
      const { status, contentType, events } = await live; // resolves only when the server ends the stream
      assert.equal(status, 200, JSON.stringify(events[0]?.data));
      assert.match(contentType, /text\/event-stream/);
      assert.ok(events.length >= 3, `${events.length} events`);

      const first = events[0]!.data;
      assert.ok(first.tuningJob, 'the first event carries the job');
      assert.equal(first.tuningJob.name, finished.name);
      assert.ok(['JOB_STATE_PENDING', 'JOB_STATE_RUNNING'].includes(first.tuningJob.state), `opened while ${first.tuningJob.state}`);

      const lastEvent = events.at(-1)!.data;
      assert.equal(lastEvent.tuningJob?.state, 'JOB_STATE_SUCCEEDED', 'the stream ends with the terminal job');
      assert.equal(lastEvent.tuningJob.tunedModel.endpoint, finished.tunedModel!.endpoint);
      const jobEvents = events.filter((e) => e.data.tuningJob).map((e) => e.data.tuningJob.state);
      assert.ok(jobEvents.every((s: string) => ['JOB_STATE_PENDING', 'JOB_STATE_RUNNING', 'JOB_STATE_SUCCEEDED'].includes(s)), jobEvents.join(' → '));

      // Points arrived as separate events after the first one, before the end: live, not a replay at the end.
      const pointEvents = events.slice(1, -1).filter((e) => e.data.timeSeriesData?.length);
      assert.ok(pointEvents.length >= 2, `${pointEvents.length} point events while running`);
      assert.ok(pointEvents[0]!.at < events.at(-1)!.at, 'points came before the terminal event');

      // Together, the snapshot and the live points are every step once, and the evaluations.
      const steps = (name: string) =>
        events.flatMap((e) => (e.data.timeSeriesData ?? []).filter((s: any) => s.displayName === name).flatMap((s: any) => s.values.map((v: any) => Number(v.step))));
      assert.deepEqual(steps('/train_total_loss'), Array.from({ length: total }, (_, i) => i + 1));
      assert.deepEqual(steps('/train_num_predictions'), Array.from({ length: total }, (_, i) => i + 1));
      const rest_ = await rest(`/v1beta1/${finished.name}/metrics`);
      const evalSteps = rest_.json.timeSeriesData.find((s: any) => s.displayName === '/eval_total_loss').values.map((v: any) => Number(v.step));
      assert.deepEqual(steps('/eval_total_loss'), evalSteps);
      const epochs = events.flatMap((e) => e.data.epochs ?? []);
      assert.deepEqual(epochs, rest_.json.epochs, 'epoch ends once each, in order');
    });

    test('metrics of a finished job stream as one snapshot and end at once; unknown and foreign jobs are refused', async () => {
      const { finished } = await genaiRun();
      const sse = await readSse(`${fixture.url}/v1/${finished.name}/metrics?alt=sse`, { headers: { 'x-goog-api-key': key() } }, 10_000);
      assert.equal(sse.status, 200);
      assert.equal(sse.events.length, 1);
      assert.equal(sse.events[0]!.data.tuningJob.state, 'JOB_STATE_SUCCEEDED');
      assert.equal(sse.events[0]!.data.timeSeriesData.length, 6);
      // The job exactly as GET returns it, its checkpoints included (a client replaces its copy with it).
      const got = await rest(`/v1/${finished.name}`);
      assert.ok(got.json.tunedModel.checkpoints?.length > 0, got.text);
      assert.deepEqual(sse.events[0]!.data.tuningJob, got.json);

      assertRpcError(await rest(`${parent()}/tuningJobs/1234567890123456789/metrics`), 404, 'NOT_FOUND');
      assertRpcError(await rest(`/v1beta1/${finished.name}/metrics`, { apiKey: otherKey() }), 403, 'PERMISSION_DENIED');
    });

    test('GET …/tuningJobs/{n}/events: created, started, each epoch with the tokens trained so far, each evaluation, the end; the seed', async () => {
      const { finished } = await genaiRun();
      const reply = await rest(`/v1beta1/${finished.name}/events`);
      assert.equal(reply.status, 200, reply.text);
      const { events, trainedTokens, seed } = reply.json;
      assert.equal(seed, 0, 'the engine default seed, recorded with the job');
      const metrics = (await rest(`/v1beta1/${finished.name}/metrics`)).json;
      const predictions = metrics.timeSeriesData.find((s: any) => s.displayName === '/train_num_predictions').values.map((v: any) => v.scalar.value as number);
      const total = predictions.reduce((a: number, b: number) => a + b, 0);
      assert.equal(trainedTokens, String(total), 'every training step\'s predictions');
      const types = events.map((e: any) => e.type);
      assert.equal(types[0], 'created');
      assert.equal(types[1], 'started');
      assert.equal(types.at(-1), 'succeeded');
      assert.match(events[0].message, new RegExp(`Job created: 15 examples .* ${learnedEpochs} epochs of batch ${batchSize}, .*seed 0\\.$`));
      // One event per epoch, at the step the epochs list gives, with the tokens of the steps up to it.
      const epochs = events.filter((e: any) => e.type === 'epoch');
      assert.deepEqual(epochs.map((e: any) => String(e.step)), metrics.epochs.map((e: any) => e.step));
      for (const e of epochs) assert.equal(e.trainedTokens, predictions.slice(0, e.step).reduce((a: number, b: number) => a + b, 0));
      const evaluations = events.filter((e: any) => e.type === 'evaluation');
      assert.equal(evaluations.length, metrics.timeSeriesData.find((s: any) => s.displayName === '/eval_total_loss').values.length);
      assert.match(events.at(-1).message, new RegExp(`^Finished: ${stepsFor(15, learnedEpochs)} of ${stepsFor(15, learnedEpochs)} steps, [\\d,]+ tokens trained, final loss `));
      // Oldest first.
      const times = events.map((e: any) => Date.parse(e.time));
      assert.ok(times.every((t: number, i: number) => i === 0 || t >= times[i - 1]!));

      assertRpcError(await rest(`${parent()}/tuningJobs/1234567890123456789/events`), 404, 'NOT_FOUND');
      assertRpcError(await rest(`/v1beta1/${finished.name}/events`, { apiKey: otherKey() }), 403, 'PERMISSION_DENIED');
    });
  });

  // ---------------------------------------------------------------------------------------------------
  // Lists, errors, auth

  describe('list, get and cancel', () => {
    test('@google/genai tunings.list: a label filter, a state filter, and pageSize 1 through the pager', async () => {
      const ai = vertexClient();
      const { finished } = await genaiRun();
      const all = await listNames();
      assert.equal(all.length, 5, `the training suite's five us-central1 jobs (the Python one is in europe-west4): ${all.length}`);

      const byLabel: string[] = [];
      for await (const job of await ai.tunings.list({ config: { filter: 'labels.sdk = "genai"' } })) byLabel.push(job.name!);
      assert.equal(byLabel.length, 2, byLabel.join(', '));
      assert.ok(byLabel.includes(finished.name!));

      const succeededGenai: TuningJob[] = [];
      for await (const job of await ai.tunings.list({ config: { filter: 'state = "JOB_STATE_SUCCEEDED" AND labels.sdk = "genai"' } })) succeededGenai.push(job);
      assert.deepEqual(succeededGenai.map((j) => j.name), [finished.name]);
      assert.equal(succeededGenai[0]!.state, 'JOB_STATE_SUCCEEDED');

      const cancelled: string[] = [];
      for await (const job of await ai.tunings.list({ config: { filter: 'state = JOB_STATE_CANCELLED' } })) cancelled.push(job.tunedModelDisplayName!);
      assert.deepEqual(cancelled.sort(), ['cancelled by curl', 'numbers to cancel']);

      // pageSize 1: one job per page, following nextPageToken to the end, the same jobs in the same order.
      const pager = await ai.tunings.list({ config: { pageSize: 1 } });
      const paged: string[] = [];
      let pages = 0;
      for (;;) {
        pages++;
        assert.ok(pager.page.length <= 1, `page ${pages} has ${pager.page.length} jobs`);
        paged.push(...pager.page.map((j) => j.name!));
        if (!pager.hasNextPage()) break;
        await pager.nextPage();
        assert.ok(pages < 100);
      }
      assert.deepEqual(paged, all);
      assert.equal(pages, all.length);
      // And iterating the pager walks every page too.
      const iterated: string[] = [];
      for await (const job of await ai.tunings.list({ config: { pageSize: 1 } })) iterated.push(job.name!);
      assert.deepEqual(iterated, all);
    });

    test('REST list: pageToken paging (also page_size/page_token), newest first, filters, other projects see nothing', async () => {
      const all = await listNames();
      const paged: string[] = [];
      let token: string | undefined;
      let pages = 0;
      do {
        const reply = await rest(`${parent('v1')}/tuningJobs?pageSize=2${token ? `&pageToken=${encodeURIComponent(token)}` : ''}`);
        assert.equal(reply.status, 200, reply.text);
        assert.ok(reply.json.tuningJobs.length <= 2);
        paged.push(...reply.json.tuningJobs.map((j: any) => j.name));
        token = reply.json.nextPageToken;
        pages++;
      } while (token && pages < 50);
      assert.deepEqual(paged, all);
      assert.equal(pages, Math.ceil(all.length / 2));

      const full = await rest(`${parent()}/tuningJobs`);
      const created = full.json.tuningJobs.map((j: any) => Date.parse(j.createTime));
      assert.ok(created.every((t: number, i: number) => i === 0 || t <= created[i - 1]), 'newest first');

      const snake = await rest(`${parent()}/tuningJobs?page_size=1`);
      assert.equal(snake.status, 200, snake.text);
      assert.equal(snake.json.tuningJobs?.length, 1, 'page_size is pageSize');
      const second = await rest(`${parent()}/tuningJobs?page_size=1&page_token=${encodeURIComponent(snake.json.nextPageToken ?? '')}`);
      assert.deepEqual(second.json.tuningJobs?.map((j: any) => j.name), [all[1]], 'page_token is pageToken');

      const hasLabel = await rest(`${parent()}/tuningJobs?filter=${encodeURIComponent('labels.sdk:* AND NOT labels.sdk = "python"')}`);
      assert.equal(hasLabel.json.tuningJobs.length, 2);
      const either = await rest(`${parent()}/tuningJobs?filter=${encodeURIComponent('state = JOB_STATE_CANCELLED OR labels.sdk = "python"')}`);
      assert.deepEqual(either.json.tuningJobs.map((j: any) => j.tunedModelDisplayName).sort(), ['cancelled by curl', 'numbers to cancel']);

      // Jobs live in their location: the Python job is listed and found in europe-west4 only.
      const python = (await pythonRun()).json;
      const europe = await rest(`${parent('v1beta1', project, 'europe-west4')}/tuningJobs`);
      assert.deepEqual(europe.json.tuningJobs.map((j: any) => j.name), [python.name]);
      assertRpcError(await rest(`${parent()}/tuningJobs/${jobNumberOf(python.name)}`), 404, 'NOT_FOUND');
      assertRpcError(await rest(`${parent()}/tuningJobs?filter=${encodeURIComponent('colour = "blue"')}`), 400, 'INVALID_ARGUMENT');

      // Another project's list is empty: {} with neither key.
      const other = await rest(`${parent('v1beta1', otherProject)}/tuningJobs`, { apiKey: otherKey() });
      assert.equal(other.status, 200, other.text);
      assert.deepEqual(other.json, {});
    });

    test('unknown job → 404; another project\'s key → 403 on this project\'s path, 404 (as for a missing job) on its own; cancel of a finished job → 400 FAILED_PRECONDITION', async () => {
      const { finished } = await genaiRun();
      assertRpcError(await rest(`${parent()}/tuningJobs/1234567890123456789`), 404, 'NOT_FOUND', /1234567890123456789/);
      assertRpcError(await rest(`${parent('v1')}/tuningJobs/1234567890123456789:cancel`, { method: 'POST', body: {} }), 404, 'NOT_FOUND');
      assertRpcError(await rest(`${parent()}/endpoints/1234567890123456789:generateContent`, { method: 'POST', body: { contents: [{ parts: [{ text: 'x' }] }] } }), 404, 'NOT_FOUND');

      // The other project's key on this project's path, and on its own path naming this project's job.
      assertRpcError(await rest(`${parent()}/tuningJobs`, { apiKey: otherKey() }), 403, 'PERMISSION_DENIED');
      assertRpcError(await rest(`/v1beta1/${finished.name}`, { apiKey: otherKey() }), 403, 'PERMISSION_DENIED');
      const n = jobNumberOf(finished.name!);
      // AIP-193: on its own path, this project's job answers exactly as a job that does not exist.
      const missing = '1234567890123456789';
      for (const [verb, method, body] of [['', 'GET', undefined], [':cancel', 'POST', {}]] as const) {
        const theirs = await rest(`${parent('v1beta1', otherProject)}/tuningJobs/${n}${verb}`, { method, body, apiKey: otherKey() });
        const none = await rest(`${parent('v1beta1', otherProject)}/tuningJobs/${missing}${verb}`, { method, body, apiKey: otherKey() });
        assertRpcError(theirs, 404, 'NOT_FOUND');
        assert.equal(theirs.json.error.message, none.json.error.message.replace(missing, n));
      }
      const generate = { method: 'POST', body: { contents: [{ parts: [{ text: 'twenty two' }] }] }, apiKey: otherKey() };
      const theirs = await rest(`${parent('v1beta1', otherProject)}/endpoints/${n}:generateContent`, generate);
      const none = await rest(`${parent('v1beta1', otherProject)}/endpoints/${missing}:generateContent`, generate);
      assertRpcError(theirs, 404, 'NOT_FOUND');
      assert.equal(theirs.json.error.message, none.json.error.message.replace(missing, n));
      // No credentials at all.
      const anonymous = await call(`${fixture.url}${parent()}/tuningJobs`);
      assert.ok([401, 403].includes(anonymous.status), anonymous.text);

      const cancel = await rest(`/v1/${finished.name}:cancel`, { method: 'POST', body: {} });
      assertRpcError(cancel, 400, 'FAILED_PRECONDITION', /SUCCEEDED/);
      const still = await rest(`/v1beta1/${finished.name}`);
      assert.equal(still.json.state, 'JOB_STATE_SUCCEEDED');
      assert.equal(still.json.error, undefined);
    });
  });

  // ---------------------------------------------------------------------------------------------------
  // Datasets at create

  describe('dataset validation at create', () => {
    const createBody = (training: string, extra: Record<string, unknown> = {}) => ({
      baseModel: 'gemini-2.5-flash',
      supervisedTuningSpec: { trainingDatasetUri: training, hyperParameters: { epochCount: 1 } },
      tunedModelDisplayName: 'should not exist',
      ...extra,
    });
    const trainingField = 'tuning_job.supervised_tuning_spec.training_dataset_uri';
    const validationField = 'tuning_job.supervised_tuning_spec.validation_dataset_uri';

    const good = (p: Pair) => contentsOf(p);
    const malformed: { what: string; line: number; why: RegExp; rows: unknown[] }[] = [
      { what: 'bad JSON', line: 3, why: /JSON/, rows: [good(numbers[0]!), good(numbers[1]!), '{"contents": [{"role": "user", "parts": [{"text": "x"}]}', good(numbers[2]!)] },
      {
        what: 'role "assistant" in contents',
        line: 2,
        why: /role/,
        rows: [good(numbers[0]!), { contents: [{ role: 'user', parts: [{ text: '5' }] }, { role: 'assistant', parts: [{ text: '6' }] }] }],
      },
      {
        what: 'role "bot" in messages',
        line: 4,
        why: /role/,
        rows: [messagesOf(numbers[0]!), messagesOf(numbers[1]!), messagesOf(numbers[2]!), { messages: [{ role: 'user', content: '5' }, { role: 'bot', content: '6' }] }],
      },
      {
        what: 'a missing model turn (the last turn is the user\'s)',
        line: 2,
        why: /model/,
        rows: [good(numbers[0]!), { contents: [{ role: 'user', parts: [{ text: '5' }] }, { role: 'model', parts: [{ text: '6' }] }, { role: 'user', parts: [{ text: '7' }] }] }, good(numbers[1]!)],
      },
      { what: 'only a user turn', line: 1, why: /model/, rows: [{ contents: [{ role: 'user', parts: [{ text: '5' }] }] }, good(numbers[1]!)] },
      {
        what: 'roles that do not alternate',
        line: 3,
        why: /alternat/,
        rows: [good(numbers[0]!), good(numbers[1]!), { contents: [{ role: 'user', parts: [{ text: '5' }] }, { role: 'user', parts: [{ text: '6' }] }, { role: 'model', parts: [{ text: '7' }] }] }],
      },
    ];

    for (const [i, { what, line, why, rows }] of malformed.entries()) {
      test(`${what} → 400 INVALID_ARGUMENT naming line ${line}; nothing is created`, async () => {
        const uri = await upload(`bad/${i}.jsonl`, jsonl(rows));
        const before = await listNames();
        const reply = await rest(`${parent()}/tuningJobs`, { method: 'POST', body: createBody(uri) });
        assertRpcError(reply, 400, 'INVALID_ARGUMENT', new RegExp(`\\bline ${line}\\b`));
        assert.match(reply.json.error.message, why);
        assert.ok(reply.json.error.message.includes(uri), 'the message names the dataset');
        assert.ok(fieldsOf(reply).includes(trainingField), JSON.stringify(reply.json.error.details));
        assert.deepEqual(await listNames(), before);
      });
    }

    test('a malformed validation set is named by its field and line', async () => {
      const uri = await upload('bad/validation.jsonl', jsonl([...validationPairs.map(contentsOf), { contents: [{ role: 'model', parts: [{ text: '6' }] }, { role: 'user', parts: [{ text: '5' }] }] }]));
      const before = await listNames();
      const reply = await rest(`${parent()}/tuningJobs`, {
        method: 'POST',
        body: { ...createBody(uris.train), supervisedTuningSpec: { trainingDatasetUri: uris.train, validationDatasetUri: uri } },
      });
      assertRpcError(reply, 400, 'INVALID_ARGUMENT', /\bline 6\b/);
      assert.ok(fieldsOf(reply).includes(validationField), JSON.stringify(reply.json.error.details));
      assert.deepEqual(await listNames(), before);
    });

    test('more than 5,000 validation examples → 400 INVALID_ARGUMENT; exactly 5,000 validates', async () => {
      const rows = Array.from({ length: 5_001 }, (_, i) => inputTextOf({ text_input: String(i), output: String(i + 1) }));
      const tooMany = await upload('big/validation-5001.jsonl', jsonl(rows));
      const enough = await upload('big/validation-5000.jsonl', jsonl(rows.slice(0, 5_000)));
      const before = await listNames();
      const reply = await rest(`${parent()}/tuningJobs`, {
        method: 'POST',
        body: { ...createBody(uris.train), supervisedTuningSpec: { trainingDatasetUri: uris.train, validationDatasetUri: tooMany } },
      });
      assertRpcError(reply, 400, 'INVALID_ARGUMENT', /5,?000/);
      assert.ok(fieldsOf(reply).includes(validationField), JSON.stringify(reply.json.error.details));
      const ok = await rest(`${parent()}/tuningJobs?validateOnly=true`, {
        method: 'POST',
        body: { ...createBody(uris.train), supervisedTuningSpec: { trainingDatasetUri: uris.train, validationDatasetUri: enough } },
      });
      assert.equal(ok.status, 200, ok.text);
      assert.deepEqual(await listNames(), before);
    });

    test('a missing gs:// object → an error naming the URI; nothing is created', async () => {
      const missing = gs('nowhere/missing.jsonl');
      const before = await listNames();
      const reply = await rest(`${parent()}/tuningJobs`, { method: 'POST', body: createBody(missing) });
      assert.ok(reply.status === 400 || reply.status === 404, reply.text);
      assert.ok(['INVALID_ARGUMENT', 'NOT_FOUND'].includes(reply.json?.error?.status), reply.text);
      assert.ok(reply.json.error.message.includes(missing), reply.json.error.message);
      assert.ok(fieldsOf(reply).includes(trainingField), JSON.stringify(reply.json.error.details));
      const missingValidation = await rest(`${parent()}/tuningJobs`, {
        method: 'POST',
        body: { ...createBody(uris.train), supervisedTuningSpec: { trainingDatasetUri: uris.train, validationDatasetUri: missing } },
      });
      assert.ok(missingValidation.json?.error?.message?.includes(missing), missingValidation.text);
      assert.ok(fieldsOf(missingValidation).includes(validationField), missingValidation.text);
      assert.deepEqual(await listNames(), before);
    });

    test('other create errors: no training dataset, a display name over 128 characters, an adapter size the base does not take', async () => {
      const before = await listNames();
      const noData = await rest(`${parent()}/tuningJobs`, { method: 'POST', body: { baseModel: 'gemini-2.5-flash', supervisedTuningSpec: {} } });
      assertRpcError(noData, 400, 'INVALID_ARGUMENT');
      assert.ok(fieldsOf(noData).includes(trainingField));
      const longName = await rest(`${parent()}/tuningJobs`, { method: 'POST', body: createBody(uris.train, { tunedModelDisplayName: 'n'.repeat(129) }) });
      assertRpcError(longName, 400, 'INVALID_ARGUMENT', /128/);
      const okName = await rest(`${parent()}/tuningJobs?validateOnly=true`, { method: 'POST', body: createBody(uris.train, { tunedModelDisplayName: 'n'.repeat(128) }) });
      assert.equal(okName.status, 200, okName.text);
      const adapter = await rest(`${parent()}/tuningJobs`, {
        method: 'POST',
        body: { ...createBody(uris.train), supervisedTuningSpec: { trainingDatasetUri: uris.train, hyperParameters: { adapterSize: 'ADAPTER_SIZE_THIRTY_TWO' } } },
      });
      assertRpcError(adapter, 400, 'INVALID_ARGUMENT', /adapter size is not supported/);
      assert.deepEqual(await listNames(), before);
    });

    test('validateOnly=true returns the job it would create, with data stats and defaults, and creates nothing', async () => {
      const before = await listNames();
      const reply = await rest(`${parent()}/tuningJobs?validateOnly=true`, {
        method: 'POST',
        body: { baseModel: 'gemini-2.5-flash', supervisedTuningSpec: { training_dataset_uri: uris.overLong }, tunedModelDisplayName: 'validate only', labels: { dry: 'run' } },
      });
      assert.equal(reply.status, 200, reply.text);
      const job = reply.json;
      assert.equal(job.name, undefined);
      assert.equal(job.state, undefined);
      assert.equal(job.tunedModelDisplayName, 'validate only');
      assert.deepEqual(job.labels, { dry: 'run' });
      const hyper = job.supervisedTuningSpec.hyperParameters;
      assert.equal(hyper.learningRateMultiplier, 1, 'the default multiplier is 1.0');
      assert.equal(hyper.epochCount, '10', 'the documented Vertex rule: fewer than 100 examples → 10 epochs');
      assert.equal(hyper.adapterSize, 'ADAPTER_SIZE_EIGHT', 'gemini-2.5-flash\'s documented default');
      const stats = job.tuningDataStats.supervisedTuningDataStats;
      assert.equal(stats.tuningDatasetExampleCount, '16');
      assert.deepEqual(stats.truncatedExampleIndices, ['7']);
      assert.equal(stats.tuningStepCount, String(stepsFor(15, 10)));
      assert.equal(stats.userDatasetExamples?.[0]?.role, 'user');
      assert.deepEqual(await listNames(), before);
    });
  });

  // ---------------------------------------------------------------------------------------------------
  // One domain, and base models

  describe('one domain with the Gemini API; base models', () => {
    test('a Vertex job is tunedModels/{job number} on the Gemini API: get and generateContent', async () => {
      const { finished } = await genaiRun();
      const n = jobNumberOf(finished.name!);
      const model = await rest(`/v1beta/tunedModels/${n}`);
      assert.equal(model.status, 200, model.text);
      assert.equal(model.json.state, 'ACTIVE');
      assert.equal(model.json.displayName, 'numbers through genai');
      assert.equal(model.json.description, 'the number successor, tuned through @google/genai');
      assert.equal(model.json.tuningTask.hyperparameters.epochCount, learnedEpochs);
      assert.equal(model.json.tuningTask.hyperparameters.batchSize, batchSize);
      // The metrics feed the Gemini view's snapshots: one per step, with the same losses.
      const metrics = await rest(`/v1beta1/${finished.name}/metrics`);
      const trainLoss = metrics.json.timeSeriesData.find((s: any) => s.displayName === '/train_total_loss').values;
      const snapshots = model.json.tuningTask.snapshots;
      assert.equal(snapshots.length, trainLoss.length);
      assert.deepEqual(snapshots.map((s: any) => [s.step, s.meanLoss]), trainLoss.map((v: any) => [Number(v.step), v.scalar.value]));
      const byName = await rest(`/v1beta/${model.json.name}`);
      assert.equal(byName.status, 200, byName.text);
      assert.equal(byName.json.name, model.json.name);

      const generated = await rest(`/v1beta/tunedModels/${n}:generateContent`, { method: 'POST', body: { contents: [{ parts: [{ text: 'twenty two' }] }], generationConfig: { temperature: 0 } } });
      assert.equal(generated.status, 200, generated.text);
      assert.equal(textOf(generated.json), 'twenty three');
      const listed = await rest('/v1beta/tunedModels?pageSize=100');
      assert.ok(listed.json.tunedModels.some((m: any) => m.name === model.json.name));

      // Another project's key cannot see it through the Gemini API either.
      assertRpcError(await rest(`/v1beta/tunedModels/${n}`, { apiKey: otherKey() }), 404, 'NOT_FOUND', new RegExp(`^Tuned model tunedModels/${n} does not exist\\.$`));
    });

    test('@google/genai models.generateContent on a base model name (publishers/google/models/…) and the same call over REST', async () => {
      const ai = vertexClient();
      const config = { temperature: 0, maxOutputTokens: 24 };
      const response = await ai.models.generateContent({ model: 'gemini-2.5-flash', contents: 'Once upon a time', config });
      assert.ok(response.text && response.text.length > 0, JSON.stringify(response));
      assert.ok(['STOP', 'MAX_TOKENS'].includes(response.candidates?.[0]?.finishReason ?? ''));
      for (const route of [`${parent('v1')}/publishers/google/models/gemini-2.5-flash:generateContent`, '/v1/publishers/google/models/gemini-2.5-flash:generateContent']) {
        const reply = await rest(route, { method: 'POST', body: { contents: [{ role: 'user', parts: [{ text: 'Once upon a time' }] }], generationConfig: { temperature: 0, maxOutputTokens: 24 } } });
        assert.equal(reply.status, 200, reply.text);
        assert.equal(textOf(reply.json), response.text, `${route}: greedy decoding is deterministic`);
      }
      let streamed = '';
      for await (const chunk of await ai.models.generateContentStream({ model: 'gemini-2.5-flash', contents: 'Once upon a time', config })) streamed += chunk.text ?? '';
      assert.equal(streamed, response.text);
      assertRpcError(await rest(`${parent()}/publishers/google/models/no-such-model:generateContent`, { method: 'POST', body: { contents: [{ parts: [{ text: 'x' }] }] } }), 404, 'NOT_FOUND');
    });
  });
});
