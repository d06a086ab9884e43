// The console's Export panel in headless Chromium against a real `attune serve`: each format's download
// button fetches the export route with the key, the file it saves is a ZIP Python accepts with the
// format's files, the GGUF options reach the server, and a failed download shows the API's message.
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import type { Page } from 'playwright-core';
import { screenshot, useBrowser } from './helpers/browser.js';
import { call, useServer, waitFor } from './helpers/server.js';
import { numberExamples } from './helpers/engine.js';
import { readGguf } from './helpers/gguf.js';

const project = 'console-export';
declare const localStorage: any;


describe('console export', { timeout: 300_000 }, () => {
  const server = useServer({ projects: [project] });
  const browser = useBrowser();
  let page: Page;
  let problems: string[];
  let downloads = '';
  let jobNumber = '';

  before(async () => {
    downloads = mkdtempSync(path.join(os.tmpdir(), 'attune-console-export-'));
    const key = server.keys[project]!;
    const examples = numberExamples().map((e) => ({ text_input: e.turns[0]!.text, output: e.turns[1]!.text }));
    const created = await call(`${server.url}/v1beta/tunedModels`, {
      method: 'POST',
      key,
      body: { display_name: 'export me', base_model: 'models/gemini-1.5-flash-001-tuning', tuning_task: { hyperparameters: { batch_size: 4, epoch_count: 2 }, training_data: { examples: { examples } } } },
    });
    assert.equal(created.status, 200, created.text);
    const id = created.json.metadata.tunedModel;
    await waitFor('the tuned model to be ACTIVE', async () => ((await call(`${server.url}/v1beta/${id}`, { key })).json?.state === 'ACTIVE' ? true : undefined));
    const jobs = await call(`${server.url}/v1/projects/${project}/locations/us-central1/tuningJobs`, { key });
    jobNumber = jobs.json.tuningJobs[0].name.split('/').pop();
    ({ page, problems } = await browser.newPage());
    await page.goto(`${server.url}/console/`);
    await page.evaluate(([k, p]: string[]) => localStorage.setItem('attune.console.settings', JSON.stringify({ apiKey: k, project: p, location: 'us-central1' })), [key, project]);
    await page.goto(`${server.url}/console/jobs/${jobNumber}`);
    await page.getByRole('heading', { name: 'Export', exact: true }).waitFor();
  });
  after(() => rmSync(downloads, { recursive: true, force: true }));

  /** Clicks a download button, saves the file, and lists the ZIP with Python's zipfile (CRCs checked). */
  async function downloadZip(button: string): Promise<{ file: string; names: string[]; dir: string }> {
    const [download] = await Promise.all([page.waitForEvent('download', { timeout: 120_000 }), page.getByRole('button', { name: button }).click()]);
    const file = path.join(downloads, download.suggestedFilename());
    await download.saveAs(file);
    const dir = path.join(downloads, path.basename(file, '.zip'));
    const script = 'import sys, zipfile; z = zipfile.ZipFile(sys.argv[1]); assert z.testzip() is None; z.extractall(sys.argv[2]); print("\\n".join(sorted(z.namelist())))';
    const names = execFileSync('python3', ['-c', script, file, dir], { encoding: 'utf8' }).trim().split('\n');
    return { file, names, dir };
  }

  test('one download per format, each with its files', async () => {
    const peft = await downloadZip('Download PEFT adapter');
    assert.deepEqual(peft.names, ['README.md', 'adapter_config.json', 'adapter_model.safetensors', 'attune.json']);
    const merged = await downloadZip('Download Merged model');
    for (const name of ['config.json', 'model.safetensors', 'tokenizer.json', 'README.md']) assert.ok(merged.names.includes(name), name);
    const gguf = await downloadZip('Download GGUF adapter');
    assert.deepEqual(gguf.names, ['README.md', 'adapter.gguf']);
    const ollama = await downloadZip('Download Ollama');
    assert.deepEqual(ollama.names, ['Modelfile', 'README.md', 'adapter.gguf', 'base.gguf']);
    assert.match(path.basename(ollama.file), /-ollama-base-auto\.zip$/);
    assert.deepEqual(problems, []);
  });

  test('the GGUF options: include the base, as q8_0', async () => {
    await page.getByLabel('GGUF: include the base model').check();
    await page.getByLabel('Base model GGUF type').selectOption('q8_0');
    await screenshot(page, 'details-export');
    const gguf = await downloadZip('Download GGUF adapter');
    assert.deepEqual(gguf.names, ['README.md', 'adapter.gguf', 'base.gguf']);
    assert.equal(readGguf(path.join(gguf.dir, 'base.gguf')).metadata.get('general.file_type')?.value, 7, 'q8_0');
    assert.deepEqual(problems, []);
  });

  test("a failed download shows the API's message", async () => {
    // The model is deleted behind the page's back: the download is refused as the API refuses it.
    const key = server.keys[project]!;
    assert.equal((await call(`${server.url}/v1beta/tunedModels/${jobNumber}`, { method: 'DELETE', key })).status, 200);
    const expected = await call(`${server.url}/v1beta/tunedModels/${jobNumber}/export?format=peft`, { key });
    assert.equal(expected.status, 404);
    await page.getByRole('button', { name: 'Download PEFT adapter' }).click();
    await page.getByRole('alert').filter({ hasText: expected.json.error.message }).waitFor();
  });
});
