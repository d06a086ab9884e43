// 2–4 runs overlaid: one metric (train or validation loss or accuracy) against steps or epochs. Epochs
// line up runs with different batch sizes or dataset sizes; steps show raw optimizer progress.
import { useState } from 'preact/hooks';
import { dataStatsOf, getJob, getMetrics, jobId, listJobs, metricNames, type TuningJob } from '../api/vertex';
import { ChartOptions, defaultChartView } from '../components/chart-options';
import { ErrorBanner } from '../components/error-banner';
import { LineChart } from '../components/line-chart';
import { StateBadge } from '../components/state-badge';
import { useAsync, useInterval } from '../hooks/use-async';
import { formatDuration, formatNumber, secondsBetween } from '../lib/format';
import { int, isTerminal } from '../lib/job-state';
import { palette, percent } from '../lib/palette';
import { emptyMetrics, mergeMetrics, type MetricsState } from '../lib/series';
import { Link, navigate } from '../router';
import { useSettings } from '../settings';
import { maxCompared } from './models-page';

const metricChoices = [
  { key: 'trainLoss', label: 'Train loss', name: metricNames.trainLoss },
  { key: 'evalLoss', label: 'Validation loss', name: metricNames.evalLoss },
  { key: 'trainAccuracy', label: 'Train next-token accuracy', name: metricNames.trainAccuracy },
  { key: 'evalAccuracy', label: 'Validation next-token accuracy', name: metricNames.evalAccuracy },
] as const;

interface Run {
  id: string;
  job: TuningJob;
  metrics: MetricsState;
}

/** Steps per epoch from the job's totals: what turns a step into a (fractional) epoch. */
function stepsPerEpoch(job: TuningJob): number | undefined {
  const steps = int(dataStatsOf(job)?.tuningStepCount);
  const epochs = int(job.supervisedTuningSpec?.hyperParameters?.epochCount);
  return steps && epochs ? steps / epochs : undefined;
}

export function ComparePage({ ids }: { ids: string[] }) {
  const settings = useSettings();
  const [metricKey, setMetricKey] = useState<(typeof metricChoices)[number]['key']>('trainLoss');
  const [xAxis, setXAxis] = useState<'epoch' | 'step'>('epoch');
  const [view, setView] = useState(defaultChartView);
  const candidates = useAsync((signal) => listJobs({ pageSize: 50 }, signal), [settings]);
  const runs = useAsync(
    (signal) =>
      Promise.all(
        ids.map(async (id): Promise<Run> => {
          const [job, metrics] = await Promise.all([getJob(id, signal), getMetrics(id, signal)]);
          return { id, job, metrics: mergeMetrics(emptyMetrics(), metrics) };
        }),
      ),
    [ids.join(','), settings],
  );
  useInterval(runs.reload, 3000, !!runs.data?.some((run) => !isTerminal(run.job.state)));

  const setIds = (next: string[]) => navigate(next.length ? `/compare?jobs=${next.join(',')}` : '/compare', { replace: true });
  const toggle = (id: string) => setIds(ids.includes(id) ? ids.filter((i) => i !== id) : [...ids, id].slice(0, maxCompared));
  const metric = metricChoices.find((m) => m.key === metricKey)!;
  const isAccuracy = metricKey.endsWith('Accuracy');
  const isEval = metricKey.startsWith('eval');
  const loaded = runs.data ?? [];
  const series = loaded.map((run, i) => {
    const perEpoch = stepsPerEpoch(run.job);
    const toX = (step: number) => (xAxis === 'epoch' && perEpoch ? step / perEpoch : step);
    return {
      label: run.job.tunedModelDisplayName || run.id,
      color: palette[i % palette.length]!,
      points: (run.metrics.series[metric.name] ?? []).map((p) => ({ x: toX(p.step), y: p.value })),
      showPoints: isEval,
    };
  });
  const maxEpoch = Math.max(0, ...loaded.map((run) => int(run.job.supervisedTuningSpec?.hyperParameters?.epochCount) ?? 0));
  const markers = xAxis === 'epoch' ? Array.from({ length: maxEpoch }, (_, i) => ({ x: i + 1, epoch: i + 1 })) : [];
  const withoutValidation = loaded.filter((run) => !run.job.supervisedTuningSpec?.validationDatasetUri).map((run) => run.job.tunedModelDisplayName || run.id);
  const notes = isEval && withoutValidation.length > 0 && withoutValidation.length < loaded.length ? [`no validation set: ${withoutValidation.join(', ')}`] : [];
  const emptyText = isEval && withoutValidation.length === loaded.length ? 'None of these runs has a validation set.' : 'No points yet.';
  const lastLabel = loaded.every((run) => isTerminal(run.job.state)) ? 'Final' : 'Latest';
  const choices = [...(candidates.data?.tuningJobs ?? [])];
  for (const run of loaded) if (!choices.some((job) => job.name === run.job.name)) choices.push(run.job);

  return (
    <section aria-labelledby="page-title">
      <h1 id="page-title" tabIndex={-1}>
        Compare runs
      </h1>
      <div class="compare-layout">
        <fieldset class="panel run-picker">
          <legend>Runs (2 to {maxCompared})</legend>
          <ErrorBanner error={candidates.error} onRetry={candidates.reload} />
          <ul class="plain">
            {choices.map((job) => {
              const id = jobId(job.name);
              const checked = ids.includes(id);
              return (
                <li>
                  <label>
                    <input type="checkbox" checked={checked} disabled={!checked && ids.length >= maxCompared} onChange={() => toggle(id)} /> {job.tunedModelDisplayName || id}{' '}
                    <StateBadge state={job.state} />
                  </label>
                </li>
              );
            })}
          </ul>
          {candidates.data && choices.length === 0 && <p class="muted">No runs yet.</p>}
        </fieldset>
        <div class="compare-main">
          <div class="filters">
            <div class="field">
              <label for="compare-metric">Metric</label>
              <select id="compare-metric" value={metricKey} onChange={(e) => setMetricKey(e.currentTarget.value as typeof metricKey)}>
                {metricChoices.map((m) => (
                  <option value={m.key}>{m.label}</option>
                ))}
              </select>
            </div>
            <div class="field">
              <label for="compare-x">Horizontal axis</label>
              <select id="compare-x" value={xAxis} onChange={(e) => setXAxis(e.currentTarget.value as 'epoch' | 'step')}>
                <option value="epoch">Epoch</option>
                <option value="step">Step</option>
              </select>
            </div>
          </div>
          <ChartOptions view={view} onChange={setView} idPrefix="compare-chart" />
          <ErrorBanner error={runs.error} onRetry={runs.reload} />
          {ids.length < 2 && <p class="notice">Choose at least two runs to overlay their curves.</p>}
          {loaded.length > 0 && (
            <LineChart
              testId="compare-chart"
              title={metric.label}
              xLabel={xAxis === 'epoch' ? 'Epoch' : 'Step'}
              yLabel={isAccuracy ? 'Accuracy' : 'Loss'}
              series={series}
              markers={markers}
              formatY={isAccuracy ? percent : undefined}
              logScale={view.logLoss && !isAccuracy}
              smoothing={view.smoothing}
              lastLabel={lastLabel}
              notes={notes}
              emptyText={emptyText}
              height={320}
            />
          )}
          {loaded.length > 0 && <RunsTable runs={loaded} metricName={metric.name} />}
        </div>
      </div>
    </section>
  );
}

