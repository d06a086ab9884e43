// The quick start's `attune serve`: it says where the console is when it starts, prints a plain line per
// job event beside its JSON log, and serves base models copied into <data dir>/models without a restart.
import assert from 'node:assert/strict';
import { cpSync } from 'node:fs';
import path from 'node:path';
import { describe, test } from 'node:test';
import { call, useServer, waitFor } from './helpers/server.js';
import { embeddedBaseModelDir, numberExamples } from './helpers/engine.js';

describe('attune serve for a newcomer', { timeout: 180_000 }, () => {
  const server = useServer({ keyless: true, logLevel: 'info' });

  test('prints the console URL when it starts', () => {
    assert.match(server.server.logs(), new RegExp(`attune is serving ${server.url} \\(keyless\\); the web console is at ${server.url}/console/`));
  });

  test('a human-readable line per job event, beside the JSON log', async () => {
    const examples = numberExamples().map((e) => ({ text_input: e.turns[0]!.text, output: e.turns[1]!.text }));
    const created = await call(`${server.url}/v1beta/tunedModels`, {
      method: 'POST',
      body: { display_name: 'numbers', base_model: 'models/stories260K', tuning_task: { hyperparameters: { batch_size: 4, epoch_count: 2 }, training_data: { examples: { examples } } } },
    });
    assert.equal(created.status, 200, created.text);
    const name = created.json.metadata.tunedModel;
    const escaped = name.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
    await waitFor('the succeeded line', async () => (new RegExp(`${escaped} \\(numbers\\): succeeded`).test(server.server.logs()) ? true : undefined));
    const logs = server.server.logs();
    assert.match(logs, new RegExp(`\\[\\d\\d:\\d\\d:\\d\\d\\] ${escaped} \\(numbers\\): training started: 8 steps on models/stories260K\\n`));
    assert.match(logs, new RegExp(`\\[\\d\\d:\\d\\d:\\d\\d\\] ${escaped} \\(numbers\\): succeeded: 8/8 steps in \\d+\\.\\d s, loss \\d+\\.\\d{4}\\n`));
    assert.match(logs, /^\{"level":30,.*"msg":"attune is serving"\}$/m, 'the JSON log is still there');
    assert.equal((await call(`${server.url}/v1beta/${name}`, { method: 'DELETE' })).status, 200);
    await waitFor('the deleted line', async () => (server.server.logs().includes(`${name}: deleted`) ? true : undefined));
  });

  test('a model copied into <data dir>/models appears without a restart, and answers', async () => {
    const before = await call(`${server.url}/v1beta/models`);
    assert.ok(!before.json.models.some((m: { name: string }) => m.name === 'models/my-copy'));
    cpSync(embeddedBaseModelDir, path.join(server.server.dataDir, 'models', 'my-copy'), { recursive: true });
    const listed = await waitFor(
      'models/my-copy to be listed',
      async () => ((await call(`${server.url}/v1beta/models`)).json.models.some((m: { name: string }) => m.name === 'models/my-copy') ? true : undefined),
      { timeoutMs: 10_000 },
    );
    assert.ok(listed);
    const answer = await call(`${server.url}/v1beta/models/my-copy:generateContent`, {
      method: 'POST',
      body: { contents: [{ parts: [{ text: 'Once upon a time' }] }], generationConfig: { temperature: 0, maxOutputTokens: 8 } },
    });
    assert.equal(answer.status, 200, answer.text);
    assert.ok(answer.json.candidates[0].content.parts[0].text.length > 0);
  });
});
