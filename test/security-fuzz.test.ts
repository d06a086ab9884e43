// Issue 9: 10,000 generated malformed requests (fast-check, fixed seed) across every route of a real
// `attune serve` with keys, and 2,000 more against a keyless one. Every answer must be below 500, and a
// google.rpc error body when it is an error; the server must not die; /healthz must keep answering. A
// failure prints the shrunk request (fast-check's counterexample) with the answer it got.
//
// Requests are mostly shaped like the real ones (known routes, field names, plausible and implausible
// values, snake_case, trailing commas) with random parts, so they reach past the router and the parsers into
// the handlers; some are plain noise. Each property run sends a batch concurrently, as clients do.
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import http from 'node:http';
import fc from 'fast-check';
import { call, sleep, useServer, waitFor, type ServerFixture } from './helpers/server.js';

const seed = 20260901;
const alpha = 'fuzz-alpha';
const beta = 'fuzz-beta';

interface FuzzRequest {
  method: string;
  path: string;
  headers: Record<string, string>;
  /** base64 when binary. */
  body?: string;
  binary?: boolean;
}

interface Answer {
  status: number;
  contentType: string;
  text: string;
}

/** What the fixture knows once it is set up: real ids, so requests reach real resources too. */
interface World {
  keys: Record<string, string>;
  tunedModelId: string;
  jobNumber: string;
  operationId: string;
}

// ---------------------------------------------------------------------------------------------------
// Generators

const fieldNames = [
  'displayName', 'display_name', 'description', 'baseModel', 'base_model', 'tuningTask', 'hyperparameters', 'epochCount', 'epoch_count',
  'batchSize', 'learningRate', 'learningRateMultiplier', 'trainingData', 'examples', 'textInput', 'text_input', 'output', 'contents',
  'parts', 'text', 'role', 'generationConfig', 'temperature', 'topP', 'topK', 'maxOutputTokens', 'candidateCount', 'stopSequences',
  'seed', 'systemInstruction', 'supervisedTuningSpec', 'trainingDatasetUri', 'validationDatasetUri', 'hyperParameters', 'adapterSize',
  'tunedModelDisplayName', 'labels', 'prompt', 'generateContentRequest', 'tools', 'cachedContent', 'responseMimeType', 'responseSchema',
  'name', 'contentType', 'tunedModelSource', 'tunedModel', 'preTunedModel', 'tunedModelName', 'messages', 'content', 'thought',
  'inlineData', 'constructor', '__proto__', 'toString', 'hasOwnProperty', '',
];

const longText = 'x'.repeat(41_000);
const text = fc.oneof(
  { weight: 3, arbitrary: fc.string({ maxLength: 24 }) },
  fc.constantFrom('', '1', 'twenty two', 'Once upon a time', '\u0000', '\ud800', '💥', 'models/stories260K', 'gs://fuzz-data/train.jsonl', longText),
  fc.string({ unit: 'binary', maxLength: 12 }),
);
const number = fc.oneof(
  fc.constantFrom(-1, 0, 1, 2, 0.5, 1e-300, 1e-45, 1e308, -1e308, 2 ** 31, 2 ** 53 + 2, 1e30),
  fc.double({ noNaN: true, noDefaultInfinity: true }),
  fc.integer({ min: -5, max: 40 }),
);
const scalar = fc.oneof(text, number, fc.boolean(), fc.constant(null), number.map(String));

const { value: anyJson } = fc.letrec<{ value: unknown; array: unknown[]; object: Record<string, unknown> }>((tie) => ({
  value: fc.oneof({ depthSize: 'small', withCrossShrink: true }, scalar, tie('array'), tie('object')),
  array: fc.array(tie('value'), { maxLength: 4 }),
  object: fc.dictionary(fc.oneof(fc.constantFrom(...fieldNames), fc.string({ maxLength: 8 })), tie('value'), { maxKeys: 5 }),
}));

