// The list of tuning jobs (every tuned model is one): filter by state and name (server-side, AIP-160), page
// through, pick runs to compare. Polls while any shown job is still running, so progress bars move on their own.
import { useEffect, useState } from 'preact/hooks';
import { jobId, listJobs } from '../api/vertex';
import { ErrorBanner } from '../components/error-banner';
import { OtherProjects } from '../components/other-projects';
import { JobProgress } from '../components/state-badge';
import { useAsync, useInterval } from '../hooks/use-async';
import { hasAdapter, int, isTerminal, stateFilters } from '../lib/job-state';
import { formatNumber, formatTime, shortModelName } from '../lib/format';
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
      <ErrorBanner error={jobs.error} onRetry={jobs.reload} />
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
              <th scope="col">
                <span class="visually-hidden">Actions</span>
              </th>
            </tr>
          </thead>
          <tbody>
            {shown.map((job) => {
              const id = jobId(job.name);
              const name = job.tunedModelDisplayName || id;
              const steps = job.tuningDataStats?.supervisedTuningDataStats?.tuningStepCount;
              const epochs = int(job.supervisedTuningSpec?.hyperParameters?.epochCount);
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
                  <td data-label="Actions">{hasAdapter(job) && <Link href={`/test/${id}`} aria-label={`Test ${name}`}>Test</Link>}</td>
                </tr>
              );
            })}
          </tbody>
        </table>
      )}
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
