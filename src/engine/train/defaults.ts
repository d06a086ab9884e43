// Training defaults, in one place. The learning rate is the base that a learning-rate multiplier scales.
export const trainingDefaults = {
  /** Absolute peak learning rate for LoRA; learningRateMultiplier 1.0 means this. */
  learningRate: 2e-3,
  /**
   * The same for preference tuning (DPO). AdamW moves every weight about the learning rate a step however small the
   * gradient, and DPO's loss has no floor a policy reaches by fitting its data: at the supervised rate the rejected
   * completions are pushed down until generation falls apart. Measured on stories260K's number-successor pairs
   * (supervised on both answers first): 2e-3 → 7–47% chosen, 1e-4 → 77%, 4e-5 → 70–87%.
   */
  preferenceLearningRate: 4e-5,
  /** DPO's beta when none is given (Google's guidance: 0.01–0.5, default 0.1). */
  preferenceBeta: 0.1,
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

/** The peak learning rate a learning-rate multiplier of 1.0 means, for supervised or preference tuning. */
export const baseLearningRate = (method: 'supervised' | 'preference'): number =>
  method === 'preference' ? trainingDefaults.preferenceLearningRate : trainingDefaults.learningRate;
