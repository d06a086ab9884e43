// Metric points as the charts need them: merged from stream events (new points replace old ones at the
// same step), sorted by step, and aligned on one x axis for uPlot.
import type { JobMetrics } from '../api/vertex';

export interface SeriesPoint {
  step: number;
  value: number;
  /** Epoch milliseconds of the point's wallTime. */
  wallMs: number;
}

export interface EpochMark {
  epoch: number;
  /** The step at which the epoch ended. */
  step: number;
}

export interface MetricsState {
  /** By displayName, e.g. "/train_total_loss". */
  series: Record<string, SeriesPoint[]>;
  epochs: EpochMark[];
}

export const emptyMetrics = (): MetricsState => ({ series: {}, epochs: [] });

function mergeSorted<T extends { step: number }>(old: T[], added: T[]): T[] {
  if (added.length === 0) return old;
  const byStep = new Map(old.map((point) => [point.step, point]));
  for (const point of added) byStep.set(point.step, point);
  return [...byStep.values()].sort((a, b) => a.step - b.step);
}

export function mergeMetrics(state: MetricsState, event: JobMetrics): MetricsState {
  const series = { ...state.series };
  for (const ts of event.timeSeriesData ?? []) {
    const points = ts.values.map((v) => ({ step: Number(v.step), value: v.scalar.value, wallMs: Date.parse(v.wallTime) }));
    series[ts.displayName] = mergeSorted(series[ts.displayName] ?? [], points);
  }
  const epochs = mergeSorted(state.epochs, (event.epochs ?? []).map((e) => ({ epoch: Number(e.epoch), step: Number(e.step) })));
  return { series, epochs };
}

export type AlignedData = [number[], ...(number | null)[][]];

/** One x array (the union of all steps or other x values) and one y array per series, null where it has no point. */
export function align(seriesList: { x: number; y: number }[][]): AlignedData {
  const xs = [...new Set(seriesList.flatMap((points) => points.map((p) => p.x)))].sort((a, b) => a - b);
  const index = new Map(xs.map((x, i) => [x, i]));
  const ys = seriesList.map((points) => {
    const column: (number | null)[] = new Array(xs.length).fill(null);
    for (const point of points) column[index.get(point.x)!] = point.y;
    return column;
  });
  return [xs, ...ys];
}

export const byStep = (points: SeriesPoint[] = []) => points.map((p) => ({ x: p.step, y: p.value }));

/**
 * TensorBoard's smoothing: an exponential moving average with weight `weight` (0 = none, towards 1 = more),
 * debiased so the first points are not pulled towards zero. Points are evenly weighted whatever their spacing.
 */
export function smooth(points: { x: number; y: number }[], weight: number): { x: number; y: number }[] {
  if (weight <= 0) return points;
  let last = 0;
  let count = 0;
  return points.map(({ x, y }) => {
    last = last * weight + (1 - weight) * y;
    count++;
    return { x, y: last / (1 - Math.pow(weight, count)) };
  });
}
