// The export route (GET /{version}/tunedModels/{id}/export) against a real `attune serve`: every format as
// a ZIP that Python's zipfile accepts, the tuned model's sampling defaults in the Modelfile, authorisation
// like any API route, google.rpc errors for bad requests and unfinished models, exports removed with their
// model, and `attune export --server` downloading and unpacking the same files.
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { call, runCli, useServer, waitFor } from './helpers/server.js';
import { numberExamples } from './helpers/engine.js';
import { readGguf } from './helpers/gguf.js';

const project = 'exporter';
const examples = numberExamples().map((e) => ({ text_input: e.turns[0]!.text, output: e.turns[1]!.text }));

/** Unpacks a ZIP with Python's zipfile (which checks every CRC) and lists it. */
function unzip(zip: Buffer, dir: string): string[] {
  const file = path.join(dir, 'download.zip');
  writeFileSync(file, zip);
  const script = 'import sys, zipfile; z = zipfile.ZipFile(sys.argv[1]); assert z.testzip() is None; z.extractall(sys.argv[2]); print("\\n".join(sorted(z.namelist())))';
  const names = execFileSync('python3', ['-c', script, file, path.join(dir, 'files')], { encoding: 'utf8' });
  rmSync(file);
  return names.trim().split('\n');
}

describe('export route', { timeout: 300_000 }, () => {
  const server = useServer({ projects: [project, 'other-project'] });
  let work = '';
  let id = '';
  let jobNumber = '';
  const key = () => server.keys[project]!;
  const exportUrl = (query: string, modelId = id) => `${server.url}/v1beta/tunedModels/${modelId}/export?${query}`;

  async function download(query: string, modelId = id): Promise<{ status: number; zip: Buffer; disposition: string | null }> {
    const response = await fetch(exportUrl(query, modelId), { headers: { 'x-goog-api-key': key() }, signal: AbortSignal.timeout(120_000) });
    return { status: response.status, zip: Buffer.from(await response.arrayBuffer()), disposition: response.headers.get('content-disposition') };
  }

  async function createModel(displayName: string, epochs: number): Promise<{ id: string; jobNumber: string }> {
    const created = await call(`${server.url}/v1beta/tunedModels`, {
      method: 'POST',
      key: key(),
      body: {
        display_name: displayName,
        base_model: 'models/gemini-1.5-flash-001-tuning',
        temperature: 0.3, top_p: 0.9, top_k: 20,
        tuning_task: { hyperparameters: { batch_size: 4, epoch_count: epochs }, training_data: { examples: { examples } } },
      },
    });
    assert.equal(created.status, 200, created.text);
    const modelId = created.json.metadata.tunedModel.replace('tunedModels/', '');
    const job = await call(`${server.url}/v1/projects/${project}/locations/us-central1/tuningJobs`, { key: key() });
    const number = job.json.tuningJobs.find((j: any) => j.tunedModelDisplayName === displayName).name.split('/').pop();
    return { id: modelId, jobNumber: number };
  }

  before(async () => {
    work = mkdtempSync(path.join(os.tmpdir(), 'attune-export-api-'));
    ({ id, jobNumber } = await createModel('numbers export', 2));
    await waitFor('the tuned model to be ACTIVE', async () => {
      const model = await call(`${server.url}/v1beta/tunedModels/${id}`, { key: key() });
      if (model.json?.state === 'FAILED') throw new Error(model.text);
      return model.json?.state === 'ACTIVE' ? true : undefined;
    });
  });
  after(() => rmSync(work, { recursive: true, force: true }));

  test('peft: the adapter directory as a ZIP, byte for byte', async (t) => {
    const dir = mkdtempSync(path.join(work, 'peft-'));
    const { status, zip, disposition } = await download('format=peft');
    assert.equal(status, 200, zip.toString());
    assert.equal(disposition, `attachment; filename="${id}-peft.zip"`);
    assert.deepEqual(unzip(zip, dir), ['README.md', 'adapter_config.json', 'adapter_model.safetensors', 'attune.json']);
    // The storage keeps the adapter under the lease that wrote it: adapters/<id>/<token>/ (its intermediate
    // checkpoints beside it, <token>-step-<step>).
    const [token, ...others] = readdirSync(path.join(server.server.dataDir, 'adapters', id)).filter((name) => !name.includes('-step-'));
    assert.deepEqual(others, [], 'one adapter');
    const adapterDir = path.join(server.server.dataDir, 'adapters', id, token!);
    for (const file of ['adapter_config.json', 'adapter_model.safetensors', 'attune.json']) {
      assert.ok(readFileSync(path.join(dir, 'files', file)).equals(readFileSync(path.join(adapterDir, file))), file);
    }
    t.diagnostic(`peft ZIP: ${zip.length} bytes`);
  });

  test('gguf with a q8_0 base, merged, and ollama with the tuned model\'s sampling defaults', async () => {
    const gguf = mkdtempSync(path.join(work, 'gguf-'));
    const ggufZip = await download('format=gguf&withBase=true&baseType=q8_0');
    assert.equal(ggufZip.status, 200, ggufZip.zip.toString());
    assert.deepEqual(unzip(ggufZip.zip, gguf), ['README.md', 'adapter.gguf', 'base.gguf']);
    assert.equal(readGguf(path.join(gguf, 'files', 'base.gguf')).metadata.get('general.file_type')?.value, 7, 'q8_0');
    assert.equal(readGguf(path.join(gguf, 'files', 'adapter.gguf')).metadata.get('general.name')?.value, id);

    const merged = mkdtempSync(path.join(work, 'merged-'));
    // Two identical requests at once share one conversion.
    const [first, second] = await Promise.all([download('format=merged'), download('format=merged', jobNumber)]);
    assert.equal(first.status, 200, first.zip.toString());
    assert.ok(first.zip.equals(second.zip), 'the job number names the same export');
    assert.ok(unzip(first.zip, merged).includes('model.safetensors'));

    const ollama = mkdtempSync(path.join(work, 'ollama-'));
    const ollamaZip = await download('format=ollama');
    assert.deepEqual(unzip(ollamaZip.zip, ollama), ['Modelfile', 'README.md', 'adapter.gguf', 'base.gguf']);
    const modelfile = readFileSync(path.join(ollama, 'files', 'Modelfile'), 'utf8');
    assert.match(modelfile, /^FROM \.\/base\.gguf$/m);
    assert.match(modelfile, /^ADAPTER \.\/adapter\.gguf$/m);
    assert.match(modelfile, /^PARAMETER temperature 0\.3\nPARAMETER top_p 0\.9\nPARAMETER top_k 20$/m);
    assert.ok(existsSync(path.join(server.server.dataDir, 'exports', id)), 'kept for the next download');
  });

  test('attune export --server downloads and unpacks the same files', async () => {
    const out = path.join(work, 'cli-ollama');
    const result = await runCli(['export', '--server', server.url, '--model', `tunedModels/${id}`, '--format', 'ollama', '--out', out], {
      env: { ATTUNE_API_KEY: key() },
      timeoutMs: 120_000,
    });
    assert.equal(result.code, 0, result.stderr);
    assert.deepEqual(readdirSync(out).sort(), ['Modelfile', 'README.md', 'adapter.gguf', 'base.gguf']);
    const served = path.join(server.server.dataDir, 'exports', id, 'ollama-base-auto');
    for (const file of readdirSync(out)) assert.ok(readFileSync(path.join(out, file)).equals(readFileSync(path.join(served, file))), file);

    const wrongKey = await runCli(['export', '--server', server.url, '--model', id, '--key', 'not-a-key', '--format', 'peft', '--out', path.join(work, 'x')]);
    assert.equal(wrongKey.code, 1);
    assert.match(wrongKey.stderr, /answered 400: API key not valid/);
  });

  test('authorised like every route: another project gets what a GET of the model gets, no key is refused', async () => {
    const otherKey = server.keys['other-project']!;
    const asGet = await call(`${server.url}/v1beta/tunedModels/${id}`, { key: otherKey });
    assert.ok(asGet.status === 403 || asGet.status === 404, asGet.text);
    const other = await call(exportUrl('format=peft'), { key: otherKey });
    assert.equal(other.status, asGet.status);
    assert.equal(other.json.error.status, asGet.json.error.status);
    const anonymous = await call(exportUrl('format=peft'));
    assert.equal(anonymous.status, 403);
    assert.equal(anonymous.json.error.status, 'PERMISSION_DENIED');
  });

  test('bad requests and unfinished models get google.rpc errors, never a 5xx', async () => {
    for (const [query, pattern] of [
      ['format=onnx', /format must be equal to one of the allowed values/],
      ['', /must have required property 'format'/],
      ['format=gguf&baseType=q4_0', /baseType must be equal to one of the allowed values/],
      ['format=gguf&baseType=f16', /baseType applies to a base model in the export/],
    ] as const) {
      const response = await call(exportUrl(query), { key: key() });
      assert.equal(response.status, 400, `${query}: ${response.text}`);
      assert.equal(response.json.error.status, 'INVALID_ARGUMENT');
      assert.match(response.json.error.message, pattern);
    }
    const missing = await call(exportUrl('format=peft', 'no-such-model'), { key: key() });
    assert.equal(missing.status, 404);

    const running = await createModel('still training', 500);
    const early = await call(exportUrl('format=gguf', running.id), { key: key() });
    assert.equal(early.status, 400, early.text);
    assert.equal(early.json.error.status, 'FAILED_PRECONDITION');
    assert.match(early.json.error.message, /has no adapter yet/);
    const deleted = await call(`${server.url}/v1beta/tunedModels/${running.id}`, { method: 'DELETE', key: key() });
    assert.equal(deleted.status, 200, deleted.text);
  });

  test('deleting the tuned model deletes its exports', async () => {
    assert.ok(existsSync(path.join(server.server.dataDir, 'exports', id)));
    const deleted = await call(`${server.url}/v1beta/tunedModels/${id}`, { method: 'DELETE', key: key() });
    assert.equal(deleted.status, 200, deleted.text);
    assert.ok(!existsSync(path.join(server.server.dataDir, 'exports', id)));
    const gone = await call(exportUrl('format=peft'), { key: key() });
    assert.equal(gone.status, 404);
  });
});
