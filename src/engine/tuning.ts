// One tuning run from examples to a saved adapter directory: framing, LoRA creation, training, saving.
import type { BaseModel } from './base-model.js';
import type { Example } from './data/examples.js';
import { checkEmbeddable, chooseFraming, frameExample, FramingError, type FramedExample, type Framing } from './data/framing.js';
import { LoraAdapter, loraConfig, type LoraConfig } from './lora/lora.js';
import { saveTunedAdapter } from './lora/tuned-adapter.js';
import { train, type TrainOptions, type TrainResult } from './train/trainer.js';
import { trainingDefaults } from './train/defaults.js';
import { planTraining, type TrainingPlan } from './train/memory-plan.js';
import { manualSeed } from './tensor/index.js';

export interface TuningRequest {
  examples: Example[];
  validation?: Example[];
  lora?: Partial<LoraConfig>;
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
  const framing = chooseFraming(tokenizer, request.examples);
  const frame = (examples: Example[], role: string): FramedExample[] =>
    examples.map((e, i) => {
      try {
        const framed = frameExample(tokenizer, framing, e);
        checkEmbeddable(framed.ids, transformer.config.vocabSize, tokenizer);
        return framed;
      } catch (error) {
        if (error instanceof FramingError) throw new FramingError(`${role} example ${i + 1}: ${error.message}`);
        throw error;
      }
    });
  const training = frame(request.examples, 'training');
  const validation = request.validation ? frame(request.validation, 'validation') : undefined;
  const lora = loraConfig(request.lora);
  const plan = planTraining({
    config: transformer.config,
    dtype: transformer.dtype,
    device: transformer.device,
    rank: lora.rank,
    lengths: [...training, ...(validation ?? [])].map((e) => Math.min(e.ids.length, request.training?.maxSequenceLength ?? trainingDefaults.maxSequenceLength)),
    batchSize: request.training?.batchSize ?? trainingDefaults.batchSize,
  });
  if (!plan.fits) throw new MemoryPlanError(`this run does not fit in memory: ${plan.summary}`);
  request.onPlan?.(plan);
  manualSeed(request.training?.seed ?? trainingDefaults.seed); // the adapter's initialisation is part of the run
  const adapter = LoraAdapter.create(transformer, lora);
  const { epochs, batchSize, learningRate, seed } = request.training ?? {};
  const save = (dir: string, totalSteps: number, completedSteps: number, finalLoss: number | undefined, partial: { cancelled?: true; snapshot?: true }) =>
    saveTunedAdapter(dir, adapter, {
      baseModel: base.dir,
      framing,
      training: {
        epochs, batchSize, learningRate, seed, totalSteps,
        ...(partial.cancelled || partial.snapshot ? { completedSteps } : {}),
        ...partial,
        finalLoss,
      },
    });
  const { snapshots } = request;
  let lastLoss: number | undefined;
  let totalSteps = 0;
  try {
    const result = await train(transformer, adapter, training, {
      stepPlan: plan.step,
      ...request.training,
      validation,
      onStart: (progress) => {
        totalSteps = progress.totalSteps;
        request.training?.onStart?.(progress);
      },
      onStep: (metrics) => {
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
    });
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
