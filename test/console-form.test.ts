// The console's create form against a keyless `attune serve`: a malformed JSONL shows its errors by line
// and nothing leaves the browser; once a good file replaces it, that file (and only it) is uploaded and
// the server's would-be job is shown, still without creating one. Also: the page works from the keyboard.
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { before, describe, test } from 'node:test';
import type { Page, Request } from 'playwright-core';
import { screenshot, useBrowser } from './helpers/browser.js';
import { call, repoRoot, useServer } from './helpers/server.js';

// Page-side callbacks run in the browser; this Node build has no DOM types, so their globals are declared loosely.
declare const document: any;

const malformed = [
  '{"text_input": "1", "output": "2"}',
  '{"text_input": "3", "output": 4}',
  '',
  '{"text_input": "5", "output": "6"',
  '{"messages": [{"role": "assistant", "content": "hello"}]}',
  '{"text_input": "7", "output": "8"}',
].join('\n');

describe('console form', { timeout: 120_000 }, () => {
  const server = useServer({ keyless: true });
  const browser = useBrowser();
  let page: Page;
  let problems: string[];
  /** Requests that would send data to the server: uploads and job creations. */
  const sent: Request[] = [];

  before(async () => {
    ({ page, problems } = await browser.newPage());
    page.on('request', (request) => {
      if (request.method() === 'POST' && /\/upload\/storage\/|\/tuningJobs/.test(request.url())) sent.push(request);
    });
  });

  test('a malformed JSONL shows its errors by line before anything is submitted', async () => {
    await page.goto(`${server.url}/console/new`);
    await page.getByLabel('Display name').fill('bad data');
    await page.getByLabel('Training dataset (JSONL)').setInputFiles({ name: 'bad.jsonl', mimeType: 'application/jsonl', buffer: Buffer.from(malformed) });
    const errors = page.locator('#training-check[role=alert]');
    await errors.waitFor();
    assert.match((await errors.locator('p').first().textContent())!, /3 errors/);
    const lines = await errors.locator('li').allTextContents();
    assert.equal(lines.length, 3);
    assert.match(lines[0]!, /^line 2: "output" must be a string/);
    assert.match(lines[1]!, /^line 4: invalid JSON/);
    assert.match(lines[2]!, /^line 5: the first turn must be the user's/);
    assert.deepEqual(await errors.locator('li').evaluateAll((items) => items.map((li) => li.getAttribute('data-line'))), ['2', '4', '5']);
    assert.equal(await page.getByRole('button', { name: 'Start tuning' }).isDisabled(), true);
    await screenshot(page, 'create-errors');

    // Replacing it with a good file uploads that file and asks the server for the would-be job.
    const good = readFileSync(path.join(repoRoot, 'examples', 'numbers.jsonl'));
    await page.getByLabel('Training dataset (JSONL)').setInputFiles({ name: 'numbers.jsonl', mimeType: 'application/jsonl', buffer: good });
    await page.getByTestId('estimate-steps').waitFor({ timeout: 30_000 });
    assert.equal(await page.locator('#training-check[role=alert]').count(), 0);
    assert.equal(await page.getByRole('button', { name: 'Start tuning' }).isDisabled(), false);

    // The malformed file never left the browser: the first request to send anything carried the good file.
    assert.ok(sent.length >= 2, `expected an upload and a validateOnly check, got ${sent.map((r) => r.url()).join(', ')}`);
    assert.match(sent[0]!.url(), /\/upload\/storage\/v1\/b\/attune-console-local\/o\?uploadType=media/, 'the keyless project\'s console bucket');
    for (const request of sent.slice(1)) assert.match(request.url(), /tuningJobs\?validateOnly=true$/);
    // The store holds one object: the good file, byte for byte.
    const objects = (await call(`${server.url}/storage/v1/b/attune-console-local/o`)).json;
    assert.equal(objects.items.length, 1);
    const stored = await call(`${server.url}/download/storage/v1/b/attune-console-local/o/${encodeURIComponent(objects.items[0].name)}?alt=media`);
    assert.equal(stored.text, good.toString('utf8'));
    // validateOnly created nothing.
    const jobs = (await call(`${server.url}/v1beta1/projects/local/locations/us-central1/tuningJobs`)).json;
    assert.equal(jobs.tuningJobs, undefined);
    assert.deepEqual(problems, []);
  });

  test('examples typed into the table are checked the same way', async () => {
    await page.getByLabel('Type examples').check();
    await page.getByLabel('Input of example 1').fill('one');
    await page.getByLabel('Output of example 1').fill('two');
    await page.getByLabel('Input of example 2').fill('three');
    const errors = page.locator('#training-check[role=alert]');
    await errors.waitFor();
    assert.deepEqual(await errors.locator('li').allTextContents(), ['line 2: a model turn is empty']);
    await page.getByLabel('Output of example 2').fill('four');
    await page.locator('#training-check', { hasText: '2 examples read, no errors' }).waitFor();
    assert.deepEqual(problems, []);
  });

  test('the page works from the keyboard', async () => {
    await page.goto(`${server.url}/console/`);
    await page.getByText('No tuning jobs yet.').waitFor();
    await page.keyboard.press('Tab');
    assert.equal(await page.evaluate(() => document.activeElement?.textContent), 'Skip to content');
    // Tab on through the navigation and follow "New tuning job" with Enter.
    for (let i = 0; i < 10 && (await page.evaluate(() => document.activeElement?.textContent)) !== 'New tuning job'; i++) await page.keyboard.press('Tab');
    await page.keyboard.press('Enter');
    await page.waitForURL(/\/console\/new$/);
    // Focus moved to the new page's heading, as a page load would put it.
    assert.equal(await page.evaluate(() => document.activeElement?.textContent), 'New tuning job');
    // Every form control has a label.
    const unlabelled = await page.evaluate(() =>
      [...document.querySelectorAll('main input, main select, main textarea')]
        .filter((el: any) => !el.labels?.length && !el.getAttribute('aria-label') && !el.getAttribute('aria-labelledby'))
        .map((el: any) => el.outerHTML),
    );
    assert.deepEqual(unlabelled, []);
    assert.deepEqual(problems, []);
  });
});
