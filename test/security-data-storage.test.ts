// Issue 9, the object store (findings 4, 5, 8 and 12), against real `attune serve` processes: project B cannot
// list, read, overwrite or delete project A's objects or train on them, and gets the answers a missing bucket or
// object gets; console buckets are per project; objects are served as sandboxed, unsniffable attachments, so an
// uploaded HTML page runs no script on the console's origin (checked in headless Chromium); uploads are capped
// per upload and per project, with errors naming the limit; an over-long name segment is a 400; and a kill -9
// mid-upload leaves no temporary file after the next start.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import http from 'node:http';
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { AttuneServer, call, repoRoot, sleep, useServer, waitFor, type ApiResponse } from './helpers/server.js';
import { useBrowser } from './helpers/browser.js';

// Page-side callbacks run in the browser; this Node build has no DOM types.
declare const document: any, localStorage: any;

const alpha = 'alpha-team';
const beta = 'beta-team';
const gamma = 'gamma-team';
const delta = 'delta-team';
const numbers = readFileSync(path.join(repoRoot, 'examples', 'numbers.jsonl'), 'utf8');
const MiB = 1024 * 1024;

function assertRpc(reply: ApiResponse, http: number, status: string, message?: RegExp): void {
  assert.equal(reply.status, http, reply.text);
  assert.equal(reply.json?.error?.status, status, reply.text);
  if (message) assert.match(reply.json.error.message, message);
}

