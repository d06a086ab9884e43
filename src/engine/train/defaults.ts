// Training defaults, in one place. The learning rate is the base that a learning-rate multiplier scales.
export const trainingDefaults = {
  /** Absolute peak learning rate for LoRA; learningRateMultiplier 1.0 means this. */
  learningRate: 2e-3,
  epochs: 5,
  batchSize: 4,
  /** Fraction of steps spent warming up linearly. */
  warmupFraction: 0.05,
  /** The cosine decay ends at this fraction of the peak. */
  decayFloor: 0.1,
  weightDecay: 0,
  maxGradNorm: 1.0,
  seed: 0,
  /** Longest packed row, in tokens; longer examples are truncated to it. */
  maxSequenceLength: 1024,
  /** Validation passes over a run, spread evenly (plus one at the end). */
  evaluations: 10,
} as const;
