// Learning rate over the run: linear warmup, then cosine decay to a floor.
export interface Schedule {
  peak: number;
  totalSteps: number;
  warmupSteps: number;
  /** Fraction of the peak the decay ends at. */
  floor: number;
}

/** Learning rate at 1-based step. */
export function learningRateAt(step: number, { peak, totalSteps, warmupSteps, floor }: Schedule): number {
  if (step <= warmupSteps) return (peak * step) / warmupSteps;
  const progress = (step - warmupSteps) / Math.max(1, totalSteps - warmupSteps);
  const cosine = 0.5 * (1 + Math.cos(Math.PI * Math.min(1, progress)));
  return peak * (floor + (1 - floor) * cosine);
}
