// The last losses of the jobs on a page of the list (GET /console/api/job-summaries, an Attune extension).
import { apiJson } from './http';

export interface JobSummary {
  job: string;
  trainLoss?: number;
  trainStep?: number;
  validationLoss?: number;
}

export async function jobSummaries(jobs: string[], signal?: AbortSignal): Promise<Map<string, JobSummary>> {
  if (jobs.length === 0) return new Map();
  const { summaries = [] } = await apiJson<{ summaries?: JobSummary[] }>('/console/api/job-summaries', { query: { jobs: jobs.join(',') }, signal });
  return new Map(summaries.map((s) => [s.job, s]));
}
