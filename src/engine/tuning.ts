// One tuning run from examples to a saved adapter directory: framing, LoRA creation, training, saving.
import type { BaseModel } from './base-model.js';
import type { Example } from './data/examples.js';
import { chooseFraming, frameExample, type FramedExample, type Framing } from './data/framing.js';
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
}

export interface TuningOutcome extends TrainResult {
  framing: Framing;
}

export async function tune(base: BaseModel, request: TuningRequest): Promise<TuningOutcome> {
  const { tokenizer, transformer } = base;
  const framing = chooseFraming(tokenizer, request.examples);
  const frame = (examples: Example[]): FramedExample[] => examples.map((e) => frameExample(tokenizer, framing, e));
  manualSeed(request.training?.seed ?? trainingDefaults.seed); // the adapter's initialisation is part of the run
  const adapter = LoraAdapter.create(transformer, loraConfig(request.lora));
  try {
    const result = await train(transformer, adapter, frame(request.examples), {
      ...request.training,
      validation: request.validation ? frame(request.validation) : undefined,
    });
    if (!result.cancelled) {
      const { epochs, batchSize, learningRate, seed } = request.training ?? {};
      saveTunedAdapter(request.outDir, adapter, {
        baseModel: base.dir,
        framing,
        training: { epochs, batchSize, learningRate, seed, totalSteps: result.totalSteps, finalLoss: result.history.at(-1)?.loss },
      });
    }
    return { ...result, framing };
  } finally {
    LoraAdapter.detach(transformer);
    adapter.dispose();
  }
}
