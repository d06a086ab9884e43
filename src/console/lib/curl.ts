// The curl command equivalent to a job: the same create request the console sends, for scripts.
import { isPreferenceJob, specOf, type NewTuningJob, type TuningJob } from '../api/vertex';

/** Single-quotes a value for POSIX shells. */
const shellQuote = (text: string): string => `'${text.replace(/'/g, `'\\''`)}'`;

/** The create request for a job the server returned (output-only fields dropped). */
export function requestOf(job: TuningJob): NewTuningJob {
  const spec = specOf(job);
  const request = {
    trainingDatasetUri: spec?.trainingDatasetUri ?? '',
    ...(spec?.validationDatasetUri ? { validationDatasetUri: spec.validationDatasetUri } : {}),
    ...(spec?.hyperParameters ? { hyperParameters: spec.hyperParameters } : {}),
  };
  return {
    ...(job.preTunedModel ? { preTunedModel: { tunedModelName: job.preTunedModel.tunedModelName } } : { baseModel: job.baseModel ?? '' }),
    tunedModelDisplayName: job.tunedModelDisplayName,
    ...(job.description ? { description: job.description } : {}),
    ...(job.labels && Object.keys(job.labels).length ? { labels: job.labels } : {}),
    ...(isPreferenceJob(job) ? { preferenceOptimizationSpec: request } : { supervisedTuningSpec: request }),
  };
}

/** `withKey`: include the key header, as $ATTUNE_API_KEY (never the key itself, which screenshots would show). */
export function createJobCurl(origin: string, jobsPath: string, request: NewTuningJob, withKey: boolean): string {
  const lines = [
    `curl -X POST ${shellQuote(origin + jobsPath)}`,
    ...(withKey ? [`-H "x-goog-api-key: $ATTUNE_API_KEY"`] : []),
    `-H 'Content-Type: application/json'`,
    `-d ${shellQuote(JSON.stringify(request, null, 2))}`,
  ];
  return lines.join(' \\\n  ');
}
