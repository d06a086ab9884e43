// A job's state as a labelled badge, with a live progress bar while it runs.
import type { TuningJob } from '../api/vertex';
import { isTerminal, jobProgress, stateLabel } from '../lib/job-state';

export function StateBadge({ state }: { state: string }) {
  const tone = state.replace(/^JOB_STATE_/, '').toLowerCase();
  return <span class={`badge badge-${tone}`}>{stateLabel(state)}</span>;
}

export function JobProgress({ job }: { job: TuningJob }) {
  const { completed, total, fraction } = jobProgress(job);
  const steps = total ? `${completed} / ${total} steps` : `${completed} steps`;
  const running = !isTerminal(job.state);
  return (
    <div class="job-progress">
      <StateBadge state={job.state} />
      {running && (
        <progress max={1} value={fraction} aria-label={`${stateLabel(job.state)}: ${steps}`}>
          {steps}
        </progress>
      )}
      {running && <span class="muted small">{steps}</span>}
    </div>
  );
}
