// Issue 9, finding 3: a web page could take over a keyless server. Over plain HTTP against a real
// `attune serve`: a keyless server answers only loopback Host names (DNS rebinding), refuses foreign Origins,
// and takes bodies only in types no HTML form can send, unless the key travels in a header; what clients
// really send (JSON, the object's own type, multipart/related, curl -d with a header key) keeps working.
// test/security-browser.test.ts does the same attacks from a real Chromium.
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { call, useServer } from './helpers/server.js';
import { rawRequest, type RawResponse } from './helpers/raw-http.js';

const tuningBody = (displayName: string) => ({
  displayName,
  baseModel: 'models/gemini-1.5-flash-001-tuning',
  tuningTask: { hyperparameters: { epochCount: 1, batchSize: 1 }, trainingData: { examples: { examples: [{ textInput: '1', output: '2' }] } } },
});

function assertRefused(r: RawResponse, status: number, rpcStatus: string, message: RegExp, where: string): void {
  assert.equal(r.status, status, `${where}: ${r.text}`);
  assert.equal(r.json?.error?.status, rpcStatus, `${where}: ${r.text}`);
  assert.match(r.json.error.message, message, where);
}

/** The three bodies an HTML form can send across origins, each carrying a tuning request. */
function formBodies(json: string): { type: string; body: string }[] {
  const boundary = '----WebKitFormBoundary7MA4YWxkTrZu0gW';
  return [
    // <form enctype="text/plain"><input name='{"displayName": "x", "pad": "' value='"}'>: the body is JSON.
    { type: 'text/plain', body: json },
    { type: 'application/x-www-form-urlencoded', body: `${encodeURIComponent(json)}=` },
    { type: `multipart/form-data; boundary=${boundary}`, body: `--${boundary}\r\nContent-Disposition: form-data; name="x"\r\n\r\n${json}\r\n--${boundary}--\r\n` },
  ];
}

