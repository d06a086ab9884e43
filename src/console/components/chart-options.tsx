// The charts' view options: a log scale for loss, and smoothing (TensorBoard's weight) for the train lines.
export interface ChartView {
  logLoss: boolean;
  smoothing: number;
}

export const defaultChartView: ChartView = { logLoss: false, smoothing: 0 };

export function ChartOptions({ view, onChange, idPrefix }: { view: ChartView; onChange: (view: ChartView) => void; idPrefix: string }) {
  return (
    <div class="chart-options">
      <label class="checkbox">
        <input type="checkbox" checked={view.logLoss} onChange={(e) => onChange({ ...view, logLoss: e.currentTarget.checked })} /> Log scale for loss
      </label>
      <div class="field inline-field">
        <label for={`${idPrefix}-smoothing`}>Smoothing</label>
        <input
          id={`${idPrefix}-smoothing`}
          type="range"
          min={0}
          max={0.95}
          step={0.05}
          value={view.smoothing}
          aria-valuetext={view.smoothing === 0 ? 'off' : view.smoothing.toFixed(2)}
          onInput={(e) => onChange({ ...view, smoothing: Number(e.currentTarget.value) })}
        />
        <output for={`${idPrefix}-smoothing`}>{view.smoothing === 0 ? 'off' : view.smoothing.toFixed(2)}</output>
      </div>
    </div>
  );
}
