// Time left for a running job, from the pace of its recent steps (metric wall times), not a guess.
import type { SeriesPoint } from './series';

/** Seconds per step over the last `window` points; undefined until two points are apart in time. */
export function secondsPerStep(points: SeriesPoint[], window = 20): number | undefined {
  const recent = points.slice(-window);
  if (recent.length < 2) return undefined;
  const first = recent[0]!;
  const last = recent.at(-1)!;
  const steps = last.step - first.step;
  const seconds = (last.wallMs - first.wallMs) / 1000;
  return steps > 0 && seconds > 0 ? seconds / steps : undefined;
}

/** Seconds until the last step, counting the time since the newest point as already spent. */
export function etaSeconds(points: SeriesPoint[], totalSteps: number | undefined, nowMs = Date.now()): number | undefined {
  const pace = secondsPerStep(points);
  const last = points.at(-1);
  if (pace === undefined || !last || !totalSteps) return undefined;
  const remaining = (totalSteps - last.step) * pace - (nowMs - last.wallMs) / 1000;
  return Math.max(0, remaining);
}
