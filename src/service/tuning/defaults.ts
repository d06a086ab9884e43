// Tuning defaults and limits of the service, in one place (gemini-api.md §3.1, §7; vertex-api.md §5.3, §6).
import { trainingDefaults } from '../../engine/train/defaults.js';

/** The API a tuning request came through: some defaults and limits differ, as they do at Google. */
export type Surface = 'gemini' | 'vertex';

export const tuningDefaults = {
  /** The Gemini API's documented default; Vertex chooses by dataset size (vertexEpochsFor). */
  epochCount: 5,
  /** Google: "4 or 16 based on the number of training examples"; Attune switches at this many. */
  largeDatasetExamples: 100,
  smallBatchSize: 4,
  largeBatchSize: 16,
  /** The learning rate a multiplier of 1.0 means (the engine's LoRA default), per tuning method. */
  baseLearningRate: trainingDefaults.learningRate,
  preferenceBaseLearningRate: trainingDefaults.preferenceLearningRate,
  beta: trainingDefaults.preferenceBeta,
  /** Where LoRA usually tunes well (peak rates); the console warns about a rate outside it. */
  usualLearningRates: { min: 1e-5, max: 1e-2 },
  /** The LoRA rank of base models whose table entry names none (registry.ts). */
  adapterRank: 8,
} as const;

export const tuningLimits = {
  displayNameChars: { gemini: 40, vertex: 128 } satisfies Record<Surface, number>,
  maxEpochCount: 10_000,
  maxBatchSize: 1024,
  /**
   * The largest peak learning rate accepted (a multiplier may reach this over the base rate): LoRA tunes at
   * tuningDefaults.usualLearningRates; anything above 1 only diverges.
   */
  maxLearningRate: 1,
  /** DPO's beta: above 0 (at 0 nothing is learned) and at most this. */
  maxBeta: 10,
  /** Vertex: "5000, or 30% of training examples if >1000 validation examples"; Attune applies the 5,000. */
  maxValidationExamples: 5_000,
} as const;

/** List page sizes: the Gemini API's documented ones; Vertex documents none, so Attune takes 50 and 100. */
export const pageSizes: Record<Surface, { default: number; max: number }> = {
  gemini: { default: 10, max: 1000 },
  vertex: { default: 50, max: 100 },
};

export const defaultBatchSize = (examples: number): number =>
  examples >= tuningDefaults.largeDatasetExamples ? tuningDefaults.largeBatchSize : tuningDefaults.smallBatchSize;

/**
 * Vertex's default epoch count "adjusts to your training dataset size" without a published rule. Attune's:
 * small datasets need more passes to be learned at all, large ones fewer (Google recommends 2–4 epochs from
 * 500 examples up).
 */
const vertexEpochRule = [
  { below: 100, epochs: 10 },
  { below: 1_000, epochs: 4 },
  { below: 10_000, epochs: 3 },
  { below: Infinity, epochs: 2 },
] as const;

export const vertexEpochsFor = (examples: number): number => vertexEpochRule.find((r) => examples < r.below)!.epochs;

export const defaultEpochsFor = (surface: Surface, examples: number): number =>
  surface === 'vertex' ? vertexEpochsFor(examples) : tuningDefaults.epochCount;
