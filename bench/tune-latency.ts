// Seconds from POST /v1beta/tunedModels to state ACTIVE for the seeds' job (15 examples, 50 epochs,
// batch 4 = 188 steps) on the embedded base model, through a real server and a real worker process.
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { openServices } from '../src/service/services.js';
import { buildServer } from '../src/api/server.js';
import { serviceDefaults } from '../src/service/config.js';
import { packageRoot } from '../src/engine/package-root.js';

export async function createToActiveSeconds(runs = 3): Promise<number[]> {
  const dataDir = mkdtempSync(path.join(os.tmpdir(), 'attune-bench-'));
  const services = await openServices({ ...serviceDefaults, dataDir, port: 0, keyless: false });
  const app = await buildServer(services);
  const base = await app.listen({ host: '127.0.0.1', port: 0 });
  const key = await services.keys.create('bench-project');
  const examples = readFileSync(path.join(packageRoot, 'examples', 'numbers.jsonl'), 'utf8').trim().split('\n').map((l) => JSON.parse(l));
  const body = JSON.stringify({
    displayName: 'number generator',
    baseModel: 'models/gemini-1.5-flash-001-tuning',
    tuningTask: { hyperparameters: { epochCount: 50, batchSize: 4, learningRate: 0.002 }, trainingData: { examples: { examples } } },
  });
  const headers = { 'content-type': 'application/json', 'x-goog-api-key': key };
  const seconds: number[] = [];
  try {
    for (let run = 0; run < runs; run++) {
      const started = performance.now();
      const operation = (await (await fetch(`${base}/v1beta/tunedModels`, { method: 'POST', headers, body })).json()) as {
        metadata: { tunedModel: string };
      };
      for (;;) {
        const model = (await (await fetch(`${base}/v1beta/${operation.metadata.tunedModel}`, { headers })).json()) as { state: string };
        if (model.state === 'ACTIVE') break;
        if (model.state === 'FAILED') throw new Error(`the benchmark job failed: ${JSON.stringify(model)}`);
        await new Promise((resolve) => setTimeout(resolve, 20));
      }
      seconds.push((performance.now() - started) / 1000);
    }
  } finally {
    await app.close();
    await services.close();
    rmSync(dataDir, { recursive: true, force: true });
  }
  return seconds;
}
