// The console's Checkpoints panel in headless Chromium against a real `attune serve` (issue 11, item 8): a
// 3-epoch job lists its 3 checkpoints; each one's Test box asks that checkpoint's endpoint and shows the answer the
// API gives; each Download saves that checkpoint's PEFT files (a ZIP Python accepts, different weights each);
// Make default changes what the model serves, as the API then reports.
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import type { Page } from 'playwright-core';
import { screenshot, useBrowser } from './helpers/browser.js';
import { call, useServer, waitFor } from './helpers/server.js';
import { numberExamples } from './helpers/engine.js';

const project = 'console-checkpoints';
const bucket = 'console-checkpoints-data';
declare const localStorage: any;

describe('console checkpoints', { timeout: 300_000 }, () => {
  const server = useServer({ projects: [project] });
  const browser = useBrowser();
  let page: Page;
  let problems: string[];
  let downloads = '';
  let job: any;
  const key = () => server.keys[project]!;

  before(async () => {
    downloads = mkdtempSync(path.join(os.tmpdir(), 'attune-console-checkpoints-'));
    const jsonl = numberExamples().map((e) => JSON.stringify({ contents: [{ role: 'user', parts: [{ text: e.turns[0]!.text }] }, { role: 'model', parts: [{ text: e.turns[1]!.text }] }] })).join('\n');
    const uploaded = await call(`${server.url}/upload/storage/v1/b/${bucket}/o?uploadType=media&name=train.jsonl`, { method: 'POST', key: key(), body: jsonl, headers: { 'content-type': 'application/jsonl' } });
    assert.equal(uploaded.status, 200, uploaded.text);
    const created = await call(`${server.url}/v1beta1/projects/${project}/locations/us-central1/tuningJobs`, {
      method: 'POST', key: key(),
      body: { baseModel: 'gemini-2.5-flash', tunedModelDisplayName: 'checkpointed', supervisedTuningSpec: { trainingDatasetUri: `gs://${bucket}/train.jsonl`, hyperParameters: { epochCount: 3 } } },
    });
    assert.equal(created.status, 200, created.text);
    job = await waitFor('the job to succeed', async () => {
      const current = (await call(`${server.url}/v1beta1/${created.json.name}`, { key: key() })).json;
      return current.state === 'JOB_STATE_SUCCEEDED' ? current : undefined;
    });
    ({ page, problems } = await browser.newPage());
    await page.goto(`${server.url}/console/`);
    await page.evaluate(([k, p]: string[]) => localStorage.setItem('attune.console.settings', JSON.stringify({ apiKey: k, project: p, location: 'us-central1' })), [key(), project]);
    await page.goto(`${server.url}/console/jobs/${job.name.split('/').pop()}`);
    await page.getByRole('heading', { name: 'Checkpoints', exact: true }).waitFor();
  });
  after(() => rmSync(downloads, { recursive: true, force: true }));

  test('lists each checkpoint with its epoch and step; the last is the default', async () => {
    const rows = page.getByTestId('checkpoints').locator('li.checkpoint');
    assert.equal(await rows.count(), 3);
    for (const [i, checkpoint] of job.tunedModel.checkpoints.entries()) {
      assert.match((await rows.nth(i).textContent()) ?? '', new RegExp(`Checkpoint ${checkpoint.checkpointId}.*epoch ${checkpoint.epoch}, step ${checkpoint.step}`));
    }
    assert.equal(await rows.nth(2).getByTestId('default-checkpoint').count(), 1);
    assert.deepEqual(problems, []);
  });

  test("each checkpoint's Test asks its own endpoint and shows the API's answer", async () => {
    const prompt = numberExamples()[0]!.turns[0]!.text;
    for (const checkpoint of job.tunedModel.checkpoints) {
      const expected = await call(`${server.url}/v1beta1/${checkpoint.endpoint}:generateContent`, {
        method: 'POST', key: key(), body: { contents: [{ role: 'user', parts: [{ text: prompt }] }], generationConfig: { temperature: 0, maxOutputTokens: 64 } },
      });
      const text = expected.json.candidates[0].content.parts[0].text;
      await page.getByLabel(`Prompt for checkpoint ${checkpoint.checkpointId}`).fill(prompt);
      await page.getByRole('button', { name: `Test checkpoint ${checkpoint.checkpointId}` }).click();
      const answer = page.getByTestId(`answer-${checkpoint.checkpointId}`);
      await answer.waitFor();
      assert.equal((await answer.textContent())?.trim(), text.trim() || '(an empty answer)');
    }
    await screenshot(page, 'details-checkpoints');
    assert.deepEqual(problems, []);
  });

  test("each checkpoint's Download saves its own PEFT files", async () => {
    const weights = new Set<string>();
    for (const checkpoint of job.tunedModel.checkpoints) {
      const [download] = await Promise.all([
        page.waitForEvent('download', { timeout: 120_000 }),
        page.getByRole('button', { name: `Download checkpoint ${checkpoint.checkpointId} (PEFT)` }).click(),
      ]);
      const file = path.join(downloads, download.suggestedFilename());
      await download.saveAs(file);
      assert.match(path.basename(file), new RegExp(`-peft-checkpoint-${checkpoint.checkpointId}\\.zip$`));
      const dir = path.join(downloads, path.basename(file, '.zip'));
      const script = 'import sys, zipfile; z = zipfile.ZipFile(sys.argv[1]); assert z.testzip() is None; z.extractall(sys.argv[2]); print("\\n".join(sorted(z.namelist())))';
      const names = execFileSync('python3', ['-c', script, file, dir], { encoding: 'utf8' }).trim().split('\n');
      assert.deepEqual(names, ['README.md', 'adapter_config.json', 'adapter_model.safetensors', 'attune.json']);
      weights.add(readFileSync(path.join(dir, 'adapter_model.safetensors')).toString('base64'));
    }
    assert.equal(weights.size, 3);
    assert.deepEqual(problems, []);
  });

  test('Make default changes the checkpoint the model serves', async () => {
    await page.getByRole('button', { name: 'Make checkpoint 1 the default' }).click();
    await page.getByTestId('checkpoints').locator('li[data-checkpoint="1"]').getByTestId('default-checkpoint').waitFor();
    const model = await call(`${server.url}/v1/${job.tunedModel.model.replace(/@1$/, '')}`, { key: key() });
    assert.equal(model.json.defaultCheckpointId, '1');
    assert.deepEqual(problems, []);
  });
});
