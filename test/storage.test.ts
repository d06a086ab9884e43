// Attune's object store and the Cloud Storage JSON API subset over it: media and multipart uploads,
// downloads (a 3 MB object byte for byte), metadata, list with prefix and paging, delete, bad names, auth,
// the `attune datasets upload` CLI, and the official @google-cloud/storage client.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { randomBytes } from 'node:crypto';
import os from 'node:os';
import path from 'node:path';
import type { FastifyInstance } from 'fastify';
import { openServices, type Services } from '../src/service/services.js';
import { buildServer } from '../src/api/server.js';
import { serviceDefaults } from '../src/service/config.js';
import { ObjectStore } from '../src/service/storage/object-store.js';
import { runCli } from './helpers/server.js';
import { Storage } from '@google-cloud/storage';

let dataDir: string;
let services: Services;
let app: FastifyInstance;
let url: string;
let key: string;

before(async () => {
  dataDir = mkdtempSync(path.join(os.tmpdir(), 'attune-storage-'));
  services = await openServices({ ...serviceDefaults, dataDir, port: 0, keyless: false });
  key = await services.keys.create('storage-test');
  app = await buildServer(services);
  url = (await app.listen({ host: '127.0.0.1', port: 0 })).replace('localhost', '127.0.0.1');
});

after(async () => {
  await app?.close();
  await services?.close();
  rmSync(dataDir, { recursive: true, force: true });
});

const auth = () => ({ 'x-goog-api-key': key });

async function mediaUpload(bucket: string, name: string, body: Buffer | string, contentType = 'application/octet-stream') {
  return fetch(`${url}/upload/storage/v1/b/${bucket}/o?uploadType=media&name=${encodeURIComponent(name)}`, {
    method: 'POST',
    headers: { ...auth(), 'content-type': contentType },
    body,
  });
}

const objectUrl = (bucket: string, name: string) => `${url}/storage/v1/b/${bucket}/o/${encodeURIComponent(name)}`;

