// attune tune: LoRA-tunes a base model on a JSONL dataset and writes a PEFT adapter directory: supervised, or
// preference tuning (DPO) on preference lines, from a fresh adapter or continuing a tuned one (--from), as the
// server's jobs run (the engine's tune()).
import { readFileSync, statSync } from 'node:fs';
import { loadBaseModel, embeddedBaseModelDir } from '../engine/base-model.js';
import { jsonlKind, parseJsonl, type DatasetKind, type Example } from '../engine/data/examples.js';
import { tune } from '../engine/tuning.js';
import { baseLearningRate, trainingDefaults } from '../engine/train/defaults.js';
import { totalStepsFor, type EvalMetrics } from '../engine/train/trainer.js';
import { adapterSizeRanks } from '../engine/lora/lora.js';
import { tuningLimits } from '../service/tuning/defaults.js';
import { progressReporter } from './progress.js';
import { UsageError, numberOption, positiveInteger, positive, placementOptions } from './usage-error.js';
import { parseOptions } from './args.js';
import { checkOutDir } from './out-dir.js';
import { continuedBaseDir } from './adapter-base.js';

/** --method's values: supervised fine-tuning, or direct preference optimisation. */
const methods: Record<string, DatasetKind> = { sft: 'supervised', dpo: 'preference' };

export const tuneUsage = `attune tune --data <file.jsonl> --out <adapter dir> [options]
  --base <model dir>              base model (default: the embedded stories260K; with --from, the adapter's)
  --from <adapter dir>            continue tuning this adapter (from attune tune, or attune export --format peft):
                                  training starts from its weights, on its base model, at its rank and prompt format
  --method sft|dpo                supervised tuning, or preference tuning (DPO) on lines {"contents": [... ending
                                  with the user's turn], "completions": [{"score", "completion"}, ...]} (default:
                                  dpo when the data's first line is such a line, else sft)
  --beta X                        DPO: how far the model may move from where the run starts, 0 < X ≤ ${tuningLimits.maxBeta}
                                  (default ${trainingDefaults.preferenceBeta})
  --device auto|cpu|cuda[:N]      where to train (default auto: a CUDA GPU if one is visible, else the CPU)
  --dtype auto|float32|bfloat16|float16
                                  compute dtype of the base weights (default auto: bfloat16 where this device
                                  multiplies it much faster than float32, float32 for tiny models)
  --validation <file.jsonl>       validation examples, evaluated periodically
  --epochs N                      (default ${trainingDefaults.epochs})
  --batch-size N                  examples per step (default ${trainingDefaults.batchSize})
  --learning-rate X               absolute peak learning rate, or
  --learning-rate-multiplier X    times the default ${trainingDefaults.learningRate} (DPO: ${trainingDefaults.preferenceLearningRate})
  --adapter-size N                LoRA rank: ${Object.values(adapterSizeRanks).join(', ')} (default 8; with --from, the adapter's)
  --seed N                        (default ${trainingDefaults.seed})
  --force                         overwrite the adapter files in a non-empty --out`;