function RunsTable({ runs, metricName }: { runs: Run[]; metricName: string }) {
  return (
    <table class="responsive">
      <caption class="visually-hidden">The compared runs</caption>
      <thead>
        <tr>
          <th scope="col">Run</th>
          <th scope="col">State</th>
          <th scope="col">Epochs × batch</th>
          <th scope="col">Learning rate</th>
          <th scope="col">Steps</th>
          <th scope="col">Last value</th>
          <th scope="col">Run time</th>
        </tr>
      </thead>
      <tbody>
        {runs.map((run, i) => {
          const hp = run.job.supervisedTuningSpec?.hyperParameters ?? {};
          const last = run.metrics.series[metricName]?.at(-1);
          return (
            <tr>
              <td data-label="Run">
                <span class="swatch" style={{ background: palette[i % palette.length] }} aria-hidden="true" />
                <Link href={`/jobs/${run.id}`}>{run.job.tunedModelDisplayName || run.id}</Link>
              </td>
              <td data-label="State">
                <StateBadge state={run.job.state} />
              </td>
              <td data-label="Epochs × batch">
                {formatNumber(hp.epochCount)} × {formatNumber(hp.batchSize)}
              </td>
              <td data-label="Learning rate">{hp.learningRate ?? (hp.learningRateMultiplier !== undefined ? `× ${hp.learningRateMultiplier}` : '–')}</td>
              <td data-label="Steps">{formatNumber(dataStatsOf(run.job)?.tuningStepCount)}</td>
              <td data-label="Last value">
                {last
                  ? metricName.includes('fraction')
                    ? percent(last.value)
                    : last.value.toFixed(4)
                  : metricName.startsWith('/eval') && !run.job.supervisedTuningSpec?.validationDatasetUri
                    ? 'no validation set'
                    : '–'}
              </td>
              <td data-label="Run time">{run.job.startTime ? formatDuration(secondsBetween(run.job.startTime, run.job.endTime)) : '–'}</td>
            </tr>
          );
        })}
      </tbody>
    </table>
  );
}
