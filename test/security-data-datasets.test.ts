// Issue 9, datasets on the server (findings 1 and 2), against real `attune serve` processes: the API reads datasets
// from the object store only, unless the server was started with --dataset-dir DIR, and then only regular files
// inside DIR (symlinks resolved); every other path gets one answer whether or not it exists, and no answer carries
// a byte of a server file. Dataset files are capped in size and in examples, a parse error names the line and the
// problem but does not quote the line, and ten concurrent datasets naming /dev/zero leave the server up.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { call, repoRoot, useServer, type ApiResponse } from './helpers/server.js';

const project = 'dataset-owner';
const numbers = readFileSync(path.join(repoRoot, 'examples', 'numbers.jsonl'), 'utf8');
const trainingField = 'tuning_job.supervised_tuning_spec.training_dataset_uri';

/** Words of the server files these tests name: none may appear in an answer. */
const serverSecrets = ['root:x:0', 'SQLite format', 'PATH=', 'HOME=', 'text_input'];

function assertRpc(reply: ApiResponse, http: number, status: string, message?: RegExp): void {
  assert.equal(reply.status, http, reply.text);
  assert.equal(reply.json?.error?.status, status, reply.text);
  if (message) assert.match(reply.json.error.message, message);
}

function assertLeaksNothing(reply: ApiResponse): void {
  for (const secret of serverSecrets) assert.ok(!reply.text.includes(secret), `the answer quotes a server file (${secret}): ${reply.text}`);
}

/** An answer with the URI taken out: what it says about any path. */
const shapeOf = (reply: ApiResponse, uri: string) => `${reply.status} ${reply.json?.error?.status} ${(reply.json?.error?.message ?? reply.text).split(uri).join('URI')}`;

function datasetCalls(fixture: { url: string; keys: Record<string, string> }) {
  return {
    validateOnly: (uri: string, timeoutMs?: number) =>
      call(`${fixture.url}/v1/projects/${project}/locations/us-central1/tuningJobs?validateOnly=true`, {
        method: 'POST',
        key: fixture.keys[project],
        body: { baseModel: 'gemini-2.5-flash', supervisedTuningSpec: { trainingDatasetUri: uri } },
        timeoutMs,
      }),
    upload: async (name: string, body: string) => {
      const reply = await call(`${fixture.url}/upload/storage/v1/b/datasets-${project}/o?uploadType=media&name=${encodeURIComponent(name)}`, {
        method: 'POST',
        key: fixture.keys[project],
        body,
        headers: { 'content-type': 'application/jsonl' },
      });
      assert.equal(reply.status, 200, reply.text);
      return `gs://datasets-${project}/${name}`;
    },
  };
}

describe('a server without --dataset-dir reads datasets from its object store only', () => {
  const fixture = useServer({ projects: [project], args: ['--limit', 'datasetExamples=15', '--limit', 'datasetFileBytes=4096'] });
  const api = datasetCalls(fixture);
  let outside: string;
  before(() => {
    outside = mkdtempSync(path.join(os.tmpdir(), 'attune-outside-'));
    writeFileSync(path.join(outside, 'train.jsonl'), numbers);
  });
  after(() => rmSync(outside, { recursive: true, force: true }));

  test('every local path, existing or not, JSONL or not, gets the same 400 and no byte of the file', async () => {
    const uris = [
      '/etc/passwd',
      'file:///etc/passwd',
      '/proc/self/environ',
      path.join(fixture.server.dataDir, 'attune.sqlite'),
      path.join(outside, 'train.jsonl'),
      `file://${path.join(outside, 'train.jsonl')}`,
      '/no/such/dir/train.jsonl',
      '/dev/zero',
    ];
    const shapes = new Set<string>();
    for (const uri of uris) {
      const reply = await api.validateOnly(uri);
      assertRpc(reply, 400, 'INVALID_ARGUMENT', /reads datasets only from its object store/);
      assertLeaksNothing(reply);
      shapes.add(shapeOf(reply, uri));
    }
    assert.equal(shapes.size, 1, [...shapes].join('\n'));
  });

  test('a parse error names the line and the problem, without quoting the line', async () => {
    const uri = await api.upload('passwd-like.jsonl', 'root:x:0:0:root:/root:/bin/bash\n');
    const reply = await api.validateOnly(uri);
    assertRpc(reply, 400, 'INVALID_ARGUMENT', /\bline 1: invalid JSON: Unexpected token 'r'$/);
    assert.ok(!reply.text.includes('root:x'), reply.text);
  });

  test('datasetExamples and datasetFileBytes cap a dataset, and the errors name them', async () => {
    const lines = numbers.trim().split('\n');
    assert.equal(lines.length, 15);
    const exactly = await api.upload('fifteen.jsonl', numbers);
    assert.equal((await api.validateOnly(exactly)).status, 200);
    const sixteen = await api.upload('sixteen.jsonl', `${numbers}${lines[0]}\n`);
    const tooMany = await api.validateOnly(sixteen);
    assertRpc(tooMany, 400, 'INVALID_ARGUMENT', /more than 15 examples, the limit datasetExamples/);
    assert.ok(tooMany.json.error.details[0].fieldViolations.some((v: { field: string }) => v.field === trainingField));
    const big = await api.upload('big.jsonl', `${'\n'.repeat(4000)}${numbers}`);
    assertRpc(await api.validateOnly(big), 400, 'INVALID_ARGUMENT', /larger than 4096 bytes, the limit datasetFileBytes/);
  });
});

