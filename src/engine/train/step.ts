// One step's forward and backward passes, bounded in memory: the step's examples run as micro-batches
// of at most a token budget each, their gradients accumulating, and each block's activations may be
// recomputed in the backward pass instead of kept (activation checkpointing). Each micro-batch's loss
// sum is scaled by 1 / (the step's predicted tokens), so the accumulated gradient is exactly the one big
// batch's mean-loss gradient.
import { noGrad, tidy, keep, type Tensor, type WeightPacking } from '../tensor/index.js';
import type { Transformer, ForwardOptions } from '../model/transformer.js';
import type { FramedExample } from '../data/framing.js';
import { IGNORE_INDEX } from '../data/framing.js';
import { packBatch, packRows, type PackedBatch } from './packing.js';

export interface StepPlan {
  /** The most tokens (rows × row length, padding included) one micro-batch may hold. */
  microBatchTokens: number;
  /** Keep only each block's input and recompute the block in the backward pass. */
  checkpointing: boolean;
  /** Rows of vocabulary logits computed at once by the loss. */
  lossChunkRows: number;
  /** The run keeps the frozen projection weights packed for the CPU's bfloat16 kernel, and how (Transformer.packProjections). */
  packedWeights?: WeightPacking;
}

/** Everything in one micro-batch (a plan for a step small enough to need no splitting). */
export const unboundedStepPlan: StepPlan = { microBatchTokens: Number.MAX_SAFE_INTEGER, checkpointing: false, lossChunkRows: 1024 };

export interface StepOutcome {
  /** Summed cross-entropy over the predicted tokens. */
  lossSum: number;
  correct: number;
  predicted: number;
}

export const predictedTokens = (example: FramedExample): number => example.targets.filter((t) => t !== IGNORE_INDEX).length;

/** Tokens a group of examples occupies once packed: rows × the longest example's length. */
export function packedTokens(examples: FramedExample[]): number {
  return packRows(examples).length * Math.max(...examples.map((e) => e.ids.length));
}

/** Splits a step's examples, in order, into groups that each pack into at most budget tokens (one example at least). */
export function microBatches(examples: FramedExample[], budget: number): FramedExample[][] {
  const groups: FramedExample[][] = [];
  let current: FramedExample[] = [];
  for (const example of examples) {
    if (current.length && packedTokens([...current, example]) > budget) {
      groups.push(current);
      current = [];
    }
    current.push(example);
  }
  if (current.length) groups.push(current);
  return groups;
}

/**
 * Runs the step's forward and backward passes, leaving the mean-loss gradient accumulated in the adapter's
 * parameters. Returns the summed loss and the accuracy counts over the step's predicted tokens.
 */
export function accumulateGradients(model: Transformer, examples: FramedExample[], plan: StepPlan): StepOutcome {
  const predicted = examples.reduce((n, e) => n + predictedTokens(e), 0);
  const outcome: StepOutcome = { lossSum: 0, correct: 0, predicted };
  if (predicted === 0) return outcome;
  for (const group of microBatches(examples, plan.microBatchTokens)) {
    tidy(() => {
      const batch = packBatch(group, model.device);
      if (batch.predictedTokens === 0) return;
      backward(model, batch, plan, (hidden) => {
        const [lossSum, correct] = lossOnTrained(model, hidden, batch, plan.lossChunkRows, true);
        outcome.lossSum += lossSum.item();
        outcome.correct += correct.item();
        return lossSum.mul(1 / predicted);
      });
    });
  }
  return outcome;
}

/**
 * What a step back-propagates from a micro-batch's final hidden states: a scalar whose gradient is the micro-batch's
 * share of the step's gradient. It may read values out (.item()) as it goes.
 */
export type LossHead = (hidden: Tensor) => Tensor;

/** One micro-batch's forward and backward passes, the whole model at once or block by block (activation checkpointing). */
export function backward(model: Transformer, batch: PackedBatch, plan: StepPlan, head: LossHead): void {
  if (plan.checkpointing) checkpointedBackward(model, batch, head);
  else plainBackward(model, batch, head);
}

/** The final hidden states of a micro-batch, without gradients (evaluation, reference log-probabilities). */
export function hiddenStatesOf(model: Transformer, batch: PackedBatch): Tensor {
  return model.hiddenStates(batch.ids, forwardOptions(batch, false));
}

/** Loss and accuracy over every predicted token of the examples, without gradients, micro-batch by micro-batch. */
export function evaluateLoss(model: Transformer, examples: FramedExample[], plan: StepPlan): StepOutcome {
  const outcome: StepOutcome = { lossSum: 0, correct: 0, predicted: 0 };
  noGrad(() => {
    for (const group of microBatches(examples, plan.microBatchTokens)) {
      tidy(() => {
        const batch = packBatch(group, model.device);
        if (batch.predictedTokens === 0) return;
        const hidden = model.hiddenStates(batch.ids, forwardOptions(batch, false));
        const [lossSum, correct] = lossOnTrained(model, hidden, batch, plan.lossChunkRows, false);
        outcome.lossSum += lossSum.item();
        outcome.correct += correct.item();
        outcome.predicted += batch.predictedTokens;
      });
    }
  });
  return outcome;
}

const forwardOptions = (batch: PackedBatch, train: boolean): ForwardOptions => ({
  positions: batch.positions,
  segments: batch.segments,
  train,
});

/** The loss over trained positions only: the vocabulary projection runs just where a target exists. */
function lossOnTrained(model: Transformer, hidden: Tensor, batch: PackedBatch, chunkRows: number, withGrad: boolean): [Tensor, Tensor] {
  const rows = hidden.flatten(0, 1).indexSelect(0, batch.trainedIndices); // [N, hidden]
  const targets = batch.targets.flatten().indexSelect(0, batch.trainedIndices);
  return model.lossSum(rows, targets, { chunkRows, withGrad });
}

function plainBackward(model: Transformer, batch: PackedBatch, head: LossHead): void {
  head(model.hiddenStates(batch.ids, forwardOptions(batch, true))).backward();
}

/**
 * Activation checkpointing, block by block: the forward pass keeps only each block's input; the backward
 * pass recomputes one block at a time from its input and back-propagates the gradient of its output
 * (backward(gradient)), which yields the gradient of its input for the block below.
 */
function checkpointedBackward(model: Transformer, batch: PackedBatch, head: LossHead): void {
  const layers = model.weights.blocks.length;
  const { x: embedded, context } = noGrad(() => model.embed(batch.ids, forwardOptions(batch, true)));
  const inputs: Tensor[] = [embedded];
  noGrad(() => {
    for (let i = 0; i < layers; i++) inputs.push(keep(tidy(() => model.block(i, inputs[i], context))));
  });
  const top = inputs[layers].requiresGrad_(true);
  tidy(() => head(model.finalNorm(top)).backward());
  let gradient = keep(top.grad!);
  for (let i = layers - 1; i >= 0; i--) {
    const input = inputs[i];
    if (i > 0) input.requiresGrad_(true); // the embeddings are frozen: block 0's input needs no gradient
    tidy(() => model.block(i, input, context).backward(gradient));
    gradient.dispose();
    inputs[i + 1].dispose();
    if (i > 0) gradient = keep(input.grad!);
  }
  inputs[0].dispose();
}
