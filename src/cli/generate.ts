// attune generate: prints a base model's (or a tuned adapter's) continuation of a prompt to stdout.
import path from 'node:path';
import { loadBaseModel, embeddedBaseModelDir, type BaseModel } from '../engine/base-model.js';
import { loadTunedAdapter } from '../engine/lora/tuned-adapter.js';
import { checkEmbeddable, chooseFraming, framePrompt, stopSequencesFor, type Framing } from '../engine/data/framing.js';
import { streamGenerate, generationDefaults } from '../engine/generate/generate.js';
import { UsageError, numberOption, positiveInteger, nonNegative } from './usage-error.js';
import { parseOptions } from './args.js';
import { baseDirFor, recordedBase } from './adapter-base.js';

export const generateUsage = `attune generate --prompt TEXT [options]
  --base <model dir>          base model (default: the adapter's recorded base, else the embedded stories260K)
  --device cpu|cuda           (default cpu)
  --adapter <dir>             a tuned adapter; the prompt is framed as in its training
  --system TEXT               a system instruction
  --temperature T             0 = greedy (default ${generationDefaults.temperature})
  --top-p P, --top-k K, --seed N
  --max-output-tokens N       (default ${generationDefaults.maxOutputTokens})
  --stop TEXT                 a stop sequence (repeatable)`;

export async function generateCommand(argv: string[]): Promise<void> {
  const { values } = parseOptions(argv, {
    base: { type: 'string' }, device: { type: 'string' }, adapter: { type: 'string' }, prompt: { type: 'string' }, system: { type: 'string' },
    temperature: { type: 'string' }, 'top-p': { type: 'string' }, 'top-k': { type: 'string' },
    seed: { type: 'string' }, 'max-output-tokens': { type: 'string' }, stop: { type: 'string', multiple: true },
  });
  if (values.prompt === undefined) throw new UsageError('--prompt TEXT is required (it may be empty: --prompt "")');
  const options = {
    temperature: numberOption('temperature', values.temperature, nonNegative, 'a number ≥ 0'),
    topP: numberOption('top-p', values['top-p'], (n) => n > 0 && n <= 1, 'in (0, 1]'),
    topK: numberOption('top-k', values['top-k'], positiveInteger, 'a positive integer'),
    seed: numberOption('seed', values.seed, (n) => Number.isInteger(n) && n >= 0, 'a non-negative integer'),
    maxOutputTokens: numberOption('max-output-tokens', values['max-output-tokens'], positiveInteger, 'a positive integer'),
  };
  const baseDir = values.adapter ? baseDirFor(values.adapter, values.base) : (values.base ?? embeddedBaseModelDir);
  const base = await loadBaseModel(baseDir, { device: values.device });
  const { tokenizer } = base;
  // As the server does: a tuned adapter frames the prompt as in its training; a chat template frames it as a
  // user turn; otherwise the model continues the text.
  let framing: Framing | undefined = tokenizer.chatTemplate !== undefined ? chooseFraming(tokenizer) : undefined;
  if (values.adapter) {
    const { adapter, record } = loadAdapterFor(values.adapter, base);
    adapter.attach(base.transformer);
    if (record) framing = record.framing;
  }
  const promptIds = framing
    ? framePrompt(tokenizer, framing, { systemInstruction: values.system, turns: [{ role: 'user', text: values.prompt }] })
    : tokenizer.encode(values.system ? `${values.system}\n\n${values.prompt}` : values.prompt);
  checkEmbeddable(promptIds, base.transformer.config.vocabSize, tokenizer);
  const stopSequences = [...(values.stop ?? []), ...(framing ? stopSequencesFor(framing) : [])];
  const stream = streamGenerate(base.transformer, base.tokenizer, promptIds, { ...options, stopSequences });
  for (;;) {
    const next = await stream.next();
    if (next.done) break;
    process.stdout.write(next.value.text);
  }
  if (process.stdout.isTTY) process.stdout.write('\n'); // piped output stays byte-exact
}

/** The adapter on the base, or a message naming the base it was tuned on when the two do not fit. */
function loadAdapterFor(adapterDir: string, base: BaseModel): ReturnType<typeof loadTunedAdapter> {
  try {
    return loadTunedAdapter(adapterDir, base.transformer);
  } catch (error) {
    const recorded = recordedBase(adapterDir);
    const hint = recorded && path.resolve(recorded) !== path.resolve(base.dir) ? `; it was tuned on ${recorded}` : '';
    throw new Error(`${(error as Error).message}${hint}`);
  }
}