/** A field's value: usually plausible, sometimes anything. */
const either = <T>(plausible: fc.Arbitrary<T>) => fc.oneof({ weight: 3, arbitrary: plausible }, { weight: 1, arbitrary: anyJson });
const part = either(fc.record({ text }, { requiredKeys: [] }));
const content = either(fc.record({ role: either(fc.constantFrom('user', 'model', 'USER', 'system', '')), parts: either(fc.array(part, { maxLength: 3 })) }, { requiredKeys: [] }));
const generationConfig = either(
  fc.record(
    {
      temperature: either(number), topP: either(number), topK: either(number), maxOutputTokens: either(fc.constantFrom(-1, 0, 1, 3, 8, 1e9)),
      candidateCount: either(fc.constantFrom(0, 1, 2, 9)), stopSequences: either(fc.array(text, { maxLength: 6 })), seed: either(number),
      responseMimeType: either(fc.constantFrom('text/plain', 'application/json')),
    },
    { requiredKeys: [] },
  ),
);
const generateBody = fc.record(
  { contents: either(fc.array(content, { maxLength: 3 })), systemInstruction: either(content), generationConfig, tools: anyJson, generateContentRequest: anyJson },
  { requiredKeys: [] },
);
const example = either(fc.record({ textInput: text, output: text }, { requiredKeys: [] }));
const hyperparameters = either(
  fc.record(
    { epochCount: either(fc.constantFrom(-1, 0, 1, 2, 1e9)), batchSize: either(fc.constantFrom(-1, 0, 1, 2, 1e9)), learningRate: either(number), learningRateMultiplier: either(number), adapterSize: either(fc.constantFrom('ADAPTER_SIZE_FOUR', 'ADAPTER_SIZE_SIXTEEN', 3, 'x')) },
    { requiredKeys: [] },
  ),
);
const baseModel = either(fc.constantFrom('models/gemini-1.5-flash-001-tuning', 'models/stories260K', 'gemini-2.5-flash', 'models/nope', '', '../../etc', 'models/'));
const tuningBody = fc.record(
  {
    displayName: either(text), description: either(text), baseModel, temperature: either(number), topK: either(number),
    tuningTask: either(fc.record({ hyperparameters, trainingData: either(fc.record({ examples: either(fc.record({ examples: either(fc.array(example, { maxLength: 3 })) })) })) }, { requiredKeys: [] })),
    tunedModelSource: either(fc.record({ tunedModel: text })),
  },
  { requiredKeys: [] },
);
const datasetUri = either(fc.constantFrom('gs://fuzz-data/train.jsonl', 'gs://fuzz-data/missing.jsonl', 'gs://other/train.jsonl', 'gs://', 'gs://b/../x', '/etc/passwd', 'file:///dev/zero', '/dev/zero', 'http://x/y', 'gs://fuzz-data/'));
const vertexJobBody = fc.record(
  {
    baseModel, tunedModelDisplayName: either(text), description: either(text), labels: either(fc.dictionary(fc.constantFrom('team', 'constructor', '__proto__', 'a'), text, { maxKeys: 2 })),
    supervisedTuningSpec: either(fc.record({ trainingDatasetUri: datasetUri, validationDatasetUri: datasetUri, hyperParameters: hyperparameters }, { requiredKeys: [] })),
    preTunedModel: either(fc.record({ tunedModelName: text })),
  },
  { requiredKeys: [] },
);
const textBody = fc.record({ prompt: either(fc.record({ text }, { requiredKeys: [] })), temperature: either(number), candidateCount: either(number) }, { requiredKeys: [] });

type BodyKind = 'tuning' | 'vertexJob' | 'generate' | 'text' | 'patch' | 'empty' | 'upload' | 'none';

const jsonBodies: Record<Exclude<BodyKind, 'upload' | 'none'>, fc.Arbitrary<unknown>> = {
  tuning: tuningBody,
  vertexJob: vertexJobBody,
  generate: generateBody,
  text: textBody,
  patch: fc.record({ displayName: either(text), description: either(text), temperature: either(number), topP: either(number), topK: either(number) }, { requiredKeys: [] }),
  empty: fc.oneof(fc.constant({}), anyJson),
};

