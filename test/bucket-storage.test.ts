// --storage gs://bucket/prefix: checkpoints and adapters in Cloud Storage, through @google-cloud/storage with
// an endpoint override. The bucket is a second Attune's object store (it speaks that API), so the test
// reads back what the first stored, through the same API a client would use.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { AttuneServer, call, repoRoot, waitFor, useServer } from './helpers/server.js';

const examples = readFileSync(path.join(repoRoot, 'examples', 'numbers.jsonl'), 'utf8').trim().split('\n').map((l) => JSON.parse(l));
const bucket = 'attune-artifacts';
const prefix = 'team/runs';

describe('storage in a Cloud Storage bucket (another Attune as the bucket)', () => {
  const bucketServer = useServer({ projects: ['bucket-owner'] });
  let server: AttuneServer;
  let key: string;

  before(async () => {
    server = await AttuneServer.start({
      concurrency: 1,
      args: ['--storage', `gs://${bucket}/${prefix}`, '--storage-endpoint', bucketServer.url, '--storage-key', bucketServer.keys['bucket-owner']],
    });
    key = await server.createKey('bucket-user');
  });
  after(() => server?.stop());

  /** Object names under a prefix, as the bucket lists them. */
  const objects = async (under: string): Promise<string[]> => {
    const reply = await call(`${bucketServer.url}/storage/v1/b/${bucket}/o?prefix=${encodeURIComponent(`${prefix}/${under}`)}`, { key: bucketServer.keys['bucket-owner'] });
    assert.equal(reply.status, 200, reply.text);
    return (reply.json.items ?? []).map((o: { name: string }) => o.name.slice(prefix.length + 1)).sort();
  };

  test('a run stores its checkpoints and adapter in the bucket; serving reads the adapter back; delete removes it', { timeout: 300_000 }, async () => {
    const { device, dtype, ...readiness } = (await call(`${server.url}/healthz`)).json;
    assert.deepEqual(readiness, { status: 'ok', database: 'ok', storage: 'ok' });
    assert.ok(device && dtype, 'and where it runs');
    const created = await call(`${server.url}/v1beta/tunedModels`, {
      method: 'POST', key,
      body: { baseModel: 'models/stories260K', tuningTask: { hyperparameters: { epochCount: 20, batchSize: 4 }, trainingData: { examples: { examples } } } },
    });
    assert.equal(created.status, 200, created.text);
    const id = created.json.metadata.tunedModel.replace('tunedModels/', '');
    const seenCheckpoints = new Set<string>();
    const model = await waitFor('the run to finish', async () => {
      for (const name of await objects(`checkpoints/${id}/`)) seenCheckpoints.add(name.split('/').slice(0, 3).join('/'));
      const reply = await call(`${server.url}/v1beta/tunedModels/${id}`, { key });
      return reply.json.state === 'CREATING' ? undefined : reply.json;
    }, { timeoutMs: 240_000, intervalMs: 100 });
    assert.equal(model.state, 'ACTIVE', JSON.stringify(model));
    assert.ok(seenCheckpoints.size > 0, 'checkpoints were stored in the bucket while it trained');
    for (const checkpoint of seenCheckpoints) assert.match(checkpoint, new RegExp(`^checkpoints/${id}/1-\\d+$`), 'named by lease token and step');
    // The outcome is recorded first and the checkpoints removed after it (a failed write can still resume from them),
    // so a client can see ACTIVE a moment before they are gone.
    await waitFor('the checkpoints removed once the outcome is recorded', async () => ((await objects(`checkpoints/${id}/`)).length === 0 ? true : undefined), { timeoutMs: 10_000, intervalMs: 50 });
    const stored = await objects(`adapters/${id}/`);
    const files = ['adapter_config.json', 'adapter_model.safetensors', 'attune.json'];
    assert.deepEqual(stored.filter((o) => o.startsWith(`adapters/${id}/1/`)), files.map((f) => `adapters/${id}/1/${f}`));
    // 20 epochs keep 10 checkpoints: the adapter above is the last, the 9 others are stored beside it.
    const intermediate = stored.filter((o) => !o.startsWith(`adapters/${id}/1/`));
    assert.equal(intermediate.length, 9 * files.length, intermediate.join(', '));
    for (const name of intermediate) assert.match(name, new RegExp(`^adapters/${id}/1-step-\\d+/(${files.join('|')})$`));
    // A checkpoint's endpoint serves its adapter from the bucket too.
    const job = (await call(`${server.url}/v1/projects/bucket-user/locations/us-central1/tuningJobs`, { key })).json.tuningJobs[0];
    const first = job.tunedModel.checkpoints[0];
    const fromCheckpoint = await call(`${server.url}/v1/${first.endpoint}:generateContent`, { method: 'POST', key, body: { contents: [{ role: 'user', parts: [{ text: '41' }] }] } });
    assert.equal(fromCheckpoint.status, 200, fromCheckpoint.text);

    const generated = await call(`${server.url}/v1beta/tunedModels/${id}:generateContent`, { method: 'POST', key, body: { contents: [{ role: 'user', parts: [{ text: '41' }] }] } });
    assert.equal(generated.status, 200, generated.text);
    const zip = await fetch(`${server.url}/v1beta/tunedModels/${id}/export?format=peft`, { headers: { 'x-goog-api-key': key } });
    assert.equal(zip.status, 200, await zip.clone().text());
    assert.ok((await zip.arrayBuffer()).byteLength > 1000, 'the export is made from the adapter in the bucket');

    const deleted = await call(`${server.url}/v1beta/tunedModels/${id}`, { method: 'DELETE', key });
    assert.equal(deleted.status, 200, deleted.text);
    assert.deepEqual(await objects(`adapters/${id}/`), []);
  });

  test('/healthz says when the bucket cannot be reached', async () => {
    await bucketServer.server.stop({ keepDataDir: true });
    const health = await call(`${server.url}/healthz`);
    assert.equal(health.status, 503);
    const { device, dtype, ...readiness } = health.json;
    assert.deepEqual(readiness, { status: 'unavailable', database: 'ok', storage: 'unreachable' });
    assert.ok(device && dtype);
  });
});
