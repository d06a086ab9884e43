// A tuned model's checkpoints (Vertex's tunedModel.checkpoints): the adapter as it was at a few points of the
// run, each kept, listed and served on an endpoint of its own. Where they fall follows Vertex's cadence
// (vertex-api.md §2.4, [DOC-CKPT]): with fewer than 10 epochs one at the end of each epoch; otherwise 10 spread
// evenly over the epochs, the last at the end of the run. exportLastCheckpointOnly keeps only the last.
import { epochsCompleted, totalStepsFor } from '../../engine/train/trainer.js';

export interface TunedCheckpoint {
  /** "1", "2", …: the order in which the run reached it. */
  checkpointId: string;
  step: number;
  epoch: number;
  /** The 19-digit number of its endpoint: the job's own number for the run's last adapter. */
  endpointNumber: string;
  /** Where its adapter directory is in the artifact store. */
  adapterKey: string;
  /** Bytes it holds in storage, counted against the project's storage quota (0 for the run's last adapter, which is the model's own). */
  bytes: number;
  createTime: string;
}

/** Intermediate checkpoints spread over at most this many epochs' ends. */
const spreadOver = 10;

export interface CheckpointPlanInput {
  epochs: number;
  /** Examples the run trains on (after over-long ones were dropped). */
  examples: number;
  batchSize: number;
  exportLastCheckpointOnly: boolean;
}

/** The steps at which a run keeps a checkpoint, in order, each with its 1-based id; the last is the run's end. */
export function checkpointPlan({ epochs, examples, batchSize, exportLastCheckpointOnly }: CheckpointPlanInput): { checkpointId: string; step: number; epoch: number }[] {
  const total = totalStepsFor(examples, epochs, batchSize);
  const atEpochs =
    exportLastCheckpointOnly ? [epochs]
    : epochs < spreadOver ? Array.from({ length: epochs }, (_, i) => i + 1)
    : Array.from({ length: spreadOver }, (_, i) => Math.round(((i + 1) * epochs) / spreadOver));
  // The step that completes epoch e; several epochs may end in one step when the batch exceeds the dataset.
  const steps = [...new Set(atEpochs.map((e) => Math.min(total, Math.ceil((e * examples) / batchSize))))];
  return steps.map((step, i) => ({ checkpointId: String(i + 1), step, epoch: epochsCompleted(step, batchSize, examples) }));
}