describe('object store isolation, headers and limits', () => {
  const fixture = useServer({
    projects: [alpha, beta, gamma, delta],
    args: ['--limit', `uploadBytes=${MiB}`, '--limit', `storageBytesPerProject=${1.5 * MiB}`],
  });
  const key = (project: string) => fixture.keys[project]!;
  const upload = (project: string, bucket: string, name: string, body: string | Buffer, contentType = 'application/jsonl') =>
    call(`${fixture.url}/upload/storage/v1/b/${bucket}/o?uploadType=media&name=${encodeURIComponent(name)}`, {
      method: 'POST',
      key: key(project),
      body,
      headers: { 'content-type': contentType },
    });
  const objectUrl = (bucket: string, name: string) => `${fixture.url}/storage/v1/b/${bucket}/o/${encodeURIComponent(name)}`;
  const validateOnly = (project: string, uri: string) =>
    call(`${fixture.url}/v1/projects/${project}/locations/us-central1/tuningJobs?validateOnly=true`, {
      method: 'POST',
      key: key(project),
      body: { baseModel: 'gemini-2.5-flash', supervisedTuningSpec: { trainingDatasetUri: uri } },
    });
  /** The error an answer would have for another name: existence must not change the answer. */
  const shape = (reply: ApiResponse, ...names: string[]) =>
    `${reply.status} ${reply.json?.error?.status} ${names.reduce((m: string, n) => m.split(n).join('NAME'), reply.json?.error?.message ?? reply.text)}`;

  before(async () => {
    assert.equal((await upload(alpha, 'alpha-private', 'sets/secret.jsonl', numbers)).status, 200);
  });

  test("another project's bucket answers exactly as a missing one: list, metadata, media, download, delete", async () => {
    const pairs: [ApiResponse, ApiResponse][] = [
      [await call(`${fixture.url}/storage/v1/b/alpha-private/o`, { key: key(beta) }), await call(`${fixture.url}/storage/v1/b/nobody-has-this/o`, { key: key(beta) })],
      [await call(objectUrl('alpha-private', 'sets/secret.jsonl'), { key: key(beta) }), await call(objectUrl('nobody-has-this', 'sets/secret.jsonl'), { key: key(beta) })],
      [await call(`${objectUrl('alpha-private', 'sets/secret.jsonl')}?alt=media`, { key: key(beta) }), await call(`${objectUrl('nobody-has-this', 'sets/secret.jsonl')}?alt=media`, { key: key(beta) })],
      [
        await call(`${fixture.url}/download/storage/v1/b/alpha-private/o/sets%2Fsecret.jsonl?alt=media`, { key: key(beta) }),
        await call(`${fixture.url}/download/storage/v1/b/nobody-has-this/o/sets%2Fsecret.jsonl?alt=media`, { key: key(beta) }),
      ],
      [await call(objectUrl('alpha-private', 'sets/secret.jsonl'), { method: 'DELETE', key: key(beta) }), await call(objectUrl('nobody-has-this', 'sets/secret.jsonl'), { method: 'DELETE', key: key(beta) })],
    ];
    for (const [theirs, missing] of pairs) {
      assertRpc(theirs, 404, 'NOT_FOUND');
      assert.ok(!theirs.text.includes('text_input'), 'no byte of the object');
      assert.equal(shape(theirs, 'alpha-private'), shape(missing, 'nobody-has-this'));
    }
    // Still there, unchanged, for its owner.
    const mine = await call(`${objectUrl('alpha-private', 'sets/secret.jsonl')}?alt=media`, { key: key(alpha) });
    assert.equal(mine.status, 200);
    assert.equal(mine.text, numbers);
    const listed = await call(`${fixture.url}/storage/v1/b/alpha-private/o`, { key: key(alpha) });
    assert.deepEqual(listed.json.items.map((i: { name: string }) => i.name), ['sets/secret.jsonl']);
  });

  test("buckets.list shows a project its own buckets only, and refuses another project's list", async () => {
    const names = (reply: ApiResponse) => (reply.json.items ?? []).map((b: { name: string }) => b.name);
    const alphas = await call(`${fixture.url}/storage/v1/b?project=${alpha}`, { key: key(alpha) });
    assert.equal(alphas.status, 200, alphas.text);
    assert.equal(alphas.json.kind, 'storage#buckets');
    assert.ok(names(alphas).includes('alpha-private'));
    // Without ?project= it lists the caller's; beta's list never names alpha's bucket.
    assert.ok(!names(await call(`${fixture.url}/storage/v1/b`, { key: key(beta) })).includes('alpha-private'));
    assertRpc(await call(`${fixture.url}/storage/v1/b?project=${alpha}`, { key: key(beta) }), 403, 'PERMISSION_DENIED', /list the buckets of project alpha-team/);
    assertRpc(await call(`${fixture.url}/storage/v1/b?project=${alpha}`), 403, 'PERMISSION_DENIED');
  });

  test("another project cannot overwrite an object or add one to the bucket; the bucket's own project can", async () => {
    for (const name of ['sets/secret.jsonl', 'sets/new.jsonl']) {
      const reply = await upload(beta, 'alpha-private', name, '{"text_input": "pwned", "output": "yes"}\n');
      assertRpc(reply, 403, 'PERMISSION_DENIED', /bucket name 'alpha-private' is not available/);
    }
    assert.equal((await call(`${objectUrl('alpha-private', 'sets/secret.jsonl')}?alt=media`, { key: key(alpha) })).text, numbers);
    assertRpc(await call(objectUrl('alpha-private', 'sets/new.jsonl'), { key: key(alpha) }), 404, 'NOT_FOUND');
    assert.equal((await upload(alpha, 'alpha-private', 'sets/more.jsonl', numbers)).status, 200);
  });

  test("another project's object is not training data: the same 404 as a missing object", async () => {
    const theirs = await validateOnly(beta, 'gs://alpha-private/sets/secret.jsonl');
    const missing = await validateOnly(beta, 'gs://nobody-has-this/sets/secret.jsonl');
    assertRpc(theirs, 404, 'NOT_FOUND', /not found/);
    assert.equal(shape(theirs, 'alpha-private'), shape(missing, 'nobody-has-this'));
    assert.ok(!theirs.text.includes('text_input') && !theirs.text.includes('userDatasetExamples'), theirs.text);
    const own = await validateOnly(alpha, 'gs://alpha-private/sets/secret.jsonl');
    assert.equal(own.status, 200, own.text);
    assert.equal(own.json.tuningDataStats.supervisedTuningDataStats.tuningDatasetExampleCount, '15');
  });

  test("console buckets are per project: attune-console-<project> is reserved for that project", async () => {
    const theirs = await upload(beta, `attune-console-${alpha}`, 'datasets/x.jsonl', numbers);
    assertRpc(theirs, 403, 'PERMISSION_DENIED', /reserved for the console/);
    assert.equal((await upload(alpha, `attune-console-${alpha}`, 'datasets/x.jsonl', numbers)).status, 200);
    assert.equal((await upload(beta, `attune-console-${beta}`, 'datasets/x.jsonl', numbers)).status, 200);
  });

  test('objects are served as attachments, unsniffable and sandboxed', async () => {
    assert.equal((await upload(alpha, 'alpha-private', 'page.html', '<script>alert(1)</script>', 'text/html')).status, 200);
    for (const url of [`${objectUrl('alpha-private', 'page.html')}?alt=media`, `${fixture.url}/download/storage/v1/b/alpha-private/o/page.html?alt=media`]) {
      const reply = await call(url, { key: key(alpha) });
      assert.equal(reply.status, 200);
      assert.equal(reply.headers.get('x-content-type-options'), 'nosniff');
      assert.match(reply.headers.get('content-disposition') ?? '', /^attachment; filename="page\.html"/);
      assert.match(reply.headers.get('content-security-policy') ?? '', /(^|[;\s])sandbox([;\s]|$)/);
      assert.equal(reply.text, '<script>alert(1)</script>', 'the bytes are as uploaded');
    }
  });

  test('an upload over uploadBytes is refused naming the limit, and leaves nothing behind', async () => {
    const atLimit = await upload(gamma, 'gamma-data', 'exact.bin', Buffer.alloc(MiB, 1), 'application/octet-stream');
    assert.equal(atLimit.status, 200, atLimit.text);
    // gamma now holds 1 MiB of its 1.5 MiB; delta, nothing.
    const over = await upload(delta, 'delta-data', 'over.bin', Buffer.alloc(MiB + 1, 2), 'application/octet-stream');
    assertRpc(over, 413, 'INVALID_ARGUMENT', /uploadBytes/);
    assertRpc(await call(objectUrl('delta-data', 'over.bin'), { key: key(delta) }), 404, 'NOT_FOUND');
    // Multipart bodies are held in memory: the same limit applies.
    const boundary = 'b0undary';
    const multipart = Buffer.concat([
      Buffer.from(`--${boundary}\r\nContent-Type: application/json\r\n\r\n{"name": "multi.bin"}\r\n--${boundary}\r\nContent-Type: application/octet-stream\r\n\r\n`),
      Buffer.alloc(MiB + 10, 3),
      Buffer.from(`\r\n--${boundary}--\r\n`),
    ]);
    const overMultipart = await call(`${fixture.url}/upload/storage/v1/b/delta-data/o?uploadType=multipart`, {
      method: 'POST',
      key: key(delta),
      body: multipart,
      headers: { 'content-type': `multipart/related; boundary=${boundary}` },
    });
    assertRpc(overMultipart, 413, 'INVALID_ARGUMENT', /uploadBytes/);
    assert.deepEqual(readdirSync(path.join(fixture.server.dataDir, 'objects', '.tmp')), [], 'no temporary file left');
  });

  test('a project over storageBytesPerProject gets RESOURCE_EXHAUSTED naming the limit; other projects are not affected', async () => {
    // gamma holds 1 MiB (exact.bin) of its 1.5 MiB.
    const over = await upload(gamma, 'gamma-data', 'more.bin', Buffer.alloc(0.75 * MiB, 4), 'application/octet-stream');
    assertRpc(over, 429, 'RESOURCE_EXHAUSTED', /storageBytesPerProject/);
    assertRpc(await call(objectUrl('gamma-data', 'more.bin'), { key: key(gamma) }), 404, 'NOT_FOUND');
    // Replacing an object frees its old bytes.
    assert.equal((await upload(gamma, 'gamma-data', 'exact.bin', Buffer.alloc(MiB, 5), 'application/octet-stream')).status, 200);
    assert.equal((await upload(delta, 'delta-data', 'more.bin', Buffer.alloc(0.75 * MiB, 4), 'application/octet-stream')).status, 200);
    assert.equal((await call(objectUrl('gamma-data', 'exact.bin'), { method: 'DELETE', key: key(gamma) })).status, 204);
    assert.equal((await upload(gamma, 'gamma-data', 'more.bin', Buffer.alloc(0.75 * MiB, 4), 'application/octet-stream')).status, 200);
  });

  test('an object name segment over 250 bytes is a 400, for writes and reads alike', async () => {
    const long = `dir/${'x'.repeat(300)}.jsonl`;
    assertRpc(await upload(alpha, 'alpha-private', long, numbers), 400, 'INVALID_ARGUMENT', /segment longer than 250 bytes/);
    assertRpc(await call(objectUrl('alpha-private', long), { key: key(alpha) }), 400, 'INVALID_ARGUMENT');
    assertRpc(await call(`${objectUrl('alpha-private', long)}?alt=media`, { key: key(alpha) }), 400, 'INVALID_ARGUMENT');
    assertRpc(await validateOnly(alpha, `gs://alpha-private/${long}`), 400, 'INVALID_ARGUMENT');
    const longest = `dir/${'é'.repeat(125)}`; // 250 bytes
    assert.equal((await upload(alpha, 'alpha-private', longest, numbers)).status, 200);
    assert.equal((await call(`${objectUrl('alpha-private', longest)}?alt=media`, { key: key(alpha) })).text, numbers);
  });
});

