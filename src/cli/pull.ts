// attune pull: fetches a Hugging Face model as a base model (needs internet).
import { pullModel } from '../service/models/pull.js';
import { readModelConfig } from '../engine/model/load.js';
import { parseOptions } from './args.js';
import { UsageError } from './usage-error.js';
import { dataDirOption } from './deployment.js';

export const pullUsage = `attune pull <owner/name> [--data-dir DIR]   downloads a Hugging Face model into DIR/models (HF_TOKEN for gated ones)`;

export async function pullCommand(argv: string[]): Promise<void> {
  const { values, positionals } = parseOptions(argv, { 'data-dir': { type: 'string' } }, { positionals: true });
  if (positionals.length !== 1) throw new UsageError('name one Hugging Face repository, e.g. attune pull HuggingFaceTB/SmolLM2-135M');
  const dir = await pullModel(positionals[0], {
    dataDir: dataDirOption(values['data-dir']),
    token: process.env.HF_TOKEN,
    onFile: (file, bytes) => console.error(`  ${file} (${(bytes / 2 ** 20).toFixed(1)} MiB)`),
  });
  const config = readModelConfig(dir); // fails clearly for an architecture Attune does not run
  console.log(`${dir} (${config.architecture}); serve it as models/${dir.split('/').pop()}`);
}
