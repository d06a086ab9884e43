// LoRA tuning: the step loop, its metrics, periodic validation, cancellation and checkpoints, for either
// objective: supervised next-token loss (train) or DPO on preference pairs (trainPreferences, preference.ts).
// Batch size keeps Google's meaning, examples per step, so totalSteps = ceil(examples × epochs / batchSize).
import { mallocTrim, manualSeed, noGrad, tidy, type Tensor } from '../tensor/index.js';
import type { Transformer } from '../model/transformer.js';
import type { LoraAdapter } from '../lora/lora.js';
import type { FramedExample } from '../data/framing.js';
import { AdamW, clipGradNorm } from './optimizer.js';
import { learningRateAt } from './schedule.js';
import { truncate } from './packing.js';
import { baseLearningRate, trainingDefaults } from './defaults.js';
import { loadCheckpoint, saveCheckpoint } from './checkpoint.js';
import { mulberry32 } from './mulberry32.js';
import { accumulateGradients, evaluateLoss, unboundedStepPlan, type StepPlan } from './step.js';
import {
  accumulatePreferenceGradients, evaluatePreferences, scorePairs, type PreferenceOutcome, type PreferencePair, type ScoredPair,
} from './preference.js';

export interface StepMetrics {
  step: number;
  /** Completed epochs after this step: floor(step × batchSize / examples). */
  epoch: number;
  /** Supervised: mean cross-entropy over the step's predicted tokens. Preference: mean DPO loss over its pairs. */
  loss: number;
  /**
   * Supervised: fraction of predicted tokens whose argmax was the target. Preference: the reward accuracy, the
   * fraction of pairs whose chosen completion gained more log-probability over the reference than the rejected one.
   */
  accuracy: number;
  /** Preference only: the mean reward margin, β · (log-ratio of chosen − log-ratio of rejected). */
  rewardMargin?: number;
  /** Tokens scored: the trained tokens (preference: of both completions). */
  predictedTokens: number;
  learningRate: number;
  /** Seconds since the run (or its resumption) started. */
  elapsedSeconds: number;
}

export interface EvalMetrics {
  step: number;
  loss: number;
  accuracy: number;
  rewardMargin?: number;
  predictedTokens: number;
}

/** A step's or an evaluation's figures, whichever the objective. */
type Measured = Omit<EvalMetrics, 'step'>;

/** What a run optimises, over `size` items an epoch (examples, or preference pairs). */
interface Objective {
  size: number;
  /** Called once the starting adapter is attached, before any checkpoint is restored or step taken. */
  prepare?(plan: StepPlan): void;
  /** A step's forward and backward passes over the items at these indices, the gradient left in the adapter. */
  accumulate(indices: number[], plan: StepPlan): Measured;
  /** The validation set, batchSize at a time, without gradients; undefined without one. */
  evaluate?(batchSize: number, plan: StepPlan): Measured;
}

export interface TrainOptions {
  epochs?: number;
  batchSize?: number;
  learningRate?: number;
  warmupFraction?: number;
  decayFloor?: number;
  weightDecay?: number;
  maxGradNorm?: number;
  seed?: number;
  maxSequenceLength?: number;
  validation?: FramedExample[];
  evaluations?: number;
  /** Micro-batch size, checkpointing and loss chunking (see memory-plan.ts); by default one micro-batch per step. */
  stepPlan?: StepPlan;
  /** Checked between steps; an aborted run returns with cancelled = true. */
  signal?: AbortSignal;
  /** Where checkpoints go; a run finding one there resumes from it. */
  checkpointDir?: string;
  checkpointEverySteps?: number;
  /** Also checkpoint at the step reached when the signal stops the run (a graceful shutdown resumes there). */
  checkpointOnAbort?: boolean;
  /** Called after each checkpoint is written, before training goes on (it may copy the checkpoint elsewhere). */
  onCheckpoint?: (completedSteps: number) => void | Promise<void>;
  /**
   * Steps after which the adapter as trained so far is kept (a tuned model's intermediate checkpoints); the
   * last step is never among them, as the finished run's adapter is that one.
   */
  snapshotSteps?: readonly number[];
  /** Called after each step of snapshotSteps, before training goes on (it saves the adapter). */
  onSnapshot?: (step: number) => void | Promise<void>;
  /** Called once before the first step, after any checkpoint was restored. */
  onStart?: (progress: { completedSteps: number; totalSteps: number }) => void;
  onStep?: (metrics: StepMetrics) => void;
  onEval?: (metrics: EvalMetrics) => void;
}

