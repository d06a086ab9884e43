// Issue 9, finding 3, as the attacker did it: headless Chromium, a keyless `attune serve` on loopback, and a
// page on another origin. Chromium resolves evil.test to 127.0.0.1 (--host-resolver-rules), so a page at
// http://evil.test:<attacker port> is a foreign origin, and http://evil.test:<Attune's port> is Attune reached
// through a rebound DNS name. Plain HTML forms (text/plain, urlencoded, multipart/form-data) are refused
// whether their origin is foreign (Origin check) or another port of 127.0.0.1 (content types); links from another
// site reach only the console (Sec-Fetch-Site); the rebound name is refused (Host check); and the console,
// same-origin, still works keyless.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { useBrowser } from './helpers/browser.js';
import { call, useServer } from './helpers/server.js';

// Page-side callbacks run in the browser; this Node build has no DOM types.
declare const document: any;

const tuningRequest = {
  displayName: 'pwned',
  baseModel: 'models/gemini-1.5-flash-001-tuning',
  tuningTask: { hyperparameters: { epochCount: 1, batchSize: 1 }, trainingData: { examples: { examples: [{ textInput: '1', output: '2' }] } } },
};
const html = (text: string) => text.replace(/&/g, '&amp;').replace(/'/g, '&#39;').replace(/</g, '&lt;');

/** An auto-submitting form; for text/plain the body reads {...,"pad":"="} (the classic JSON-by-form trick). */
function formPage(action: string, enctype: string): string {
  const json = JSON.stringify({ ...tuningRequest, pad: '' });
  const name = json.slice(0, -2); // up to the pad's opening quote; the value closes it
  return `<!doctype html><form method="POST" action="${html(action)}" enctype="${enctype}">
<input name='${html(name)}' value='"}'></form><script>document.forms[0].submit()</script>`;
}

describe('a web page against a keyless server', { timeout: 180_000 }, () => {
  const attune = useServer({ keyless: true });
  const browser = useBrowser({ args: ['--host-resolver-rules=MAP evil.test 127.0.0.1'] });
  let attacker: http.Server;
  let attackerPort = 0;
  const attunePort = () => new URL(attune.url).port;

  before(async () => {
    attacker = http.createServer((request, response) => {
      const url = new URL(request.url ?? '/', 'http://x');
      response.setHeader('content-type', 'text/html');
      const action = url.searchParams.get('action');
      response.end(action ? formPage(action, url.searchParams.get('enctype')!) : '<!doctype html><body></body>');
    });
    await new Promise<void>((resolve) => attacker.listen(0, '127.0.0.1', resolve));
    attackerPort = (attacker.address() as AddressInfo).port;
  });
  after(() => new Promise<void>((resolve) => attacker.close(() => resolve())));

  /** Opens the attacker's page on `origin` and returns the status Attune answered the form with. */
  async function submitForm(origin: string, action: string, enctype: string): Promise<number> {
    const { page } = await browser.newPage();
    const answered = page.waitForResponse((r) => r.url().startsWith(attune.url), { timeout: 30_000 });
    await page.goto(`${origin}/?action=${encodeURIComponent(action)}&enctype=${encodeURIComponent(enctype)}`);
    const status = (await answered).status();
    await page.close();
    return status;
  }

  const tunedModels = async () => (await call(`${attune.url}/v1beta/tunedModels`)).json?.tunedModels ?? [];
  const enctypes = ['text/plain', 'application/x-www-form-urlencoded', 'multipart/form-data'];

  test('forms from a foreign origin are refused (Origin), and nothing is created or stored', async () => {
    for (const enctype of enctypes) {
      assert.equal(await submitForm(`http://evil.test:${attackerPort}`, `${attune.url}/v1beta/tunedModels`, enctype), 403, enctype);
      const upload = `${attune.url}/upload/storage/v1/b/attacker/o?uploadType=media&name=page.html`;
      assert.equal(await submitForm(`http://evil.test:${attackerPort}`, upload, enctype), 403, `upload ${enctype}`);
    }
    assert.deepEqual(await tunedModels(), []);
    assert.deepEqual((await call(`${attune.url}/storage/v1/b/attacker/o`)).json?.items ?? [], []);
  });

  test('forms from another port of 127.0.0.1 (same site, loopback Origin) are refused by the content-type rule', async () => {
    for (const enctype of enctypes) {
      assert.equal(await submitForm(`http://127.0.0.1:${attackerPort}`, `${attune.url}/v1beta/tunedModels`, enctype), 400, enctype);
      const upload = `${attune.url}/upload/storage/v1/b/attacker/o?uploadType=media&name=page.html`;
      assert.equal(await submitForm(`http://127.0.0.1:${attackerPort}`, upload, enctype), 400, `upload ${enctype}`);
    }
    // From localhost, another site than 127.0.0.1, the browser marks them cross-site: refused before that.
    assert.equal(await submitForm(`http://localhost:${attackerPort}`, `${attune.url}/v1beta/tunedModels`, 'text/plain'), 403);
    assert.deepEqual(await tunedModels(), []);
    assert.deepEqual((await call(`${attune.url}/storage/v1/b/attacker/o`)).json?.items ?? [], []);
  });

  test('a link from another site to an API route or an object is refused; to the console it opens', async () => {
    for (const [target, status] of [[`${attune.url}/download/storage/v1/b/attacker/o/page.html`, 403], [`${attune.url}/v1beta/tunedModels`, 403], [`${attune.url}/console/`, 200]] as const) {
      const { page } = await browser.newPage();
      await page.goto(`http://evil.test:${attackerPort}/`);
      const landed = page.waitForResponse((r) => r.url() === target, { timeout: 30_000 });
      await page.evaluate((href: string) => {
        const link = document.createElement('a');
        link.href = href;
        document.body.appendChild(link);
        link.click();
      }, target);
      assert.equal((await landed).status(), status, target);
      await page.close();
    }
  });

  test('a rebound DNS name is refused (Host): neither the page nor its same-origin fetches reach the API', async () => {
    const { page } = await browser.newPage();
    const rebound = `http://evil.test:${attunePort()}`;
    const landing = await page.goto(`${rebound}/console/`);
    assert.equal(landing?.status(), 403);
    const fetched = await page.evaluate(async () => {
      const list = await fetch('/v1beta/tunedModels');
      const create = await fetch('/v1beta/tunedModels', { method: 'POST', headers: { 'content-type': 'application/json' }, body: '{}' });
      return [list.status, create.status];
    });
    assert.deepEqual(fetched, [403, 403]);
    await page.close();
  });

  test('the console, same-origin on 127.0.0.1, still works keyless', async () => {
    const { page, problems } = await browser.newPage();
    await page.goto(`${attune.url}/console/`);
    await page.locator('h1, h2').first().waitFor();
    const statuses = await page.evaluate(async () => {
      const headers = { 'x-goog-user-project': 'local' };
      const list = await fetch('/v1beta1/projects/local/locations/us-central1/tuningJobs', { headers });
      const count = await fetch('/v1beta/models/stories260K:countTokens', {
        method: 'POST', headers: { ...headers, 'content-type': 'application/json' }, body: JSON.stringify({ contents: [{ parts: [{ text: 'Once' }] }] }),
      });
      const upload = await fetch('/upload/storage/v1/b/attune-console/o?uploadType=media&name=datasets%2Fa.jsonl', {
        method: 'POST', headers: { ...headers, 'content-type': 'application/jsonl' }, body: '{"text_input": "1", "output": "2"}\n',
      });
      return [list.status, count.status, upload.status];
    });
    assert.deepEqual(statuses, [200, 200, 200]);
    assert.deepEqual(problems, []);
    assert.equal(await page.evaluate(() => document.querySelector('[role="alert"]')?.textContent ?? null), null);
    await page.close();
  });
});