const snakeKeys = (json: string) => json.replace(/"([a-z]+)([A-Z][A-Za-z]*)":/g, (_m, head: string, tail: string) => `"${head}${tail.replace(/[A-Z]/g, (c) => `_${c.toLowerCase()}`)}":`);
const trailingCommas = (json: string) => json.replace(/([^[{,])([}\]])/g, '$1,$2');

/** Serialised JSON, possibly in snake_case, with trailing commas, truncated, or deeply nested. */
const serialised = (value: fc.Arbitrary<unknown>) =>
  fc.tuple(value, fc.constantFrom('plain', 'plain', 'snake', 'commas', 'truncated', 'wrapped')).map(([v, style]) => {
    const json = JSON.stringify(v) ?? 'null';
    if (style === 'snake') return snakeKeys(json);
    if (style === 'commas') return trailingCommas(json);
    if (style === 'truncated') return json.slice(0, Math.max(1, Math.floor(json.length / 2)));
    if (style === 'wrapped') return `[${json}]`;
    return json;
  });

const noise = fc.oneof(
  fc.string({ maxLength: 64 }),
  fc.constantFrom('', '{', '}', '[1,,]', '{"a":1,,}', 'null', 'true', '"str"', '1e999', '{"__proto__": {"polluted": 1}}', '{"constructor": {"prototype": {}}}'),
  fc.integer({ min: 100, max: 20_000 }).map((depth) => '['.repeat(depth) + ']'.repeat(depth)),
  fc.integer({ min: 100, max: 5_000 }).map((depth) => '{"a":'.repeat(depth) + '1' + '}'.repeat(depth)),
  fc.integer({ min: 1_000, max: 200_000 }).map((n) => `{"displayName": "${'a'.repeat(n)}"}`),
);

const boundary = 'fuzz-boundary';
const uploadBody = fc.oneof(
  fc.tuple(serialised(fc.record({ name: either(fc.constantFrom('train.jsonl', 'a/b.jsonl', '../x', '.meta', '', 'x'.repeat(300))), contentType: either(text) }, { requiredKeys: [] })), fc.string({ maxLength: 40 })).map(
    ([metadata, data]) => `--${boundary}\r\nContent-Type: application/json\r\n\r\n${metadata}\r\n--${boundary}\r\nContent-Type: application/jsonl\r\n\r\n${data}\r\n--${boundary}--\r\n`,
  ),
  fc.constantFrom('{"text_input": "1", "output": "2"}\n', `--${boundary}\r\n\r\n--${boundary}--`, `--${boundary}`, ''),
  fc.string({ maxLength: 80 }),
);

const contentTypes = fc.constantFrom(
  'application/json', 'application/json', 'application/json; charset=utf-8', 'text/plain', 'application/x-www-form-urlencoded',
  `multipart/form-data; boundary=${boundary}`, `multipart/related; boundary=${boundary}`, 'multipart/related', 'application/jsonl',
  'application/octet-stream', 'text/html', 'garbage', 'application/vnd.x+json', '',
);

const versions = fc.constantFrom('v1', 'v1beta', 'v1beta3', 'v1beta1', 'v2', 'V1', '');
const vertexVersions = fc.constantFrom('v1', 'v1beta1', 'v1beta1', 'v1', 'v1beta');

/** A path segment: real ids, tricky names, random text (percent-encoded), or very long. */
const segment = (world: World) =>
  fc.oneof(
    { weight: 4, arbitrary: fc.constantFrom(world.tunedModelId, world.jobNumber, 'stories260K', 'gemini-1.5-flash-001-tuning', 'no-such-model', '1234567890123456789') },
    { weight: 2, arbitrary: fc.constantFrom('..', '.', '%2e%2e', '%2F', '%00', '%zz', 'a%20b', 'a:b:c', ':', '', 'constructor', '__proto__', '-1', '1e309', `${world.jobNumber}@1`, `${world.jobNumber}@x`) },
    { weight: 2, arbitrary: fc.string({ maxLength: 16 }).map(encodeURIComponent) },
    { weight: 1, arbitrary: fc.string({ minLength: 200, maxLength: 600 }).map(encodeURIComponent) },
  );