export interface TrainResult {
  totalSteps: number;
  completedSteps: number;
  cancelled: boolean;
  history: StepMetrics[];
  evaluations: EvalMetrics[];
}

/**
 * Steps between giving the allocator's free pages back to the system. The addon keeps freed blocks in
 * the heap (reusing them saves a page fault per 4 KiB each step), but freed blocks scattered through
 * it are never returned by glibc on its own: RSS crept up by ~50 MB per 2,000 steps of stories260K.
 * malloc_trim(0) returns them (measured flat over 10,000 steps, `npm run bench`); the pages it frees
 * fault back in once, which every 100 steps costs well under 1% of a step's time.
 */
const trimEverySteps = 100;

/**
 * The loss or the adapter's weights stopped being finite numbers (a learning rate far too high, usually).
 * The run stops at once: nothing of that step is reported, checkpointed or saved.
 */
export class TrainingDivergedError extends Error {
  constructor(
    readonly step: number,
    what: string,
  ) {
    super(`training diverged at step ${step}: ${what}; try a lower learning rate`);
    this.name = 'TrainingDivergedError';
  }
}

/** Completed epochs after a step: floor(step × batchSize / examples). */
export const epochsCompleted = (step: number, batchSize: number, examples: number): number => Math.floor((step * batchSize) / examples);

export function totalStepsFor(examples: number, epochs: number, batchSize: number): number {
  return Math.ceil((examples * epochs) / batchSize);
}

/** Supervised tuning: the adapter learns each example's model turns. */
export async function train(
  model: Transformer,
  adapter: LoraAdapter,
  examples: FramedExample[],
  options: TrainOptions = {},
): Promise<TrainResult> {
  const maxLength = maxLengthOf(model, options);
  const data = examples.map((e) => truncate(e, maxLength));
  const validation = (options.validation ?? []).map((e) => truncate(e, maxLength));
  return runSteps(model, adapter, options, {
    size: data.length,
    accumulate(indices, plan) {
      const { lossSum, correct, predicted } = accumulateGradients(model, indices.map((i) => data[i]), plan);
      return { loss: predicted ? lossSum / predicted : 0, accuracy: predicted ? correct / predicted : 0, predictedTokens: predicted };
    },
    evaluate: validation.length ? (batchSize, plan) => evaluate(model, validation, batchSize, plan) : undefined,
  });
}

export interface PreferenceTrainOptions extends Omit<TrainOptions, 'validation'> {
  /** How far the policy may move from the reference (Vertex's beta, "weight for KL divergence regularization"). */
  beta: number;
  validation?: PreferencePair[];
}

/**
 * Preference tuning (DPO): the reference is the model as the adapter given here makes it when the run starts, so
 * the reference log-probabilities are computed then, once (a resumed run computes them again from the same start
 * before restoring its checkpoint).
 */
export async function trainPreferences(
  model: Transformer,
  adapter: LoraAdapter,
  pairs: PreferencePair[],
  options: PreferenceTrainOptions,
): Promise<TrainResult> {
  const maxLength = maxLengthOf(model, options);
  const cut = (p: PreferencePair): PreferencePair => ({ chosen: truncate(p.chosen, maxLength), rejected: truncate(p.rejected, maxLength) });
  const data = pairs.map(cut);
  const validation = (options.validation ?? []).map(cut);
  let scored: ScoredPair[] = [];
  let scoredValidation: ScoredPair[] = [];
  const learningRate = options.learningRate ?? baseLearningRate('preference');
  return runSteps(model, adapter, { ...options, learningRate, validation: undefined }, {
    size: data.length,
    prepare(plan) {
      scored = scorePairs(model, data, plan);
      scoredValidation = scorePairs(model, validation, plan);
    },
    accumulate: (indices, plan) => preferenceFigures(accumulatePreferenceGradients(model, indices.map((i) => scored[i]!), options.beta, plan)),
    evaluate: validation.length ? (_batchSize, plan) => preferenceFigures(evaluatePreferences(model, scoredValidation, options.beta, plan)) : undefined,
  });
}

