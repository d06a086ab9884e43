// Domain errors carry a google.rpc canonical status; the API layer turns them into HTTP answers.
export type CanonicalStatus =
  | 'CANCELLED' | 'INVALID_ARGUMENT' | 'DEADLINE_EXCEEDED' | 'NOT_FOUND' | 'ALREADY_EXISTS' | 'PERMISSION_DENIED' | 'UNAUTHENTICATED'
  | 'RESOURCE_EXHAUSTED' | 'FAILED_PRECONDITION' | 'UNIMPLEMENTED' | 'INTERNAL' | 'UNAVAILABLE';

/** google.rpc.Code numbers and their HTTP statuses (google/rpc/code.proto). */
export const canonicalCodes: Record<CanonicalStatus, { code: number; http: number }> = {
  CANCELLED: { code: 1, http: 499 },
  INVALID_ARGUMENT: { code: 3, http: 400 },
  DEADLINE_EXCEEDED: { code: 4, http: 504 },
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
  /** When to try again (google.rpc.RetryInfo and Retry-After), for an overload that will pass. */
  retryDelaySeconds?: number;

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

/** RESOURCE_EXHAUSTED with a hint of when capacity should be back. */
export function resourceExhausted(message: string, retryDelaySeconds: number): ServiceError {
  const error = new ServiceError('RESOURCE_EXHAUSTED', message);
  error.retryDelaySeconds = Math.max(1, Math.ceil(retryDelaySeconds));
  return error;
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
