// Every failure leaves as a google.rpc error body: {"error": {"code": <HTTP>, "message", "status", "details"?}}.
import type { FastifyInstance, FastifyReply, FastifyError } from 'fastify';
import fp from 'fastify-plugin';
import { ServiceError, canonicalCodes, type CanonicalStatus, type FieldViolation } from '../../service/errors.js';
import { DatasetError } from '../../engine/data/examples.js';
import { isUnavailable } from '../../service/store/database.js';

export function rpcErrorBody(status: CanonicalStatus, message: string, violations: FieldViolation[] = []) {
  const details = violations.length
    ? [{ '@type': 'type.googleapis.com/google.rpc.BadRequest', fieldViolations: violations }]
    : undefined;
  return { error: { code: canonicalCodes[status].http, message, status, ...(details ? { details } : {}) } };
}

export function sendRpcError(reply: FastifyReply, status: CanonicalStatus, message: string, violations: FieldViolation[] = []) {
  return reply
    .code(canonicalCodes[status].http)
    .type('application/json; charset=UTF-8')
    .send(rpcErrorBody(status, message, violations));
}

/** Maps any thrown error to its google.rpc status; unexpected ones are logged and answered 500. */
export function classify(error: unknown, bodyLimit?: number): { status: CanonicalStatus; message: string; violations?: FieldViolation[]; unexpected?: boolean } {
  if (error instanceof ServiceError) return { status: error.status, message: error.message, violations: error.fieldViolations };
  if (error instanceof DatasetError) return { status: 'INVALID_ARGUMENT', message: error.message };
  // The database dropped the connection (or is restarting): the client may retry; nothing was lost.
  if (isUnavailable(error)) return { status: 'UNAVAILABLE', message: 'The service is currently unavailable: its database cannot be reached. Retry shortly.' };
  const fastifyError = error as FastifyError;
  if (fastifyError.code === 'FST_ERR_CTP_BODY_TOO_LARGE') {
    return { status: 'INVALID_ARGUMENT', message: `Request payload size exceeds the limit: ${bodyLimit} bytes.` };
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

export const errorsPlugin = fp(async (app: FastifyInstance) => {
  app.setErrorHandler((error, request, reply) => {
    const { status, message, violations, unexpected } = classify(error, app.initialConfig.bodyLimit);
    if (unexpected) request.log.error({ err: error }, 'unexpected error');
    return sendRpcError(reply, status, message, violations);
  });
  app.setNotFoundHandler((request, reply) =>
    sendRpcError(reply, 'NOT_FOUND', `Method not found: ${request.method} ${request.url.split('?')[0]}`),
  );
});
