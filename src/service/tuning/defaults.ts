// Tuning defaults and limits of the service, in one place (gemini-api.md §3.1, §7).
import { trainingDefaults } from '../../engine/train/defaults.js';

export const tuningDefaults = {
  epochCount: 5,
  /** Google: "4 or 16 based on the number of training examples"; Attune switches at this many. */
  largeDatasetExamples: 100,
  smallBatchSize: 4,
  largeBatchSize: 16,
  /** The learning rate a multiplier of 1.0 means (the engine's LoRA default). */
  baseLearningRate: trainingDefaults.learningRate,
  adapterRank: 8,
} as const;

export const tuningLimits = {
  displayNameChars: 40,
  maxEpochCount: 10_000,
  maxBatchSize: 1024,
} as const;

export const defaultBatchSize = (examples: number): number =>
  examples >= tuningDefaults.largeDatasetExamples ? tuningDefaults.largeBatchSize : tuningDefaults.smallBatchSize;
