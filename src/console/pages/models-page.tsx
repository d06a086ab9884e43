// The list of tuning jobs (every tuned model is one): filter by state and name (server-side, AIP-160), page
// through, pick runs to compare; each row's final loss and run time, and rename or delete in place. Polls
// while any shown job is still running, so progress bars move on their own.
import { useEffect, useState } from 'preact/hooks';
import { deleteTunedModel } from '../api/gemini';
import { jobSummaries } from '../api/summaries';
import { dataStatsOf, jobId, listJobs, type TuningJob } from '../api/vertex';
import { ConfirmDialog } from '../components/dialog';
import { RenameDialog } from '../components/rename-dialog';
import { ErrorBanner } from '../components/error-banner';
import { OtherProjects } from '../components/other-projects';
import { SharedModels } from '../components/shared-models';
import { JobProgress } from '../components/state-badge';
import { useAsync, useInterval } from '../hooks/use-async';
import { hasAdapter, int, isTerminal, stateFilters } from '../lib/job-state';
import { formatDuration, formatNumber, formatTime, secondsBetween, shortModelName } from '../lib/format';
import { setNotice } from '../lib/notice';
import { Link, navigate } from '../router';
import { useSettings } from '../settings';

const pageSizes = [10, 25, 50];
export const maxCompared = 4;

