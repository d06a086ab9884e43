// A job's loss and token-accuracy charts: train per step (line), eval per evaluation (points), epoch ends marked.
import { metricNames } from '../api/vertex';
import { byStep, type MetricsState } from '../lib/series';
import { colors, percent } from '../lib/palette';
import { LineChart } from './line-chart';

export function JobCharts({ metrics }: { metrics: MetricsState }) {
  const markers = metrics.epochs.map((e) => ({ x: e.step, label: `E${e.epoch}` }));
  const hasEval = (metrics.series[metricNames.evalLoss]?.length ?? 0) > 0;
  const train = (name: string) => ({ label: 'Train', color: colors.train, points: byStep(metrics.series[name]) });
  const evaluation = (name: string) => ({ label: 'Validation', color: colors.eval, points: byStep(metrics.series[name]), showPoints: true, dash: [6, 3] });
  return (
    <div class="charts">
      <LineChart
        testId="loss-chart"
        title="Loss"
        xLabel="Step"
        yLabel="Loss"
        markers={markers}
        series={hasEval ? [train(metricNames.trainLoss), evaluation(metricNames.evalLoss)] : [train(metricNames.trainLoss)]}
      />
      <LineChart
        testId="accuracy-chart"
        title="Next-token accuracy"
        xLabel="Step"
        yLabel="Accuracy"
        markers={markers}
        formatY={percent}
        series={hasEval ? [train(metricNames.trainAccuracy), evaluation(metricNames.evalAccuracy)] : [train(metricNames.trainAccuracy)]}
      />
    </div>
  );
}
