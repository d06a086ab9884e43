// The console's Sharing panel in headless Chromium against a real `attune serve`: the owner's project identity,
// sharing a tuned model with another project by its email and with everyone, a role change, revocation, and the
// other project's console listing the shared model and asking it; then a transfer of ownership. Each step is
// checked against what the API answers.
import assert from 'node:assert/strict';
import { before, describe, test } from 'node:test';
import type { Page } from 'playwright-core';
import { screenshot, useBrowser } from './helpers/browser.js';
import { call, useServer, waitFor } from './helpers/server.js';
import { numberExamples } from './helpers/engine.js';
import { projectEmail, projectNumber } from '../src/service/sharing/identity.js';

const owner = 'console-owner';
const friend = 'console-friend';
const stranger = 'console-stranger';
declare const localStorage: any;

describe('console sharing', { timeout: 300_000 }, () => {
  const server = useServer({ projects: [owner, friend, stranger] });
  const browser = useBrowser();
  let page: Page;
  let problems: string[];
  let modelName = '';
  let jobNumber = '';
  const key = (project: string) => server.keys[project]!;
  const api = (route: string, project: string) => call(`${server.url}${route}`, { key: key(project) });

  async function openAs(project: string, route: string): Promise<void> {
    await page.goto(`${server.url}/console/`);
    await page.evaluate(([k, p]: string[]) => localStorage.setItem('attune.console.settings', JSON.stringify({ apiKey: k, project: p, location: 'us-central1' })), [key(project), project]);
    await page.goto(`${server.url}/console${route}`);
  }

  before(async () => {
    const examples = numberExamples().map((e) => ({ text_input: e.turns[0]!.text, output: e.turns[1]!.text }));
    const created = await call(`${server.url}/v1beta/tunedModels`, {
      method: 'POST',
      key: key(owner),
      body: { display_name: 'share me', base_model: 'models/gemini-1.5-flash-001-tuning', tuning_task: { hyperparameters: { batch_size: 4, epoch_count: 2 }, training_data: { examples: { examples } } } },
    });
    assert.equal(created.status, 200, created.text);
    modelName = created.json.metadata.tunedModel;
    await waitFor('the tuned model to be ACTIVE', async () => ((await api(`/v1beta/${modelName}`, owner)).json?.state === 'ACTIVE' ? true : undefined));
    jobNumber = (await api(`/v1/projects/${owner}/locations/us-central1/tuningJobs`, owner)).json.tuningJobs[0].name.split('/').pop();
    ({ page, problems } = await browser.newPage());
  });

  test('the owner shares by project email and with everyone, changes a role, and revokes', async () => {
    await openAs(owner, `/jobs/${jobNumber}`);
    const panel = page.locator('section.sharing');
    await panel.getByRole('heading', { name: 'Sharing' }).waitFor();
    assert.match(await panel.getByTestId('identity').innerText(), new RegExp(`${projectEmail(owner)}.*${projectNumber(owner)}`));
    await panel.getByRole('cell', { name: projectEmail(owner), exact: true }).waitFor();

    // A mistake shows the API's message.
    await panel.getByLabel('Share with (project email)').fill('nobody@example.com');
    await panel.getByRole('button', { name: 'Share', exact: true }).click();
    await panel.getByText(/names no project here/).waitFor();

    await panel.getByLabel('Share with (project email)').fill(projectEmail(friend));
    await panel.getByRole('button', { name: 'Share', exact: true }).click();
    await panel.getByRole('cell', { name: projectEmail(friend), exact: true }).waitFor();
    await panel.getByLabel(`Role of ${projectEmail(friend)}`).selectOption('WRITER');
    await waitFor('the WRITER role', async () => ((await api(`/v1beta/${modelName}/permissions/${projectNumber(friend)}`, owner)).json?.role === 'WRITER' ? true : undefined));

    await panel.getByLabel(/Everyone with a key may use it/).check();
    await panel.getByRole('button', { name: 'Share', exact: true }).click();
    await panel.getByRole('cell', { name: 'Everyone with a key', exact: true }).waitFor();
    const listed = await api(`/v1beta/${modelName}/permissions`, owner);
    assert.deepEqual(listed.json.permissions.map((p: { role: string }) => p.role), ['OWNER', 'WRITER', 'READER']);
    assert.equal((await api(`/v1beta/${modelName}`, stranger)).status, 200, 'everyone may read it now');
    await screenshot(page, 'details-sharing');

    await panel.getByRole('button', { name: 'Stop sharing with Everyone with a key' }).click();
    await panel.getByRole('cell', { name: 'Everyone with a key', exact: true }).waitFor({ state: 'detached' });
    assert.equal((await api(`/v1beta/${modelName}`, stranger)).status, 404, 'revoked at once');
    assert.deepEqual(problems, []);
  });

  test("the other project's console lists the shared model and asks it; a stranger's does not", async () => {
    await openAs(friend, '/');
    const shared = page.getByTestId('shared-models');
    await shared.getByText('share me', { exact: true }).waitFor();
    const id = modelName.replace('tunedModels/', '');
    await shared.getByLabel('Prompt for share me').fill('twenty two');
    await shared.getByRole('button', { name: 'Ask' }).click();
    const answer = await shared.getByTestId(`answer-${id}`).innerText();
    const expected = await call(`${server.url}/v1beta/${modelName}:generateContent`, {
      method: 'POST', key: key(friend), body: { contents: [{ role: 'user', parts: [{ text: 'twenty two' }] }], generationConfig: { temperature: 0, maxOutputTokens: 64 } },
    });
    assert.equal(answer, expected.json.candidates[0].content.parts.map((p: { text: string }) => p.text).join(''));

    await openAs(stranger, '/');
    await page.getByRole('heading', { name: 'Tuned models' }).waitFor();
    await page.waitForLoadState('networkidle');
    assert.equal(await page.getByTestId('shared-models').count(), 0);
    assert.deepEqual(problems, []);
  });

  test('transfer of ownership: the new owner holds it, the old owner keeps it as a writer', async () => {
    await openAs(owner, `/jobs/${jobNumber}`);
    const panel = page.locator('section.sharing');
    await panel.getByLabel('Transfer ownership to (project email)').fill(projectEmail(friend));
    await panel.getByRole('button', { name: 'Transfer…' }).click();
    await page.getByRole('dialog').getByRole('button', { name: 'Transfer' }).click();
    await page.getByRole('heading', { name: 'Tuned models' }).waitFor();
    const permissions = await api(`/v1beta/${modelName}/permissions`, friend);
    assert.deepEqual(permissions.json.permissions.map((p: { emailAddress: string; role: string }) => `${p.emailAddress}:${p.role}`), [
      `${projectEmail(friend)}:OWNER`,
      `${projectEmail(owner)}:WRITER`,
    ]);
    // The owner's console now lists it among the models shared with it.
    await page.getByTestId('shared-models').getByText('share me', { exact: true }).waitFor();
    assert.deepEqual(problems, []);
  });
});