const verbs = fc.constantFrom(
  'generateContent', 'streamGenerateContent', 'countTokens', 'computeTokens', 'generateText', 'countTextTokens', 'cancel', 'transferOwnership', 'frobnicate', '', 'generateContent:x',
);

interface Route {
  method: string;
  path: string;
  body: BodyKind;
}

function routes(world: World): fc.Arbitrary<Route> {
  const s = segment(world);
  const project = fc.constantFrom(alpha, beta, 'local', 'Bad_Project', '', 'x'.repeat(40));
  const location = fc.constantFrom('us-central1', 'europe-west4', '', '..');
  const route = (method: string, body: BodyKind, ...parts: fc.Arbitrary<string>[]) =>
    fc.tuple(...parts).map((p) => ({ method, path: p.join(''), body }));
  const c = fc.constant;
  const parent = fc.tuple(vertexVersions, project, location).map(([v, p, l]) => `/${v}/projects/${p}/locations/${l}`);
  return fc.oneof(
    // Gemini API
    route('GET', 'none', c('/'), versions, c('/tunedModels')),
    route('POST', 'tuning', c('/'), versions, c('/tunedModels')),
    route('GET', 'none', c('/'), versions, c('/tunedModels/'), s),
    route('PATCH', 'patch', c('/'), versions, c('/tunedModels/'), s),
    route('DELETE', 'none', c('/'), versions, c('/tunedModels/'), s),
    route('POST', 'generate', c('/'), versions, c('/tunedModels/'), s, c(':'), verbs),
    route('POST', 'text', c('/'), versions, c('/tunedModels/'), s, c(':generateText')),
    route('GET', 'none', c('/'), versions, c('/models')),
    route('GET', 'none', c('/'), versions, c('/models/'), s),
    route('POST', 'generate', c('/'), versions, c('/models/'), s, c(':'), verbs),
    route('GET', 'none', c('/'), versions, c('/tunedModels/'), s, c('/operations')),
    route('GET', 'none', c('/'), versions, c('/tunedModels/'), s, c('/operations/'), fc.constantFrom(world.operationId, 'nope', '')),
    route('POST', 'empty', c('/'), versions, c('/tunedModels/'), s, c('/operations/'), fc.constantFrom(world.operationId, 'nope'), c(':'), verbs),
    route('GET', 'none', c('/'), versions, c('/tunedModels/'), s, c('/permissions'), fc.constantFrom('', '?pageSize=1', '?pageToken=x', '?pageSize=-1')),
    route('POST', 'patch', c('/'), versions, c('/tunedModels/'), s, c('/permissions')),
    route('GET', 'none', c('/'), versions, c('/tunedModels/'), s, c('/permissions/'), fc.oneof(s, fc.constantFrom('everyone', '123456789012'))),
    route('PATCH', 'patch', c('/'), versions, c('/tunedModels/'), s, c('/permissions/'), fc.oneof(s, fc.constantFrom('everyone')), fc.constantFrom('', '?updateMask=role', '?updateMask=email_address')),
    route('DELETE', 'none', c('/'), versions, c('/tunedModels/'), s, c('/permissions/'), fc.oneof(s, fc.constantFrom('everyone'))),
    route('GET', 'none', c('/v1/operations')),
    route('DELETE', 'none', c('/v1/operations/'), fc.constantFrom(`tunedModels/${world.tunedModelId}/operations/${world.operationId}`, 'x', '', 'a/b/c/d/e'), c('')),
    // Vertex AI
    route('GET', 'none', parent, c('/tuningJobs')),
    route('POST', 'vertexJob', parent, c('/tuningJobs')),
    route('GET', 'none', parent, c('/tuningJobs/'), s),
    route('POST', 'empty', parent, c('/tuningJobs/'), s, c(':'), verbs),
    route('GET', 'none', parent, c('/tuningJobs/'), s, c('/metrics')),
    route('POST', 'generate', parent, c('/endpoints/'), s, c(':'), verbs),
    route('POST', 'generate', c('/'), vertexVersions, c('/endpoints/'), s, c(':'), verbs),
    route('POST', 'generate', parent, c('/publishers/'), fc.constantFrom('google', 'meta', ''), c('/models/'), s, c(':'), verbs),
    route('POST', 'generate', c('/'), vertexVersions, c('/publishers/google/models/'), s, c(':'), verbs),
    route('GET', 'none', parent, fc.constantFrom('/endpoints', '/models')),
    route('GET', 'none', parent, fc.constantFrom('/endpoints/', '/models/'), s, fc.constantFrom('', '@1', '@default', '@2')),
    route('DELETE', 'none', parent, fc.constantFrom('/endpoints/', '/models/'), s, fc.constantFrom('', '@1')),
    // Object store
    route('POST', 'upload', c('/upload/storage/v1/b/'), fc.constantFrom('fuzz-data', 'other', '..', 'UPPER', '', 'b'.repeat(70)), c('/o')),
    route('GET', 'none', c('/storage/v1/b/'), fc.constantFrom('fuzz-data', 'other', '..', ''), c('/o')),
    route('GET', 'none', c('/storage/v1/b/'), fc.constantFrom('fuzz-data', 'other'), c('/o/'), fc.oneof(s, fc.constantFrom('train.jsonl', 'a%2Fb.jsonl', '..%2F..%2Fattune.sqlite'))),
    route('DELETE', 'none', c('/storage/v1/b/'), fc.constantFrom('fuzz-data', 'other'), c('/o/'), fc.oneof(s, fc.constantFrom('scratch.jsonl', '..%2Fx'))),
    route('GET', 'none', c('/download/storage/v1/b/'), fc.constantFrom('fuzz-data', 'other'), c('/o/'), fc.oneof(s, fc.constantFrom('train.jsonl'))),
    // Console and the rest
    route('GET', 'none', c('/console'), fc.constantFrom('', '/', '/new', '/assets/x.js', '/../package.json', '/%2e%2e/package.json', '/index.html')),
    route('GET', 'none', c('/'), versions, c('/tunedModels/'), s, c('/export?format='), fc.constantFrom('peft', 'gguf', 'ollama', 'merged', 'zip', '', 'peft&withBase=maybe', 'gguf&baseType=q2')),
    route('GET', 'none', c('/healthz')),
    route('GET', 'none', c('/'), s, c('/'), s),
  );
}

