// Every failure leaves as a google.rpc error body: {"error": {"code": <HTTP>, "message", "status", "details"?}}.
import type { FastifyInstance, FastifyReply, FastifyRequest, FastifyError } from 'fastify';
import fp from 'fastify-plugin';
import { ServiceError, canonicalCodes, payloadTooLarge, type CanonicalStatus, type FieldViolation } from '../../service/errors.js';
import { DatasetError } from '../../engine/data/examples.js';
import { isUnavailable } from '../../service/store/database.js';

export interface RpcErrorExtras {
  /** When to try again (google.rpc.RetryInfo and Retry-After), for an overload that will pass. */
  retryDelaySeconds?: number;
  /** Where it differs from the status's canonical HTTP code. */
  http?: number;
}

export function rpcErrorBody(status: CanonicalStatus, message: string, violations: FieldViolation[] = [], extras: RpcErrorExtras = {}) {
  const details: Record<string, unknown>[] = [];
  if (violations.length) details.push({ '@type': 'type.googleapis.com/google.rpc.BadRequest', fieldViolations: violations });
  if (extras.retryDelaySeconds !== undefined) {
    details.push({ '@type': 'type.googleapis.com/google.rpc.RetryInfo', retryDelay: `${extras.retryDelaySeconds}s` });
  }
  return { error: { code: extras.http ?? canonicalCodes[status].http, message, status, ...(details.length ? { details } : {}) } };
}

export function sendRpcError(reply: FastifyReply, status: CanonicalStatus, message: string, violations: FieldViolation[] = [], extras: RpcErrorExtras = {}) {
  if (extras.retryDelaySeconds !== undefined) reply.header('retry-after', String(extras.retryDelaySeconds));
  return reply
    .code(extras.http ?? canonicalCodes[status].http)
    .type('application/json; charset=UTF-8')
    .send(rpcErrorBody(status, message, violations, extras));
}

export interface ClassifiedError extends RpcErrorExtras {
  status: CanonicalStatus;
  message: string;
  violations?: FieldViolation[];
  unexpected?: boolean;
}

/** Maps any thrown error to its google.rpc status; unexpected ones are logged and answered 500. */
export function classify(error: unknown, bodyLimit?: number): ClassifiedError {
  if (error instanceof ServiceError) {
    return { status: error.status, message: error.message, violations: error.fieldViolations, http: error.httpStatus, retryDelaySeconds: error.retryDelaySeconds };
  }
  if (error instanceof DatasetError) return { status: 'INVALID_ARGUMENT', message: error.message };
  // The database dropped the connection (or is restarting): the client may retry; nothing was lost.
  if (isUnavailable(error)) return { status: 'UNAVAILABLE', message: 'The service is currently unavailable: its database cannot be reached. Retry shortly.' };
  const fastifyError = error as FastifyError;
  if (fastifyError.code === 'FST_ERR_CTP_BODY_TOO_LARGE') {
    const { status, message, httpStatus } = payloadTooLarge('requestBodyBytes', bodyLimit ?? 0);
    return { status, message, http: httpStatus };
  }
  if (fastifyError.validation) {
    const where = fastifyError.validationContext === 'querystring' ? 'Invalid query parameter.' : 'Invalid JSON payload received.';
    return { status: 'INVALID_ARGUMENT', message: `${where} ${fastifyError.message}` };
  }
  if (fastifyError.statusCode && fastifyError.statusCode >= 400 && fastifyError.statusCode < 500) {
    return { status: fastifyError.statusCode === 404 ? 'NOT_FOUND' : 'INVALID_ARGUMENT', message: fastifyError.message };
  }
  return { status: 'INTERNAL', message: 'Internal error encountered.', unexpected: true };
}

/**
 * Errors Fastify raises before a route is found (Fastify's `frameworkErrors` option): a path that is not valid
 * percent-encoding or has a segment over the router's length limit. Answered as google.rpc errors too, without
 * echoing the URL (it may carry a key).
 */
export function frameworkErrorHandler(error: FastifyError, _request: FastifyRequest, reply: FastifyReply) {
  const message =
    error.code === 'FST_ERR_MAX_PARAM_LENGTH'
      ? 'Invalid resource name: a path segment is too long.'
      : error.code === 'FST_ERR_BAD_URL'
        ? 'Invalid URL: a path segment is not valid percent-encoding.'
        : 'Invalid request.';
  return sendRpcError(reply, 'INVALID_ARGUMENT', message);
}

export const errorsPlugin = fp(async (app: FastifyInstance) => {
  app.setErrorHandler((error, request, reply) => {
    const { status, message, violations, unexpected, ...extras } = classify(error, app.initialConfig.bodyLimit);
    if (unexpected) request.log.error({ err: error }, 'unexpected error');
    return sendRpcError(reply, status, message, violations, extras);
  });
  app.setNotFoundHandler((request, reply) =>
    sendRpcError(reply, 'NOT_FOUND', `Method not found: ${request.method} ${request.url.split('?')[0]}`),
  );
});