export async function tuneCommand(argv: string[]): Promise<void> {
  const { values } = parseOptions(argv, {
    base: { type: 'string' }, device: { type: 'string' }, dtype: { type: 'string' }, data: { type: 'string' }, validation: { type: 'string' },
    out: { type: 'string' }, force: { type: 'boolean' }, epochs: { type: 'string' }, 'batch-size': { type: 'string' },
    'learning-rate': { type: 'string' }, 'learning-rate-multiplier': { type: 'string' }, 'adapter-size': { type: 'string' },
    seed: { type: 'string' }, from: { type: 'string' }, method: { type: 'string' }, beta: { type: 'string' },
  });
  if (!values.data) throw new UsageError('--data <file.jsonl> is required');
  if (!values.out) throw new UsageError('--out <adapter dir> is required');
  if (values['learning-rate'] !== undefined && values['learning-rate-multiplier'] !== undefined) {
    throw new UsageError('give --learning-rate or --learning-rate-multiplier, not both');
  }
  const epochs = numberOption('epochs', values.epochs, positiveInteger, 'a positive integer') ?? trainingDefaults.epochs;
  const batchSize = numberOption('batch-size', values['batch-size'], positiveInteger, 'a positive integer') ?? trainingDefaults.batchSize;
  const ranks: number[] = Object.values(adapterSizeRanks);
  // With --from the rank is the adapter's: one given must equal it (the engine checks), none means the adapter's.
  const rank = numberOption('adapter-size', values['adapter-size'], (n) => ranks.includes(n), `one of ${ranks.join(', ')}`) ?? (values.from ? undefined : 8);
  const seed = numberOption('seed', values.seed, (n) => Number.isInteger(n) && n >= 0, 'a non-negative integer') ?? 0;
  const method = values.method === undefined ? undefined : methods[values.method];
  if (values.method !== undefined && !method) throw new UsageError(`--method must be ${Object.keys(methods).join(' or ')}, not '${values.method}'`);
  const beta = numberOption('beta', values.beta, (n) => n > 0 && n <= tuningLimits.maxBeta, `greater than 0 and at most ${tuningLimits.maxBeta}`);
  const placement = placementOptions(values);
  checkOutDir('out', values.out, values.force ?? false);
  const baseDir = values.from ? continuedBaseDir(values.from, values.base) : (values.base ?? embeddedBaseModelDir);

  const text = readText(values.data);
  const kind = method ?? jsonlKind(text);
  if (kind === 'supervised' && jsonlKind(text) === 'preference') {
    throw new UsageError(`--method sft: ${values.data} holds preference lines ({"contents", "completions"}); tune on them with --method dpo`);
  }
  if (kind === 'supervised' && beta !== undefined) throw new UsageError(`--beta is for preference tuning (--method dpo), and ${values.data} holds supervised examples`);
  const examples = readDataset(values.data, text, kind);
  const validation = values.validation ? readDataset(values.validation, readText(values.validation), kind) : undefined;
  const multiplier = numberOption('learning-rate-multiplier', values['learning-rate-multiplier'], positive, 'a positive number');
  const learningRate = numberOption('learning-rate', values['learning-rate'], positive, 'a positive number') ?? (multiplier ?? 1) * baseLearningRate(kind);
  const preference = kind === 'preference' ? { beta: beta ?? trainingDefaults.preferenceBeta } : undefined;

  const base = await loadBaseModel(baseDir, placement);
  const progress = progressReporter(totalStepsFor(examples.length, epochs, batchSize), epochs);
  progress.note(`${base.name} on ${base.placement.reason}`);
  if (preference) progress.note(`preference tuning (DPO, beta ${preference.beta}): the reference is the model as the run starts`);
  if (values.from) progress.note(`continuing ${values.from}`);
  const abort = new AbortController();
  process.once('SIGINT', () => abort.abort());
  const outcome = await tune(base, {
    examples,
    validation,
    lora: { rank },
    startFrom: values.from,
    preference,
    training: {
      epochs, batchSize, learningRate, seed, signal: abort.signal,
      onStep: (m) => progress.step(m),
      onEval: (m) => progress.note(`validation at step ${m.step}: ${figures(m, kind)}`),
    },
    outDir: values.out,
    onPlan: (plan) => progress.note(`memory: ${plan.summary}`),
  });
  if (outcome.cancelled) throw new Error(`cancelled at step ${outcome.completedSteps}/${outcome.totalSteps}; nothing was written`);
  const first = outcome.history[0]?.loss;
  const last = outcome.history.at(-1);
  const rewards = preference && last ? ` (last step: reward accuracy ${percent(last.accuracy)}, margin ${last.rewardMargin?.toFixed(4)})` : '';
  progress.note(`tuned ${outcome.totalSteps} steps: loss ${first?.toFixed(4)} → ${last?.loss.toFixed(4)}${rewards}; adapter written to ${values.out}`);
}

const percent = (fraction: number) => `${(fraction * 100).toFixed(1)}%`;

/** An evaluation's figures: token accuracy for supervised tuning, reward accuracy and margin for DPO. */
function figures(m: Omit<EvalMetrics, 'step'>, kind: DatasetKind): string {
  return kind === 'preference'
    ? `loss ${m.loss.toFixed(4)}, reward accuracy ${percent(m.accuracy)}, margin ${m.rewardMargin?.toFixed(4)}`
    : `loss ${m.loss.toFixed(4)}, accuracy ${percent(m.accuracy)}`;
}

function readText(file: string): string {
  const stat = statSync(file, { throwIfNoEntry: false });
  if (!stat) throw new UsageError(`dataset not found: ${file}`);
  if (!stat.isFile()) throw new UsageError(`${file} is not a file: the dataset is a JSONL file`);
  return readFileSync(file, 'utf8');
}

function readDataset(file: string, text: string, kind: DatasetKind): Example[] {
  try {
    return parseJsonl(text, { kind }).examples;
  } catch (error) {
    throw new Error(`${file}: ${(error as Error).message}`);
  }
}