const queryNames = fc.constantFrom(
  'pageSize', 'page_size', 'pageToken', 'filter', 'alt', 'updateMask', 'update_mask', 'validateOnly', 'tunedModelId', 'uploadType', 'name',
  'prefix', 'maxResults', 'generation', '$alt', 'key', 'access_token', 'x', 'constructor', '__proto__',
);
const queryValues = (world: World) =>
  fc.oneof(
    fc.constantFrom('-1', '0', '1', '5', '1000000', 'abc', 'true', 'false', 'sse', 'media', 'json', 'multipart', 'resumable', '',
      'json;enum-encoding=int', 'state = "JOB_STATE_SUCCEEDED"', 'constructor:x', 'labels.__proto__:*', '((((', 'display_name:"\\x"',
      'train.jsonl', 'a/../b', 'displayName,description', 'eyJtIjotMX0', world.keys[alpha]!, world.keys[beta]!, 'atk_wrong').map(encodeURIComponent),
    fc.string({ maxLength: 20 }).map(encodeURIComponent),
    // Sent as is: broken percent-encoding.
    fc.constantFrom('%', '%zz', '%E0%A4%A', '%00', '%FF'),
  );

const headerText = fc.string({ unit: fc.constantFrom(...' !#$%&()*+,-./0123456789:;<=>?@ABCXYZ[]^_`abcxyz{|}~'.split('')), maxLength: 20 });