export function ModelsPage() {
  const settings = useSettings();
  const [filter, setFilter] = useState('');
  const [pageSize, setPageSize] = useState(25);
  // Tokens of the pages before this one, so "Previous" can go back (the API only gives "next").
  const [tokens, setTokens] = useState<string[]>([]);
  const [search, setSearch] = useState('');
  const [name, setName] = useState('');
  const [selected, setSelected] = useState<string[]>([]);
  const pageToken = tokens.at(-1);
  // Ask the server once typing pauses, from the first page.
  useEffect(() => {
    const timer = setTimeout(() => {
      setName(search.trim());
      setTokens([]);
    }, 300);
    return () => clearTimeout(timer);
  }, [search]);
  const fullFilter = [filter, name ? `display_name:${JSON.stringify(name)}` : ''].filter(Boolean).join(' AND ');
  const jobs = useAsync((signal) => listJobs({ pageSize, pageToken, filter: fullFilter }, signal), [pageSize, pageToken, fullFilter, settings]);
  const shown = jobs.data?.tuningJobs ?? [];
  useInterval(jobs.reload, 2000, shown.some((job) => !isTerminal(job.state)));
  const summaries = useAsync((signal) => jobSummaries(shown.map((job) => jobId(job.name)), signal), [jobs.data]);
  const [renaming, setRenaming] = useState<TuningJob>();
  const [deleting, setDeleting] = useState<TuningJob>();
  const [busy, setBusy] = useState(false);
  const [actionError, setActionError] = useState<unknown>();
  const nameOf = (job: TuningJob) => job.tunedModelDisplayName || jobId(job.name);
  const remove = async () => {
    if (!deleting) return;
    setBusy(true);
    setActionError(undefined);
    try {
      await deleteTunedModel(jobId(deleting.name));
      setNotice({ text: `Deleted ${nameOf(deleting)}.`, path: '/' });
      setSelected((ids) => ids.filter((i) => i !== jobId(deleting.name)));
      jobs.reload();
    } catch (error) {
      setActionError(error);
    } finally {
      setBusy(false);
      setDeleting(undefined);
    }
  };

  const toggle = (id: string) =>
    setSelected((ids) => (ids.includes(id) ? ids.filter((i) => i !== id) : ids.length < maxCompared ? [...ids, id] : ids));
  const restart = () => setTokens([]);

  return (
    <section aria-labelledby="page-title">
      <div class="page-head">
        <h1 id="page-title" tabIndex={-1}>
          Tuned models
        </h1>
        <div class="actions">
          <button type="button" disabled={selected.length < 2} onClick={() => navigate(`/compare?jobs=${selected.join(',')}`)}>
            Compare selected ({selected.length})
          </button>
          <Link href="/new" class="button primary">
            New tuning job
          </Link>
        </div>
      </div>

      <form class="filters" role="search" onSubmit={(e) => e.preventDefault()}>
        <div class="field">
          <label for="filter-state">State</label>
          <select
            id="filter-state"
            value={filter}
            onChange={(e) => {
              setFilter(e.currentTarget.value);
              restart();
            }}
          >
            {stateFilters.map((f) => (
              <option value={f.filter}>{f.label}</option>
            ))}
          </select>
        </div>
        <div class="field">
          <label for="filter-name">Display name contains</label>
          <input id="filter-name" type="search" value={search} onInput={(e) => setSearch(e.currentTarget.value)} />
        </div>
        <div class="field">
          <label for="page-size">Per page</label>
          <select
            id="page-size"
            value={pageSize}
            onChange={(e) => {
              setPageSize(Number(e.currentTarget.value));
              restart();
            }}
          >
            {pageSizes.map((n) => (
              <option value={n}>{n}</option>
            ))}
          </select>
        </div>
      </form>

      <OtherProjects />
      <SharedModels />
      <ErrorBanner error={jobs.error} onRetry={jobs.reload} />
      <ErrorBanner error={actionError} />
      {jobs.loading && !jobs.data && !jobs.error && <p aria-live="polite">Loading…</p>}
      {jobs.data && shown.length === 0 && (
        <p class="empty">
          {fullFilter ? 'No jobs match the filter.' : 'No tuning jobs yet.'}{' '}
          <Link href="/new">Tune a model</Link>.
        </p>
      )}
      {shown.length > 0 && (
        <table class="jobs responsive">
          <caption class="visually-hidden">Tuning jobs, newest first. Select 2 to {maxCompared} to compare their loss curves.</caption>
          <thead>
            <tr>
              <th scope="col">
                <span class="visually-hidden">Compare</span>
              </th>
              <th scope="col">Display name</th>
              <th scope="col">Base model</th>
              <th scope="col">State</th>
              <th scope="col">Created</th>
              <th scope="col">Steps</th>
              <th scope="col">Final loss</th>
              <th scope="col">Run time</th>
              <th scope="col">
                <span class="visually-hidden">Actions</span>
              </th>
            </tr>
          </thead>
          <tbody>
            {shown.map((job) => {
              const id = jobId(job.name);
              const name = job.tunedModelDisplayName || id;
              const steps = dataStatsOf(job)?.tuningStepCount;
              const epochs = int(job.supervisedTuningSpec?.hyperParameters?.epochCount);
              const summary = summaries.data?.get(id);
              const done = isTerminal(job.state);
              return (
                <tr data-job={id}>
                  <td data-label="Compare">
                    <input
                      type="checkbox"
                      aria-label={`Select ${name} to compare`}
                      checked={selected.includes(id)}
                      disabled={!selected.includes(id) && selected.length >= maxCompared}
                      onChange={() => toggle(id)}
                    />
                  </td>
                  <td data-label="Name">
                    <Link href={`/jobs/${id}`}>{name}</Link>
                  </td>
                  <td data-label="Base model">{shortModelName(job.baseModel)}</td>
                  <td data-label="State">
                    <JobProgress job={job} />
                  </td>
                  <td data-label="Created">
                    <time dateTime={job.createTime}>{formatTime(job.createTime)}</time>
                  </td>
                  <td data-label="Steps">
                    <span>
                      {formatNumber(steps)}
                      {epochs ? <span class="muted"> ({epochs} epochs)</span> : null}
                    </span>
                  </td>
                  <td data-label="Final loss" data-testid="final-loss">
                    {summary?.trainLoss !== undefined ? (
                      <span title={`at step ${summary.trainStep}`}>
                        {summary.trainLoss.toPrecision(4)}
                        {!done && <span class="muted"> (so far)</span>}
                        {summary.validationLoss !== undefined && <span class="muted"> · validation {summary.validationLoss.toPrecision(4)}</span>}
                      </span>
                    ) : (
                      '–'
                    )}
                  </td>
                  <td data-label="Run time" data-testid="run-time">
                    {job.startTime ? (
                      <span>
                        {formatDuration(secondsBetween(job.startTime, job.endTime))}
                        {!done && <span class="muted"> (running)</span>}
                      </span>
                    ) : (
                      '–'
                    )}
                  </td>
                  <td data-label="Actions">
                    <span class="row-actions">
                      {hasAdapter(job) && (
                        <Link href={`/test/${id}`} aria-label={`Test ${name}`}>
                          Test
                        </Link>
                      )}
                      <button type="button" class="link" aria-label={`Rename ${name}`} onClick={() => setRenaming(job)}>
                        Rename
                      </button>
                      <button type="button" class="link danger-link" aria-label={`Delete ${name}`} onClick={() => setDeleting(job)}>
                        Delete
                      </button>
                    </span>
                  </td>
                </tr>
              );
            })}
          </tbody>
        </table>
      )}
      <RenameDialog
        id={renaming && jobId(renaming.name)}
        name={renaming ? nameOf(renaming) : ''}
        onClose={() => setRenaming(undefined)}
        onRenamed={(name) => {
          setNotice({ text: `Renamed to ${name}.`, path: '/' });
          setRenaming(undefined);
          jobs.reload();
        }}
      />
      <ConfirmDialog open={!!deleting} title={`Delete ${deleting ? nameOf(deleting) : ''}?`} confirmLabel="Delete" danger busy={busy} onConfirm={remove} onClose={() => setDeleting(undefined)}>
        <p>The tuned model, its adapter and its metrics are deleted. This cannot be undone.</p>
      </ConfirmDialog>
      <nav class="pager" aria-label="Pages">
        <button type="button" disabled={tokens.length === 0} onClick={() => setTokens((t) => t.slice(0, -1))}>
          Previous page
        </button>
        <span class="muted">Page {tokens.length + 1}</span>
        <button type="button" disabled={!jobs.data?.nextPageToken} onClick={() => setTokens((t) => [...t, jobs.data!.nextPageToken!])}>
          Next page
        </button>
      </nav>
    </section>
  );
}
