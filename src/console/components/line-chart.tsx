// A uPlot line chart that follows its container's width, updates in place as points arrive, and
// optionally marks epoch ends. The figure's caption states the latest values in text for screen readers.
import { useEffect, useRef } from 'preact/hooks';
import uPlot from 'uplot';
import { align } from '../lib/series';
import { markersPlugin, type Marker } from './epoch-markers';

export interface ChartSeries {
  label: string;
  color: string;
  points: { x: number; y: number }[];
  /** Evaluations are sparse: draw their points, not only the line. */
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
  testId?: string;
}

const defaultFormat = (value: number) => (Math.abs(value) >= 100 ? value.toFixed(0) : value.toPrecision(4));

export function LineChart({ title, series, markers = [], xLabel, yLabel, height = 260, formatY: givenFormat, testId }: LineChartProps) {
  const formatY = givenFormat ?? defaultFormat;
  const container = useRef<HTMLDivElement>(null);
  const plot = useRef<uPlot | undefined>(undefined);
  const markersRef = useRef(markers);
  markersRef.current = markers;
  const data = align(series.map((s) => s.points)) as uPlot.AlignedData;
  // A new set of series (names, colours) needs a new plot; new points only need setData.
  const shape = JSON.stringify(series.map((s) => [s.label, s.color, s.showPoints, s.dash]).concat([[xLabel, yLabel]]));

  useEffect(() => {
    const element = container.current!;
    const axis = { stroke: '#3c3c3c', grid: { stroke: '#e3e3e3', width: 1 }, ticks: { stroke: '#c4c4c4', width: 1 } };
    const options: uPlot.Options = {
      width: Math.max(200, element.clientWidth),
      height,
      scales: { x: { time: false } },
      axes: [
        { ...axis, label: xLabel },
        { ...axis, label: yLabel, size: 56, ...(givenFormat ? { values: (_u: uPlot, ticks: number[]) => ticks.map((t) => givenFormat(t)) } : {}) },
      ],
      series: [
        { label: xLabel },
        ...series.map((s) => ({
          label: s.label,
          stroke: s.color,
          width: 2,
          dash: s.dash,
          spanGaps: true,
          value: (_u: uPlot, v: number | null) => (v === null ? '–' : formatY(v)),
          points: { show: s.showPoints ?? false, size: 6, fill: s.color, stroke: s.color },
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

  const summary = series
    .map((s) => {
      const last = s.points.at(-1);
      return last ? `${s.label}: ${s.points.length} points, latest ${formatY(last.y)} at ${xLabel.toLowerCase()} ${+last.x.toFixed(2)}` : `${s.label}: no points yet`;
    })
    .join('; ');
  const pointCount = series.reduce((n, s) => n + s.points.length, 0);

  return (
    <figure class="chart" data-testid={testId} data-points={pointCount} data-markers={markers.length}>
      <figcaption>
        <span class="chart-title">{title}</span>
        <span class="visually-hidden">. {summary}</span>
      </figcaption>
      <div ref={container} class="chart-canvas" />
      {pointCount === 0 && <p class="chart-empty">No points yet.</p>}
    </figure>
  );
}
