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

  test('a bad hyperparameter is said at its field, in words, and Start stays disabled until it is fixed', async () => {
    await page.goto(`${server.url}/console/new`);
    await page.getByLabel('Training dataset (JSONL)').setInputFiles(path.join(repoRoot, 'examples', 'numbers.jsonl'));
    await page.getByTestId('estimate-steps').waitFor({ timeout: 30_000 });
    const start = page.getByRole('button', { name: 'Start tuning' });
    assert.equal(await start.isDisabled(), false);

    await page.getByLabel('Epochs').fill('0');
    const message = page.getByTestId('epochs-message');
    assert.equal(await message.textContent(), 'The number of epochs must be a whole number from 1 to 10,000, not 0.');
    assert.equal(await page.getByLabel('Epochs').getAttribute('aria-invalid'), 'true');
    assert.equal(await page.getByLabel('Epochs').getAttribute('aria-describedby'), 'epochs-message');
    assert.equal(await start.isDisabled(), true);
    // No API field name anywhere, and no request for an estimate that the server would refuse.
    assert.doesNotMatch((await page.locator('main').textContent())!, /epoch_count/);
    assert.match((await page.getByTestId('submit-hint').textContent())!, /^Fix this field first: Epochs\.$/);
    // The hint beside Start leads to the field, wherever it is on the page.
    await page.getByTestId('submit-hint').getByRole('button', { name: 'Epochs' }).click();
    assert.equal(await page.evaluate(() => document.activeElement?.id), 'epochs');
    await screenshot(page, 'create-field-error', { fullPage: false });

    await page.getByLabel('Epochs').fill('3');
    assert.equal(await message.count(), 0);
    await page.getByTestId('estimate-steps').waitFor({ timeout: 30_000 });
    assert.equal(await start.isDisabled(), false);

    // A learning-rate multiplier far from the usual range is a warning: the job may still start.
    await page.getByText('Advanced options').click();
    await page.getByLabel('Learning rate multiplier').fill('100');
    const warning = page.getByTestId('learning-rate-message');
    assert.match((await warning.textContent())!, /^A multiplier of 100 means a peak learning rate of 0\.2 .*above the 0\.00001 to 0\.01/);
    assert.equal(await warning.getAttribute('class'), 'field-warning');
    await page.getByTestId('estimate-steps').waitFor({ timeout: 30_000 });
    assert.equal(await start.isDisabled(), false);
    await page.getByLabel('Learning rate multiplier').fill('600');
    assert.match((await warning.textContent())!, /at most 500, not 600/);
    assert.equal(await start.isDisabled(), true);
    assert.deepEqual(problems, []);
  });

  test('a CSV gets an offer to import it, not a JSON parse error, and imports as JSONL', async () => {
    await page.goto(`${server.url}/console/new`);
    const csv = 'prompt,response\n"one, two",three\n-3,-2\n4,five\n';
    await page.getByLabel('Training dataset (JSONL)').setInputFiles({ name: 'numbers.csv', mimeType: 'text/csv', buffer: Buffer.from(csv) });
    const offer = page.getByTestId('training-check-csv');
    await offer.waitFor();
    assert.match((await offer.textContent())!, /numbers\.csv looks like CSV, not JSONL\. Import it\? .*input from column prompt, output from column response \(3 examples\)/);
    assert.equal(await page.locator('[role=alert]').count(), 0, 'no parse errors');
    assert.equal(await page.getByRole('button', { name: 'Start tuning' }).isDisabled(), true);
    await offer.getByRole('button', { name: 'Import as JSONL' }).click();
    await page.locator('#training-check', { hasText: '3 examples read, no errors' }).waitFor();
    assert.match((await page.locator('.drop-zone').first().textContent())!, /numbers\.jsonl/);
    await page.getByTestId('estimate-steps').waitFor({ timeout: 30_000 });
    // What was uploaded is the JSONL the CSV became.
    const objects = (await call(`${server.url}/storage/v1/b/attune-console-local/o`)).json.items;
    // Upload names start with the time, so the last in name order is the newest.
    const latest = objects.filter((o: { name: string }) => o.name.endsWith('numbers.jsonl')).sort((a: { name: string }, b: { name: string }) => a.name.localeCompare(b.name)).at(-1);
    const stored = await call(`${server.url}/download/storage/v1/b/attune-console-local/o/${encodeURIComponent(latest.name)}?alt=media`);
    assert.deepEqual(stored.text.trim().split('\n').map((l: string) => JSON.parse(l)), [
      { text_input: 'one, two', output: 'three' },
      { text_input: '-3', output: '-2' },
      { text_input: '4', output: 'five' },
    ]);
    assert.deepEqual(problems, []);
  });

  test('a dataset already in the store is picked by its gs:// URI instead of uploading', async () => {
    const objects = (await call(`${server.url}/storage/v1/b/attune-console-local/o`)).json.items as { bucket: string; name: string }[];
    // The number examples the first test uploaded (the oldest numbers.jsonl; the CSV import came later).
    const numbers = objects.filter((o) => o.name.endsWith('-numbers.jsonl')).sort((a, b) => a.name.localeCompare(b.name))[0]!;
    const uri = `gs://${numbers.bucket}/${numbers.name}`;
    await page.goto(`${server.url}/console/new`);
    const uploadsBefore = sent.filter((r) => r.url().includes('/upload/storage/')).length;
    await page.getByLabel('Pick a gs:// dataset').check();
    const field = page.getByLabel('Training dataset (gs:// URI)');
    await page.getByTestId('stored-training-message').filter({ hasText: /files? in this project's buckets to pick from/ }).waitFor();
    const suggested = await page.locator('#stored-training-objects option').evaluateAll((options) => options.map((o: any) => o.value));
    assert.ok(suggested.includes(uri), `${uri} among ${suggested.join(', ')}`);
    await field.fill('not a uri');
    assert.equal(await page.getByTestId('stored-training-message').textContent(), 'Give a gs://bucket/object URI.');
    assert.equal(await page.getByRole('button', { name: 'Start tuning' }).isDisabled(), true);
    await field.fill(uri);
    await page.getByTestId('estimate-steps').waitFor({ timeout: 30_000 });
    assert.equal(await page.getByRole('button', { name: 'Start tuning' }).isDisabled(), false);
    assert.equal(sent.filter((r) => r.url().includes('/upload/storage/')).length, uploadsBefore, 'nothing uploaded');
    const check = sent.at(-1)!;
    assert.match(check.url(), /tuningJobs\?validateOnly=true$/);
    assert.equal(check.postDataJSON().supervisedTuningSpec.trainingDatasetUri, uri);
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

  test('a keyless console names the other projects that have jobs and switches to one', async () => {
    // A job created the way the README's curl does, under another project than the console's `local`.
    const created = await call(`${server.url}/v1beta/tunedModels`, {
      method: 'POST',
      headers: { 'x-goog-user-project': 'my-project' },
      body: {
        displayName: 'made with curl',
        baseModel: 'models/gemini-1.5-flash-001-tuning',
        tuningTask: { hyperparameters: { epochCount: 1, batchSize: 2 }, trainingData: { examples: { examples: [{ textInput: '1', output: '2' }, { textInput: '2', output: '3' }] } } },
      },
    });
    assert.equal(created.status, 200, created.text);
    await page.goto(`${server.url}/console/`);
    const hint = page.getByTestId('other-projects');
    await hint.waitFor();
    assert.match((await hint.textContent())!, /This list shows project local\. Other projects on this server have jobs:Switch to my-project \(1 job\)/);
    await hint.getByRole('button', { name: 'Switch to my-project' }).click();
    await page.getByRole('link', { name: 'made with curl' }).waitFor();
    assert.match((await page.getByRole('button', { name: /Settings/ }).textContent())!, /my-project, no key/);
    // Now on my-project, the hint offers the way back to nothing else: local holds no jobs.
    assert.equal(await page.getByTestId('other-projects').count(), 0);
    // The settings dialog suggests the projects with jobs (and the one it shows).
    await page.getByRole('button', { name: /Settings/ }).click();
    assert.deepEqual(await page.locator('#settings-projects option').evaluateAll((options) => options.map((o: any) => o.value)), ['my-project']);
    await page.getByRole('button', { name: 'Cancel' }).click();
    assert.deepEqual(problems, []);
  });
});
