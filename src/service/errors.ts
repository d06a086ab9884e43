// Domain errors carry a google.rpc canonical status; the API layer turns them into HTTP answers.
export type CanonicalStatus =
  | 'CANCELLED' | 'INVALID_ARGUMENT' | 'NOT_FOUND' | 'ALREADY_EXISTS' | 'PERMISSION_DENIED' | 'UNAUTHENTICATED'
  | 'RESOURCE_EXHAUSTED' | 'FAILED_PRECONDITION' | 'UNIMPLEMENTED' | 'INTERNAL' | 'UNAVAILABLE';

/** google.rpc.Code numbers and their HTTP statuses (google/rpc/code.proto). */
export const canonicalCodes: Record<CanonicalStatus, { code: number; http: number }> = {
  CANCELLED: { code: 1, http: 499 },
  INVALID_ARGUMENT: { code: 3, http: 400 },
  NOT_FOUND: { code: 5, http: 404 },
  ALREADY_EXISTS: { code: 6, http: 409 },
  PERMISSION_DENIED: { code: 7, http: 403 },
  RESOURCE_EXHAUSTED: { code: 8, http: 429 },
  FAILED_PRECONDITION: { code: 9, http: 400 },
  UNIMPLEMENTED: { code: 12, http: 501 },
  INTERNAL: { code: 13, http: 500 },
  UNAVAILABLE: { code: 14, http: 503 },
  UNAUTHENTICATED: { code: 16, http: 401 },
};

export interface FieldViolation {
  field: string;
  description: string;
}

export class ServiceError extends Error {
  constructor(
    readonly status: CanonicalStatus,
    message: string,
    readonly fieldViolations: FieldViolation[] = [],
    /** An HTTP status other than the canonical one, where Google answers one (413 for a payload too large). */
    readonly httpStatus?: number,
  ) {
    super(message);
    this.name = 'ServiceError';
  }
}

export const invalidArgument = (message: string, field?: string) =>
  new ServiceError('INVALID_ARGUMENT', message, field ? [{ field, description: message }] : []);
export const notFound = (message: string) => new ServiceError('NOT_FOUND', message);

/** A body over a size limit: Google's 413 and message, naming the limit that applied. */
export const payloadTooLarge = (limit: string, bytes: number) =>
  new ServiceError(
    'INVALID_ARGUMENT',
    `Request payload size exceeds the limit: ${bytes} bytes (the ${limit} limit; attune serve --limit ${limit}=N changes it).`,
    [],
    413,
  );
