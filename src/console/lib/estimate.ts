// How long a new job would take on this machine, before it starts: measured from finished jobs on the same
// base model (their metric wall times give seconds per step; the time from their creation to their first
// step gives the start-up: worker, model load). With no such job there is no estimate, only the step count.
import { specOf, type TuningJob } from '../api/vertex';
import { int } from './job-state';
import type { SeriesPoint } from './series';

export interface PastRun {
  job: TuningJob;
  trainLoss: SeriesPoint[];
}

export interface DurationEstimate {
  seconds: number;
  /** How it was worked out, shown beside the number. */
  basis: string;
}

interface Pace {
  secondsPerStep: number;
  startupSeconds: number;
  batchSize?: number;
}

function paceOf({ job, trainLoss }: PastRun): Pace | undefined {
  const first = trainLoss[0];
  const last = trainLoss.at(-1);
  // From creation, not startTime: the worker and model load come before the job reports itself started.
  const started = job.createTime ? Date.parse(job.createTime) : NaN;
  if (!first || !last || last.step <= first.step || !Number.isFinite(started)) return undefined;
  const secondsPerStep = (last.wallMs - first.wallMs) / 1000 / (last.step - first.step);
  // The first point lands after `first.step` steps; what came before them is start-up (worker, model load).
  const startupSeconds = Math.max(0, (first.wallMs - started) / 1000 - first.step * secondsPerStep);
  return { secondsPerStep, startupSeconds, batchSize: int(specOf(job)?.hyperParameters?.batchSize) };
}

const median = (values: number[]): number => {
  const sorted = [...values].sort((a, b) => a - b);
  const mid = Math.floor(sorted.length / 2);
  return sorted.length % 2 ? sorted[mid]! : (sorted[mid - 1]! + sorted[mid]!) / 2;
};

export function estimateDuration(steps: number, batchSize: number | undefined, runs: PastRun[]): DurationEstimate | undefined {
  const paces = runs.map(paceOf).filter((p): p is Pace => p !== undefined);
  if (paces.length === 0 || steps <= 0) return undefined;
  // Step time grows with the batch: prefer runs with the same batch size when there are any.
  const sameBatch = paces.filter((p) => batchSize !== undefined && p.batchSize === batchSize);
  const used = sameBatch.length ? sameBatch : paces;
  const perStep = median(used.map((p) => p.secondsPerStep));
  const startup = median(used.map((p) => p.startupSeconds));
  const runsText = `${used.length} finished run${used.length === 1 ? '' : 's'}`;
  const batchText = sameBatch.length ? ` with batch size ${batchSize}` : batchSize !== undefined ? ' (other batch sizes, so rougher)' : '';
  return {
    seconds: startup + steps * perStep,
    basis: `from ${runsText} on this base model${batchText}: ${perStep.toFixed(3)} s per step after ${startup.toFixed(1)} s to start. Jobs running ahead of it in the queue would add their time.`,
  };
}
