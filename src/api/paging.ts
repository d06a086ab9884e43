// List paging parameters (AIP-158) as every list route takes them: a page size that is not negative (0 means
// the default) and an opaque page token. A negative size is a client's mistake: 400, never a silent default.
// TypeBox schemas are JSON Schema, so routes spread these into plain schemas too.
import { Type } from '@sinclair/typebox';

export const pagingQuery = {
  pageSize: Type.Optional(Type.Integer({ minimum: 0 })),
  pageToken: Type.Optional(Type.String()),
};