interface Credentials {
  headers: Record<string, string>;
  query: string[];
}

function credentials(world: World): fc.Arbitrary<Credentials> {
  const { keys } = world;
  return fc.oneof(
    { weight: 6, arbitrary: fc.constantFrom(alpha, beta).map((p): Credentials => ({ headers: { 'x-goog-api-key': keys[p]! }, query: [] })) },
    { weight: 2, arbitrary: fc.constant<Credentials>({ headers: { authorization: `Bearer ${keys[alpha]}` }, query: [] }) },
    { weight: 2, arbitrary: fc.constant<Credentials>({ headers: {}, query: [`key=${keys[alpha]}`] }) },
    { weight: 2, arbitrary: fc.constant<Credentials>({ headers: {}, query: [] }) },
    fc.constantFrom<Credentials>(
      { headers: { 'x-goog-api-key': 'atk_wrong' }, query: [] },
      { headers: { authorization: 'Basic Zm9vOmJhcg==' }, query: [] },
      { headers: { authorization: 'Bearer' }, query: [] },
      { headers: { 'x-goog-api-key': keys[alpha]!, 'x-goog-user-project': beta }, query: [] },
      { headers: { 'x-goog-user-project': alpha }, query: [] },
      { headers: {}, query: [`access_token=${keys[beta]}`] },
    ),
  );
}

/** The body a route's request carries: shaped like the real one, or noise, or none. */
function bodyFor(kind: BodyKind): fc.Arbitrary<string | undefined> {
  const other = fc.oneof(serialised(anyJson), noise);
  if (kind === 'upload') return fc.oneof({ weight: 4, arbitrary: uploadBody }, { weight: 1, arbitrary: other });
  if (kind === 'none') return fc.oneof({ weight: 5, arbitrary: fc.constant(undefined) }, { weight: 1, arbitrary: other });
  return fc.oneof({ weight: 4, arbitrary: serialised(jsonBodies[kind]) }, { weight: 1, arbitrary: other }, { weight: 1, arbitrary: fc.constant(undefined) });
}

function requests(world: World): fc.Arbitrary<FuzzRequest> {
  return fc
    .record({
      routed: routes(world).chain((route) => bodyFor(route.body).map((body) => ({ route, body }))),
      otherMethod: fc.option(fc.constantFrom('GET', 'POST', 'PUT', 'PATCH', 'DELETE', 'OPTIONS', 'HEAD'), { freq: 8 }),
      credentials: credentials(world),
      query: fc.array(fc.tuple(queryNames, queryValues(world)), { maxLength: 4 }),
      contentType: contentTypes,
      extraHeaders: fc.option(
        fc.dictionary(fc.constantFrom('origin', 'host', 'x-goog-user-project', 'sec-fetch-site', 'accept-encoding', 'range', 'if-none-match', 'x-goog-api-client'), headerText, { maxKeys: 2 }),
        { freq: 4 },
      ),
      binary: fc.option(fc.uint8Array({ maxLength: 64 }), { freq: 10 }),
    })
    .map(({ routed: { route, body }, otherMethod, credentials, query, contentType, extraHeaders, binary }) => {
      const method = otherMethod ?? route.method;
      const headers: Record<string, string> = { ...credentials.headers, ...(extraHeaders ?? {}) };
      const pairs = [...credentials.query, ...query.map(([n, v]) => `${n}=${v}`)];
      const path = pairs.length ? `${route.path}?${pairs.join('&')}` : route.path;
      if (binary) return { method, path, headers: { ...headers, 'content-type': 'application/octet-stream' }, body: Buffer.from(binary).toString('base64'), binary: true };
      if (body !== undefined && contentType) headers['content-type'] = contentType;
      return { method, path, headers, ...(body !== undefined ? { body } : {}) };
    });
}

// ---------------------------------------------------------------------------------------------------
// Sending

const agent = new http.Agent({ keepAlive: true, maxSockets: 16 });