describe('an uploaded HTML page runs no script on the console origin (headless Chromium)', () => {
  const fixture = useServer({ keyless: true });
  const browser = useBrowser();

  test('navigating to it, or framing it from the console, neither renders nor runs it', async () => {
    const evil = `<!doctype html><title>evil</title><script>
      localStorage.setItem('pwned', 'yes');
      fetch('/pwned?key=' + encodeURIComponent(localStorage.getItem('attune.console.settings')));
    </script>`;
    const up = await call(`${fixture.url}/upload/storage/v1/b/web-assets/o?uploadType=media&name=evil.html`, {
      method: 'POST',
      body: evil,
      headers: { 'content-type': 'text/html' },
    });
    assert.equal(up.status, 200, up.text);
    const mediaUrl = `${fixture.url}/storage/v1/b/web-assets/o/evil.html?alt=media`;

    const { page, context } = await browser.newPage();
    const stolen: string[] = [];
    context.on('request', (request) => {
      if (request.url().includes('/pwned')) stolen.push(request.url());
    });
    await page.goto(`${fixture.url}/console/`);
    await page.evaluate(() => localStorage.setItem('attune.console.settings', JSON.stringify({ apiKey: 'atk_secret', project: 'local' })));
    // A link to it: the browser downloads it instead of showing it.
    await page.goto(mediaUrl).catch(() => {});
    // An iframe on the console's own page.
    await page.goto(`${fixture.url}/console/`);
    await page.evaluate((src: string) => {
      const frame = document.createElement('iframe');
      frame.src = src;
      document.body.appendChild(frame);
    }, mediaUrl);
    await sleep(1_500);
    assert.equal(await page.evaluate(() => localStorage.getItem('pwned')), null, 'the script never ran on this origin');
    assert.deepEqual(stolen, []);
    assert.equal(await page.title(), await page.evaluate(() => document.title));
    assert.notEqual(await page.title(), 'evil');
  });
});

