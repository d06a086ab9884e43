// /healthz latency while a 10 MB JSONL validateOnly is parsed and framed (issue 9: CPU-heavy request work runs in
// worker threads; target: under 100 ms), beside /healthz on the same idle server as the reference.
import { mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { openServices } from '../src/service/services.js';
import { buildServer } from '../src/api/server.js';
import { serviceDefaults } from '../src/service/config.js';

export interface HealthzLatency {
  idleMs: number[];
  busyMs: number[];
  validateSeconds: number;
}

function tenMegabyteJsonl(): string {
  const lines: string[] = [];
  let size = 0;
  while (size < 10 * 1024 * 1024) {
    const i = lines.length;
    const line = JSON.stringify({ text_input: `question ${i} ${'lorem ipsum dolor sit amet '.repeat(30)}`, output: `answer ${i} ${'consectetur adipiscing '.repeat(10)}` });
    lines.push(line);
    size += line.length + 1;
  }
  return lines.join('\n') + '\n';
}

export async function healthzLatency(idleSamples = 50): Promise<HealthzLatency> {
  const dataDir = mkdtempSync(path.join(os.tmpdir(), 'attune-bench-'));
  const services = await openServices({ ...serviceDefaults, dataDir, port: 0, keyless: false });
  const app = await buildServer(services);
  const base = await app.listen({ host: '127.0.0.1', port: 0 });
  const key = await services.keys.create('bench-project');
  const headers = { 'x-goog-api-key': key };
  const ping = async () => {
    const started = performance.now();
    await (await fetch(`${base}/healthz`)).text();
    return performance.now() - started;
  };
  try {
    const idleMs: number[] = [];
    for (let i = 0; i < idleSamples; i++) idleMs.push(await ping());
    const upload = await fetch(`${base}/upload/storage/v1/b/bench-data/o?uploadType=media&name=big.jsonl`, {
      method: 'POST',
      headers: { ...headers, 'content-type': 'application/jsonl' },
      body: tenMegabyteJsonl(),
    });
    if (!upload.ok) throw new Error(`upload failed: ${await upload.text()}`);
    let done = false;
    const started = performance.now();
    const validation = fetch(`${base}/v1/projects/bench-project/locations/us-central1/tuningJobs?validateOnly=true`, {
      method: 'POST',
      headers: { ...headers, 'content-type': 'application/json' },
      body: JSON.stringify({ baseModel: 'gemini-2.5-flash', supervisedTuningSpec: { trainingDatasetUri: 'gs://bench-data/big.jsonl' } }),
    }).then(async (reply) => {
      const text = await reply.text();
      done = true;
      if (!reply.ok) throw new Error(`validateOnly failed: ${text.slice(0, 300)}`);
    });
    const busyMs: number[] = [];
    while (!done) {
      const ms = await ping();
      if (!done) busyMs.push(ms);
      await new Promise((resolve) => setTimeout(resolve, 20));
    }
    await validation;
    return { idleMs, busyMs, validateSeconds: (performance.now() - started) / 1000 };
  } finally {
    await app.close();
    await services.close();
    rmSync(dataDir, { recursive: true, force: true });
  }
}
