// One tuning run from examples to a saved adapter directory: framing, the adapter (a new one, or a tuned
// model's to continue from), training (supervised, or DPO on preference pairs), saving.
import type { BaseModel } from './base-model.js';
import type { Example } from './data/examples.js';
import { checkEmbeddable, chooseFraming, frameCompletion, frameExample, FramingError, type FramedExample, type Framing } from './data/framing.js';
import { LoraAdapter, loraConfig, type LoraConfig } from './lora/lora.js';
import { loadTunedAdapter, saveTunedAdapter } from './lora/tuned-adapter.js';
import { train, trainPreferences, type StepMetrics, type TrainOptions, type TrainResult } from './train/trainer.js';
import type { PreferencePair } from './train/preference.js';
import { trainingDefaults } from './train/defaults.js';
import { planTraining, type TrainingPlan } from './train/memory-plan.js';
import { keep, manualSeed } from './tensor/index.js';

export interface TuningRequest {
  examples: Example[];
  validation?: Example[];
  lora?: Partial<LoraConfig>;
  /**
   * A tuned adapter directory to continue from (continuous tuning): its weights are where training starts, and its
   * recorded framing frames the examples. Its rank is the run's; lora.rank, when given, must equal it.
   */
  startFrom?: string;
  /** Preference tuning (DPO) with this beta: each example's `rejected` is the dispreferred completion of its last turn. */
  preference?: { beta: number };
  training?: Omit<TrainOptions, 'validation'>;
  /** Where the finished adapter is written. */
  outDir: string;
  /**
   * Asked when the run was cancelled after at least one completed step: true writes the adapter as
   * trained so far to outDir (a cancelled tuned model stays usable). Without it a cancelled run writes nothing.
   */
  saveCancelled?: () => boolean;
  /**
   * Intermediate adapters: after each of `steps` (not the last), the adapter as trained so far is written as a
   * tuned-adapter directory to dirFor(step), then saved(step) is awaited before training goes on.
   */
  snapshots?: { steps: readonly number[]; dirFor: (step: number) => string; saved: (step: number) => void | Promise<void> };
  /** Told the run's memory plan before training starts. */
  onPlan?: (plan: TrainingPlan) => void;
}

export interface TuningOutcome extends TrainResult {
  framing: Framing;
  /** How the run's memory was planned (micro-batches, checkpointing, the estimate). */
  plan: TrainingPlan;
  /** Whether outDir holds the adapter: always after a finished run, after a cancelled one only if saveCancelled said so. */
  adapterSaved: boolean;
}

/** A run whose memory plan does not fit the device; the message says what would. */
export class MemoryPlanError extends Error {}

