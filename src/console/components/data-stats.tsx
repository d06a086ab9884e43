// tuningDataStats.supervisedTuningDataStats (or preferenceOptimizationDataStats) as a table: counts, token distributions, dropped examples.
import type { Distribution, SupervisedTuningDataStats } from '../api/vertex';
import { formatNumber } from '../lib/format';

function distributionText(d: Distribution | undefined): string {
  if (!d) return '–';
  const parts = [`sum ${formatNumber(d.sum)}`, `mean ${formatNumber(d.mean, 1)}`, `median ${formatNumber(d.median, 1)}`, `p5–p95 ${formatNumber(d.p5)}–${formatNumber(d.p95)}`, `min–max ${formatNumber(d.min)}–${formatNumber(d.max)}`];
  return parts.join(' · ');
}

export function DataStats({ stats }: { stats?: SupervisedTuningDataStats }) {
  if (!stats) return <p class="muted">No data statistics yet.</p>;
  const dropped = Number(stats.totalTruncatedExampleCount ?? 0);
  return (
    <dl class="facts">
      <dt>Examples</dt>
      <dd>{formatNumber(stats.tuningDatasetExampleCount)}</dd>
      <dt>Characters</dt>
      <dd>{formatNumber(stats.totalTuningCharacterCount)}</dd>
      <dt>Billable tokens</dt>
      <dd>{formatNumber(stats.totalBillableTokenCount)}</dd>
      <dt>Steps</dt>
      <dd>{formatNumber(stats.tuningStepCount)}</dd>
      <dt>Input tokens per example</dt>
      <dd>{distributionText(stats.userInputTokenDistribution)}</dd>
      <dt>Output tokens per example</dt>
      <dd>{distributionText(stats.userOutputTokenDistribution)}</dd>
      <dt>Messages per example</dt>
      <dd>{distributionText(stats.userMessagePerExampleDistribution)}</dd>
      <dt>Dropped examples</dt>
      <dd>
        {formatNumber(dropped)}
        {dropped > 0 && stats.truncatedExampleIndices?.length ? (
          <ul class="plain">
            {stats.truncatedExampleIndices.map((index, i) => (
              <li>
                example {String(index)}
                {stats.droppedExampleReasons?.[i] ? `: ${stats.droppedExampleReasons[i]}` : ''}
              </li>
            ))}
          </ul>
        ) : null}
      </dd>
    </dl>
  );
}
