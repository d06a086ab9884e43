// Where a running job is: step and epoch, a progress bar, elapsed time and time left (from its pace).
import { metricNames, specOf, type TuningJob } from '../api/vertex';
import { useNow } from '../hooks/use-now';
import { etaSeconds } from '../lib/eta';
import { formatDuration, secondsBetween } from '../lib/format';
import { int, isTerminal, jobProgress } from '../lib/job-state';
import type { MetricsState } from '../lib/series';

export function RunProgress({ job, metrics }: { job: TuningJob; metrics: MetricsState }) {
  const running = !isTerminal(job.state);
  const now = useNow(1000, running);
  const train = metrics.series[metricNames.trainLoss] ?? [];
  const progress = jobProgress(job);
  const completed = Math.max(progress.completed, train.at(-1)?.step ?? 0);
  const total = progress.total;
  const epochs = int(specOf(job)?.hyperParameters?.epochCount);
  const epochsDone = Math.max(int(job.tuningJobMetadata?.completedEpochCount) ?? 0, metrics.epochs.at(-1)?.epoch ?? 0);
  const eta = running ? etaSeconds(train, total, now) : undefined;
  const elapsed = job.startTime ? secondsBetween(job.startTime, job.endTime ?? new Date(now).toISOString()) : undefined;
  const fraction = total ? Math.min(1, completed / total) : undefined;
  return (
    <div class="run-progress">
      {running && <progress max={1} value={fraction} aria-label="Tuning progress" />}
      <p data-testid="run-progress">
        Step {completed}
        {total ? ` of ${total}` : ''}
        {epochs ? ` · epoch ${Math.min(epochsDone, epochs)} of ${epochs}` : ''}
        {elapsed !== undefined ? ` · ${formatDuration(elapsed)} elapsed` : ''}
        {running && (
          <span data-testid="eta">
            {' · '}
            {job.state === 'JOB_STATE_PENDING' ? 'waiting to start' : eta !== undefined ? `about ${formatDuration(eta)} left` : 'estimating time left…'}
          </span>
        )}
      </p>
    </div>
  );
}
