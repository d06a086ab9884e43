// Human-readable numbers, times and durations.
import type { Int64 } from '../api/vertex';

export function formatDuration(seconds: number | undefined): string {
  if (seconds === undefined || !Number.isFinite(seconds)) return '–';
  if (seconds < 10) return `${seconds.toFixed(1)} s`;
  const s = Math.round(seconds);
  if (s < 60) return `${s} s`;
  const h = Math.floor(s / 3600);
  const m = Math.floor((s % 3600) / 60);
  if (h > 0) return `${h} h ${m} min`;
  return `${m} min ${s % 60} s`;
}

export function formatTime(iso: string | undefined): string {
  if (!iso) return '–';
  const date = new Date(iso);
  if (Number.isNaN(date.getTime())) return iso;
  return date.toLocaleString(undefined, { year: 'numeric', month: 'short', day: 'numeric', hour: '2-digit', minute: '2-digit', second: '2-digit' });
}

export function formatNumber(value: Int64 | undefined, digits = 0): string {
  if (value === undefined || value === '') return '–';
  const n = Number(value);
  if (!Number.isFinite(n)) return String(value);
  return n.toLocaleString(undefined, { maximumFractionDigits: digits });
}

/** Seconds between two RFC 3339 times (or until now). */
export function secondsBetween(from: string | undefined, to?: string): number | undefined {
  if (!from) return undefined;
  const start = Date.parse(from);
  const end = to ? Date.parse(to) : Date.now();
  return Number.isFinite(start) && Number.isFinite(end) ? (end - start) / 1000 : undefined;
}

/** Bare model id for display: "models/gemini-1.5-flash-001-tuning" → "gemini-1.5-flash-001-tuning". */
export const shortModelName = (name: string | undefined): string => (name ?? '–').replace(/^models\//, '');
