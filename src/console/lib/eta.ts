// Time left for a running job, from the pace of its own steps (metric wall times), not a guess.
//
// Single step times are noisy: an evaluation, a checkpoint or a busy machine makes one step several times
// slower, and points can arrive in bursts. A window of the last few steps swings with every such step (on a
// 7,500-step run, between 2.4 and 6.8 minutes within seconds). So the pace is an exponentially weighted
// mean of the step times, each interval between two points weighted by the steps it spans, with a
// half-life of a tenth of the run (at least `minHalfLifeSteps`), so that the few slow steps a run has
// (evaluations, checkpoints: about twenty each) move it little while a lasting change of pace (another job
// starting beside it) shows within a fraction of the run. It is bias-corrected (as Adam's moments are), so before a half-life has
// passed it is the plain mean so far rather than a value pulled towards zero. The first `warmupSteps` steps
// are left out (loading, allocation and the first passes are slower than the rest), and there is no
// estimate until `minSteps` steps after them have been timed.
import type { SeriesPoint } from './series';

export interface PaceOptions {
  halfLifeSteps?: number;
  warmupSteps?: number;
  minSteps?: number;
}

export const paceDefaults = { halfLifeSteps: 100, minHalfLifeSteps: 20, warmupSteps: 2, minSteps: 3 } as const;

/** The half-life for a run of `totalSteps`: a tenth of it, at least minHalfLifeSteps. */
export const halfLifeFor = (totalSteps: number): number => Math.max(paceDefaults.minHalfLifeSteps, totalSteps / 10);

/** Smoothed seconds per step; undefined until enough steps after the warm-up are timed. */
export function secondsPerStep(points: SeriesPoint[], options: PaceOptions = {}): number | undefined {
  const { halfLifeSteps, warmupSteps, minSteps } = { ...paceDefaults, ...options };
  const decayPerStep = Math.pow(0.5, 1 / halfLifeSteps);
  let mean = 0;
  let weight = 0; // 1 − decay^(steps seen): what the bias correction divides by
  let timedSteps = 0;
  let previous: SeriesPoint | undefined;
  for (const point of points) {
    if (point.step <= warmupSteps) {
      previous = point;
      continue;
    }
    if (previous) {
      const steps = point.step - previous.step;
      const seconds = (point.wallMs - previous.wallMs) / 1000;
      if (steps > 0 && seconds >= 0) {
        const keep = Math.pow(decayPerStep, steps);
        mean = keep * mean + (1 - keep) * (seconds / steps);
        weight = keep * weight + (1 - keep);
        timedSteps += steps;
      }
    }
    previous = point;
  }
  return timedSteps >= minSteps && weight > 0 ? mean / weight : undefined;
}

/** Seconds until the last step, counting the time since the newest point as already spent. */
export function etaSeconds(points: SeriesPoint[], totalSteps: number | undefined, nowMs = Date.now()): number | undefined {
  if (!totalSteps) return undefined;
  const pace = secondsPerStep(points, { halfLifeSteps: halfLifeFor(totalSteps) });
  const last = points.at(-1);
  if (pace === undefined || !last) return undefined;
  const remaining = (totalSteps - last.step) * pace - (nowMs - last.wallMs) / 1000;
  return Math.max(0, remaining);
}
