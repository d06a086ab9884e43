// The Gemini API tuning surface over real HTTP against a real `attune serve` child process: auth and
// keyless mode, project isolation, bad requests (google.rpc error bodies, the server stays up), CRUD
// details (operations, paging, patch, delete, enum encoding, snake_case parameters), and a tuning run's
// snapshots, generation and cancellation.
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import http from 'node:http';
import { mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { projectNumber } from '../src/service/sharing/identity.js';
import {
  AttuneServer,
  call,
  freePort,
  runCli,
  sleep,
  useServer,
  waitFor,
  type ApiResponse,
  type CallOptions,
  type ServerFixture,
} from './helpers/server.js';

// ---------------------------------------------------------------------------------------------------
// Shared helpers

/** The number-successor examples of Google's tuning tutorials. */
const numberPairs: [string, string][] = [
  ['1', '2'], ['3', '4'], ['-3', '-2'], ['twenty two', 'twenty three'], ['two hundred', 'two hundred one'],
  ['ninety nine', 'one hundred'], ['8', '9'], ['-98', '-97'], ['1,000', '1,001'], ['10,100,000', '10,100,001'],
  ['thirteen', 'fourteen'], ['eighty', 'eighty one'], ['one', 'two'], ['three', 'four'], ['seven', 'eight'],
];

const examplesOf = (n: number) =>
  Array.from({ length: n }, (_, i) => {
    const [textInput, output] = numberPairs[i % numberPairs.length];
    return { textInput, output };
  });

interface TuningOptions {
  displayName?: string;
  description?: string;
  baseModel?: string;
  examples?: number | unknown[];
  epochCount?: number;
  batchSize?: number;
  learningRate?: number;
  learningRateMultiplier?: number;
}

function tuningBody(o: TuningOptions = {}) {
  const hyperparameters = Object.fromEntries(
    Object.entries({ epochCount: o.epochCount, batchSize: o.batchSize, learningRate: o.learningRate, learningRateMultiplier: o.learningRateMultiplier })
      .filter(([, v]) => v !== undefined),
  );
  return {
    displayName: o.displayName,
    description: o.description,
    baseModel: o.baseModel ?? 'models/gemini-1.5-flash-001-tuning',
    tuningTask: {
      hyperparameters,
      trainingData: { examples: { examples: Array.isArray(o.examples) ? o.examples : examplesOf(o.examples ?? 5) } },
    },
  };
}

/** A run long enough to still be CREATING whenever the test looks (15,000 steps); tests delete or cancel it. */
const longRun: TuningOptions = { examples: 15, epochCount: 1000, batchSize: 1 };
const longRunSteps = 15 * 1000;
/** A run that finishes in a few seconds: 5 examples, 3 epochs, batch 2 → 8 steps. */
const shortRun: TuningOptions = { examples: 5, epochCount: 3, batchSize: 2 };

/** HTTP helpers bound to a fixture. */
function client(fixture: ServerFixture) {
  const req = (p: string, options: CallOptions = {}) => call(`${fixture.url}${p}`, options);
  const keyOf = (project: string) => {
    const key = fixture.keys[project];
    assert.ok(key, `a key for ${project}`);
    return key;
  };
  return {
    req,
    keyOf,
    get: (p: string, project: string, options: CallOptions = {}) => req(p, { ...options, key: keyOf(project) }),
    post: (p: string, project: string, body: unknown = {}, options: CallOptions = {}) => req(p, { ...options, method: 'POST', key: keyOf(project), body }),
    patch: (p: string, project: string, body: unknown, options: CallOptions = {}) => req(p, { ...options, method: 'PATCH', key: keyOf(project), body }),
    del: (p: string, project: string, options: CallOptions = {}) => req(p, { ...options, method: 'DELETE', key: keyOf(project) }),
    /** Creates a tuned model; returns the Operation. */
    async create(project: string, o: TuningOptions = {}, { version = 'v1beta', query = '' } = {}) {
      const r = await req(`/${version}/tunedModels${query}`, { method: 'POST', key: keyOf(project), body: tuningBody(o) });
      assert.equal(r.status, 200, r.text);
      return r.json as Operation;
    },
    /** Polls the operation on v1 (as the tutorials do) until it is done. */
    async waitDone(project: string, operationName: string, timeoutMs = 180_000): Promise<Operation> {
      return waitFor(`${operationName} to be done`, async () => {
        const r = await req(`/v1/${operationName}`, { key: keyOf(project) });
        assert.equal(r.status, 200, r.text);
        return r.json.done === true ? (r.json as Operation) : undefined;
      }, { timeoutMs, intervalMs: 300 });
    },
  };
}

interface Snapshot {
  step: number;
  epoch?: number;
  meanLoss: number;
  computeTime: string;
}

interface Operation {
  name: string;
  metadata: { '@type': string; tunedModel: string; totalSteps: number; completedSteps?: number; completedPercent?: number; snapshots?: Snapshot[] };
  done?: boolean;
  error?: { code: number; message: string };
  response?: any;
}


/** Asserts a google.rpc error: JSON content type, {"error": {"code", "message", "status"}} and nothing else. */
function assertRpcError(r: ApiResponse, httpStatus: number, status: string, message?: string | RegExp): void {
  const where = `${r.status} ${r.text.slice(0, 500)}`;
  assert.equal(r.status, httpStatus, where);
  assert.match(r.headers.get('content-type') ?? '', /^application\/json/i, where);
  assert.ok(r.json && typeof r.json === 'object', `a JSON body: ${where}`);
  assert.deepEqual(Object.keys(r.json), ['error'], where);
  const { error } = r.json;
  assert.equal(error.code, httpStatus, where);
  assert.equal(error.status, status, where);
  assert.equal(typeof error.message, 'string', where);
  assert.ok(error.message.length > 0, where);
  for (const key of Object.keys(error)) assert.ok(['code', 'message', 'status', 'details'].includes(key), `unexpected error field ${key}: ${where}`);
  if (typeof message === 'string') assert.equal(error.message, message, where);
  else if (message) assert.match(error.message, message, where);
}

const rfc3339 = /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?Z$/;

const unregisteredCaller =
  "Method doesn't allow unregistered callers (callers without established identity). Please use API Key or other form of API consumer identity to call this API.";
const invalidKey = 'API key not valid. Please pass a valid API key.';
const doesNotExist = (id: string) => `Tuned model tunedModels/${id} does not exist.`;

const generateContentBody = { contents: [{ role: 'user', parts: [{ text: 'twenty two' }] }] };

/**
 * A raw POST of a large body, with a declared length or chunked. A server refusing a body answers without
 * reading the rest and closes the connection, and a client still writing then gets EPIPE, possibly before it
 * has read the answer. So this writes `pauseAfter` bytes (enough for the server to decide), then stops writing
 * and waits for the answer; only if none comes does it send the rest.
 */
function rawPost(url: string, headers: Record<string, string>, body: Buffer, { chunked = false, pauseAfter = 0 } = {}): Promise<ApiResponse> {
  return new Promise((resolve, reject) => {
    let answered = false;
    const request = http.request(url, { method: 'POST', headers: chunked ? headers : { ...headers, 'content-length': String(body.length) } }, (response) => {
      answered = true;
      let text = '';
      response.setEncoding('utf8');
      response.on('data', (d: string) => (text += d));
      response.on('end', () => {
        let json: any;
        try {
          json = JSON.parse(text);
        } catch {
          json = undefined;
        }
        const h = new Headers();
        for (const [k, v] of Object.entries(response.headers)) if (typeof v === 'string') h.set(k, v);
        request.destroy();
        resolve({ status: response.statusCode ?? 0, headers: h, text, json });
      });
    });
    request.on('error', (error) => setTimeout(() => answered || reject(error), 5_000));
    const chunk = 256 * 1024;
    let offset = 0;
    let paused = false;
    const writeMore = () => {
      while (!answered && offset < body.length) {
        if (!paused && offset >= pauseAfter) {
          paused = true;
          return void setTimeout(writeMore, 30_000);
        }
        const ok = request.write(body.subarray(offset, offset + chunk));
        offset += chunk;
        if (!ok) return void request.once('drain', writeMore);
      }
      if (!answered) request.end();
    };
    writeMore();
  });
}

// ---------------------------------------------------------------------------------------------------
// Authentication

describe('auth: API keys as Google accepts them', () => {
  const fixture = useServer({ projects: ['project-alpha', 'project-beta'] });
  const api = client(fixture);

  test('x-goog-api-key, ?key= and Authorization: Bearer all authenticate', async () => {
    const key = api.keyOf('project-alpha');
    const viaHeader = await api.req('/v1beta/tunedModels', { headers: { 'x-goog-api-key': key } });
    assert.equal(viaHeader.status, 200, viaHeader.text);
    const viaQuery = await api.req(`/v1beta/tunedModels?key=${encodeURIComponent(key)}`);
    assert.equal(viaQuery.status, 200, viaQuery.text);
    const viaBearer = await api.req('/v1beta/tunedModels', { headers: { authorization: `Bearer ${key}` } });
    assert.equal(viaBearer.status, 200, viaBearer.text);
    // A fresh project lists as {}: proto3 JSON omits the empty list, as Google does.
    assert.deepEqual(viaHeader.json, {});
  });

  test('each credential form acts for its own project', async () => {
    const created = await api.create('project-alpha', { ...shortRun, displayName: 'alpha only' });
    const alphaKey = api.keyOf('project-alpha');
    const betaKey = api.keyOf('project-beta');
    for (const [label, options] of [
      ['header', (key: string) => ({ headers: { 'x-goog-api-key': key } })],
      ['query', () => ({})],
      ['bearer', (key: string) => ({ headers: { authorization: `Bearer ${key}` } })],
    ] as const) {
      for (const [key, expected] of [[alphaKey, 1], [betaKey, 0]] as const) {
        const query = label === 'query' ? `?key=${encodeURIComponent(key)}` : '';
        const r = await api.req(`/v1beta/tunedModels${query}`, options(key));
        assert.equal(r.status, 200, `${label}: ${r.text}`);
        assert.equal(r.json.tunedModels?.length ?? 0, expected, `${label}: ${r.text}`);
      }
    }
    await api.del(`/v1beta/${created.metadata.tunedModel}`, 'project-alpha');
  });

  test('no credentials: 403 PERMISSION_DENIED with Google\'s unregistered-caller message', async () => {
    for (const [method, p] of [['GET', '/v1beta/tunedModels'], ['POST', '/v1beta/tunedModels'], ['GET', '/v1beta/tunedModels/x'], ['GET', '/v1/operations']]) {
      const r = await api.req(p, { method, body: method === 'POST' ? tuningBody() : undefined });
      assertRpcError(r, 403, 'PERMISSION_DENIED', unregisteredCaller);
    }
  });

  test('a bad key: 400 INVALID_ARGUMENT "API key not valid. Please pass a valid API key."', async () => {
    assertRpcError(await api.req('/v1beta/tunedModels', { key: 'atk_not-a-real-key' }), 400, 'INVALID_ARGUMENT', invalidKey);
    assertRpcError(await api.req('/v1beta/tunedModels?key=wrong'), 400, 'INVALID_ARGUMENT', invalidKey);
    // A bad key is refused even next to a valid bearer token: the key decides.
    assertRpcError(
      await api.req('/v1beta/tunedModels', { key: 'wrong', headers: { authorization: `Bearer ${api.keyOf('project-alpha')}` } }),
      400,
      'INVALID_ARGUMENT',
      invalidKey,
    );
  });

  test('a bad bearer token: 401 UNAUTHENTICATED', async () => {
    const r = await api.req('/v1beta/tunedModels', { headers: { authorization: 'Bearer ya29.not-a-token' } });
    assertRpcError(r, 401, 'UNAUTHENTICATED', /^Request had invalid authentication credentials\./);
  });

  test('x-goog-user-project naming another project: 403; naming the key\'s own project: allowed', async () => {
    const key = api.keyOf('project-alpha');
    const other = await api.req('/v1beta/tunedModels', { key, headers: { 'x-goog-user-project': 'project-beta' } });
    assertRpcError(other, 403, 'PERMISSION_DENIED');
    const otherBearer = await api.req('/v1beta/tunedModels', { headers: { authorization: `Bearer ${key}`, 'x-goog-user-project': 'project-beta' } });
    assertRpcError(otherBearer, 403, 'PERMISSION_DENIED');
    const own = await api.req('/v1beta/tunedModels', { headers: { authorization: `Bearer ${key}`, 'x-goog-user-project': 'project-alpha' } });
    assert.equal(own.status, 200, own.text);
  });

  test('a key issued while the server runs works at once', async () => {
    const key = await fixture.server.createKey('project-gamma');
    const r = await api.req('/v1beta/tunedModels', { key });
    assert.equal(r.status, 200, r.text);
  });

  test('/healthz needs no key', async () => {
    const r = await api.req('/healthz');
    assert.equal(r.status, 200, r.text);
  });
});

describe('keyless mode', () => {
  test('--keyless with a non-loopback --host is refused: non-zero exit, a plain message, no stack trace', { timeout: 60_000 }, async (t) => {
    const dataDir = mkdtempSync(path.join(os.tmpdir(), 'attune-keyless-'));
    t.after(() => rmSync(dataDir, { recursive: true, force: true }));
    const port = String(await freePort());
    for (const [args, env] of [
      [['--keyless', '--host', '0.0.0.0'], {}],
      [['--keyless', '--host', '::'], {}],
      [['--keyless'], { ATTUNE_HOST: '0.0.0.0' }],
    ] as const) {
      const result = await runCli(['serve', ...args, '--port', port, '--data-dir', dataDir], { env, timeoutMs: 20_000 });
      const where = `${args.join(' ')} ${JSON.stringify(env)}: exit ${result.code ?? result.signal}\n${result.stderr}${result.stdout}`;
      assert.equal(result.signal, null, `it must refuse, not start serving: ${where}`);
      assert.notEqual(result.code, 0, where);
      assert.match(result.stderr, /--keyless/, where);
      assert.match(result.stderr, /loopback/, where);
      assert.doesNotMatch(result.stderr, /^\s+at /m, `no stack trace: ${where}`);
    }
  });

  describe('on loopback', () => {
    const fixture = useServer({ keyless: true, projects: ['project-alpha'] });
    const api = client(fixture);

    test('requests without a key are served (as the local project)', async () => {
      const listed = await api.req('/v1beta/tunedModels');
      assert.equal(listed.status, 200, listed.text);
      const created = await api.req('/v1beta/tunedModels', { method: 'POST', body: tuningBody({ ...shortRun, displayName: 'keyless' }) });
      assert.equal(created.status, 200, created.text);
      const name = created.json.metadata.tunedModel;
      const got = await api.req(`/v1beta/${name}`);
      assert.equal(got.status, 200, got.text);
      const again = await api.req('/v1beta/tunedModels');
      assert.deepEqual(again.json.tunedModels.map((m: { name: string }) => m.name), [name]);
      // A keyed caller still acts for its own project, which does not see the keyless one's model.
      const alpha = await api.get('/v1beta/tunedModels', 'project-alpha');
      assert.equal(alpha.status, 200, alpha.text);
      assert.equal(alpha.json.tunedModels, undefined);
      assertRpcError(await api.get(`/v1beta/${name}`, 'project-alpha'), 404, 'NOT_FOUND', doesNotExist(name.split('/')[1]!));
      assert.equal((await api.req(`/v1beta/${name}`, { method: 'DELETE' })).status, 200);
    });

    test("the console's project list names keyless projects with jobs to a keyless caller, and a keyed caller only its own", async () => {
      const created = await api.req('/v1beta/tunedModels', { method: 'POST', headers: { 'x-goog-user-project': 'side-project' }, body: tuningBody({ ...shortRun, displayName: 'side' }) });
      assert.equal(created.status, 200, created.text);
      assert.equal((await api.req('/v1beta/tunedModels', { method: 'POST', key: fixture.keys['project-alpha'], body: tuningBody({ ...shortRun }) })).status, 200);
      const keyless = await api.req('/console/api/projects');
      assert.equal(keyless.status, 200, keyless.text);
      assert.equal(keyless.json.keyless, true);
      // project-alpha holds a model too, but it has keys: a keyless caller is never told of it.
      assert.deepEqual(keyless.json.projects, [
        { projectId: 'local', tunedModelCount: 0 },
        { projectId: 'side-project', tunedModelCount: 1 },
      ]);
      const keyed = await api.get('/console/api/projects', 'project-alpha');
      // With the caller's own identity, which other projects share tuned models with.
      assert.deepEqual(keyed.json, {
        projects: [{ projectId: 'project-alpha', tunedModelCount: 1 }],
        keyless: false,
        identity: { projectId: 'project-alpha', email: 'project-alpha@projects.attune.internal', projectNumber: projectNumber('project-alpha') },
      });
      assert.equal(keyless.json.identity.email, 'local@projects.attune.internal');
      assertRpcError(await api.req('/console/api/projects', { headers: { 'x-goog-user-project': 'project-alpha' } }), 403, 'PERMISSION_DENIED', /requires an API key/);

      // The list's final losses: for the caller's own jobs only; another project's job is as if absent.
      const side = created.json.metadata.tunedModel.split('/')[1];
      const asSide = { headers: { 'x-goog-user-project': 'side-project' } };
      await waitFor('the side project\'s run to end', async () => ((await api.req(`/v1/${created.json.name}`, asSide)).json.done ? true : undefined), { timeoutMs: 120_000, intervalMs: 300 });
      const own = await api.req(`/console/api/job-summaries?jobs=${side},99999`, asSide);
      assert.equal(own.status, 200, own.text);
      assert.equal(own.json.summaries.length, 1);
      assert.equal(own.json.summaries[0].job, side);
      assert.equal(typeof own.json.summaries[0].trainLoss, 'number');
      assert.deepEqual((await api.get(`/console/api/job-summaries?jobs=${side}`, 'project-alpha')).json, { summaries: [] });
      assert.deepEqual((await api.req(`/console/api/job-summaries?jobs=${side}`)).json, { summaries: [] });
      assertRpcError(await api.req('/console/api/job-summaries?jobs=../x'), 400, 'INVALID_ARGUMENT', /named by its number or its tuned model's id/);
      assertRpcError(await api.req(`/console/api/job-summaries?jobs=${Array.from({ length: 101 }, (_, i) => i + 1).join(',')}`), 400, 'INVALID_ARGUMENT', /At most 100 jobs/);
    });

    test('a bad key is still refused', async () => {
      assertRpcError(await api.req('/v1beta/tunedModels', { key: 'wrong' }), 400, 'INVALID_ARGUMENT', invalidKey);
    });
  });
});

// ---------------------------------------------------------------------------------------------------
// Isolation between projects

describe('isolation: a project cannot see or touch another project\'s tuned models', () => {
  const fixture = useServer({ projects: ['project-alpha', 'project-beta'] });
  const api = client(fixture);
  const id = 'alpha-model';
  let operation: Operation;

  test('setup: alpha creates tunedModels/alpha-model', async () => {
    operation = await api.create('project-alpha', { ...longRun, displayName: 'alpha model' }, { query: `?tunedModelId=${id}` });
    assert.equal(operation.metadata.tunedModel, `tunedModels/${id}`);
  });

  test('beta: get, patch, delete, cancel, generate, operations → 404, exactly as for a model that does not exist (AIP-193)', async () => {
    const opId = operation.name.split('/').at(-1);
    const attempts: [string, string, unknown?][] = [
      ['GET', `/v1beta/tunedModels/${id}`],
      ['GET', `/v1beta3/tunedModels/${id}`],
      ['PATCH', `/v1beta/tunedModels/${id}?updateMask=displayName`, { displayName: 'stolen' }],
      ['PATCH', `/v1beta/tunedModels/${id}`, { description: 'stolen' }],
      ['POST', `/v1beta/tunedModels/${id}:cancel`, {}],
      ['POST', `/v1/tunedModels/${id}/operations/${opId}:cancel`, {}],
      ['GET', `/v1/tunedModels/${id}/operations/${opId}`],
      ['GET', `/v1beta/tunedModels/${id}/operations/${opId}`],
      ['GET', `/v1/tunedModels/${id}/operations`],
      ['POST', `/v1beta/tunedModels/${id}:generateContent`, generateContentBody],
      ['POST', `/v1/tunedModels/${id}:generateContent`, generateContentBody],
      ['POST', `/v1beta/tunedModels/${id}:streamGenerateContent?alt=sse`, generateContentBody],
      ['POST', `/v1beta/tunedModels/${id}:streamGenerateContent`, generateContentBody],
      ['POST', `/v1beta/tunedModels/${id}:countTokens`, generateContentBody],
      ['POST', `/v1beta3/tunedModels/${id}:generateText`, { prompt: { text: 'twenty two' } }],
      ['DELETE', `/v1beta/tunedModels/${id}`],
    ];
    for (const [method, p, body] of attempts) {
      const r = await api.req(p, { method, key: api.keyOf('project-beta'), body });
      assertRpcError(r, 404, 'NOT_FOUND', doesNotExist(id));
    }
  });

  test('beta cannot tune from alpha\'s model either', async () => {
    const body = { ...tuningBody(shortRun), baseModel: undefined, tunedModelSource: { tunedModel: `tunedModels/${id}` } };
    assertRpcError(await api.post('/v1beta/tunedModels', 'project-beta', body), 404, 'NOT_FOUND', doesNotExist(id));
  });

  test('lists show only the caller\'s own models and operations', async () => {
    const own = await api.create('project-beta', { ...shortRun, displayName: 'beta model' });
    const betaList = await api.get('/v1beta/tunedModels', 'project-beta');
    assert.deepEqual(betaList.json.tunedModels.map((m: { name: string }) => m.name), [own.metadata.tunedModel]);
    const betaOps = await api.get('/v1/operations', 'project-beta');
    assert.equal(betaOps.status, 200, betaOps.text);
    assert.deepEqual(betaOps.json.operations.map((o: Operation) => o.name), [own.name]);
    const alphaList = await api.get('/v1beta/tunedModels?pageSize=100', 'project-alpha');
    assert.deepEqual(alphaList.json.tunedModels.map((m: { name: string }) => m.name), [`tunedModels/${id}`]);
    await api.del(`/v1beta/${own.metadata.tunedModel}`, 'project-beta');
  });

  test('missing models: 404 "Tuned model tunedModels/x does not exist."', async () => {
    const missing = 'no-such-model';
    const attempts: [string, string, unknown?][] = [
      ['GET', `/v1beta/tunedModels/${missing}`],
      ['PATCH', `/v1beta/tunedModels/${missing}?updateMask=displayName`, { displayName: 'x' }],
      ['DELETE', `/v1beta/tunedModels/${missing}`],
      ['POST', `/v1beta/tunedModels/${missing}:cancel`, {}],
      ['POST', `/v1beta/tunedModels/${missing}:generateContent`, generateContentBody],
      ['POST', `/v1beta/tunedModels/${missing}:streamGenerateContent?alt=sse`, generateContentBody],
      ['POST', `/v1beta3/tunedModels/${missing}:generateText`, { prompt: { text: 'x' } }],
      ['GET', `/v1/tunedModels/${missing}/operations/abc`],
    ];
    for (const [method, p, body] of attempts) {
      assertRpcError(await api.req(p, { method, key: api.keyOf('project-beta'), body }), 404, 'NOT_FOUND', doesNotExist(missing));
    }
  });

  test('alpha\'s model is untouched: same name, not renamed, not cancelled, not deleted', async () => {
    const got = await api.get(`/v1beta/tunedModels/${id}`, 'project-alpha');
    assert.equal(got.status, 200, got.text);
    assert.equal(got.json.displayName, 'alpha model');
    assert.equal(got.json.description, undefined);
    const op = await api.get(`/v1/${operation.name}`, 'project-alpha');
    assert.equal(op.status, 200, op.text);
    assert.equal(op.json.error, undefined, `not cancelled: ${op.text}`);
    assert.equal((await api.del(`/v1beta/tunedModels/${id}`, 'project-alpha')).status, 200);
  });
});

// ---------------------------------------------------------------------------------------------------
// Bad requests

describe('bad requests are answered with google.rpc errors and the server stays up', () => {
  const fixture = useServer({ projects: ['project-alpha'] });
  const api = client(fixture);
  const create = (body: unknown, query = '') => api.post(`/v1beta/tunedModels${query}`, 'project-alpha', body);
  const created: string[] = [];

  test('invalid JSON: 400 "Invalid JSON payload received. …"', async () => {
    for (const body of ['{"display_name": "x",', '{display_name: "x"}', 'not json', '{"a": 1}}']) {
      assertRpcError(await create(body), 400, 'INVALID_ARGUMENT', /^Invalid JSON payload received\./);
    }
  });

  test('a body that is not an object: 400', async () => {
    for (const body of ['[]', '"text"', 'null', '42']) assertRpcError(await create(body), 400, 'INVALID_ARGUMENT');
  });

  test('wrong types: epoch_count "five", temperature "hot", examples not a list: 400', async () => {
    const five = tuningBody(shortRun) as any;
    five.tuningTask.hyperparameters = { epoch_count: 'five' };
    assertRpcError(await create(five), 400, 'INVALID_ARGUMENT', /epoch_?count/i);
    assertRpcError(await create({ ...tuningBody(shortRun), temperature: 'hot' }), 400, 'INVALID_ARGUMENT', /temperature/i);
    const notList = tuningBody(shortRun) as any;
    notList.tuningTask.trainingData.examples.examples = 'a, b';
    assertRpcError(await create(notList), 400, 'INVALID_ARGUMENT');
  });

  test('out-of-range hyperparameters: 400', async () => {
    for (const h of [{ epochCount: 0 }, { epochCount: -1 }, { batchSize: 0 }, { learningRate: 0 }, { learningRateMultiplier: -2 }, { epochCount: 1.5 }]) {
      assertRpcError(await create(tuningBody({ ...shortRun, ...h })), 400, 'INVALID_ARGUMENT', undefined);
    }
  });

  test('learning_rate together with learning_rate_multiplier: 400', async () => {
    const body = tuningBody(shortRun) as any;
    body.tuningTask.hyperparameters = { learning_rate: 0.001, learning_rate_multiplier: 1.0 };
    assertRpcError(await create(body), 400, 'INVALID_ARGUMENT', /learning_?rate/i);
  });

  test('an unknown base model: 404 "… is not found for API version …"', async () => {
    const r = await create(tuningBody({ ...shortRun, baseModel: 'models/no-such-model-001' }));
    assertRpcError(r, 404, 'NOT_FOUND', /^models\/no-such-model-001 is not found for API version v1beta/);
    const palm = await api.post('/v1beta3/tunedModels', 'project-alpha', tuningBody({ ...shortRun, baseModel: 'models/no-such-model-001' }));
    assertRpcError(palm, 404, 'NOT_FOUND', /is not found for API version v1beta3/);
  });

  test('missing training examples: 400 that says the SDK drops them', async () => {
    const noData = { displayName: 'no data', baseModel: 'models/gemini-1.5-flash-001-tuning', tuningTask: { hyperparameters: { epochCount: 1 } } };
    const emptyList = tuningBody({ examples: [] });
    // What @google/genai sends in Gemini API mode: the examples are dropped, the rest is kept.
    const noTuningTask = { displayName: 'sdk', baseModel: 'models/gemini-1.5-flash-001-tuning' };
    for (const body of [noData, emptyList, noTuningTask]) {
      const r = await create(body);
      assertRpcError(r, 400, 'INVALID_ARGUMENT', /training example/);
      assert.match(r.json.error.message, /drop/, r.text);
      assert.match(r.json.error.message, /SDK|@google\/genai/, r.text);
    }
  });

  test('an example input over 40,000 characters: 400 naming the example', async () => {
    const examples = [...examplesOf(3), { textInput: 'x'.repeat(40_001), output: 'y' }, ...examplesOf(2)];
    const r = await create(tuningBody({ examples }));
    assertRpcError(r, 400, 'INVALID_ARGUMENT', /40,?000/);
    // The fourth example: index 3, or "example 4" counting from one.
    assert.match(r.json.error.message, /example[s]?\W*(4|\[3\])\b/i, r.text);
    // Exactly at the limit is accepted.
    const atLimit = await create(tuningBody({ examples: [{ textInput: 'x'.repeat(40_000), output: 'y' }], epochCount: 1 }));
    assert.equal(atLimit.status, 200, atLimit.text);
    created.push(atLimit.json.metadata.tunedModel);
  });

  test('an example output over 5,000 characters: 400 naming the example', async () => {
    const examples = [...examplesOf(1), { textInput: 'x', output: 'y'.repeat(5_001) }];
    const r = await create(tuningBody({ examples }));
    assertRpcError(r, 400, 'INVALID_ARGUMENT', /5,?000/);
    assert.match(r.json.error.message, /example[s]?\W*(2|\[1\])\b/i, r.text);
  });

  test('a malformed example: 400 naming the example', async () => {
    const r = await create(tuningBody({ examples: [...examplesOf(2), { question: 'what?' }] }));
    assertRpcError(r, 400, 'INVALID_ARGUMENT', /example[s]?\W*(3|\[2\])\b/i);
  });

  test('displayName over 40 characters: 400; exactly 40: accepted', async () => {
    assertRpcError(await create(tuningBody({ ...shortRun, displayName: 'd'.repeat(41) })), 400, 'INVALID_ARGUMENT', /40/);
    const ok = await create(tuningBody({ ...shortRun, epochCount: 1, displayName: 'd'.repeat(40) }));
    assert.equal(ok.status, 200, ok.text);
    created.push(ok.json.metadata.tunedModel);
  });

  test('sampling defaults out of range are refused on create and on patch: 400', async () => {
    // Google: temperature and top_p range over [0, 1] on a TunedModel (Attune's own generation accepts a
    // temperature up to 2); top_k counts tokens, so it is never negative.
    const wild = [{ temperature: -1 }, { temperature: 100 }, { topP: 7 }, { topP: -0.5 }, { topK: -3 }];
    for (const fields of wild) {
      const r = await create({ ...tuningBody({ ...shortRun, epochCount: 1 }), ...fields });
      if (r.status === 200) created.push(r.json.metadata.tunedModel); // keeps the final inventory exact
      assertRpcError(r, 400, 'INVALID_ARGUMENT', new RegExp(Object.keys(fields)[0].replace('P', '_?p').replace('K', '_?k'), 'i'));
    }
    const ok = await create(tuningBody({ ...shortRun, epochCount: 1 }));
    assert.equal(ok.status, 200, ok.text);
    const name = ok.json.metadata.tunedModel;
    created.push(name);
    for (const fields of wild) {
      const mask = Object.keys(fields)[0];
      const r = await api.patch(`/v1beta/${name}?updateMask=${mask}`, 'project-alpha', fields);
      assertRpcError(r, 400, 'INVALID_ARGUMENT');
    }
  });

  test('a bad tunedModelId: 400', async () => {
    for (const id of ['Upper-Case', '1starts-with-digit', 'ends-with-hyphen-', 'under_score', 'a'.repeat(41), 'sp%20ace']) {
      assertRpcError(await create(tuningBody(shortRun), `?tunedModelId=${id}`), 400, 'INVALID_ARGUMENT', undefined);
    }
  });

  test('a duplicate tunedModelId: 409 ALREADY_EXISTS', async () => {
    const first = await create(tuningBody({ ...shortRun, epochCount: 1 }), '?tunedModelId=twice');
    assert.equal(first.status, 200, first.text);
    created.push(first.json.metadata.tunedModel);
    assertRpcError(await create(tuningBody(shortRun), '?tunedModelId=twice'), 409, 'ALREADY_EXISTS', /tunedModels\/twice/);
  });

  test('a body over the 32 MiB requestBodyBytes limit: 413, with the limit in the message', { timeout: 120_000 }, async () => {
    const body = Buffer.alloc(64 * 1024 * 1024 + 1024, 'a');
    body.write('{"displayName":"', 0);
    body.write('"}', body.length - 2);
    const headers = { 'x-goog-api-key': api.keyOf('project-alpha'), 'content-type': 'application/json' };
    for (const chunked of [false, true]) {
      // A declared length over the limit is refused at once; a chunked body once the limit is passed.
      const pauseAfter = chunked ? 64 * 1024 * 1024 + 512 * 1024 : 256 * 1024;
      const r = await rawPost(`${fixture.url}/v1beta/tunedModels`, headers, body, { chunked, pauseAfter });
      assertRpcError(r, 413, 'INVALID_ARGUMENT', /^Request payload size exceeds the limit: 33554432 bytes \(the requestBodyBytes limit/);
    }
  });

  test('unknown routes: 404 JSON', async () => {
    const key = api.keyOf('project-alpha');
    for (const [method, p] of [
      ['GET', '/'],
      ['GET', '/v1beta/nothing'],
      ['GET', '/v2/tunedModels'],
      ['DELETE', '/v1beta/tunedModels'],
      ['POST', '/v1beta/tunedModels/x:frobnicate'],
      ['GET', '/v1beta/tunedModels/x/y/z'],
    ]) {
      assertRpcError(await api.req(p, { method, key, body: method === 'POST' ? {} : undefined }), 404, 'NOT_FOUND');
    }
  });

  test('bad list parameters: 400', async () => {
    assertRpcError(await api.get('/v1beta/tunedModels?pageSize=many', 'project-alpha'), 400, 'INVALID_ARGUMENT');
    assertRpcError(await api.get('/v1beta/tunedModels?pageToken=garbage', 'project-alpha'), 400, 'INVALID_ARGUMENT');
  });

  test('after all of them the server is up and serving', async () => {
    const health = await api.req('/healthz');
    assert.equal(health.status, 200, health.text);
    assert.ok(fixture.server.running, fixture.server.logs());
    const listed = await api.get('/v1beta/tunedModels?pageSize=50', 'project-alpha');
    assert.equal(listed.status, 200, listed.text);
    // Only the accepted creations exist; none of the refused ones left a model behind.
    assert.deepEqual(listed.json.tunedModels.map((m: { name: string }) => m.name).sort(), [...created].sort());
    assert.doesNotMatch(fixture.server.logs(), /unexpected error/, 'no request ended in an unexpected (500) error');
    for (const name of created) await api.del(`/v1beta/${name}`, 'project-alpha');
  });
});

// ---------------------------------------------------------------------------------------------------
// CRUD details

describe('tunedModels and operations: CRUD details', () => {
  const fixture = useServer({ projects: ['project-alpha', 'project-paging'] });
  const api = client(fixture);
  let long: Operation;

  test('create returns the Operation at once: name, @type, tunedModel, totalSteps = ceil(N×E/B), not done', async () => {
    const cases: [TuningOptions, number][] = [
      [{ examples: 15, epochCount: 3, batchSize: 2 }, 23],
      [{ examples: 15, epochCount: 5, batchSize: 2 }, 38],
      [{ examples: 7, epochCount: 1, batchSize: 4 }, 2],
      [{ examples: 8, epochCount: 2, batchSize: 4 }, 4],
      [{ examples: 3, epochCount: 1, batchSize: 16 }, 1],
      // Defaults: 5 epochs, batch 4 under 100 examples and 16 from 100 on (gemini-api.md §3.1).
      [{ examples: 15 }, Math.ceil((15 * 5) / 4)],
      [{ examples: 100 }, Math.ceil((100 * 5) / 16)],
    ];
    for (const [options, totalSteps] of cases) {
      const started = Date.now();
      const op = await api.create('project-alpha', { ...options, displayName: 'steps check' });
      assert.ok(Date.now() - started < 5_000, 'create answers before tuning');
      assert.match(op.name, /^tunedModels\/steps-check-[a-z0-9]+\/operations\/[a-z0-9]+$/);
      assert.equal(op.metadata['@type'], 'type.googleapis.com/google.ai.generativelanguage.v1beta.CreateTunedModelMetadata');
      assert.equal(op.metadata.tunedModel, op.name.split('/operations/')[0]);
      assert.equal(op.metadata.totalSteps, totalSteps, JSON.stringify(options));
      assert.equal(op.done, undefined);
      assert.equal(op.response, undefined);
      assert.equal(op.error, undefined);
      const model = await api.get(`/v1beta/${op.metadata.tunedModel}`, 'project-alpha');
      const h = model.json.tuningTask.hyperparameters;
      assert.equal(h.epochCount, options.epochCount ?? 5);
      assert.equal(h.batchSize, options.batchSize ?? (Number(options.examples) >= 100 ? 16 : 4));
      assert.equal((await api.del(`/v1beta/${op.metadata.tunedModel}`, 'project-alpha')).status, 200);
    }
  });

  test('PaLM v1beta3 create: v1beta3 type URL', async () => {
    const op = await api.create('project-alpha', { ...shortRun, baseModel: 'models/text-bison-001' }, { version: 'v1beta3' });
    assert.equal(op.metadata['@type'], 'type.googleapis.com/google.ai.generativelanguage.v1beta3.CreateTunedModelMetadata');
    await api.del(`/v1beta3/${op.metadata.tunedModel}`, 'project-alpha');
  });

  test('the tuned model is readable at once, in CREATING, with the request\'s fields', async () => {
    long = await api.create('project-alpha', {
      ...longRun,
      displayName: 'number generator model',
      description: 'counts',
      baseModel: 'models/gemini-1.0-pro-001',
      learningRate: 0.001,
    });
    const r = await api.get(`/v1beta/${long.metadata.tunedModel}`, 'project-alpha');
    assert.equal(r.status, 200, r.text);
    const m = r.json;
    assert.equal(m.name, long.metadata.tunedModel);
    assert.match(m.name, /^tunedModels\/number-generator-model-[a-z0-9]+$/);
    assert.equal(m.state, 'CREATING');
    assert.equal(m.baseModel, 'models/gemini-1.0-pro-001');
    assert.equal(m.displayName, 'number generator model');
    assert.equal(m.description, 'counts');
    assert.match(m.createTime, rfc3339);
    assert.match(m.updateTime, rfc3339);
    assert.deepEqual(m.tuningTask.hyperparameters, { epochCount: 1000, batchSize: 1, learningRate: 0.001 });
    assert.equal(m.tuningTask.snapshots, undefined, 'snapshots are on the operation while tuning');
    // gemini-1.0-pro-001's tuned models started with temperature 0.9, top_p 1, top_k 1.
    assert.deepEqual([m.temperature, m.topP, m.topK], [0.9, 1, 1]);
    const v1beta3 = await api.get(`/v1beta3/${long.metadata.tunedModel}`, 'project-alpha');
    assert.equal(v1beta3.status, 200, v1beta3.text);
    assert.equal(v1beta3.json.name, m.name);
  });

  test('learning_rate_multiplier is kept as given', async () => {
    const op = await api.create('project-alpha', { ...shortRun, learningRateMultiplier: 2 });
    const m = await api.get(`/v1beta/${op.metadata.tunedModel}`, 'project-alpha');
    assert.equal(m.json.tuningTask.hyperparameters.learningRateMultiplier, 2);
    assert.equal(m.json.tuningTask.hyperparameters.learningRate, undefined);
    await api.del(`/v1beta/${op.metadata.tunedModel}`, 'project-alpha');
  });

  test('tuned_model_id (snake_case) and tunedModelId (camelCase) name the model', async () => {
    for (const [param, id] of [['tuned_model_id', 'snake-id'], ['tunedModelId', 'camel-id']]) {
      const op = await api.create('project-alpha', shortRun, { query: `?${param}=${id}` });
      assert.equal(op.metadata.tunedModel, `tunedModels/${id}`);
      assert.match(op.name, new RegExp(`^tunedModels/${id}/operations/[a-z0-9]+$`));
      assert.equal((await api.get(`/v1beta/tunedModels/${id}`, 'project-alpha')).status, 200);
      await api.del(`/v1beta/tunedModels/${id}`, 'project-alpha');
    }
  });

  test('snake_case request bodies with trailing commas are read as camelCase', async () => {
    const body = `{"display_name": "snake body", "base_model": "models/gemini-1.5-flash-001-tuning",
      "tuning_task": {"hyperparameters": {"batch_size": 2, "epoch_count": 1,},
      "training_data": {"examples": {"examples": [{"text_input": "1", "output": "2",},]}}},}`;
    const r = await api.post('/v1beta/tunedModels', 'project-alpha', body);
    assert.equal(r.status, 200, r.text);
    assert.equal(r.json.metadata.totalSteps, 1);
    const m = await api.get(`/v1beta/${r.json.metadata.tunedModel}`, 'project-alpha');
    assert.equal(m.json.displayName, 'snake body');
    assert.deepEqual(m.json.tuningTask.hyperparameters, { epochCount: 1, batchSize: 2, learningRate: m.json.tuningTask.hyperparameters.learningRate });
    await api.del(`/v1beta/${r.json.metadata.tunedModel}`, 'project-alpha');
  });

  test('list paging: pageSize, opaque nextPageToken, omitted on the last page; page_size works too', async () => {
    const names: string[] = [];
    for (let i = 0; i < 5; i++) {
      const op = await api.create('project-paging', { examples: 1, epochCount: 1, displayName: `paged ${i}` });
      names.push(op.metadata.tunedModel);
    }
    const seen: string[] = [];
    const tokens: string[] = [];
    let token: string | undefined;
    let pages = 0;
    do {
      const r = await api.get(`/v1beta/tunedModels?pageSize=2${token ? `&pageToken=${encodeURIComponent(token)}` : ''}`, 'project-paging');
      assert.equal(r.status, 200, r.text);
      pages++;
      const page = r.json.tunedModels.map((m: { name: string }) => m.name);
      assert.ok(page.length <= 2, r.text);
      seen.push(...page);
      token = r.json.nextPageToken;
      if (token !== undefined) {
        assert.equal(typeof token, 'string');
        assert.ok(token.length > 0);
        assert.doesNotMatch(token, /^\d+$/, 'the token is opaque, not an offset');
        tokens.push(token);
      } else {
        assert.ok(!('nextPageToken' in r.json), `nextPageToken omitted on the last page: ${r.text}`);
      }
    } while (token && pages < 10);
    assert.equal(pages, 3);
    // Every model exactly once. (Oldest first; models created in the same millisecond may come in either order.)
    assert.deepEqual([...seen].sort(), [...names].sort());
    assert.equal(new Set(seen).size, seen.length);
    assert.equal(new Set(tokens).size, tokens.length);

    const snake = await api.get('/v1beta/tunedModels?page_size=3', 'project-paging');
    assert.equal(snake.json.tunedModels.length, 3);
    const snakeNext = await api.get(`/v1beta/tunedModels?page_size=3&page_token=${encodeURIComponent(snake.json.nextPageToken)}`, 'project-paging');
    assert.deepEqual(
      [...snake.json.tunedModels, ...snakeNext.json.tunedModels].map((m: { name: string }) => m.name).sort(),
      [...names].sort(),
    );
    assert.equal(snakeNext.json.nextPageToken, undefined);

    const all = await api.get('/v1beta/tunedModels', 'project-paging');
    assert.deepEqual(all.json.tunedModels.map((m: { name: string }) => m.name), seen, 'the default page holds all five, in the same order');
    assert.equal(all.json.nextPageToken, undefined);
    for (const name of names) await api.del(`/v1beta/${name}`, 'project-paging');
  });

  test('deleting models while paging does not make the next page skip any (a list-and-delete cleanup loop)', async () => {
    const names: string[] = [];
    for (let i = 0; i < 6; i++) names.push((await api.create('project-paging', { examples: 1, epochCount: 1, displayName: `cleanup ${i}` })).metadata.tunedModel);
    const deleted: string[] = [];
    let token: string | undefined;
    for (let pages = 0; pages < 10; pages++) {
      const r = await api.get(`/v1beta/tunedModels?pageSize=2${token ? `&pageToken=${encodeURIComponent(token)}` : ''}`, 'project-paging');
      assert.equal(r.status, 200, r.text);
      for (const m of r.json.tunedModels ?? []) {
        assert.equal((await api.del(`/v1beta/${m.name}`, 'project-paging')).status, 200);
        deleted.push(m.name);
      }
      token = r.json.nextPageToken;
      if (!token) break;
    }
    const left = await api.get('/v1beta/tunedModels', 'project-paging');
    const leftNames = (left.json.tunedModels ?? []).map((m: { name: string }) => m.name);
    for (const name of leftNames) await api.del(`/v1beta/${name}`, 'project-paging');
    assert.deepEqual(leftNames, [], `paging skipped models that were never listed; listed and deleted: ${deleted.join(', ')}`);
    assert.deepEqual([...deleted].sort(), [...names].sort());
  });

  test('a JSON body sent the way curl -d sends it (application/x-www-form-urlencoded) is read as JSON', async () => {
    const r = await api.post('/v1beta/tunedModels', 'project-alpha', JSON.stringify(tuningBody({ ...shortRun, epochCount: 1 })), {
      headers: { 'content-type': 'application/x-www-form-urlencoded' },
    });
    assert.equal(r.status, 200, r.text);
    await api.del(`/v1beta/${r.json.metadata.tunedModel}`, 'project-alpha');
  });

  test('patch with updateMask changes only the masked fields', async () => {
    const name = long.metadata.tunedModel;
    const before = (await api.get(`/v1beta/${name}`, 'project-alpha')).json;
    await sleep(5);
    const r = await api.patch(`/v1beta/${name}?updateMask=displayName,description,temperature`, 'project-alpha', {
      displayName: 'renamed',
      description: 'patched',
      temperature: 0.5,
      topK: 7,
    });
    assert.equal(r.status, 200, r.text);
    assert.equal(r.json.displayName, 'renamed');
    assert.equal(r.json.description, 'patched');
    assert.equal(r.json.temperature, 0.5);
    assert.equal(r.json.topK, before.topK, 'topK is not in the mask');
    assert.equal(r.json.createTime, before.createTime);
    assert.ok(r.json.updateTime > before.updateTime, `updateTime moves: ${before.updateTime} → ${r.json.updateTime}`);
    const got = (await api.get(`/v1beta/${name}`, 'project-alpha')).json;
    assert.deepEqual([got.displayName, got.description, got.temperature, got.topK], ['renamed', 'patched', 0.5, before.topK]);

    const snake = await api.patch(`/v1beta/${name}?update_mask=display_name,top_p`, 'project-alpha', { display_name: 'snake', top_p: 0.5 });
    assert.equal(snake.status, 200, snake.text);
    assert.equal(snake.json.displayName, 'snake');
    assert.equal(snake.json.topP, 0.5);
  });

  test('patch without a mask updates the fields present in the body', async () => {
    const name = long.metadata.tunedModel;
    const r = await api.patch(`/v1beta/${name}`, 'project-alpha', { description: 'no mask' });
    assert.equal(r.status, 200, r.text);
    assert.equal(r.json.description, 'no mask');
    assert.equal(r.json.displayName, 'snake');
    assert.equal(r.json.temperature, 0.5);
    // A whole model sent back (as old SDKs do): output-only fields are ignored.
    const whole = (await api.get(`/v1beta/${name}`, 'project-alpha')).json;
    const again = await api.patch(`/v1beta/${name}`, 'project-alpha', { ...whole, displayName: 'whole model' });
    assert.equal(again.status, 200, again.text);
    assert.equal(again.json.displayName, 'whole model');
    assert.equal(again.json.state, whole.state);
    assert.equal(again.json.createTime, whole.createTime);
    assert.equal(again.json.baseModel, whole.baseModel);
  });

  test('patch errors: a path that cannot be updated, a displayName over 40 characters', async () => {
    const name = long.metadata.tunedModel;
    assertRpcError(await api.patch(`/v1beta/${name}?updateMask=baseModel`, 'project-alpha', { baseModel: 'models/x' }), 400, 'INVALID_ARGUMENT');
    assertRpcError(await api.patch(`/v1beta/${name}?updateMask=displayName`, 'project-alpha', { displayName: 'x'.repeat(41) }), 400, 'INVALID_ARGUMENT');
  });

  test('operations: get on v1 and v1beta, list per model, list per project, unknown operation 404', async () => {
    const opId = long.name.split('/').at(-1)!;
    for (const version of ['v1', 'v1beta']) {
      const r = await api.get(`/${version}/${long.name}`, 'project-alpha');
      assert.equal(r.status, 200, r.text);
      assert.equal(r.json.name, long.name);
      assert.equal(r.json.metadata['@type'], long.metadata['@type']);
      assert.equal(r.json.metadata.tunedModel, long.metadata.tunedModel);
      assert.equal(r.json.metadata.totalSteps, longRunSteps);
      assert.equal(r.json.done, undefined);
      const list = await api.get(`/${version}/${long.metadata.tunedModel}/operations`, 'project-alpha');
      assert.equal(list.status, 200, list.text);
      assert.deepEqual(list.json.operations.map((o: Operation) => o.name), [long.name]);
    }
    const projectOps = await api.get('/v1/operations', 'project-alpha');
    assert.equal(projectOps.status, 200, projectOps.text);
    assert.ok(projectOps.json.operations.some((o: Operation) => o.name === long.name), projectOps.text);
    assertRpcError(await api.get(`/v1/${long.metadata.tunedModel}/operations/${opId}x`, 'project-alpha'), 404, 'NOT_FOUND');
  });

  test('$alt=json;enum-encoding=int gives integer states', async () => {
    const model = await api.get(`/v1beta/${long.metadata.tunedModel}?$alt=json;enum-encoding=int`, 'project-alpha');
    assert.equal(model.status, 200, model.text);
    assert.equal(model.json.state, 1, 'CREATING is 1');
    const list = await api.get('/v1beta/tunedModels?$alt=json;enum-encoding=int', 'project-alpha');
    assert.ok(list.json.tunedModels.every((m: { state: unknown }) => typeof m.state === 'number'), list.text);
    const named = await api.get(`/v1beta/${long.metadata.tunedModel}`, 'project-alpha');
    assert.equal(named.json.state, 'CREATING');
  });

  test('delete returns {} and a later GET is 404', async () => {
    const name = long.metadata.tunedModel;
    const r = await api.del(`/v1beta/${name}`, 'project-alpha');
    assert.equal(r.status, 200, r.text);
    assert.deepEqual(r.json, {});
    assertRpcError(await api.get(`/v1beta/${name}`, 'project-alpha'), 404, 'NOT_FOUND', doesNotExist(name.split('/')[1]));
    assertRpcError(await api.get(`/v1/${long.name}`, 'project-alpha'), 404, 'NOT_FOUND');
    assertRpcError(await api.del(`/v1beta/${name}`, 'project-alpha'), 404, 'NOT_FOUND');
    const list = await api.get('/v1beta/tunedModels', 'project-alpha');
    assert.ok(!(list.json.tunedModels ?? []).some((m: { name: string }) => m.name === name));
  });
});

// ---------------------------------------------------------------------------------------------------
// Tuning runs: progress, snapshots, generation, cancellation (needs the job scheduler and serving)

describe('tuning runs: snapshots, generation and cancellation', () => {
  const fixture = useServer({ projects: ['project-alpha', 'project-beta'] });
  const api = client(fixture);
  let finished: Operation;

  test('a run reaches ACTIVE; snapshots have step, epoch = floor(step×batch/N) (omitted when 0), meanLoss, computeTime', { timeout: 240_000 }, async () => {
    const created = await api.create('project-alpha', { ...shortRun, displayName: 'short run' });
    assert.equal(created.metadata.totalSteps, 8);
    finished = await api.waitDone('project-alpha', created.name);
    assert.equal(finished.error, undefined, JSON.stringify(finished));
    assert.equal(finished.response['@type'], 'type.googleapis.com/google.ai.generativelanguage.v1beta.TunedModel');
    assert.equal(finished.response.name, created.metadata.tunedModel);
    assert.equal(finished.response.state, 'ACTIVE');
    assert.equal(finished.metadata.completedSteps, 8);
    assert.equal(finished.metadata.completedPercent, 100);

    const snapshots = finished.metadata.snapshots!;
    assert.deepEqual(snapshots.map((s) => s.step), [1, 2, 3, 4, 5, 6, 7, 8]);
    for (const s of snapshots) {
      const epoch = Math.floor((s.step * 2) / 5);
      if (epoch === 0) assert.ok(!('epoch' in s), `step ${s.step}: epoch 0 is omitted: ${JSON.stringify(s)}`);
      else assert.equal(s.epoch, epoch, `step ${s.step}: ${JSON.stringify(s)}`);
      assert.equal(typeof s.meanLoss, 'number');
      assert.ok(Number.isFinite(s.meanLoss));
      assert.match(s.computeTime, rfc3339);
      assert.deepEqual(Object.keys(s).sort(), ['computeTime', 'meanLoss', 'step', ...(epoch ? ['epoch'] : [])].sort());
    }

    const model = await api.get(`/v1beta/${created.metadata.tunedModel}`, 'project-alpha');
    assert.equal(model.json.state, 'ACTIVE');
    assert.deepEqual(model.json.tuningTask.snapshots, snapshots, 'the model lists the snapshots once tuning is over');
    assert.match(model.json.tuningTask.startTime, rfc3339);
    assert.match(model.json.tuningTask.completeTime, rfc3339);
    assert.ok(model.json.tuningTask.startTime <= model.json.tuningTask.completeTime);
    const asInt = await api.get(`/v1beta/${created.metadata.tunedModel}?$alt=json;enum-encoding=int`, 'project-alpha');
    assert.equal(asInt.json.state, 2, 'ACTIVE is 2');
    const opAsInt = await api.get(`/v1/${created.name}?$alt=json;enum-encoding=int`, 'project-alpha');
    assert.equal(opAsInt.json.response.state, 2);
  });

  test('the owner can generateContent (v1beta, v1) and generateText (v1beta3); another project gets 404', { timeout: 120_000 }, async () => {
    const name = finished.response.name as string;
    for (const version of ['v1beta', 'v1']) {
      const r = await api.post(`/${version}/${name}:generateContent`, 'project-alpha', generateContentBody);
      assert.equal(r.status, 200, r.text);
      assert.equal(r.json.candidates[0].content.role, 'model');
      assert.equal(typeof r.json.candidates[0].content.parts[0].text, 'string');
    }
    const text = await api.post(`/v1beta3/${name}:generateText`, 'project-alpha', { prompt: { text: 'twenty two' }, candidate_count: 2 });
    assert.equal(text.status, 200, text.text);
    assert.equal(text.json.candidates.length, 2, text.text);
    assertRpcError(await api.post(`/v1beta/${name}:generateContent`, 'project-beta', generateContentBody), 404, 'NOT_FOUND', doesNotExist(name.split('/')[1]!));
  });

  test(':cancel on the operation (v1) ends it: done, error.code 1', { timeout: 240_000 }, async () => {
    const op = await api.create('project-alpha', { ...longRun, displayName: 'cancel me' });
    const r = await api.post(`/v1/${op.name}:cancel`, 'project-alpha', {});
    assert.equal(r.status, 200, r.text);
    assert.deepEqual(r.json, {});
    const done = await api.waitDone('project-alpha', op.name, 120_000);
    assert.equal(done.error?.code, 1, JSON.stringify(done));
    assert.equal(done.response, undefined);
    const model = await api.get(`/v1beta/${op.metadata.tunedModel}`, 'project-alpha');
    assert.ok(['FAILED', 'ACTIVE'].includes(model.json.state), model.text);
    await api.del(`/v1beta/${op.metadata.tunedModel}`, 'project-alpha');
  });

  test('tunedModels/x:cancel ends the operation the same way, also for a run still queued', { timeout: 240_000 }, async () => {
    const running = await api.create('project-alpha', { ...longRun, displayName: 'running' });
    const queued = await api.create('project-alpha', { ...longRun, displayName: 'queued' });
    for (const op of [queued, running]) {
      const r = await api.post(`/v1beta/${op.metadata.tunedModel}:cancel`, 'project-alpha', {});
      assert.equal(r.status, 200, r.text);
      assert.deepEqual(r.json, {});
    }
    for (const op of [queued, running]) {
      const done = await api.waitDone('project-alpha', op.name, 120_000);
      assert.equal(done.error?.code, 1, JSON.stringify(done));
    }
    // With one job at a time, the second run never started: nothing to keep, so it FAILED.
    const queuedModel = await api.get(`/v1beta/${queued.metadata.tunedModel}`, 'project-alpha');
    assert.equal(queuedModel.json.state, 'FAILED', queuedModel.text);
    for (const op of [queued, running]) await api.del(`/v1beta/${op.metadata.tunedModel}`, 'project-alpha');
  });

  test('after cancellations the next run still trains', { timeout: 240_000 }, async () => {
    const op = await api.create('project-beta', { examples: 2, epochCount: 1, batchSize: 2 });
    const done = await api.waitDone('project-beta', op.name);
    assert.equal(done.response?.state, 'ACTIVE', JSON.stringify(done));
  });
});

// ---------------------------------------------------------------------------------------------------

describe('shutdown', () => {
  test('SIGTERM stops the server cleanly (exit 0)', { timeout: 120_000 }, async () => {
    const server = await AttuneServer.start();
    const key = await server.createKey('project-alpha');
    const op = await call(`${server.url}/v1beta/tunedModels`, { method: 'POST', key, body: tuningBody(longRun) });
    assert.equal(op.status, 200, op.text);
    await sleep(500);
    const exit = await server.stop();
    assert.deepEqual(exit, { code: 0, signal: null }, server.logs());
  });
});
