// The web console end to end, in headless Chromium against a real `attune serve` with an API key: enter the
// key, tune stories260K on the number examples uploaded as JSONL, watch the run to ACTIVE with its loss
// chart, download its adapter, chat with it on the Test page, cancel a second run, compare the two, and
// delete one. Each step checks what the page shows against what the API says.
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import type { Page } from 'playwright-core';
import { screenshot, useBrowser, viewports } from './helpers/browser.js';
import { call, repoRoot, useServer } from './helpers/server.js';

const project = 'console-e2e';
const numbersFile = path.join(repoRoot, 'examples', 'numbers.jsonl');
/** A run long enough to cancel mid-way (4,000 steps would take over a minute). */
const longEpochs = 1000;
const trainColor = [0x0b, 0x57, 0xd0] as const;

// Page-side callbacks run in the browser; this Node build has no DOM types, so their globals are declared loosely.
declare const document: any, window: any, localStorage: any;

describe('console', { timeout: 300_000 }, () => {
  const server = useServer({ projects: [project] });
  const browser = useBrowser();
  let page: Page;
  let problems: string[];
  let firstId = '';
  let secondId = '';
  let downloads = '';

  const api = (route: string, options: Parameters<typeof call>[1] = {}) => call(server.url + route, { key: server.keys[project], ...options });
  const jobs = (rest = '') => `/v1beta1/projects/${project}/locations/us-central1/tuningJobs${rest}`;
  const go = (route: string) => page.goto(`${server.url}/console${route}`);

  before(async () => {
    ({ page, problems } = await browser.newPage());
    downloads = mkdtempSync(path.join(os.tmpdir(), 'attune-console-downloads-'));
  });
  after(() => rmSync(downloads, { recursive: true, force: true }));

  /** Creates a run through the form and returns its job id (from the URL the form leads to). */
  async function createThroughForm(
    name: string,
    epochs: number,
    { extra, beforeStart }: { extra?: () => Promise<void>; beforeStart?: () => Promise<void> } = {},
  ): Promise<{ id: string; stepsShown: string }> {
    await go('/new');
    await page.getByLabel('Display name').fill(name);
    await page.getByLabel('Epochs').fill(String(epochs));
    await page.getByLabel('Batch size').fill('4');
    await extra?.();
    await page.getByLabel('Training dataset (JSONL)').setInputFiles(numbersFile);
    await page.locator('#training-check', { hasText: '15 examples read, no errors' }).waitFor();
    const steps = page.getByTestId('estimate-steps');
    await steps.waitFor({ timeout: 30_000 });
    const stepsShown = (await steps.textContent())!.replace(/\D/g, '');
    await beforeStart?.();
    await page.getByRole('button', { name: 'Start tuning' }).click();
    await page.waitForURL(/\/console\/jobs\/\d+$/, { timeout: 30_000 });
    return { id: page.url().split('/').at(-1)!, stepsShown };
  }

  test('an API error shows its message until the key is entered in Settings', async () => {
    await go('/');
    const alert = page.getByRole('alert');
    await alert.waitFor();
    assert.match((await alert.textContent())!, /Method doesn't allow unregistered callers/);
    await page.getByRole('button', { name: /Settings/ }).click();
    await page.getByLabel('API key').fill(server.keys[project]!);
    await page.getByLabel('Project').fill(project);
    await page.getByRole('button', { name: 'Save' }).click();
    await page.getByText('No tuning jobs yet.').waitFor();
    assert.equal(await page.evaluate(() => JSON.parse(localStorage.getItem('attune.console.settings')!).project), project);
    assert.deepEqual(problems, []);
  });

  test('creates a tuned model from the number examples uploaded as JSONL', async () => {
    const { id, stepsShown } = await createThroughForm('numbers e2e', 30);
    firstId = id;
    const job = (await api(jobs(`/${id}`))).json;
    assert.equal(job.tunedModelDisplayName, 'numbers e2e');
    assert.equal(job.baseModel, 'stories260K');
    assert.equal(job.supervisedTuningSpec.hyperParameters.epochCount, '30');
    assert.equal(job.supervisedTuningSpec.hyperParameters.batchSize, '4');
    // The step count shown before starting is the one the job got.
    assert.equal(job.tuningDataStats.supervisedTuningDataStats.tuningStepCount, stepsShown);
    // The dataset went through the object store, byte for byte.
    const uri: string = job.supervisedTuningSpec.trainingDatasetUri;
    const [, bucket, object] = /^gs:\/\/([^/]+)\/(.+)$/.exec(uri)!;
    assert.equal(bucket, `attune-console-${project}`, "the project's own console bucket");
    const stored = await api(`/download/storage/v1/b/${bucket}/o/${encodeURIComponent(object!)}?alt=media`);
    assert.equal(stored.text, readFileSync(numbersFile, 'utf8'));
    assert.deepEqual(problems, []);
  });

  test('watches the run reach ACTIVE with its loss chart drawn', async () => {
    assert.ok(firstId, 'needs the run from the previous test');
    await page.locator('h1 .badge', { hasText: 'Succeeded' }).waitFor({ timeout: 120_000 });
    assert.equal((await api(`/v1beta/tunedModels/${firstId}`)).json.state, 'ACTIVE');
    const metrics = (await api(jobs(`/${firstId}/metrics`))).json;
    const trainLoss = metrics.timeSeriesData.find((s: { displayName: string }) => s.displayName === '/train_total_loss').values;
    const total = (await api(jobs(`/${firstId}`))).json.tuningDataStats.supervisedTuningDataStats.tuningStepCount;
    assert.equal(trainLoss.at(-1).step, total);
    // Every point and every epoch end the API has is on the chart.
    const chart = page.getByTestId('loss-chart');
    await page.waitForFunction((n) => document.querySelector('[data-testid=loss-chart]')?.getAttribute('data-points') === String(n), trainLoss.length);
    assert.equal(await chart.getAttribute('data-markers'), String(metrics.epochs.length));
    assert.equal(metrics.epochs.length, 30);
    // And the curve is really drawn: the canvas holds plenty of pixels in the train series' colour.
    const painted = await chart.locator('canvas').evaluate((canvas: any, [r, g, b]) => {
      const { data } = canvas.getContext('2d')!.getImageData(0, 0, canvas.width, canvas.height);
      let n = 0;
      for (let i = 0; i < data.length; i += 4) if (Math.abs(data[i]! - r!) < 24 && Math.abs(data[i + 1]! - g!) < 24 && Math.abs(data[i + 2]! - b!) < 24) n++;
      return n;
    }, trainColor);
    assert.ok(painted > 200, `only ${painted} pixels of the train curve`);
    assert.match((await page.getByTestId('run-progress').textContent())!, new RegExp(`Step ${total} of ${total} · epoch 30 of 30`));
    // The final values beside the chart, and a plain note where there is no validation set to plot.
    const lossLast = (await page.getByTestId('loss-chart-last').textContent())!;
    assert.match(lossLast, new RegExp(`^Final: Train ${Number(trainLoss.at(-1).scalar.value).toPrecision(4).replace('.', '\\.')}(?!\\d)`));
    assert.match(lossLast, /no validation set$/);
    assert.doesNotMatch((await page.locator('main').textContent())!, /No points yet/);
    // The log of events: newest first, with the tokens trained and the seed, as the API gives them.
    const log = (await api(jobs(`/${firstId}/events`))).json;
    const panel = page.getByTestId('job-events');
    await panel.getByTestId('seed').waitFor();
    assert.equal(await panel.getByTestId('seed').textContent(), String(log.seed));
    assert.equal((await panel.getByTestId('trained-tokens').textContent())!.replace(/\D/g, ''), log.trainedTokens);
    const items = panel.locator('li.event');
    assert.match((await items.first().textContent())!, /Finished: \d+ of \d+ steps/);
    assert.equal(await items.count(), 8);
    // A finished run keeps no checkpoint, so its log names none.
    assert.equal(log.events.filter((e: { type: string }) => e.type === 'checkpoint').length, 0);
    await screenshot(page, 'details');
    await panel.getByRole('button', { name: `Show all ${log.events.length} events` }).click();
    assert.equal(await items.count(), log.events.length);
    assert.equal(await items.last().getAttribute('data-type'), 'created');
    // Loss on a log scale, and the train line smoothed, on request.
    await page.getByLabel('Log scale for loss').check();
    assert.equal(await chart.getAttribute('data-scale'), 'log');
    await page.getByLabel('Log scale for loss').uncheck();
    assert.equal(await chart.getAttribute('data-scale'), 'linear');
    assert.deepEqual(problems, []);
  });

  test('downloads the adapter as a PEFT ZIP', async () => {
    const [download] = await Promise.all([page.waitForEvent('download'), page.getByRole('button', { name: 'Download PEFT adapter' }).click()]);
    const file = path.join(downloads, download.suggestedFilename());
    await download.saveAs(file);
    // Python's zipfile checks every entry's CRC; the names are the PEFT files plus attune.json and a README.
    const listing = execFileSync('python3', ['-c', 'import sys, zipfile; z = zipfile.ZipFile(sys.argv[1]); assert z.testzip() is None; print(sorted(z.namelist()))', file], { encoding: 'utf8' });
    assert.equal(listing.trim(), "['README.md', 'adapter_config.json', 'adapter_model.safetensors', 'attune.json']");
    assert.deepEqual(problems, []);
  });

  test('Test streams an answer from the tuned model beside the base model', async () => {
    await page.getByRole('main').getByRole('link', { name: 'Test', exact: true }).click();
    await page.waitForURL(new RegExp(`/console/test/${firstId}$`));
    const prompt = page.getByLabel('Prompt');
    await prompt.waitFor();
    // Greedy by default, as `attune generate` and the README are; single-turn, as the examples were.
    assert.equal(await page.getByLabel(/Temperature/).inputValue(), '0');
    assert.equal(await page.getByLabel('Single turn').isChecked(), true);
    await page.getByLabel('Max output tokens').fill('16');
    await prompt.fill('twenty two');
    await page.getByTestId('prompt-tokens').filter({ hasText: /\d+ tokens/ }).waitFor();
    const streamed = page.waitForRequest((r) => r.url().includes(`/v1beta/tunedModels/${firstId}:streamGenerateContent?alt=sse`));
    const baseStreamed = page.waitForRequest((r) => r.url().includes(':streamGenerateContent?alt=sse') && r.url().includes('/v1beta/models/'));
    await prompt.press('Enter');
    const sent = (await streamed).postDataJSON();
    assert.deepEqual(sent.contents, [{ role: 'user', parts: [{ text: 'twenty two' }] }]);
    assert.equal(sent.systemInstruction, undefined);
    assert.equal(sent.generationConfig.temperature, 0);
    assert.equal(sent.generationConfig.maxOutputTokens, 16);
    const answer = page.locator('[data-testid=tuned-transcript] li[data-role=model]:not([data-pending])');
    await answer.getByTestId('usage').waitFor({ timeout: 60_000 });
    const shown = (await answer.locator('.message-text').textContent())!;
    assert.ok(Number(await answer.getAttribute('data-chunks')) >= 1);
    // The same request through the API (not streamed) gives the same greedy answer and token counts.
    const direct = (await api(`/v1beta/tunedModels/${firstId}:generateContent`, { method: 'POST', body: sent })).json;
    assert.equal(shown, direct.candidates[0].content.parts.map((p: { text: string }) => p.text).join(''));
    assert.match(shown, /twenty three/);
    const usage = (await answer.getByTestId('usage').textContent())!;
    assert.match(usage, new RegExp(`^${direct.usageMetadata.promptTokenCount} prompt tokens · ${direct.usageMetadata.candidatesTokenCount} output tokens`));
    assert.equal(await answer.getByTestId('stopped-at-limit').count(), direct.candidates[0].finishReason === 'MAX_TOKENS' ? 1 : 0);

    // The base model answered the same prompt beside it: without the space its continuation starts with,
    // and marked where it stopped at the token limit.
    const baseAnswer = page.locator('[data-testid=base-transcript] li[data-role=model]:not([data-pending])');
    await baseAnswer.getByTestId('usage').waitFor({ timeout: 60_000 });
    const baseRequest = await baseStreamed;
    const baseDirect = (await api(`${new URL(baseRequest.url()).pathname.replace(':streamGenerateContent', ':generateContent')}`, { method: 'POST', body: baseRequest.postDataJSON() })).json;
    const baseText: string = baseDirect.candidates[0].content.parts.map((p: { text: string }) => p.text).join('');
    const baseShown = (await baseAnswer.locator('.message-text').textContent())!;
    assert.equal(baseShown, baseText.trimStart());
    assert.doesNotMatch(baseShown, /^\s/);
    const baseStopped = baseDirect.candidates[0].finishReason === 'MAX_TOKENS';
    assert.equal(await baseAnswer.getByTestId('stopped-at-limit').count(), baseStopped ? 1 : 0);
    if (baseStopped) assert.equal(await baseAnswer.getByTestId('stopped-at-limit').textContent(), 'Stopped at the token limit (16 tokens): raise Max output tokens for a longer answer.');
    await screenshot(page, 'test');

    // Single turn: the next prompt goes alone, though the first exchange stays on screen.
    const ask = async (text: string) => {
      const request = page.waitForRequest((r) => r.url().includes(`/v1beta/tunedModels/${firstId}:streamGenerateContent?alt=sse`));
      await prompt.fill(text);
      await prompt.press('Enter');
      const body = (await request).postDataJSON();
      await page.locator('[data-testid=tuned-transcript] li[data-pending]').waitFor({ state: 'detached', timeout: 60_000 });
      await page.locator('[data-testid=base-transcript] li[data-pending]').waitFor({ state: 'detached', timeout: 60_000 });
      return body;
    };
    assert.deepEqual((await ask('thirty')).contents, [{ role: 'user', parts: [{ text: 'thirty' }] }]);
    assert.equal(await page.locator('[data-testid=tuned-transcript] li[data-role=model]').count(), 2);
    // As a conversation, with a system instruction: the earlier turns and the instruction are sent.
    await page.getByLabel('Single turn').uncheck();
    await page.getByLabel('System instruction (optional)').fill('Count on by one.');
    const conversation = await ask('forty');
    assert.deepEqual(conversation.contents.map((c: { role: string; parts: { text: string }[] }) => `${c.role}: ${c.parts[0]!.text.trim() ? 'text' : 'empty'}`), [
      'user: text',
      'model: text',
      'user: text',
      'model: text',
      'user: text',
    ]);
    assert.equal(conversation.contents[0].parts[0].text, 'twenty two');
    assert.equal(conversation.contents[4].parts[0].text, 'forty');
    assert.deepEqual(conversation.systemInstruction, { parts: [{ text: 'Count on by one.' }] });
    assert.deepEqual(problems, []);
  });

  test('"Clone this job" fills the form from the job, datasets by URI', async () => {
    await go(`/jobs/${firstId}`);
    await page.getByRole('link', { name: 'Clone this job' }).click();
    await page.waitForURL(new RegExp(`/console/new\\?clone=${firstId}$`));
    await page.getByTestId('clone-notice').waitFor();
    const job = (await api(jobs(`/${firstId}`))).json;
    assert.equal(await page.getByLabel('Display name').inputValue(), 'numbers e2e (copy)');
    assert.equal(await page.getByLabel('Epochs').inputValue(), '30');
    assert.equal(await page.getByLabel('Batch size').inputValue(), '4');
    assert.equal(await page.getByLabel('Pick a gs:// dataset').isChecked(), true);
    assert.equal(await page.getByLabel('Training dataset (gs:// URI)').inputValue(), job.supervisedTuningSpec.trainingDatasetUri);
    assert.equal(await page.getByLabel('Base model').inputValue(), `models/${job.baseModel}`);
    // The server checks the clone as it would create it: the same steps as the original.
    const steps = page.getByTestId('estimate-steps');
    await steps.waitFor({ timeout: 30_000 });
    assert.equal((await steps.textContent())!.replace(/\D/g, ''), job.tuningDataStats.supervisedTuningDataStats.tuningStepCount);
    assert.equal(await page.getByRole('button', { name: 'Start tuning' }).isDisabled(), false);
    assert.deepEqual(problems, []);
  });

  test('cancels a second run', async () => {
    const extra = async () => {
      await page.getByText('Advanced options').click();
      await page.getByLabel('Learning rate multiplier').fill('0.5');
    };
    // The first run finished, so the form estimates the duration from its measured pace.
    const beforeStart = async () => {
      const estimate = page.getByTestId('estimate-duration').filter({ hasText: 'Estimated from' });
      await estimate.waitFor();
      const text = (await estimate.textContent())!;
      assert.match(text, /from 1 finished run on this base model with batch size 4/);
      const loss = (await api(jobs(`/${firstId}/metrics`))).json.timeSeriesData.find((s: { displayName: string }) => s.displayName === '/train_total_loss').values;
      const first = loss[0];
      const last = loss.at(-1);
      const pace = (Date.parse(last.wallTime) - Date.parse(first.wallTime)) / 1000 / (Number(last.step) - Number(first.step));
      assert.match(text, new RegExp(`${pace.toFixed(3)} s per step`));
    };
    const { id } = await createThroughForm('long run', longEpochs, { extra, beforeStart });
    secondId = id;
    // Let it train a little, so it has a curve to compare; the ETA appears once the pace is known.
    await page.waitForFunction(() => Number(document.querySelector('[data-testid=loss-chart]')?.getAttribute('data-points')) >= 20, undefined, { timeout: 60_000 });
    await page.getByTestId('eta').filter({ hasText: /about .* left/ }).waitFor();
    await screenshot(page, 'details-running');
    await page.getByRole('button', { name: 'Cancel run' }).click();
    const dialog = page.getByRole('dialog', { name: 'Cancel this run?' });
    await dialog.getByRole('button', { name: 'Cancel run' }).click();
    await page.locator('h1 .badge', { hasText: 'Cancelled' }).waitFor({ timeout: 60_000 });
    const job = (await api(jobs(`/${secondId}`))).json;
    assert.equal(job.state, 'JOB_STATE_CANCELLED');
    assert.equal(job.error.code, 1);
    const done = Number(job.tuningJobMetadata.completedStepCount);
    assert.ok(done > 0 && done < Number(job.tuningDataStats.supervisedTuningDataStats.tuningStepCount));
    assert.deepEqual(problems, []);
  });

  test('filters the list by state and by name', async () => {
    await go('/');
    await page.locator('tbody tr').nth(1).waitFor();
    await page.getByLabel('State').selectOption({ label: 'Cancelled' });
    await page.locator('tbody tr').nth(1).waitFor({ state: 'detached' });
    assert.deepEqual(await page.locator('tbody tr').evaluateAll((rows) => rows.map((row) => row.getAttribute('data-job'))), [secondId]);
    await page.getByLabel('State').selectOption({ label: 'All states' });
    await page.locator('tbody tr').nth(1).waitFor();
    await page.getByLabel('Display name contains').fill('e2e');
    await page.locator(`tr[data-job="${secondId}"]`).waitFor({ state: 'detached' });
    assert.deepEqual(await page.locator('tbody tr').evaluateAll((rows) => rows.map((row) => row.getAttribute('data-job'))), [firstId]);
    await page.getByLabel('Display name contains').fill('');
    await page.locator('tbody tr').nth(1).waitFor();
    assert.deepEqual(problems, []);
  });

  test('compares the two runs overlaid', async () => {
    await go('/');
    await page.locator('tbody tr').nth(1).waitFor();
    await screenshot(page, 'list');
    await page.getByLabel('Select numbers e2e to compare').check();
    await page.getByLabel('Select long run to compare').check();
    await page.getByRole('button', { name: 'Compare selected (2)' }).click();
    await page.waitForURL(/\/console\/compare\?jobs=/);
    const chart = page.getByTestId('compare-chart');
    await chart.waitFor();
    const labels = await chart.locator('.u-legend .u-series .u-label').allTextContents();
    assert.deepEqual(labels.slice(1).sort(), ['long run', 'numbers e2e']);
    const points = async (id: string) => (await api(jobs(`/${id}/metrics`))).json.timeSeriesData.find((s: { displayName: string }) => s.displayName === '/train_total_loss').values.length;
    assert.equal(await chart.getAttribute('data-points'), String((await points(firstId)) + (await points(secondId))));
    await screenshot(page, 'compare');
    assert.deepEqual(problems, []);
  });

  test('deletes a model after confirmation', async () => {
    await go(`/jobs/${secondId}`);
    await page.getByRole('button', { name: 'Delete' }).click();
    const dialog = page.getByRole('dialog', { name: 'Delete long run?' });
    // The safe choice has the focus; Escape keeps the model.
    assert.equal(await dialog.evaluate(() => document.activeElement?.textContent), 'Keep it');
    await page.keyboard.press('Escape');
    assert.equal((await api(jobs(`/${secondId}`))).status, 200);
    await page.getByRole('button', { name: 'Delete' }).click();
    await dialog.getByRole('button', { name: 'Delete' }).click();
    await page.waitForURL(/\/console\/$/);
    await page.getByRole('status').filter({ hasText: 'Deleted long run.' }).waitFor();
    // The list loaded after the delete (it lists the other run) and no longer has the deleted one.
    await page.locator(`tr[data-job="${firstId}"]`).waitFor();
    assert.equal(await page.locator(`tr[data-job="${secondId}"]`).count(), 0);
    assert.equal((await api(`/v1beta/tunedModels/${secondId}`)).status, 404);
    assert.deepEqual(problems, []);
  });

  test('the list and details fit a phone screen', async () => {
    const phone = await browser.newPage({ viewport: viewports.phone });
    await phone.page.addInitScript((settings) => localStorage.setItem('attune.console.settings', settings), JSON.stringify({ apiKey: server.keys[project], project }));
    await phone.page.goto(`${server.url}/console/`);
    await phone.page.locator(`tr[data-job="${firstId}"]`).waitFor();
    assert.ok(await phone.page.evaluate(() => document.documentElement.scrollWidth <= window.innerWidth), 'the page scrolls sideways');
    await screenshot(phone.page, 'list-phone');
    await phone.page.goto(`${server.url}/console/jobs/${firstId}`);
    await phone.page.locator('h1 .badge', { hasText: 'Succeeded' }).waitFor();
    assert.ok(await phone.page.evaluate(() => document.documentElement.scrollWidth <= window.innerWidth), 'the details page scrolls sideways');
    await screenshot(phone.page, 'details-phone');
    // On the Test page the prompt box is within the first screen, above the sampling panel.
    await phone.page.goto(`${server.url}/console/test/${firstId}`);
    const prompt = phone.page.getByLabel('Prompt');
    await prompt.waitFor();
    const promptBox = (await prompt.boundingBox())!;
    assert.ok(promptBox.y + promptBox.height < viewports.phone.height, `the prompt box ends ${promptBox.y + promptBox.height} px down`);
    assert.ok(promptBox.y < (await phone.page.getByLabel(/Temperature/).boundingBox())!.y, 'the prompt box comes before the sampling panel');
    assert.ok(await phone.page.evaluate(() => document.documentElement.scrollWidth <= window.innerWidth), 'the Test page scrolls sideways');
    await screenshot(phone.page, 'test-phone', { fullPage: false });
    assert.deepEqual(phone.problems, []);
  });

  test('the list shows final loss and run time, and renames and deletes in place', async () => {
    await go('/');
    const row = page.locator(`tr[data-job="${firstId}"]`);
    await row.getByTestId('final-loss').filter({ hasText: /\d/ }).waitFor();
    const loss = (await api(jobs(`/${firstId}/metrics`))).json.timeSeriesData.find((s: { displayName: string }) => s.displayName === '/train_total_loss').values.at(-1);
    assert.equal(await row.getByTestId('final-loss').textContent(), Number(loss.scalar.value).toPrecision(4));
    const job = (await api(jobs(`/${firstId}`))).json;
    const seconds = (Date.parse(job.endTime) - Date.parse(job.startTime)) / 1000;
    const shownTime = (await row.getByTestId('run-time').textContent())!;
    const [, minutes = '0', secs] = /^(?:(\d+) min )?(\d+(?:\.\d)?) s$/.exec(shownTime) ?? [];
    assert.ok(secs, `run time shown as ${shownTime}`);
    assert.ok(Math.abs(Number(minutes) * 60 + Number(secs) - seconds) <= 0.5, `${shownTime} for ${seconds} s`);

    await row.getByRole('button', { name: 'Rename numbers e2e' }).click();
    const dialog = page.getByRole('dialog', { name: 'Rename tuned model' });
    await dialog.getByLabel('Display name').fill('numbers renamed');
    await dialog.getByRole('button', { name: 'Rename' }).click();
    await page.getByRole('status').filter({ hasText: 'Renamed to numbers renamed.' }).waitFor();
    await row.getByRole('link', { name: 'numbers renamed', exact: true }).waitFor();
    assert.equal((await api(jobs(`/${firstId}`))).json.tunedModelDisplayName, 'numbers renamed');

    await row.getByRole('button', { name: 'Delete numbers renamed' }).click();
    const confirm = page.getByRole('dialog', { name: 'Delete numbers renamed?' });
    await confirm.getByRole('button', { name: 'Delete' }).click();
    await page.getByRole('status').filter({ hasText: 'Deleted numbers renamed.' }).waitFor();
    await row.waitFor({ state: 'detached' });
    assert.equal((await api(`/v1beta/tunedModels/${firstId}`)).status, 404);
    assert.deepEqual(problems, []);
  });
});
