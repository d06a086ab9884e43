// GET /console/api/job-summaries?jobs=1,2,…: the last train and validation loss of each listed job (by its
// job number or tuned model id), an
// Attune extension for the console's list (a Vertex TuningJob carries no loss; fetching every job's whole
// time series for one column would be wasteful). Acts for the caller's project like every route: a job of
// another project, or none, is left out, exactly as if it did not exist.
import type { FastifyInstance } from 'fastify';
import { invalidArgument, ServiceError } from '../../service/errors.js';
import type { Services } from '../../service/services.js';
import { pageSizes } from '../../service/tuning/defaults.js';
import { tunedModelIdPattern } from '../../service/tuning/ids.js';

export interface JobSummary {
  job: string;
  /** Loss and step of the last training step, when one has run. */
  trainLoss?: number;
  trainStep?: number;
  /** Loss of the last evaluation of the validation set, when there was one. */
  validationLoss?: number;
}

export function jobSummaryRoutes(app: FastifyInstance, services: Pick<Services, 'tuning' | 'store'>): void {
  app.get<{ Querystring: { jobs?: string } }>('/console/api/job-summaries', async (request) => {
    const jobs = (request.query.jobs ?? '').split(',').filter(Boolean);
    const max = pageSizes.vertex.max;
    if (jobs.length > max) throw invalidArgument(`At most ${max} jobs at a time (one page of the list), not ${jobs.length}.`, 'jobs');
    const summaries: JobSummary[] = [];
    for (const job of new Set(jobs)) {
      if (!/^\d{1,20}$/.test(job) && !tunedModelIdPattern.test(job)) {
        throw invalidArgument(`A job is named by its number or its tuned model's id, not ${JSON.stringify(job.slice(0, 40))}.`, 'jobs');
      }
      let id: string;
      try {
        id = (await services.tuning.get(request.project, job)).id;
      } catch (error) {
        if (error instanceof ServiceError && error.status === 'NOT_FOUND') continue;
        throw error;
      }
      const train = await services.store.lastMetric(id, 'train');
      const validation = await services.store.lastMetric(id, 'eval');
      summaries.push({ job, ...(train ? { trainLoss: train.loss, trainStep: train.step } : {}), ...(validation ? { validationLoss: validation.loss } : {}) });
    }
    return { summaries };
  });
}