/** Sends one request; streamed answers are read for at most streamMs (their status and first bytes are what count). */
function send(baseUrl: string, request: FuzzRequest, { timeoutMs = 30_000, streamMs = 3_000 } = {}): Promise<Answer> {
  const url = new URL(baseUrl);
  const body = request.body === undefined ? undefined : Buffer.from(request.body, request.binary ? 'base64' : 'utf8');
  const headers: Record<string, string> = { ...request.headers };
  if (headers.host === undefined) headers.host = url.host;
  if (body) headers['content-length'] = String(body.length);
  return new Promise((resolve, reject) => {
    const outgoing = http.request({ host: url.hostname, port: url.port, method: request.method, path: request.path, headers, agent, setHost: false, timeout: timeoutMs }, (response) => {
      const chunks: Buffer[] = [];
      const contentType = String(response.headers['content-type'] ?? '');
      const finish = () => resolve({ status: response.statusCode ?? 0, contentType, text: Buffer.concat(chunks).toString('utf8') });
      const streamed = /event-stream/.test(contentType) || response.headers['transfer-encoding'] === 'chunked';
      const timer = streamed ? setTimeout(() => { response.destroy(); finish(); }, streamMs) : undefined;
      response.on('data', (d: Buffer) => chunks.push(d));
      response.on('end', () => { clearTimeout(timer); finish(); });
      response.on('error', (error) => (timer ? undefined : reject(error)));
    });
    outgoing.on('timeout', () => outgoing.destroy(new Error(`no answer within ${timeoutMs} ms`)));
    outgoing.on('error', reject);
    outgoing.end(body);
  });
}

/** Why an answer is wrong, or undefined. */
function problemWith(request: FuzzRequest, answer: Answer): string | undefined {
  if (answer.status >= 500) return `${answer.status}: ${answer.text.slice(0, 600)}`;
  if (answer.status >= 400 && request.method !== 'HEAD') {
    let error: any;
    try {
      error = JSON.parse(answer.text).error;
    } catch {
      return `a ${answer.status} that is not a google.rpc body: ${answer.text.slice(0, 300)}`;
    }
    if (error?.code !== answer.status || typeof error.status !== 'string' || typeof error.message !== 'string') {
      return `a ${answer.status} with a malformed google.rpc body: ${answer.text.slice(0, 300)}`;
    }
  }
  // A streamed generation reports failures in-band, after its 200.
  if (/streamGenerateContent/.test(request.path) && /"code": ?5\d\d/.test(answer.text)) return `an in-band 5xx: ${answer.text.slice(0, 600)}`;
  return undefined;
}

/** Polls /healthz every 250 ms while the fuzz runs. */
function watchHealth(url: string) {
  let stop = false;
  let slowest = 0;
  let checks = 0;
  const failures: string[] = [];
  const done = (async () => {
    while (!stop) {
      const started = performance.now();
      try {
        const r = await fetch(`${url}/healthz`, { signal: AbortSignal.timeout(10_000) });
        if (r.status !== 200) failures.push(`healthz answered ${r.status}`);
        await r.text();
      } catch (error) {
        failures.push(`healthz: ${String(error)}`);
      }
      slowest = Math.max(slowest, performance.now() - started);
      checks++;
      await sleep(250);
    }
  })();
  return async () => {
    stop = true;
    await done;
    return { slowest, checks, failures };
  };
}