describe('Cloud Storage JSON API', () => {
  test('media upload, metadata and alt=media download (3 MB, byte for byte)', async () => {
    const bytes = randomBytes(3 * 1024 * 1024);
    const up = await mediaUpload('datasets', 'big/blob.bin', bytes);
    assert.equal(up.status, 200, await up.clone().text());
    const meta = (await up.json()) as Record<string, string>;
    assert.equal(meta.kind, 'storage#object');
    assert.equal(meta.name, 'big/blob.bin');
    assert.equal(meta.bucket, 'datasets');
    assert.equal(meta.size, String(bytes.length));
    assert.equal(meta.contentType, 'application/octet-stream');
    for (const field of ['id', 'selfLink', 'mediaLink', 'updated']) assert.ok(meta[field], field);

    const got = await fetch(objectUrl('datasets', 'big/blob.bin'), { headers: auth() });
    assert.equal(got.status, 200);
    const again = (await got.json()) as Record<string, string>;
    assert.equal(again.size, String(bytes.length));
    assert.ok(again.selfLink.endsWith('/o/big%2Fblob.bin'));

    const media = await fetch(`${objectUrl('datasets', 'big/blob.bin')}?alt=media`, { headers: auth() });
    assert.equal(media.status, 200);
    assert.ok(Buffer.from(await media.arrayBuffer()).equals(bytes));
    const viaLink = await fetch(meta.mediaLink, { headers: auth() });
    assert.ok(Buffer.from(await viaLink.arrayBuffer()).equals(bytes));

    assert.ok(readFileSync(path.join(dataDir, 'objects', 'datasets', 'big', 'blob.bin')).equals(bytes));
  });

  test('JSON bodies stay bytes (no lenient-JSON rewriting) and the content type is kept', async () => {
    const text = '{"text_input": "1",}\n{"output": "2"}\n';
    const up = await mediaUpload('datasets', 'raw.jsonl', text, 'application/json');
    assert.equal(up.status, 200, await up.clone().text());
    const media = await fetch(`${objectUrl('datasets', 'raw.jsonl')}?alt=media`, { headers: auth() });
    assert.equal(await media.text(), text);
    assert.match(media.headers.get('content-type') ?? '', /^application\/json/);
  });

  test('multipart upload (metadata part, then data part)', async () => {
    const boundary = 'attune-boundary-123';
    const data = Buffer.concat([Buffer.from('{"contents": []}\n'), randomBytes(1000)]);
    const body = Buffer.concat([
      Buffer.from(`--${boundary}\r\nContent-Type: application/json; charset=UTF-8\r\n\r\n${JSON.stringify({ name: 'multi/train.jsonl', contentType: 'application/jsonl' })}\r\n`),
      Buffer.from(`--${boundary}\r\nContent-Type: application/octet-stream\r\n\r\n`),
      data,
      Buffer.from(`\r\n--${boundary}--\r\n`),
    ]);
    const up = await fetch(`${url}/upload/storage/v1/b/datasets/o?uploadType=multipart`, {
      method: 'POST',
      headers: { ...auth(), 'content-type': `multipart/related; boundary=${boundary}` },
      body,
    });
    assert.equal(up.status, 200, await up.clone().text());
    const meta = (await up.json()) as Record<string, string>;
    assert.equal(meta.name, 'multi/train.jsonl');
    assert.equal(meta.contentType, 'application/jsonl');
    assert.equal(meta.size, String(data.length));
    const media = await fetch(`${objectUrl('datasets', 'multi/train.jsonl')}?alt=media`, { headers: auth() });
    assert.ok(Buffer.from(await media.arrayBuffer()).equals(data));
  });

  test('list with prefix and paging', async () => {
    for (let i = 0; i < 5; i++) assert.equal((await mediaUpload('listing', `runs/r${i}.jsonl`, `${i}`)).status, 200);
    assert.equal((await mediaUpload('listing', 'other.txt', 'x')).status, 200);
    const all = (await (await fetch(`${url}/storage/v1/b/listing/o`, { headers: auth() })).json()) as { kind: string; items: { name: string }[]; nextPageToken?: string };
    assert.equal(all.kind, 'storage#objects');
    assert.deepEqual(all.items.map((i) => i.name), ['other.txt', 'runs/r0.jsonl', 'runs/r1.jsonl', 'runs/r2.jsonl', 'runs/r3.jsonl', 'runs/r4.jsonl']);
    assert.equal(all.nextPageToken, undefined);

    const names: string[] = [];
    let pageToken = '';
    let pages = 0;
    do {
      const res = await fetch(`${url}/storage/v1/b/listing/o?prefix=runs/r&maxResults=2&pageToken=${encodeURIComponent(pageToken)}`, { headers: auth() });
      assert.equal(res.status, 200);
      const page = (await res.json()) as { items: { name: string }[]; nextPageToken?: string };
      assert.ok(page.items.length <= 2);
      names.push(...page.items.map((i) => i.name));
      pageToken = page.nextPageToken ?? '';
      pages++;
    } while (pageToken);
    assert.equal(pages, 3);
    assert.deepEqual(names, ['runs/r0.jsonl', 'runs/r1.jsonl', 'runs/r2.jsonl', 'runs/r3.jsonl', 'runs/r4.jsonl']);

    const missing = await fetch(`${url}/storage/v1/b/no-such-bucket/o`, { headers: auth() });
    assert.equal(missing.status, 404);
  });

  test('delete, then 404', async () => {
    assert.equal((await mediaUpload('deleting', 'a/b/c.txt', 'bye')).status, 200);
    const del = await fetch(objectUrl('deleting', 'a/b/c.txt'), { method: 'DELETE', headers: auth() });
    assert.equal(del.status, 204);
    const gone = await fetch(objectUrl('deleting', 'a/b/c.txt'), { headers: auth() });
    assert.equal(gone.status, 404);
    const body = (await gone.json()) as { error: { code: number; status: string } };
    assert.equal(body.error.status, 'NOT_FOUND');
    assert.equal((await fetch(`${objectUrl('deleting', 'a/b/c.txt')}?alt=media`, { headers: auth() })).status, 404);
    assert.equal((await fetch(objectUrl('deleting', 'a/b/c.txt'), { method: 'DELETE', headers: auth() })).status, 404);
  });

  test("'..' segments, absolute names and bad bucket names are refused", async () => {
    for (const name of ['../escape.txt', 'a/../../escape.txt', '/etc/passwd', 'a//b']) {
      const res = await mediaUpload('datasets', name, 'nope');
      assert.equal(res.status, 400, name);
      assert.equal(((await res.json()) as { error: { status: string } }).error.status, 'INVALID_ARGUMENT');
    }
    const read = await fetch(`${url}/storage/v1/b/datasets/o/..%2F..%2Fattune.sqlite?alt=media`, { headers: auth() });
    assert.equal(read.status, 400);
    assert.equal((await mediaUpload('..', 'x', 'nope')).status, 400);
    assert.equal((await mediaUpload('.meta', 'x', 'nope')).status, 400);
  });

  test('no key → 403, bad key → 400', async () => {
    const res = await fetch(`${url}/upload/storage/v1/b/datasets/o?uploadType=media&name=x.txt`, { method: 'POST', body: 'x' });
    assert.equal(res.status, 403);
    assert.equal(((await res.json()) as { error: { status: string } }).error.status, 'PERMISSION_DENIED');
    assert.equal((await fetch(objectUrl('datasets', 'raw.jsonl'))).status, 403);
    assert.equal((await fetch(`${url}/storage/v1/b/datasets/o`)).status, 403);
    const bad = await fetch(objectUrl('datasets', 'raw.jsonl'), { headers: { 'x-goog-api-key': 'nope' } });
    assert.equal(bad.status, 400);
  });

  test('the rest of the API still parses lenient JSON', async () => {
    const res = await fetch(`${url}/v1beta/tunedModels`, {
      method: 'POST',
      headers: { ...auth(), 'content-type': 'application/json' },
      body: '{"display_name": "x", "tuning_task": {"training_data": {"examples": {"examples": [],}}},}',
    });
    // Parsed (trailing commas, snake_case) and rejected for its content, not as bad JSON.
    const body = (await res.json()) as { error: { message: string } };
    assert.equal(res.status, 400);
    assert.doesNotMatch(body.error.message, /Invalid JSON payload/);
  });
});

