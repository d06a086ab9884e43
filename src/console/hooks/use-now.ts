// The current time, re-read every `ms` while `active` (countdowns between metric events).
import { useState } from 'preact/hooks';
import { useInterval } from './use-async';

export function useNow(ms: number, active: boolean): number {
  const [now, setNow] = useState(Date.now());
  useInterval(() => setNow(Date.now()), ms, active);
  return active ? now : Date.now();
}