describe('a keyless server', () => {
  const fixture = useServer({ keyless: true });
  const port = () => new URL(fixture.url).port;
  const listNames = async () => ((await call(`${fixture.url}/v1beta/tunedModels`)).json?.tunedModels ?? []).map((m: { displayName: string }) => m.displayName);

  test('answers loopback Host names, with and without a port', async () => {
    for (const host of [`127.0.0.1:${port()}`, `localhost:${port()}`, 'localhost', `LocalHost:${port()}`, '127.0.0.1', `127.1.2.3:${port()}`, `[::1]:${port()}`]) {
      const r = await rawRequest(fixture.url, { path: '/v1beta/tunedModels', headers: { host } });
      assert.equal(r.status, 200, `Host: ${host}: ${r.text}`);
    }
  });

  test('refuses every other Host (DNS rebinding), on API routes, the console and the object store', async () => {
    for (const host of [`evil.example:${port()}`, 'evil.example', `127.0.0.1.nip.io:${port()}`, `localhost.evil.example:${port()}`, `10.0.0.1:${port()}`, '']) {
      for (const path of ['/v1beta/tunedModels', '/console/', '/storage/v1/b/b/o', '/healthz']) {
        const r = await rawRequest(fixture.url, { path, headers: { host } });
        assertRefused(r, 403, 'PERMISSION_DENIED', /answers only loopback host names/, `Host: ${host} ${path}`);
      }
    }
    // Not even a write gets through under a foreign name.
    const r = await rawRequest(fixture.url, {
      method: 'POST', path: '/v1beta/tunedModels', headers: { host: `evil.example:${port()}`, 'content-type': 'application/json' }, body: JSON.stringify(tuningBody('rebound')),
    });
    assert.equal(r.status, 403, r.text);
    assert.ok(!(await listNames()).includes('rebound'));
  });

  test('refuses a foreign Origin and accepts loopback ones (the console is same-origin)', async () => {
    for (const origin of ['https://evil.example', `http://evil.example:${port()}`, 'null', 'http://192.168.1.10:8080', 'garbage']) {
      const r = await rawRequest(fixture.url, { path: '/v1beta/tunedModels', headers: { origin } });
      assertRefused(r, 403, 'PERMISSION_DENIED', /refuses requests from other origins/, `Origin: ${origin}`);
      const post = await rawRequest(fixture.url, {
        method: 'POST', path: '/v1beta/tunedModels', headers: { origin, 'content-type': 'application/json' }, body: JSON.stringify(tuningBody('cross-origin')),
      });
      assert.equal(post.status, 403, post.text);
    }
    assert.ok(!(await listNames()).includes('cross-origin'));
    for (const origin of [`http://127.0.0.1:${port()}`, `http://localhost:${port()}`, 'http://localhost:5173', `http://[::1]:${port()}`]) {
      const r = await rawRequest(fixture.url, { path: '/v1beta/tunedModels', headers: { origin } });
      assert.equal(r.status, 200, `Origin: ${origin}: ${r.text}`);
    }
  });

  test('refuses what another site started (Sec-Fetch-Site: cross-site), except the console\'s pages', async () => {
    for (const path of ['/v1beta/tunedModels', '/storage/v1/b/b/o', '/download/storage/v1/b/b/o/page.html']) {
      const r = await rawRequest(fixture.url, { path, headers: { 'sec-fetch-site': 'cross-site', 'sec-fetch-mode': 'navigate' } });
      assertRefused(r, 403, 'PERMISSION_DENIED', /refuses requests another site started/, path);
    }
    assert.equal((await rawRequest(fixture.url, { path: '/console/', headers: { 'sec-fetch-site': 'cross-site' } })).status, 200);
    for (const site of ['same-origin', 'same-site', 'none']) {
      assert.equal((await rawRequest(fixture.url, { path: '/v1beta/tunedModels', headers: { 'sec-fetch-site': site } })).status, 200, site);
    }
  });

  test('refuses form-encoded, text/plain and type-less JSON posts; accepts application/json and +json', async () => {
    const json = JSON.stringify(tuningBody('from a form'));
    for (const { type, body } of [...formBodies(json), { type: '', body: json }]) {
      const r = await rawRequest(fixture.url, { method: 'POST', path: '/v1beta/tunedModels', headers: type ? { 'content-type': type } : {}, body });
      assertRefused(r, 400, 'INVALID_ARGUMENT', /must send its body as JSON \(Content-Type: application\/json\)/, `Content-Type: ${type}`);
    }
    // Vertex creates, custom methods and PATCH go through the same rule.
    const vertex = await rawRequest(fixture.url, {
      method: 'POST', path: '/v1/projects/local/locations/us-central1/tuningJobs', headers: { 'content-type': 'text/plain' },
      body: JSON.stringify({ baseModel: 'gemini-2.5-flash', supervisedTuningSpec: { trainingDatasetUri: 'gs://b/x.jsonl' } }),
    });
    assertRefused(vertex, 400, 'INVALID_ARGUMENT', /must send its body as JSON/, 'tuningJobs text/plain');
    const generate = await rawRequest(fixture.url, {
      method: 'POST', path: '/v1beta/models/stories260K:countTokens', headers: { 'content-type': 'application/x-www-form-urlencoded' }, body: '{"contents":[]}',
    });
    assertRefused(generate, 400, 'INVALID_ARGUMENT', /must send its body as JSON/, 'countTokens urlencoded');
    assert.ok(!(await listNames()).includes('from a form'));

    for (const type of ['application/json', 'application/json; charset=utf-8', 'Application/JSON', 'application/vnd.attune+json']) {
      const r = await rawRequest(fixture.url, { method: 'POST', path: '/v1beta/models/stories260K:countTokens', headers: { 'content-type': type }, body: '{"contents": [{"parts": [{"text": "once"}]}]}' });
      assert.equal(r.status, 200, `${type}: ${r.text}`);
    }
    // A bodiless POST (a cancel without a body) needs no content type.
    const cancel = await rawRequest(fixture.url, { method: 'POST', path: '/v1beta/tunedModels/nope:cancel' });
    assert.equal(cancel.status, 404, cancel.text);
  });

  test('refuses multipart/form-data, urlencoded, text/plain and type-less uploads; accepts multipart/related and a media type', async () => {
    const html = '<script>fetch("/v1beta/tunedModels").then(r => r.text()).then(alert)</script>';
    for (const { type, body } of [...formBodies(html), { type: '', body: html }]) {
      for (const uploadType of ['media', 'multipart']) {
        const r = await rawRequest(fixture.url, {
          method: 'POST', path: `/upload/storage/v1/b/attacker/o?uploadType=${uploadType}&name=page.html`, headers: type ? { 'content-type': type } : {}, body,
        });
        assertRefused(r, 400, 'INVALID_ARGUMENT', /must send an upload as multipart\/related/, `${uploadType} upload as ${type}`);
      }
    }
    const listed = await call(`${fixture.url}/storage/v1/b/attacker/o`);
    assert.deepEqual(listed.json?.items ?? [], [], listed.text);

    const media = await rawRequest(fixture.url, {
      method: 'POST', path: '/upload/storage/v1/b/datasets/o?uploadType=media&name=train.jsonl', headers: { 'content-type': 'application/jsonl' }, body: '{"text_input": "1", "output": "2"}\n',
    });
    assert.equal(media.status, 200, media.text);
    const boundary = 'attune-boundary';
    const multipart = await rawRequest(fixture.url, {
      method: 'POST',
      path: '/upload/storage/v1/b/datasets/o?uploadType=multipart',
      headers: { 'content-type': `multipart/related; boundary=${boundary}` },
      body: `--${boundary}\r\nContent-Type: application/json; charset=UTF-8\r\n\r\n{"name": "other.jsonl"}\r\n--${boundary}\r\nContent-Type: application/jsonl\r\n\r\n{"text_input": "3", "output": "4"}\n\r\n--${boundary}--\r\n`,
    });
    assert.equal(multipart.status, 200, multipart.text);
  });
});