describe('datasets CLI', () => {
  test('attune datasets upload writes into the store for a project; the server serves it to that project', async () => {
    const file = path.join(dataDir, 'local-train.jsonl');
    writeFileSync(file, '{"text_input": "1", "output": "2"}\n');
    const result = await runCli(['datasets', 'upload', file, '--project', 'storage-test', '--bucket', 'cli-bucket', '--name', 'sets/train.jsonl', '--data-dir', dataDir]);
    assert.equal(result.code, 0, result.stderr);
    assert.equal(result.stdout.trim(), 'gs://cli-bucket/sets/train.jsonl');
    const stored = path.join(dataDir, 'objects', 'cli-bucket', 'sets', 'train.jsonl');
    assert.equal(readFileSync(stored, 'utf8'), readFileSync(file, 'utf8'));
    assert.equal((await new ObjectStore(dataDir).get('storage-test', 'cli-bucket', 'sets/train.jsonl')).toString('utf8'), readFileSync(file, 'utf8'));
    // The server sees it too, with the content type the extension implies.
    const meta = (await (await fetch(objectUrl('cli-bucket', 'sets/train.jsonl'), { headers: auth() })).json()) as Record<string, string>;
    assert.equal(meta.contentType, 'application/jsonl');

    // Without --project the object is the keyless project's. --database, which every command takes, is not
    // needed here, and the CLI says why.
    const defaults = await runCli(['datasets', 'upload', file, '--data-dir', dataDir, '--database', path.join(dataDir, 'attune.sqlite')]);
    assert.equal(defaults.code, 0, defaults.stderr);
    assert.equal(defaults.stdout.trim(), 'gs://attune-datasets/local-train.jsonl');
    assert.match(defaults.stderr, /--database is not used: an uploaded dataset and its bucket's owner are kept in the storage/);
    assert.equal(await new ObjectStore(dataDir).ownerOf('attune-datasets'), 'local');
    // A bucket of another project is refused, with a plain message.
    const foreign = await runCli(['datasets', 'upload', file, '--project', 'someone-else', '--bucket', 'cli-bucket', '--data-dir', dataDir]);
    assert.equal(foreign.code, 1);
    assert.match(foreign.stderr, /^attune datasets: The bucket name 'cli-bucket' is not available/);
  });
});

describe('@google-cloud/storage against Attune', () => {
  test('save (multipart), download, getFiles, getMetadata, delete with checksum validation on', async () => {
    // A custom apiEndpoint turns the client's Google auth off; the API key goes in as a header instead.
    const storage = new Storage({ apiEndpoint: url, projectId: 'storage-test', retryOptions: { autoRetry: false } });
    storage.interceptors.push({
      request: (options) => {
        options.headers = { ...options.headers, 'x-goog-api-key': key };
        return options as Parameters<typeof storage.interceptors[number]['request']>[0] & { uri: string };
      },
    });
    const jsonl = Array.from({ length: 200 }, (_, i) => JSON.stringify({ textInput: `${i}`, output: `${i + 1}` })).join('\n') + '\n';
    const file = storage.bucket('gcs-client').file('sets/train.jsonl');
    await file.save(jsonl, { resumable: false, contentType: 'application/jsonl' });
    const [downloaded] = await file.download();
    assert.equal(downloaded.toString('utf8'), jsonl);
    const [buckets] = await storage.getBuckets();
    assert.ok(buckets.map((b) => b.name).includes('gcs-client'), 'buckets.list names the bucket the upload created');
    const [files] = await storage.bucket('gcs-client').getFiles({ prefix: 'sets/' });
    assert.deepEqual(files.map((f) => f.name), ['sets/train.jsonl']);
    const [metadata] = await file.getMetadata();
    assert.equal(Number(metadata.size), Buffer.byteLength(jsonl));
    assert.equal(metadata.contentType, 'application/jsonl');
    assert.equal(readFileSync(path.join(dataDir, 'objects', 'gcs-client', 'sets', 'train.jsonl'), 'utf8'), jsonl);
    await file.delete();
    assert.deepEqual(await file.exists(), [false]);
  });
});