describe('a server with --dataset-dir DIR reads local datasets inside DIR only', () => {
  const root = mkdtempSync(path.join(os.tmpdir(), 'attune-dataset-dir-'));
  const dir = path.join(root, 'datasets');
  const outside = path.join(root, 'outside');
  mkdirSync(dir); // before the server starts: serve refuses a --dataset-dir that is not a directory
  const fixture = useServer({ projects: [project], args: ['--dataset-dir', dir, '--limit', 'datasetFileBytes=4096'] });
  const api = datasetCalls(fixture);
  before(() => {
    mkdirSync(path.join(dir, 'sub'));
    mkdirSync(outside);
    writeFileSync(path.join(dir, 'train.jsonl'), numbers);
    writeFileSync(path.join(dir, 'sub', 'train.jsonl'), numbers);
    writeFileSync(path.join(dir, 'big.jsonl'), `${'\n'.repeat(5000)}${numbers}`);
    writeFileSync(path.join(outside, 'train.jsonl'), numbers);
    symlinkSync('/etc/passwd', path.join(dir, 'passwd'));
    symlinkSync(path.join(outside, 'train.jsonl'), path.join(dir, 'escape.jsonl'));
    symlinkSync(path.join(dir, 'sub', 'train.jsonl'), path.join(dir, 'inside-link.jsonl'));
    execFileSync('mkfifo', [path.join(dir, 'fifo.jsonl')]);
  });
  after(() => rmSync(root, { recursive: true, force: true }));

  test('regular files inside DIR (also through a symlink that stays inside) are datasets', async () => {
    for (const uri of [path.join(dir, 'train.jsonl'), `file://${path.join(dir, 'sub', 'train.jsonl')}`, path.join(dir, 'inside-link.jsonl')]) {
      const reply = await api.validateOnly(uri);
      assert.equal(reply.status, 200, `${uri}: ${reply.text}`);
      assert.equal(reply.json.tuningDataStats.supervisedTuningDataStats.tuningDatasetExampleCount, '15');
    }
  });

  test('anything outside DIR, missing, or a symlink out of it, gets one 404 that says nothing of the path', async () => {
    const uris = [
      '/etc/passwd',
      path.join(outside, 'train.jsonl'),
      path.join(dir, '..', 'outside', 'train.jsonl'),
      path.join(dir, 'passwd'),
      path.join(dir, 'escape.jsonl'),
      path.join(dir, 'missing.jsonl'),
      path.join(fixture.server.dataDir, 'attune.sqlite'),
      '/proc/self/environ',
      `file://${path.join(outside, 'train.jsonl')}`,
    ];
    const shapes = new Set<string>();
    for (const uri of uris) {
      const reply = await api.validateOnly(uri);
      assertRpc(reply, 404, 'NOT_FOUND');
      assertLeaksNothing(reply);
      shapes.add(shapeOf(reply, uri));
    }
    assert.equal(shapes.size, 1, [...shapes].join('\n'));
  });

  test('a FIFO or a directory in DIR is refused at once; a file over datasetFileBytes names the limit', async () => {
    const started = Date.now();
    assertRpc(await api.validateOnly(path.join(dir, 'fifo.jsonl'), 15_000), 400, 'INVALID_ARGUMENT', /not a regular file/);
    assert.ok(Date.now() - started < 15_000);
    assertRpc(await api.validateOnly(path.join(dir, 'sub')), 400, 'INVALID_ARGUMENT', /not a regular file/);
    assertRpc(await api.validateOnly(path.join(dir, 'big.jsonl')), 400, 'INVALID_ARGUMENT', /the limit datasetFileBytes/);
    assert.equal((await call(`${fixture.url}/healthz`)).status, 200);
  });
});

describe('a server with --dataset-dir /', () => {
  const fixture = useServer({ projects: [project], args: ['--dataset-dir', '/'] });
  const api = datasetCalls(fixture);

  test('ten concurrent datasets naming /dev/zero (and /dev/urandom) get 4xx answers and the server stays up', async () => {
    const replies = await Promise.all([
      ...Array.from({ length: 10 }, () => api.validateOnly('/dev/zero', 30_000)),
      api.validateOnly('file:///dev/urandom', 30_000),
    ]);
    for (const reply of replies) assertRpc(reply, 400, 'INVALID_ARGUMENT', /not a regular file/);
    assert.equal((await call(`${fixture.url}/healthz`)).status, 200);
    assert.ok(fixture.server.running);
  });
});
