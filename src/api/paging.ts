// List paging parameters (AIP-158) as every list route takes them: a page size that is not negative (0 means
// the default) and an opaque page token. A negative size is a client's mistake: 400, never a silent default.
import type { FromSchema, JSONSchema } from 'json-schema-to-ts';
import { invalidArgument } from '../service/errors.js';

export const pagingQuery = {
  pageSize: { type: 'integer', minimum: 0 },
  pageToken: { type: 'string' },
} as const;

/** A list route's query: paging and an AIP-160 filter; its type is derived from the schema. */
export const listQuery = { type: 'object', properties: { ...pagingQuery, filter: { type: 'string' } } } as const satisfies JSONSchema;
export type ListQuery = FromSchema<typeof listQuery>;

/** The same rule where no JSON schema checks the request (gRPC). */
export function checkedPaging({ pageSize, pageToken }: { pageSize?: unknown; pageToken?: unknown }): ListQuery {
  const size = typeof pageSize === 'number' ? pageSize : undefined;
  if (size !== undefined && size < 0) throw invalidArgument(`pageSize must not be negative, not ${size}.`, 'page_size');
  return { pageSize: size, pageToken: typeof pageToken === 'string' && pageToken !== '' ? pageToken : undefined };
}
