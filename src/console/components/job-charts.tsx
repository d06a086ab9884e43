// A job's loss and token-accuracy charts (preference jobs: DPO loss, reward accuracy and reward margin): train
// per step (line), eval per evaluation (points), epoch ends marked; loss on a linear or log scale, train lines
// optionally smoothed; the final (or latest) values beside each chart, and "no validation set" when the job has none.
import { useState } from 'preact/hooks';
import { isPreferenceJob, metricNames, specOf, type TuningJob } from '../api/vertex';
import { isTerminal } from '../lib/job-state';
import { byStep, type MetricsState } from '../lib/series';
import { colors, percent } from '../lib/palette';
import { ChartOptions, defaultChartView } from './chart-options';
import { LineChart } from './line-chart';

export function JobCharts({ job, metrics }: { job: TuningJob; metrics: MetricsState }) {
  const [view, setView] = useState(defaultChartView);
  const markers = metrics.epochs.map((e) => ({ x: e.step, epoch: e.epoch }));
  const hasValidationSet = !!specOf(job)?.validationDatasetUri;
  const preference = isPreferenceJob(job);
  const evaluated = (metrics.series[metricNames.evalLoss]?.length ?? 0) > 0;
  const notes = !hasValidationSet ? ['no validation set'] : evaluated ? [] : ['validation: not evaluated yet'];
  const lastLabel = isTerminal(job.state) ? 'Final' : 'Latest';
  const train = (name: string) => ({ label: 'Train', color: colors.train, points: byStep(metrics.series[name]) });
  const evaluation = (name: string) => ({ label: 'Validation', color: colors.eval, points: byStep(metrics.series[name]), showPoints: true, dash: [6, 3] });
  const series = (trainName: string, evalName: string) => (hasValidationSet ? [train(trainName), evaluation(evalName)] : [train(trainName)]);
  const common = { xLabel: 'Step', markers, smoothing: view.smoothing, lastLabel, notes, emptyText: job.state === 'JOB_STATE_PENDING' ? 'Waiting for the run to start.' : 'No steps yet.' };
  return (
    <section class="charts-section" aria-label="Charts">
      <ChartOptions view={view} onChange={setView} idPrefix="job-chart" />
      <div class="charts">
        <LineChart testId="loss-chart" title={preference ? 'DPO loss' : 'Loss'} yLabel="Loss" logScale={view.logLoss} series={series(metricNames.trainLoss, metricNames.evalLoss)} {...common} />
        {preference ? (
          <>
            <LineChart
              testId="reward-accuracy-chart"
              title="Reward accuracy"
              yLabel="Chosen preferred"
              formatY={percent}
              series={series(metricNames.trainRewardAccuracy, metricNames.evalRewardAccuracy)}
              {...common}
            />
            <LineChart
              testId="reward-margin-chart"
              title="Reward margin"
              yLabel="Margin"
              series={series(metricNames.trainRewardMargin, metricNames.evalRewardMargin)}
              {...common}
            />
          </>
        ) : (
          <LineChart
            testId="accuracy-chart"
            title="Next-token accuracy"
            yLabel="Accuracy"
            formatY={percent}
            series={series(metricNames.trainAccuracy, metricNames.evalAccuracy)}
            {...common}
          />
        )}
      </div>
    </section>
  );
}