export async function tune(base: BaseModel, request: TuningRequest): Promise<TuningOutcome> {
  const { tokenizer, transformer } = base;
  manualSeed(request.training?.seed ?? trainingDefaults.seed); // the adapter's initialisation is part of the run
  const start = request.startFrom ? continueFrom(request.startFrom, base, request.lora?.rank) : undefined;
  const framing = start?.framing ?? chooseFraming(tokenizer, request.examples);
  const framed = (examples: Example[], role: string, frameOne: (e: Example) => FramedExample[]): FramedExample[][] =>
    examples.map((e, i) => {
      try {
        const sequences = frameOne(e);
        for (const s of sequences) checkEmbeddable(s.ids, transformer.config.vocabSize, tokenizer);
        return sequences;
      } catch (error) {
        if (error instanceof FramingError) throw new FramingError(`${role} example ${i + 1}: ${error.message}`);
        throw error;
      }
    });
  const frameOne = request.preference ? (e: Example) => framePair(tokenizer, framing, e) : (e: Example) => [frameExample(tokenizer, framing, e)];
  const training = framed(request.examples, 'training', frameOne);
  const validation = request.validation ? framed(request.validation, 'validation', frameOne) : undefined;
  const lora = start?.adapter.config ?? loraConfig(request.lora);
  const maxLength = request.training?.maxSequenceLength ?? trainingDefaults.maxSequenceLength;
  const sequencesPerExample = request.preference ? 2 : 1;
  const plan = planTraining({
    config: transformer.config,
    dtype: transformer.dtype,
    device: transformer.device,
    rank: lora.rank,
    lengths: [...training, ...(validation ?? [])].flat().map((e) => Math.min(e.ids.length, maxLength)),
    batchSize: (request.training?.batchSize ?? trainingDefaults.batchSize) * sequencesPerExample,
  });
  if (!plan.fits) {
    start?.adapter.dispose();
    throw new MemoryPlanError(`this run does not fit in memory: ${plan.summary}`);
  }
  request.onPlan?.(plan);
  const adapter = start?.adapter ?? LoraAdapter.create(transformer, lora);
  const { epochs, batchSize, learningRate, seed } = request.training ?? {};
  const save = (dir: string, totalSteps: number, completedSteps: number, finalLoss: number | undefined, partial: { cancelled?: true; snapshot?: true }) =>
    saveTunedAdapter(dir, adapter, {
      baseModel: base.dir,
      framing,
      training: {
        epochs, batchSize, learningRate, seed, totalSteps,
        ...(request.preference ? { method: 'preference', beta: request.preference.beta } : {}),
        ...(request.startFrom ? { continued: true } : {}),
        ...(partial.cancelled || partial.snapshot ? { completedSteps } : {}),
        ...partial,
        finalLoss,
      },
    });
  const { snapshots } = request;
  let lastLoss: number | undefined;
  let totalSteps = 0;
  try {
    const options = {
      stepPlan: plan.step,
      ...request.training,
      onStart: (progress: { completedSteps: number; totalSteps: number }) => {
        totalSteps = progress.totalSteps;
        request.training?.onStart?.(progress);
      },
      onStep: (metrics: StepMetrics) => {
        lastLoss = metrics.loss;
        request.training?.onStep?.(metrics);
      },
      ...(snapshots && {
        snapshotSteps: snapshots.steps,
        onSnapshot: async (step: number) => {
          save(snapshots.dirFor(step), totalSteps, step, lastLoss, { snapshot: true });
          await snapshots.saved(step);
        },
      }),
    };
    const result = request.preference
      ? await trainPreferences(transformer, adapter, training.map(asPair), { ...options, beta: request.preference.beta, validation: validation?.map(asPair) })
      : await train(transformer, adapter, training.flat(), { ...options, validation: validation?.flat() });
    const adapterSaved = !result.cancelled || (result.completedSteps > 0 && (request.saveCancelled?.() ?? false));
    if (adapterSaved) {
      save(request.outDir, result.totalSteps, result.completedSteps, result.history.at(-1)?.loss, result.cancelled ? { cancelled: true } : {});
    }
    return { ...result, framing, plan, adapterSaved };
  } finally {
    LoraAdapter.detach(transformer);
    adapter.dispose();
  }
}

/** The chosen and the rejected completion of a preference example, each framed as generation would continue its prompt. */
function framePair(tokenizer: BaseModel['tokenizer'], framing: Framing, example: Example): FramedExample[] {
  const chosen = example.turns.at(-1);
  if (example.rejected === undefined || chosen?.role !== 'model') throw new FramingError('a preference example needs a chosen and a rejected completion');
  const prompt = { systemInstruction: example.systemInstruction, turns: example.turns.slice(0, -1) };
  return [frameCompletion(tokenizer, framing, prompt, chosen.text), frameCompletion(tokenizer, framing, prompt, example.rejected)];
}

const asPair = ([chosen, rejected]: FramedExample[]): PreferencePair => ({ chosen: chosen!, rejected: rejected! });

/** The tuned adapter a continued run starts from, as trainable copies of its weights, and the framing it was tuned with. */
function continueFrom(dir: string, base: BaseModel, rank: number | undefined): { adapter: LoraAdapter; framing?: Framing } {
  const { adapter: loaded, record } = loadTunedAdapter(dir, base.transformer);
  try {
    if (rank !== undefined && rank !== loaded.config.rank) {
      throw new FramingError(`the adapter to continue from has rank ${loaded.config.rank}; this run asks for rank ${rank}`);
    }
    const weights = new Map([...loaded.weights].map(([module, w]) => [module, { ...w, a: keep(w.a.clone()), b: keep(w.b.clone()) }]));
    return { adapter: new LoraAdapter(loaded.config, weights), framing: record?.framing };
  } finally {
    loaded.dispose();
  }
}