describe('a server with keys', () => {
  const fixture = useServer({ projects: ['edge-alpha'] });
  const key = () => fixture.keys['edge-alpha']!;

  test('a key only in ?key= must send JSON as JSON: a form could put the key in its action URL', async () => {
    for (const { type, body } of formBodies(JSON.stringify(tuningBody('query key form')))) {
      const r = await rawRequest(fixture.url, { method: 'POST', path: `/v1beta/tunedModels?key=${key()}`, headers: { 'content-type': type }, body });
      assertRefused(r, 400, 'INVALID_ARGUMENT', /must send its body as JSON/, `?key= with ${type}`);
    }
    const json = await rawRequest(fixture.url, {
      method: 'POST', path: `/v1beta/tunedModels?key=${key()}`, headers: { 'content-type': 'application/json' }, body: JSON.stringify(tuningBody('query key json')),
    });
    assert.equal(json.status, 200, json.text);
  });

  test('a key in a header may send any content type (curl -d sends form encoding)', async () => {
    const body = JSON.stringify(tuningBody('curl dash d'));
    const variants: Record<string, string>[] = [
      { 'x-goog-api-key': key(), 'content-type': 'application/x-www-form-urlencoded' },
      { authorization: `Bearer ${key()}`, 'content-type': 'application/x-www-form-urlencoded' },
      { 'x-goog-api-key': key(), 'content-type': 'text/plain' },
      { 'x-goog-api-key': key() },
    ];
    for (const headers of variants) {
      const r = await rawRequest(fixture.url, { method: 'POST', path: '/v1beta/tunedModels', headers, body });
      assert.equal(r.status, 200, `${JSON.stringify(headers)}: ${r.text}`);
    }
  });

  test('a server with keys answers any Host (it may sit behind a proxy under any name)', async () => {
    const r = await rawRequest(fixture.url, { path: '/v1beta/tunedModels', headers: { host: 'attune.example.com', 'x-goog-api-key': key() } });
    assert.equal(r.status, 200, r.text);
  });
});
