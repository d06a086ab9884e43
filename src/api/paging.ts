// List paging parameters (AIP-158) as every list route takes them: a page size that is not negative (0 means
// the default) and an opaque page token. A negative size is a client's mistake: 400, never a silent default.
export const pagingQuery = {
  pageSize: { type: 'integer', minimum: 0 },
  pageToken: { type: 'string' },
} as const;