function preferenceFigures({ lossSum, preferred, marginSum, pairs, predicted }: PreferenceOutcome): Measured {
  return { loss: lossSum / pairs, accuracy: preferred / pairs, rewardMargin: marginSum / pairs, predictedTokens: predicted };
}

const maxLengthOf = (model: Transformer, options: TrainOptions | PreferenceTrainOptions) =>
  Math.min(options.maxSequenceLength ?? trainingDefaults.maxSequenceLength, model.config.maxPositions);

async function runSteps(model: Transformer, adapter: LoraAdapter, options: TrainOptions, objective: Objective): Promise<TrainResult> {
  if (objective.size === 0) throw new Error('the dataset has no examples');
  const o = { ...trainingDefaults, ...definedOnly(options) };
  const totalSteps = totalStepsFor(objective.size, o.epochs, o.batchSize);
  const schedule = {
    peak: o.learningRate,
    totalSteps,
    warmupSteps: Math.max(1, Math.round(totalSteps * o.warmupFraction)),
    floor: o.decayFloor,
  };
  const evalEvery = Math.max(1, Math.ceil(totalSteps / o.evaluations));
  const stepPlan = options.stepPlan ?? unboundedStepPlan;
  const checkpointEvery = options.checkpointEverySteps ?? Math.max(1, Math.ceil(totalSteps / 20));
  const snapshotSteps = new Set((options.snapshotSteps ?? []).filter((s) => s < totalSteps));

  manualSeed(o.seed);
  adapter.attach(model);
  const parameters = adapter.parameters();
  for (const p of parameters) p.requiresGrad_(true);
  const optimizer = new AdamW(parameters, { weightDecay: o.weightDecay });
  objective.prepare?.(stepPlan);
  const result: TrainResult = { totalSteps, completedSteps: 0, cancelled: false, history: [], evaluations: [] };
  if (options.checkpointDir) {
    const resumed = loadCheckpoint(options.checkpointDir, adapter, optimizer);
    if (resumed) Object.assign(result, resumed, { totalSteps });
  }
  let checkpointedStep = result.completedSteps;
  options.onStart?.({ completedSteps: result.completedSteps, totalSteps });

  const order = new ExampleOrder(objective.size, o.seed);
  const started = Date.now();
  // Packed once the adapter is attached (only adapted projections are packed), dropped however the run ends.
  const unpack = stepPlan.packedWeights ? model.packProjections(stepPlan.packedWeights) : () => {};
  try {
    for (let step = result.completedSteps + 1; step <= totalSteps; step++) {
      await yieldToEventLoop(); // lets signals, timers and I/O (progress, cancel) through between steps
      if (options.signal?.aborted) {
        result.cancelled = true;
        if (options.checkpointDir && options.checkpointOnAbort && result.completedSteps > checkpointedStep) {
          saveCheckpoint(options.checkpointDir, adapter, optimizer, result);
          await options.onCheckpoint?.(result.completedSteps);
        }
        break;
      }
      const learningRate = learningRateAt(step, schedule);
      const figures = tidy(() => {
        const measured = objective.accumulate(order.batch(step, o.batchSize), stepPlan);
        applyGradients(optimizer, learningRate, o.maxGradNorm);
        return measured;
      });
      if (!Number.isFinite(figures.loss)) throw new TrainingDivergedError(step, `the loss is ${figures.loss}`);
      const metrics: StepMetrics = {
        step,
        epoch: epochsCompleted(step, o.batchSize, objective.size),
        ...figures,
        learningRate,
        elapsedSeconds: (Date.now() - started) / 1000,
      };
      result.history.push(metrics);
      result.completedSteps = step;
      options.onStep?.(metrics);
      if (objective.evaluate && (step % evalEvery === 0 || step === totalSteps)) {
        const evaluation = { step, ...objective.evaluate(o.batchSize, stepPlan) };
        if (!Number.isFinite(evaluation.loss)) throw new TrainingDivergedError(step, `the validation loss is ${evaluation.loss}`);
        result.evaluations.push(evaluation);
        options.onEval?.(evaluation);
      }
      const checkpointNow = options.checkpointDir && (step % checkpointEvery === 0 || step === totalSteps);
      const snapshotNow = snapshotSteps.has(step);
      if ((checkpointNow || snapshotNow || step === totalSteps) && !allFinite(parameters)) {
        throw new TrainingDivergedError(step, 'the adapter weights are no longer finite numbers');
      }
      if (step % trimEverySteps === 0) mallocTrim();
      if (options.checkpointDir && checkpointNow) {
        saveCheckpoint(options.checkpointDir, adapter, optimizer, result);
        checkpointedStep = step;
        await options.onCheckpoint?.(step);
      }
      if (snapshotNow) await options.onSnapshot?.(step);
    }
  } finally {
    unpack();
  }
  for (const p of parameters) {
    p.requiresGrad_(false);
    p.clearGrad();
  }
  optimizer.dispose();
  return result;
}

