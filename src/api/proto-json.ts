// proto3 JSON as Google's front ends write and read it (gemini-api.md §1.3, vertex-api.md §1.2), shared by
// both surfaces: zero values omitted, int64 as strings, enums as names unless the caller asked for integers.
import type { FastifyRequest } from 'fastify';

export interface WireOptions {
  integerEnums: boolean;
}

/** The Python SDKs' REST transport adds `$alt=json;enum-encoding=int` and expects integer enums back. */
export const wireOptions = (request: FastifyRequest): WireOptions => ({
  integerEnums: /enum-encoding=int/.test(String((request.query as Record<string, unknown>).$alt ?? '')),
});

/** proto3 JSON omits default scalars; `optional` fields (temperature, index) are emitted whenever set. */
export const nonZero = <T>(value: T): T | undefined =>
  value === 0 || value === '' || value === false || (Array.isArray(value) && value.length === 0) ? undefined : value;

/** int64 fields are JSON strings; zero is omitted. */
export const int64 = (value: number | undefined): string | undefined => (value ? String(value) : undefined);

export const isObject = (value: unknown): value is Record<string, unknown> =>
  value !== null && typeof value === 'object' && !Array.isArray(value);

/** A repeated field given as one object is read as a list of one (Google's front end accepts both). */
export function listOf(value: unknown): unknown[] {
  if (value === undefined || value === null) return [];
  return Array.isArray(value) ? value : [value];
}
