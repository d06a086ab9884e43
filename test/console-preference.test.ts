// The console's "Continue tuning" and preference jobs against a keyless `attune serve` that trains stories260K:
// from a succeeded job's page, Continue tuning opens the form on that model (no base model to pick, its adapter
// size kept); the Preference (DPO) method checks a preference file by line in the browser; the job it starts
// continues the model (preTunedModel, preferenceOptimizationSpec) and its page charts the DPO loss, reward
// accuracy and reward margin instead of next-token accuracy.
import assert from 'node:assert/strict';
import { before, describe, test } from 'node:test';
import type { Page } from 'playwright-core';
import { screenshot, useBrowser } from './helpers/browser.js';
import { call, useServer, waitFor } from './helpers/server.js';

const jobs = '/v1beta1/projects/local/locations/us-central1/tuningJobs';
const content = (role: string, text: string) => ({ role, parts: [{ text }] });
const jsonl = (rows: unknown[]) => rows.map((r) => (typeof r === 'string' ? r : JSON.stringify(r))).join('\n') + '\n';
const prompts = [10, 11, 12, 13, 14, 15, 16, 17];
const preferenceLine = (n: number) => ({
  contents: [content('user', String(n))],
  completions: [{ score: 1, completion: content('model', String(n + 1)) }, { score: 0, completion: content('model', String(n - 1)) }],
});

describe('console: continue tuning and preference jobs', { timeout: 300_000 }, () => {
  const server = useServer({ keyless: true });
  const browser = useBrowser();
  let page: Page;
  let problems: string[];
  let source: string;

  before(async () => {
    ({ page, problems } = await browser.newPage());
    const both = prompts.flatMap((n) => [n + 1, n - 1].map((answer) => ({ contents: [content('user', String(n)), content('model', String(answer))] })));
    const upload = await call(`${server.url}/upload/storage/v1/b/console-prefs/o?uploadType=media&name=both.jsonl`, {
      method: 'POST', body: jsonl(both), headers: { 'content-type': 'application/jsonl' },
    });
    assert.equal(upload.status, 200, upload.text);
    const created = await call(`${server.url}${jobs}`, {
      method: 'POST',
      body: {
        baseModel: 'gemini-2.5-flash',
        tunedModelDisplayName: 'successors',
        supervisedTuningSpec: { trainingDatasetUri: 'gs://console-prefs/both.jsonl', hyperParameters: { epochCount: 5, batchSize: 8 } },
      },
    });
    assert.equal(created.status, 200, created.text);
    source = created.json.name.split('/').at(-1);
    const done = await waitFor('the supervised job', async () => {
      const job = (await call(`${server.url}${jobs}/${source}`)).json;
      return ['JOB_STATE_SUCCEEDED', 'JOB_STATE_FAILED'].includes(job.state) ? job : undefined;
    });
    assert.equal(done.state, 'JOB_STATE_SUCCEEDED', JSON.stringify(done.error));
  });

  test('Continue tuning opens the form on the model, and a preference file is checked by line', async () => {
    await page.goto(`${server.url}/console/jobs/${source}`);
    await page.getByTestId('continue-tuning').click();
    await page.waitForURL(/\/console\/new\?continue=\d+$/);
    const notice = page.getByTestId('continue-notice');
    await notice.getByText('Continues').waitFor();
    assert.match((await notice.textContent())!, /Continues successors .*next version of its model/);
    assert.equal(await page.locator('#base-model').count(), 0, 'a continued run keeps its base model');
    assert.equal(await page.locator('#adapter-size').isDisabled(), true, 'and its adapter size');

    await page.getByLabel('Preference (DPO)').check();
    await page.getByLabel('Beta').fill('0.1');
    const bad = jsonl([preferenceLine(10), { contents: [content('user', '11'), content('model', '12')], completions: [] }]);
    await page.getByLabel('Training dataset (JSONL)').setInputFiles({ name: 'bad.jsonl', mimeType: 'application/jsonl', buffer: Buffer.from(bad) });
    const errors = page.locator('#training-check[role=alert]');
    await errors.waitFor();
    assert.match((await errors.locator('li').first().textContent())!, /^line 2: the contents must end with the user's turn/);
    assert.equal(await page.getByRole('button', { name: 'Start tuning' }).isDisabled(), true);

    await page.getByLabel('Training dataset (JSONL)').setInputFiles({ name: 'preferences.jsonl', mimeType: 'application/jsonl', buffer: Buffer.from(jsonl(prompts.map(preferenceLine))) });
    await page.getByTestId('estimate-steps').waitFor({ timeout: 30_000 });
    await page.getByLabel('Epochs').fill('2');
    await page.getByRole('button', { name: 'Start tuning' }).click();
    await page.waitForURL(/\/console\/jobs\/\d+$/);
    const id = page.url().split('/').at(-1)!;

    const job = (await call(`${server.url}${jobs}/${id}`)).json;
    assert.equal(job.preTunedModel.tunedModelName.split('/').at(-1), `${source}@1`);
    assert.equal(job.baseModel, undefined);
    assert.equal(job.preferenceOptimizationSpec.hyperParameters.beta, 0.1);
    assert.equal(job.tunedModelDisplayName, 'successors', 'no new name: the next version of the model');

    await page.getByText('Succeeded', { exact: true }).first().waitFor({ timeout: 120_000 });
    await page.getByTestId('reward-accuracy-chart').waitFor();
    await page.getByTestId('reward-margin-chart').waitFor();
    assert.equal(await page.getByTestId('accuracy-chart').count(), 0);
    assert.match((await page.getByTestId('loss-chart').textContent())!, /DPO loss/);
    assert.match((await page.getByTestId('continues').textContent())!, new RegExp(`models/${source}@1`));
    const finished = (await call(`${server.url}${jobs}/${id}`)).json;
    assert.match(finished.tunedModel.model, new RegExp(`/models/${source}@2$`));
    await screenshot(page, 'details-preference');
    assert.deepEqual(problems, []);
  });
});