async function setUp(fixture: ServerFixture): Promise<World> {
  const keys = fixture.keys;
  const key = keys[alpha];
  const upload = await call(`${fixture.url}/upload/storage/v1/b/fuzz-data/o?uploadType=media&name=train.jsonl`, {
    method: 'POST', key, headers: { 'content-type': 'application/jsonl' }, body: '{"text_input": "1", "output": "2"}\n{"text_input": "3", "output": "4"}\n',
  });
  assert.equal(upload.status, 200, upload.text);
  const created = await call(`${fixture.url}/v1beta/tunedModels`, {
    method: 'POST',
    key,
    body: { displayName: 'fuzz target', baseModel: 'models/stories260K', tuningTask: { hyperparameters: { epochCount: 1, batchSize: 1 }, trainingData: { examples: { examples: [{ textInput: '1', output: '2' }] } } } },
  });
  assert.equal(created.status, 200, created.text);
  const tunedModelId = created.json.metadata.tunedModel.split('/')[1];
  await waitFor('the fuzz target to be ACTIVE', async () => ((await call(`${fixture.url}/v1beta/tunedModels/${tunedModelId}`, { key })).json?.state === 'ACTIVE' ? true : undefined));
  const jobs = await call(`${fixture.url}/v1/projects/${alpha}/locations/us-central1/tuningJobs`, { key });
  return { keys, tunedModelId, jobNumber: jobs.json.tuningJobs[0].name.split('/').at(-1), operationId: created.json.name.split('/').at(-1) };
}

async function fuzz(fixture: ServerFixture, world: World, { runs, batch, label }: { runs: number; batch: number; label: string }) {
  const health = watchHealth(fixture.url);
  let sent = 0;
  const statuses = new Map<number, number>();
  try {
    const details = await fc.check(
      fc.asyncProperty(fc.array(requests(world), { minLength: batch, maxLength: batch }), async (batchOfRequests) => {
        const answers = await Promise.all(
          batchOfRequests.map(async (request) => {
            try {
              return await send(fixture.url, request);
            } catch (error) {
              return { status: 0, contentType: '', text: `no answer: ${(error as Error).message}` };
            }
          }),
        );
        sent += answers.length;
        answers.forEach((answer, i) => {
          statuses.set(answer.status, (statuses.get(answer.status) ?? 0) + 1);
          const request = batchOfRequests[i]!;
          const problem = answer.status === 0 ? answer.text : problemWith(request, answer);
          if (problem) throw new Error(`${problem}\nthe request (shrunk): ${JSON.stringify(request)}`);
        });
        if (!fixture.server.running) throw new Error(`the server died (${JSON.stringify(fixture.server.exit)}):\n${fixture.server.logs().slice(-3000)}`);
      }),
      { seed, numRuns: runs },
    );
    if (details.failed) {
      const error = details.errorInstance as Error | undefined;
      assert.fail(`after ${details.numRuns} runs (seed ${details.seed}, path "${details.counterexamplePath}"), shrunk ${details.numShrinks} times:\n${error?.message ?? String(error)}`);
    }
  } finally {
    const { slowest, checks, failures } = await health();
    console.log(JSON.stringify({ fuzz: label, requests: sent, statuses: Object.fromEntries(statuses), healthChecks: checks, slowestHealthMs: Math.round(slowest) }));
    assert.deepEqual(failures, [], 'healthz answered throughout');
    assert.ok(fixture.server.running, `the server died:\n${fixture.server.logs().slice(-3000)}`);
  }
  return sent;
}

describe('fuzz: a server with keys', { timeout: 600_000 }, () => {
  const fixture = useServer({ projects: [alpha, beta] });

  test('10,000 malformed requests across every route: no 5xx, no death, /healthz answering', { timeout: 600_000 }, async () => {
    const world = await setUp(fixture);
    const sent = await fuzz(fixture, world, { runs: 1_000, batch: 10, label: 'keys' });
    assert.ok(sent >= 10_000, `${sent} requests`);
    const logs = fixture.server.logs();
    assert.doesNotMatch(logs, /unexpected error/, logs.slice(-3000));
  });
});

describe('fuzz: a keyless server', { timeout: 300_000 }, () => {
  const fixture = useServer({ keyless: true, projects: [alpha, beta] });

  test('2,000 more with foreign Hosts and Origins among them', { timeout: 300_000 }, async () => {
    const world = await setUp(fixture);
    const sent = await fuzz(fixture, world, { runs: 200, batch: 10, label: 'keyless' });
    assert.ok(sent >= 2_000, `${sent} requests`);
  });
});
