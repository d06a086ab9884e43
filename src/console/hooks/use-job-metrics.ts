// A job's metrics and state, live: the server's metrics stream (SSE) sends everything so far, then new
// points and state changes, and ends once the job is terminal. A dropped stream reconnects after a pause.
import { useEffect, useState } from 'preact/hooks';
import { ApiError } from '../api/http';
import { getJob, streamMetrics, type TuningJob } from '../api/vertex';
import { isTerminal } from '../lib/job-state';
import { emptyMetrics, mergeMetrics, type MetricsState } from '../lib/series';

export interface LiveJob {
  job?: TuningJob;
  metrics: MetricsState;
  error?: unknown;
}

const reconnectMs = 3000;

export function useJobMetrics(id: string, generation = 0): LiveJob {
  const [live, setLive] = useState<LiveJob>({ metrics: emptyMetrics() });
  useEffect(() => {
    const controller = new AbortController();
    const { signal } = controller;
    setLive({ metrics: emptyMetrics() });
    (async () => {
      let job: TuningJob | undefined;
      while (!signal.aborted) {
        try {
          job = await getJob(id, signal);
          setLive((l) => ({ ...l, job, error: undefined }));
          // Every (re)connection starts with the full history, so start from empty.
          let metrics = emptyMetrics();
          for await (const event of streamMetrics(id, signal)) {
            if (event.tuningJob) job = event.tuningJob;
            metrics = mergeMetrics(metrics, event);
            const current = { job, metrics };
            setLive((l) => ({ ...l, ...current, error: undefined }));
          }
          // The stream ends when the job is terminal; read the final job once more (tunedModel, endTime).
          job = await getJob(id, signal);
          setLive((l) => ({ ...l, job }));
          if (isTerminal(job.state)) return;
        } catch (error) {
          if (signal.aborted) return;
          setLive((l) => ({ ...l, error }));
          // A client error (no such job, no permission) will not fix itself by retrying.
          if (error instanceof ApiError && error.httpStatus >= 400 && error.httpStatus < 500) return;
          if (job && isTerminal(job.state)) return;
        }
        await new Promise((resolve) => setTimeout(resolve, reconnectMs));
      }
    })();
    return () => controller.abort();
  }, [id, generation]);
  return live;
}
