// One tuning run from examples to a saved adapter directory: framing, LoRA creation, training, saving.
import type { BaseModel } from './base-model.js';
import type { Example } from './data/examples.js';
import { checkEmbeddable, chooseFraming, frameExample, FramingError, type FramedExample, type Framing } from './data/framing.js';
import { LoraAdapter, loraConfig, type LoraConfig } from './lora/lora.js';
import { saveTunedAdapter } from './lora/tuned-adapter.js';
import { train, type TrainOptions, type TrainResult } from './train/trainer.js';
import { trainingDefaults } from './train/defaults.js';
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
}

export interface TuningOutcome extends TrainResult {
  framing: Framing;
  /** Whether outDir holds the adapter: always after a finished run, after a cancelled one only if saveCancelled said so. */
  adapterSaved: boolean;
}

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
  manualSeed(request.training?.seed ?? trainingDefaults.seed); // the adapter's initialisation is part of the run
  const adapter = LoraAdapter.create(transformer, loraConfig(request.lora));
  try {
    const result = await train(transformer, adapter, frame(request.examples, 'training'), {
      ...request.training,
      validation: request.validation ? frame(request.validation, 'validation') : undefined,
    });
    const adapterSaved = !result.cancelled || (result.completedSteps > 0 && (request.saveCancelled?.() ?? false));
    if (adapterSaved) {
      const { epochs, batchSize, learningRate, seed } = request.training ?? {};
      const { totalSteps, completedSteps, cancelled } = result;
      saveTunedAdapter(request.outDir, adapter, {
        baseModel: base.dir,
        framing,
        training: {
          epochs, batchSize, learningRate, seed, totalSteps,
          ...(cancelled ? { completedSteps, cancelled } : {}),
          finalLoss: result.history.at(-1)?.loss,
        },
      });
    }
    return { ...result, framing, adapterSaved };
  } finally {
    LoraAdapter.detach(transformer);
    adapter.dispose();
  }
}
