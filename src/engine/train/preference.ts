// Direct preference optimisation (DPO, Rafailov et al. 2023): each example is a prompt with a chosen and a
// rejected completion, and a step lowers
//
//     loss = −log σ(β · [(log π(chosen) − log π_ref(chosen)) − (log π(rejected) − log π_ref(rejected))])
//
// averaged over the step's pairs, where log π(c) sums the log-probabilities of the completion's tokens as the
// chat template frames it (the tokens SFT would train) and β weighs how far the policy may move from the
// reference. The reference is the policy where the run starts (the base model with a fresh adapter, whose B is
// zero, or the tuned model a continued run starts from), so its log-probabilities are computed once, before
// the first step, and no second model is kept: the first step's loss is then exactly ln 2.
import { noGrad, stack, tensor, tidy, zeros, type Tensor } from '../tensor/index.js';
import type { Transformer } from '../model/transformer.js';
import type { FramedExample } from '../data/framing.js';
import { packBatch, type PackedBatch } from './packing.js';
import { backward, hiddenStatesOf, packedTokens, predictedTokens, type StepPlan } from './step.js';

export interface PreferencePair {
  chosen: FramedExample;
  rejected: FramedExample;
}

/** A pair with the reference model's log-probabilities of its completions: [chosen, rejected]. */
export interface ScoredPair extends PreferencePair {
  reference: [number, number];
}

export interface PreferenceOutcome {
  /** Summed DPO loss over the pairs. */
  lossSum: number;
  /** Pairs whose chosen completion's reward beat the rejected one's. */
  preferred: number;
  /** Summed reward margins, β · (log-ratio of chosen − log-ratio of rejected). */
  marginSum: number;
  pairs: number;
  /** Completion tokens scored. */
  predicted: number;
}

/** Splits pairs, in order, into groups whose sequences pack into at most budget tokens (one pair at least). */
function pairGroups<T extends PreferencePair>(pairs: T[], budget: number): T[][] {
  const groups: T[][] = [];
  let current: T[] = [];
  for (const pair of pairs) {
    if (current.length && packedTokens(sequencesOf([...current, pair])) > budget) {
      groups.push(current);
      current = [];
    }
    current.push(pair);
  }
  if (current.length) groups.push(current);
  return groups;
}

const sequencesOf = (pairs: PreferencePair[]): FramedExample[] => pairs.flatMap((p) => [p.chosen, p.rejected]);

/** Each packed sequence's completion log-probability: minus its summed cross-entropy over its trained tokens. */
function completionLogProbs(model: Transformer, hidden: Tensor, batch: PackedBatch, chunkRows: number, withGrad: boolean): Tensor[] {
  const rows = hidden.flatten(0, 1);
  const targets = batch.targets.flatten();
  return batch.trainedByExample.map((indices) => {
    if (indices.length === 0) return zeros([], { device: model.device }); // a completion truncation cut off entirely
    const at = tensor(indices, [indices.length], { dtype: 'int64', device: model.device });
    const [lossSum] = model.lossSum(rows.indexSelect(0, at), targets.indexSelect(0, at), { chunkRows, withGrad });
    return lossSum.neg();
  });
}

/** The log-probabilities of every pair's completions under the model as it is now, without gradients. */
export function scorePairs(model: Transformer, pairs: PreferencePair[], plan: StepPlan): ScoredPair[] {
  const scored: ScoredPair[] = [];
  noGrad(() => {
    for (const group of pairGroups(pairs, plan.microBatchTokens)) {
      tidy(() => {
        const batch = packBatch(sequencesOf(group), model.device);
        const logProbs = completionLogProbs(model, hiddenStatesOf(model, batch), batch, plan.lossChunkRows, false).map((t) => t.item());
        group.forEach((pair, i) => scored.push({ ...pair, reference: [logProbs[2 * i]!, logProbs[2 * i + 1]!] }));
      });
    }
  });
  return scored;
}

/**
 * −log σ(x) for a scalar x, as −log_softmax([0, x])[1]: stable for any x, and its gradient is right at x = 0, where
 * every margin starts (relu(−x) + log(1 + e^−|x|) has the right value there but a zero subgradient).
 */
const negativeLogSigmoid = (x: Tensor): Tensor => stack([zeros([], { device: x.device }), x]).logSoftmax(0).select(0, 1).neg();

/**
 * The DPO losses of a group's pairs from its packed sequences' final hidden states: their sum as a tensor, and
 * the statistics added to `outcome`.
 */
function dpoLoss(model: Transformer, hidden: Tensor, batch: PackedBatch, group: ScoredPair[], beta: number, chunkRows: number, withGrad: boolean, outcome: PreferenceOutcome): Tensor {
  const logProbs = completionLogProbs(model, hidden, batch, chunkRows, withGrad);
  let total: Tensor | undefined;
  group.forEach((pair, i) => {
    const [referenceChosen, referenceRejected] = pair.reference;
    // β · ((log π(c) − log π_ref(c)) − (log π(r) − log π_ref(r)))
    const margin = logProbs[2 * i]!.sub(logProbs[2 * i + 1]!).sub(referenceChosen - referenceRejected).mul(beta);
    const loss = negativeLogSigmoid(margin);
    const value = margin.item();
    outcome.lossSum += loss.item();
    outcome.marginSum += value;
    if (value > 0) outcome.preferred += 1;
    total = total ? total.add(loss) : loss;
  });
  outcome.pairs += group.length;
  outcome.predicted += group.reduce((n, p) => n + predictedTokens(p.chosen) + predictedTokens(p.rejected), 0);
  return total!;
}

const emptyOutcome = (): PreferenceOutcome => ({ lossSum: 0, preferred: 0, marginSum: 0, pairs: 0, predicted: 0 });

/** A step's forward and backward passes over its pairs, leaving the mean DPO loss's gradient in the adapter. */
export function accumulatePreferenceGradients(model: Transformer, pairs: ScoredPair[], beta: number, plan: StepPlan): PreferenceOutcome {
  const outcome = emptyOutcome();
  for (const group of pairGroups(pairs, plan.microBatchTokens)) {
    tidy(() => {
      const batch = packBatch(sequencesOf(group), model.device);
      if (batch.predictedTokens === 0) {
        // Truncation cut every completion of the group away: nothing to learn, but the pairs count (at loss ln 2).
        noGrad(() => dpoLoss(model, hiddenStatesOf(model, batch), batch, group, beta, plan.lossChunkRows, false, outcome));
        return;
      }
      backward(model, batch, plan, (hidden) => dpoLoss(model, hidden, batch, group, beta, plan.lossChunkRows, true, outcome).mul(1 / pairs.length));
    });
  }
  return outcome;
}

/** The DPO loss and reward statistics over pairs, without gradients. */
export function evaluatePreferences(model: Transformer, pairs: ScoredPair[], beta: number, plan: StepPlan): PreferenceOutcome {
  const outcome = emptyOutcome();
  noGrad(() => {
    for (const group of pairGroups(pairs, plan.microBatchTokens)) {
      tidy(() => {
        const batch = packBatch(sequencesOf(group), model.device);
        dpoLoss(model, hiddenStatesOf(model, batch), batch, group, beta, plan.lossChunkRows, false, outcome);
      });
    }
  });
  return outcome;
}
