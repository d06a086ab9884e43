// A job's log of events (as OpenAI's fine-tuning jobs show theirs): created, started, epochs, evaluations,
// checkpoints, how it ended; with the tokens trained so far and the run's seed. Newest first; a long run's
// thousands of epochs show the latest few until asked for all.
import { useState } from 'preact/hooks';
import { getJobEvents, type TuningJob } from '../api/vertex';
import { useAsync, useInterval } from '../hooks/use-async';
import { isTerminal } from '../lib/job-state';
import { formatNumber, formatTime } from '../lib/format';
import { ErrorBanner } from './error-banner';

const shownAtFirst = 8;

/** Reloaded when the job's state changes, and every few seconds while it runs. */
export function JobEvents({ id, job }: { id: string; job: TuningJob }) {
  const log = useAsync((signal) => getJobEvents(id, signal), [id, job.state]);
  useInterval(log.reload, 3000, !isTerminal(job.state));
  const [all, setAll] = useState(false);
  const events = [...(log.data?.events ?? [])].reverse();
  const shown = all ? events : events.slice(0, shownAtFirst);
  return (
    <section class="panel" aria-labelledby="events-title" data-testid="job-events">
      <h2 id="events-title">Events</h2>
      <ErrorBanner error={log.error} onRetry={log.reload} />
      {log.data && (
        <>
          <dl class="facts">
            <dt>Tokens trained</dt>
            <dd data-testid="trained-tokens">{formatNumber(log.data.trainedTokens)}</dd>
            <dt>Seed</dt>
            <dd data-testid="seed">{log.data.seed}</dd>
          </dl>
          <ol class="events" aria-label={`Events of ${job.tunedModelDisplayName || id}, newest first`}>
            {shown.map((event) => (
              <li class={`event ${event.level}`} data-type={event.type}>
                <time dateTime={event.time} class="muted small">
                  {formatTime(event.time)}
                </time>{' '}
                <span>{event.message}</span>
              </li>
            ))}
          </ol>
          {events.length > shown.length && (
            <button type="button" class="link" onClick={() => setAll(true)}>
              Show all {formatNumber(events.length)} events
            </button>
          )}
        </>
      )}
    </section>
  );
}
