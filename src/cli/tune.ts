// attune tune: LoRA-tunes a base model on a JSONL dataset and writes a PEFT adapter directory.
import { readFileSync, existsSync } from 'node:fs';
import { loadBaseModel, embeddedBaseModelDir } from '../engine/base-model.js';
import { parseJsonl, type Example } from '../engine/data/examples.js';
import { tune } from '../engine/tuning.js';
import { trainingDefaults } from '../engine/train/defaults.js';
import { totalStepsFor } from '../engine/train/trainer.js';
import { adapterSizeRanks } from '../engine/lora/lora.js';
import { progressReporter } from './progress.js';
import { UsageError, numberOption, positiveInteger, positive } from './usage-error.js';
import { parseOptions } from './args.js';
import { checkOutDir } from './out-dir.js';

export const tuneUsage = `attune tune --data <file.jsonl> --out <adapter dir> [options]
  --base <model dir>              base model (default: the embedded stories260K)
  --device cpu|cuda               where to train (default cpu)
  --validation <file.jsonl>       validation examples, evaluated periodically
  --epochs N                      (default ${trainingDefaults.epochs})
  --batch-size N                  examples per step (default ${trainingDefaults.batchSize})
  --learning-rate X               absolute peak learning rate, or
  --learning-rate-multiplier X    times the default ${trainingDefaults.learningRate}
  --adapter-size N                LoRA rank: ${Object.values(adapterSizeRanks).join(', ')} (default 8)
  --seed N                        (default ${trainingDefaults.seed})
  --force                         overwrite the adapter files in a non-empty --out`;

export async function tuneCommand(argv: string[]): Promise<void> {
  const { values } = parseOptions(argv, {
    base: { type: 'string' }, device: { type: 'string' }, data: { type: 'string' }, validation: { type: 'string' }, out: { type: 'string' },
    force: { type: 'boolean' }, epochs: { type: 'string' }, 'batch-size': { type: 'string' }, 'learning-rate': { type: 'string' },
    'learning-rate-multiplier': { type: 'string' }, 'adapter-size': { type: 'string' }, seed: { type: 'string' },
  });
  if (!values.data) throw new UsageError('--data <file.jsonl> is required');
  if (!values.out) throw new UsageError('--out <adapter dir> is required');
  if (values['learning-rate'] !== undefined && values['learning-rate-multiplier'] !== undefined) {
    throw new UsageError('give --learning-rate or --learning-rate-multiplier, not both');
  }
  const epochs = numberOption('epochs', values.epochs, positiveInteger, 'a positive integer') ?? trainingDefaults.epochs;
  const batchSize = numberOption('batch-size', values['batch-size'], positiveInteger, 'a positive integer') ?? trainingDefaults.batchSize;
  const multiplier = numberOption('learning-rate-multiplier', values['learning-rate-multiplier'], positive, 'a positive number');
  const learningRate =
    numberOption('learning-rate', values['learning-rate'], positive, 'a positive number') ??
    (multiplier ?? 1) * trainingDefaults.learningRate;
  const ranks: number[] = Object.values(adapterSizeRanks);
  const rank = numberOption('adapter-size', values['adapter-size'], (n) => ranks.includes(n), `one of ${ranks.join(', ')}`) ?? 8;
  const seed = numberOption('seed', values.seed, (n) => Number.isInteger(n) && n >= 0, 'a non-negative integer') ?? 0;

  checkOutDir('out', values.out, values.force ?? false);
  const examples = readDataset(values.data);
  const validation = values.validation ? readDataset(values.validation) : undefined;
  const base = await loadBaseModel(values.base ?? embeddedBaseModelDir, { device: values.device });
  const progress = progressReporter(totalStepsFor(examples.length, epochs, batchSize), epochs);
  const abort = new AbortController();
  process.once('SIGINT', () => abort.abort());
  const outcome = await tune(base, {
    examples,
    validation,
    lora: { rank },
    training: {
      epochs, batchSize, learningRate, seed, signal: abort.signal,
      onStep: (m) => progress.step(m),
      onEval: (m) => progress.note(`validation at step ${m.step}: loss ${m.loss.toFixed(4)}, accuracy ${(m.accuracy * 100).toFixed(1)}%`),
    },
    outDir: values.out,
  });
  if (outcome.cancelled) throw new Error(`cancelled at step ${outcome.completedSteps}/${outcome.totalSteps}; nothing was written`);
  const first = outcome.history[0]?.loss;
  const last = outcome.history.at(-1)?.loss;
  progress.note(`tuned ${outcome.totalSteps} steps: loss ${first?.toFixed(4)} → ${last?.toFixed(4)}; adapter written to ${values.out}`);
}

function readDataset(file: string): Example[] {
  if (!existsSync(file)) throw new UsageError(`dataset not found: ${file}`);
  try {
    return parseJsonl(readFileSync(file, 'utf8')).examples;
  } catch (error) {
    throw new Error(`${file}: ${(error as Error).message}`);
  }
}
