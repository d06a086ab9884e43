// What a tuning job's state means to the UI: labels, terminal states, progress.
import { dataStatsOf, type Int64, type JobState, type TuningJob } from '../api/vertex';

const labels: Record<JobState, string> = {
  JOB_STATE_PENDING: 'Pending',
  JOB_STATE_RUNNING: 'Running',
  JOB_STATE_CANCELLING: 'Cancelling',
  JOB_STATE_SUCCEEDED: 'Succeeded',
  JOB_STATE_FAILED: 'Failed',
  JOB_STATE_CANCELLED: 'Cancelled',
};

export const stateLabel = (state: string): string => labels[state as JobState] ?? state.replace(/^JOB_STATE_/, '').toLowerCase();

/** The states every Vertex client treats as final. */
export const isTerminal = (state: string): boolean =>
  state === 'JOB_STATE_SUCCEEDED' || state === 'JOB_STATE_FAILED' || state === 'JOB_STATE_CANCELLED';

export const canCancel = (state: string): boolean => state === 'JOB_STATE_PENDING' || state === 'JOB_STATE_RUNNING';

/** A job that finished with an adapter one can test and download: it succeeded, or was cancelled after it trained (it keeps what it reached). */
export const hasAdapter = (job: TuningJob): boolean => job.state === 'JOB_STATE_SUCCEEDED' || (job.state === 'JOB_STATE_CANCELLED' && job.tunedModel !== undefined);

/**
 * Whether every training example was one prompt and one answer (at most 2 messages), so the model never saw
 * an earlier turn; unknown stats count as single-turn, the common case.
 */
export const tunedOnSingleTurns = (job: TuningJob): boolean => (dataStatsOf(job)?.userMessagePerExampleDistribution?.max ?? 2) <= 2;

export const int = (value: Int64 | undefined): number | undefined => (value === undefined || value === '' ? undefined : Number(value));

export interface Progress {
  completed: number;
  total?: number;
  /** 0..1 when the total is known. */
  fraction?: number;
}

export function jobProgress(job: TuningJob): Progress {
  const completed = int(job.tuningJobMetadata?.completedStepCount) ?? 0;
  const total = int(dataStatsOf(job)?.tuningStepCount);
  if (!total) return { completed };
  const fraction = job.state === 'JOB_STATE_SUCCEEDED' ? 1 : Math.min(1, completed / total);
  return { completed, total, fraction };
}

/** The filter values the list offers (Vertex filter syntax). */
export const stateFilters: { label: string; filter: string }[] = [
  { label: 'All states', filter: '' },
  ...(['JOB_STATE_PENDING', 'JOB_STATE_RUNNING', 'JOB_STATE_SUCCEEDED', 'JOB_STATE_FAILED', 'JOB_STATE_CANCELLED'] as JobState[]).map((state) => ({
    label: labels[state],
    filter: `state="${state}"`,
  })),
];
