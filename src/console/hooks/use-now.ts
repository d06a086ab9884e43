// Re-renders every `ms` while `active` (countdowns between metric events) and returns the time of this render.
import { useState } from 'preact/hooks';
import { useInterval } from './use-async';

export function useNow(ms: number, active: boolean): number {
  const [, setTick] = useState(0);
  useInterval(() => setTick((t) => t + 1), ms, active);
  // The time of this render, not of the last tick: a render caused by new data must not see an older clock.
  return Date.now();
}
