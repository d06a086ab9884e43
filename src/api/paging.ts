// List paging parameters (AIP-158) as every list route takes them: a page size that is not negative (0 means
// the default) and an opaque page token. A negative size is a client's mistake: 400, never a silent default.
// TypeBox schemas are JSON Schema, so routes spread these into plain schemas too.
import { Type, type Static } from '@sinclair/typebox';
import { invalidArgument } from '../service/errors.js';

export const pagingQuery = {
  pageSize: Type.Optional(Type.Integer({ minimum: 0 })),
  pageToken: Type.Optional(Type.String()),
};

/** A list route's query: paging and an AIP-160 filter. */
export const ListQuery = Type.Object({ ...pagingQuery, filter: Type.Optional(Type.String()) });
export type ListQuery = Static<typeof ListQuery>;

/** The same rule where no JSON schema checks the request (gRPC). */
export function checkedPaging({ pageSize, pageToken }: { pageSize?: unknown; pageToken?: unknown }): ListQuery {
  const size = typeof pageSize === 'number' ? pageSize : undefined;
  if (size !== undefined && size < 0) throw invalidArgument(`pageSize must not be negative, not ${size}.`, 'page_size');
  return { pageSize: size, pageToken: typeof pageToken === 'string' && pageToken !== '' ? pageToken : undefined };
}
