// A job's hyperparameters, datasets and timeline as definition lists.
import { baseModelOf, isPreferenceJob, specOf, type TuningJob } from '../api/vertex';
import { adapterRank } from '../lib/hyperparameters';
import { formatDuration, formatNumber, formatTime, secondsBetween, shortModelName } from '../lib/format';

export function HyperparameterFacts({ job }: { job: TuningJob }) {
  const spec = specOf(job);
  const hp = spec?.hyperParameters ?? {};
  return (
    <dl class="facts">
      <dt>Method</dt>
      <dd>{isPreferenceJob(job) ? `Preference (DPO), beta ${hp.beta ?? '–'}` : 'Supervised'}</dd>
      <dt>Base model</dt>
      <dd>{shortModelName(baseModelOf(job))}</dd>
      {job.preTunedModel && (
        <>
          <dt>Continues</dt>
          <dd data-testid="continues">
            <code class="break">{job.preTunedModel.tunedModelName.split('/').slice(-2).join('/')}</code>
          </dd>
        </>
      )}
      <dt>Epochs</dt>
      <dd>{formatNumber(hp.epochCount)}</dd>
      <dt>Batch size</dt>
      <dd>{formatNumber(hp.batchSize)}</dd>
      {hp.learningRate !== undefined && (
        <>
          <dt>Learning rate</dt>
          <dd>{hp.learningRate}</dd>
        </>
      )}
      {hp.learningRateMultiplier !== undefined && (
        <>
          <dt>Learning rate multiplier</dt>
          <dd>{hp.learningRateMultiplier}</dd>
        </>
      )}
      <dt>Adapter size (LoRA rank)</dt>
      <dd>{adapterRank(hp.adapterSize) ?? hp.adapterSize ?? '–'}</dd>
      <dt>Training dataset</dt>
      <dd>
        <code class="break">{spec?.trainingDatasetUri ?? '–'}</code>
      </dd>
      <dt>Validation dataset</dt>
      <dd>{spec?.validationDatasetUri ? <code class="break">{spec.validationDatasetUri}</code> : 'none'}</dd>
    </dl>
  );
}

export function TimelineFacts({ job }: { job: TuningJob }) {
  return (
    <dl class="facts">
      <dt>Created</dt>
      <dd>{formatTime(job.createTime)}</dd>
      <dt>Started</dt>
      <dd>{formatTime(job.startTime)}</dd>
      <dt>Ended</dt>
      <dd>{formatTime(job.endTime)}</dd>
      <dt>Run time</dt>
      <dd>{job.startTime ? formatDuration(secondsBetween(job.startTime, job.endTime)) : '–'}</dd>
      <dt>Resource name</dt>
      <dd>
        <code class="break">{job.name}</code>
      </dd>
      {job.tunedModel?.model && (
        <>
          <dt>Tuned model</dt>
          <dd>
            <code class="break">{job.tunedModel.model}</code>
          </dd>
        </>
      )}
    </dl>
  );
}
