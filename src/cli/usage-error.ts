import { parseDevice, parseDtype, type PlacementRequest } from '../engine/placement.js';

/** A mistake in how the command was called: printed as a plain message, exit code 2. */
export class UsageError extends Error {
  override name = 'UsageError';
}

export function numberOption(name: string, value: string | undefined, check: (n: number) => boolean, rule: string): number | undefined {
  if (value === undefined) return undefined;
  const n = Number(value);
  if (value.trim() === '' || !Number.isFinite(n) || !check(n)) throw new UsageError(`--${name} must be ${rule}, not '${value}'`);
  return n;
}

export const positiveInteger = (n: number) => Number.isInteger(n) && n > 0;
export const positive = (n: number) => n > 0;
export const nonNegative = (n: number) => n >= 0;

/** --device and --dtype as the engine takes them; a bad value is a usage error. */
export function placementOptions(values: { device?: string; dtype?: string }): PlacementRequest {
  try {
    return { device: parseDevice(values.device ?? 'auto'), dtype: parseDtype(values.dtype ?? 'auto') };
  } catch (error) {
    throw new UsageError((error as Error).message.replace(/^unknown (device|dtype)/, '--$1: unknown $1'));
  }
}