describe('a kill -9 during an upload', () => {
  let dataDir: string;
  let server: AttuneServer | undefined;
  before(() => {
    dataDir = mkdtempSync(path.join(os.tmpdir(), 'attune-upload-kill-'));
  });
  after(async () => {
    await server?.stop();
    rmSync(dataDir, { recursive: true, force: true });
  });

  test('leaves a temporary file that the next start removes', async () => {
    server = await AttuneServer.start({ dataDir, keyless: true });
    const tmpDir = path.join(dataDir, 'objects', '.tmp');
    const url = new URL(`${server.url}/upload/storage/v1/b/half-done/o?uploadType=media&name=big.bin`);
    const request = http.request(url, { method: 'POST', headers: { 'content-type': 'application/octet-stream', 'content-length': String(64 * MiB) } });
    request.on('error', () => {}); // the server dies under it
    request.write(Buffer.alloc(256 * 1024, 7));
    const partial = await waitFor('the upload\'s temporary file', async () => {
      const files = existsSync(tmpDir) ? readdirSync(tmpDir) : [];
      return files.length > 0 ? files : undefined;
    }, { timeoutMs: 10_000, intervalMs: 20 });
    server.child.kill('SIGKILL');
    await server.stop({ keepDataDir: true });
    request.destroy();
    assert.deepEqual(readdirSync(tmpDir), partial, 'the killed upload left its temporary file');

    server = await AttuneServer.start({ dataDir, keyless: true });
    await waitFor('the sweep', async () => (readdirSync(tmpDir).length === 0 ? true : undefined), { timeoutMs: 10_000 });
    const listed = await call(`${server.url}/storage/v1/b/half-done/o`);
    assert.equal(listed.status, 200, listed.text);
    assert.equal(listed.json.items.length, 0, 'no half object');
  });
});
