// Finished jobs on a base model with their train-loss points: what duration estimates are made from.
import { baseModelOf, getMetrics, listJobs, metricNames } from '../api/vertex';
import { mergeMetrics, emptyMetrics } from '../lib/series';
import type { PastRun } from '../lib/estimate';
import { useAsync, type Async } from './use-async';

/** How many recent runs an estimate looks at. */
const recentRuns = 5;

/** `sameBase` says whether a job's baseModel resolves to the same local model (aliases differ by name). */
export function usePastRuns(baseModel: string | undefined, sameBase: (jobBase: string | undefined) => boolean): Async<PastRun[]> {
  return useAsync(
    async (signal) => {
      if (!baseModel) return [];
      const { tuningJobs = [] } = await listJobs({ pageSize: 50, filter: 'state="JOB_STATE_SUCCEEDED"' }, signal);
      const jobs = tuningJobs.filter((job) => sameBase(baseModelOf(job))).slice(0, recentRuns);
      return Promise.all(
        jobs.map(async (job) => {
          const metrics = mergeMetrics(emptyMetrics(), await getMetrics(job.name.split('/').at(-1)!, signal));
          return { job, trainLoss: metrics.series[metricNames.trainLoss] ?? [] };
        }),
      );
    },
    [baseModel],
  );
}
