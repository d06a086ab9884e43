// One tuning job: live progress and ETA, loss and accuracy charts with epoch markers, hyperparameters,
// data statistics, its log of events, and what one can do with it (cancel, test, clone, export, share, delete, curl).
import { useState } from 'preact/hooks';
import { exportPath } from '../api/exports';
import { deleteTunedModel, tunedModelPath } from '../api/gemini';
import { cancelJob, dataStatsOf, jobsPath } from '../api/vertex';
import { CopyBlock } from '../components/copy-block';
import { DataStats } from '../components/data-stats';
import { ExportPanel } from '../components/export-panel';
import { CheckpointsPanel } from '../components/checkpoints-panel';
import { SharingPanel } from '../components/sharing-panel';
import { ConfirmDialog } from '../components/dialog';
import { ErrorBanner } from '../components/error-banner';
import { HyperparameterFacts, TimelineFacts } from '../components/job-facts';
import { JobCharts } from '../components/job-charts';
import { JobEvents } from '../components/job-events';
import { RunProgress } from '../components/run-progress';
import { StateBadge } from '../components/state-badge';
import { useJobMetrics } from '../hooks/use-job-metrics';
import { createJobCurl, requestOf } from '../lib/curl';
import { canCancel, hasAdapter } from '../lib/job-state';
import { setNotice } from '../lib/notice';
import { Link, navigate } from '../router';
import { useSettings } from '../settings';

type Pending = 'cancel' | 'delete' | undefined;

export function DetailsPage({ id }: { id: string }) {
  const settings = useSettings();
  const [generation, setGeneration] = useState(0);
  const { job, metrics, error } = useJobMetrics(id, generation);
  const [confirming, setConfirming] = useState<Pending>();
  const [busy, setBusy] = useState(false);
  const [actionError, setActionError] = useState<unknown>();

  const act = async (action: () => Promise<void>) => {
    setBusy(true);
    setActionError(undefined);
    try {
      await action();
    } catch (e) {
      setActionError(e);
    } finally {
      setBusy(false);
      setConfirming(undefined);
    }
  };
  const name = job?.tunedModelDisplayName || id;
  const cancel = () =>
    act(async () => {
      await cancelJob(id);
      setGeneration((g) => g + 1); // reconnect: the stream reports the state change, even if it had dropped
    });
  const remove = () =>
    act(async () => {
      await deleteTunedModel(id);
      setNotice({ text: `Deleted ${name}.`, path: '/' });
      navigate('/', { replace: true });
    });

  if (!job) {
    return (
      <section>
        <h1 tabIndex={-1}>Tuning job {id}</h1>
        {error ? <ErrorBanner error={error} onRetry={() => setGeneration((g) => g + 1)} /> : <p aria-live="polite">Loading…</p>}
        <p>
          <Link href="/">Back to the list</Link>
        </p>
      </section>
    );
  }

  const curl = createJobCurl(location.origin, jobsPath(), requestOf(job), !!settings.apiKey);
  const askCurl = [
    `curl -X POST '${location.origin}/v1beta/${tunedModelPath(id)}:generateContent'`,
    ...(settings.apiKey ? [`-H "x-goog-api-key: $ATTUNE_API_KEY"`] : []),
    `-H 'Content-Type: application/json'`,
    `-d '{"contents": [{"parts": [{"text": "…"}]}]}'`,
  ].join(' \\\n  ');
  const exportCurl = [
    `curl -o ${id}-gguf.zip '${location.origin}${exportPath(id, { format: 'gguf', withBase: true })}'`,
    ...(settings.apiKey ? [`-H "x-goog-api-key: $ATTUNE_API_KEY"`] : []),
  ].join(' \\\n  ');

  return (
    <section aria-labelledby="page-title">
      <p class="crumbs">
        <Link href="/">Tuned models</Link> / {id}
      </p>
      <div class="page-head">
        <h1 id="page-title" tabIndex={-1}>
          {name} <StateBadge state={job.state} />
        </h1>
        <div class="actions">
          {canCancel(job.state) && (
            <button type="button" onClick={() => setConfirming('cancel')}>
              Cancel run
            </button>
          )}
          {hasAdapter(job) && (
            <Link href={`/test/${id}`} class="button">
              Test
            </Link>
          )}
          <Link href={`/compare?jobs=${id}`} class="button">
            Compare…
          </Link>
          <Link href={`/new?clone=${id}`} class="button">
            Clone this job
          </Link>
          {hasAdapter(job) && (
            <Link href={`/new?continue=${id}`} class="button" data-testid="continue-tuning">
              Continue tuning
            </Link>
          )}
          <button type="button" class="danger" onClick={() => setConfirming('delete')}>
            Delete
          </button>
        </div>
      </div>
      <ErrorBanner error={actionError} />
      <ErrorBanner error={error} onRetry={() => setGeneration((g) => g + 1)} />
      {job.error?.message && (
        <div class={job.state === 'JOB_STATE_CANCELLED' ? 'notice' : 'error-banner'} role="status">
          <p>{job.error.message}</p>
        </div>
      )}
      <RunProgress job={job} metrics={metrics} />
      <JobCharts job={job} metrics={metrics} />
      <div class="columns">
        <section class="panel" aria-labelledby="hp-title">
          <h2 id="hp-title">Hyperparameters</h2>
          <HyperparameterFacts job={job} />
        </section>
        <section class="panel" aria-labelledby="stats-title">
          <h2 id="stats-title">Data statistics</h2>
          <DataStats stats={dataStatsOf(job)} />
        </section>
        <section class="panel" aria-labelledby="timeline-title">
          <h2 id="timeline-title">Timeline</h2>
          <TimelineFacts job={job} />
        </section>
      </div>
      <JobEvents id={id} job={job} />
      {hasAdapter(job) && <CheckpointsPanel id={id} job={job} onChanged={() => setGeneration((g) => g + 1)} />}
      {hasAdapter(job) && <ExportPanel id={id} />}
      {hasAdapter(job) && (
        <SharingPanel
          id={id}
          onTransferred={() => {
            setNotice({ text: `Transferred ${name}: it is now another project's.`, path: '/' });
            navigate('/', { replace: true });
          }}
        />
      )}
      <details class="panel">
        <summary>Equivalent curl commands</summary>
        <h3>Create this job again</h3>
        <CopyBlock text={curl} label="curl command that creates this job" />
        <h3>Ask the tuned model</h3>
        <CopyBlock text={askCurl} label="curl command that asks the tuned model" />
        {hasAdapter(job) && (
          <>
            <h3>Export it (here as GGUF)</h3>
            <CopyBlock text={exportCurl} label="curl command that exports the tuned model" />
          </>
        )}
      </details>

      <ConfirmDialog open={confirming === 'cancel'} title="Cancel this run?" confirmLabel="Cancel run" busy={busy} onConfirm={cancel} onClose={() => setConfirming(undefined)}>
        <p>
          {name} stops at its next step. Its metrics so far stay; a cancelled run cannot be resumed.
        </p>
      </ConfirmDialog>
      <ConfirmDialog open={confirming === 'delete'} title={`Delete ${name}?`} confirmLabel="Delete" danger busy={busy} onConfirm={remove} onClose={() => setConfirming(undefined)}>
        <p>The tuned model, its adapter and its metrics are removed for good{canCancel(job.state) ? ', and the run is stopped' : ''}.</p>
      </ConfirmDialog>
    </section>
  );
}
