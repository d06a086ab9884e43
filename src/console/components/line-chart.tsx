// A uPlot line chart that follows its container's width, updates in place as points arrive, and
// optionally marks epoch ends, draws the y axis on a log scale, and smooths its lines (the raw line stays,
// faint, beneath). Beside the title it states each series' last value ("Final" once the run has ended) and
// any notes ("no validation set"); the caption states the latest values in text for screen readers.
import { useEffect, useRef } from 'preact/hooks';
import uPlot from 'uplot';
import { align, smooth } from '../lib/series';
import { markersPlugin, type Marker } from './epoch-markers';

export interface ChartSeries {
  label: string;
  color: string;
  points: { x: number; y: number }[];
  /** Evaluations are sparse: draw their points, not only the line (and never smooth them). */
  showPoints?: boolean;
  dash?: number[];
}

export interface LineChartProps {
  title: string;
  series: ChartSeries[];
  markers?: Marker[];
  xLabel: string;
  yLabel: string;
  height?: number;
  /** Formats y values in the legend, caption and (when given) axis ticks; uPlot's tick format otherwise. */
  formatY?: (value: number) => string;
  /** A logarithmic y axis (values must be positive: others are left out). */
  logScale?: boolean;
  /** TensorBoard-style smoothing weight, 0 (none) to below 1, for series drawn as lines. */
  smoothing?: number;
  /** What the last values are called: "Final" for a run that ended, "Latest" while it runs. */
  lastLabel?: string;
  /** Short remarks shown beside the values, e.g. "no validation set". */
  notes?: string[];
  /** Shown over an empty chart. */
  emptyText?: string;
  testId?: string;
}

const defaultFormat = (value: number) => (Math.abs(value) >= 100 ? value.toFixed(0) : value.toPrecision(4));

/** The colour at a fraction of its opacity (#rrggbb in). */
const faded = (color: string, alpha: number) => `${color}${Math.round(alpha * 255).toString(16).padStart(2, '0')}`;

interface Drawn {
  label: string;
  color: string;
  width: number;
  dash?: number[];
  showPoints: boolean;
  points: { x: number; y: number }[];
}

/** The series as drawn: with smoothing, each line becomes its faint raw line and the smoothed line over it. */
function drawnSeries(series: ChartSeries[], smoothing: number, logScale: boolean): Drawn[] {
  const usable = (points: { x: number; y: number }[]) => (logScale ? points.filter((p) => p.y > 0) : points);
  return series.flatMap((s): Drawn[] => {
    const points = usable(s.points);
    const plain = { label: s.label, color: s.color, width: 2, dash: s.dash, showPoints: s.showPoints ?? false, points };
    if (smoothing <= 0 || s.showPoints) return [plain];
    return [
      { ...plain, label: `${s.label}, unsmoothed`, color: faded(s.color, 0.3), width: 1 },
      { ...plain, points: smooth(points, smoothing) },
    ];
  });
}

export function LineChart(props: LineChartProps) {
  const { title, series, markers = [], xLabel, yLabel, height = 260, formatY: givenFormat, logScale = false, smoothing = 0, lastLabel = 'Latest', notes = [], emptyText = 'No points yet.', testId } = props;
  const formatY = givenFormat ?? defaultFormat;
  const container = useRef<HTMLDivElement>(null);
  const plot = useRef<uPlot | undefined>(undefined);
  const markersRef = useRef(markers);
  markersRef.current = markers;
  const drawn = drawnSeries(series, smoothing, logScale);
  const data = align(drawn.map((s) => s.points)) as uPlot.AlignedData;
  // A new set of series (names, colours, scale) needs a new plot; new points only need setData.
  const shape = JSON.stringify([drawn.map((s) => [s.label, s.color, s.width, s.showPoints, s.dash]), xLabel, yLabel, logScale]);

  useEffect(() => {
    const element = container.current!;
    const axis = { stroke: '#3c3c3c', grid: { stroke: '#e3e3e3', width: 1 }, ticks: { stroke: '#c4c4c4', width: 1 } };
    const options: uPlot.Options = {
      width: Math.max(200, element.clientWidth),
      height,
      scales: { x: { time: false }, y: logScale ? { distr: 3 } : {} },
      axes: [
        { ...axis, label: xLabel },
        { ...axis, label: yLabel, size: 56, ...(givenFormat ? { values: (_u: uPlot, ticks: number[]) => ticks.map((t) => givenFormat(t)) } : {}) },
      ],
      series: [
        { label: xLabel },
        ...drawn.map((s) => ({
          label: s.label,
          stroke: s.color,
          width: s.width,
          dash: s.dash,
          spanGaps: true,
          value: (_u: uPlot, v: number | null) => (v === null ? '–' : formatY(v)),
          points: { show: s.showPoints, size: 6, fill: s.color, stroke: s.color },
        })),
      ],
      legend: { live: true },
      plugins: [markersPlugin(() => markersRef.current)],
    };
    plot.current = new uPlot(options, data, element);
    const resize = new ResizeObserver(() => plot.current?.setSize({ width: Math.max(200, element.clientWidth), height }));
    resize.observe(element);
    return () => {
      resize.disconnect();
      plot.current?.destroy();
      plot.current = undefined;
    };
  }, [shape, height]);

  useEffect(() => {
    plot.current?.setData(data);
  });

  const lasts = series.filter((s) => s.points.length > 0).map((s) => `${s.label} ${formatY(s.points.at(-1)!.y)}`);
  const summary = series
    .map((s) => {
      const last = s.points.at(-1);
      return last ? `${s.label}: ${s.points.length} points, latest ${formatY(last.y)} at ${xLabel.toLowerCase()} ${+last.x.toFixed(2)}` : `${s.label}: no points yet`;
    })
    .concat(notes)
    .join('; ');
  const pointCount = series.reduce((n, s) => n + s.points.length, 0);

  return (
    <figure class="chart" data-testid={testId} data-points={pointCount} data-markers={markers.length} data-scale={logScale ? 'log' : 'linear'}>
      <figcaption>
        <span class="chart-title">{title}</span>
        <span class="visually-hidden">. {summary}</span>
      </figcaption>
      {(lasts.length > 0 || notes.length > 0) && (
        <p class="chart-last small" data-testid={testId && `${testId}-last`} aria-hidden="true">
          {[...(lasts.length > 0 ? [<span>{`${lastLabel}: ${lasts.join(' · ')}`}</span>] : []), ...notes.map((note) => <span class="muted">{note}</span>)]}
        </p>
      )}
      <div ref={container} class="chart-canvas" />
      {pointCount === 0 && <p class="chart-empty">{emptyText}</p>}
    </figure>
  );
}