/** Clips the accumulated gradient, steps the optimizer and clears the gradient for the next step. */
function applyGradients(optimizer: AdamW, learningRate: number, maxGradNorm: number): void {
  clipGradNorm(optimizer.parameters, maxGradNorm);
  optimizer.step(learningRate);
  optimizer.zeroGrad();
}

/** One supervised step on these examples (the benchmark times it). */
export function trainStep(
  model: Transformer,
  optimizer: AdamW,
  examples: FramedExample[],
  learningRate: number,
  maxGradNorm: number,
  plan: StepPlan = unboundedStepPlan,
): { loss: number; correct: number; predicted: number } {
  const { lossSum, correct, predicted } = accumulateGradients(model, examples, plan);
  applyGradients(optimizer, learningRate, maxGradNorm);
  return { loss: predicted ? lossSum / predicted : 0, correct, predicted };
}

/** Mean loss and accuracy over every predicted token of the examples, batchSize examples at a time, without gradients. */
export function evaluate(
  model: Transformer,
  examples: FramedExample[],
  batchSize: number,
  plan: StepPlan = unboundedStepPlan,
): Omit<EvalMetrics, 'step'> {
  let lossSum = 0;
  let correct = 0;
  let predicted = 0;
  for (let i = 0; i < examples.length; i += batchSize) {
    const part = evaluateLoss(model, examples.slice(i, i + batchSize), plan);
    lossSum += part.lossSum;
    correct += part.correct;
    predicted += part.predicted;
  }
  return { loss: predicted ? lossSum / predicted : 0, accuracy: predicted ? correct / predicted : 0, predictedTokens: predicted };
}

function allFinite(tensors: Tensor[]): boolean {
  return noGrad(() => tidy(() => tensors.every((t) => t.isFinite().logicalNot().sum().item() === 0)));
}

/**
 * Which examples each step sees: epochs of seeded shuffles laid end to end, so a batch may span an
 * epoch boundary and a resumed run sees exactly the examples the interrupted one would have.
 */
class ExampleOrder {
  private readonly epochs = new Map<number, number[]>();
  constructor(
    private readonly size: number,
    private readonly seed: number,
  ) {}

  batch(step: number, batchSize: number): number[] {
    const out: number[] = [];
    for (let k = (step - 1) * batchSize; k < step * batchSize; k++) {
      out.push(this.epoch(Math.floor(k / this.size))[k % this.size]);
    }
    return out;
  }

  private epoch(index: number): number[] {
    let order = this.epochs.get(index);
    if (!order) {
      order = shuffled(this.size, this.seed * 1_000_003 + index);
      this.epochs.clear(); // only the current and next epoch are ever needed
      this.epochs.set(index, order);
    }
    return order;
  }
}

function shuffled(size: number, seed: number): number[] {
  const order = Array.from({ length: size }, (_, i) => i);
  const random = mulberry32(seed);
  for (let i = size - 1; i > 0; i--) {
    const j = Math.floor(random() * (i + 1));
    [order[i], order[j]] = [order[j], order[i]];
  }
  return order;
}

const yieldToEventLoop = () => new Promise<void>((resolve) => setImmediate(resolve));

function definedOnly<T extends object>(o: T): Partial<T> {
  return Object.fromEntries(Object.entries(o).filter(([, v]) => v !== undefined)) as Partial<T>;
}
