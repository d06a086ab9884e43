// What a browser must not be able to do, decided when a request arrives, before its body is read.
//
// A keyless server (loopback only) answers only loopback Host names, so a DNS-rebinding page cannot reach it
// under a name of its own, and refuses a foreign Origin, so a page on another site cannot call it (nor send a
// browser there: cross-site navigations reach only the console's pages).
//
// A request whose key travels in a header (x-goog-api-key, Authorization) cannot come from a cross-origin
// form or simple fetch (those cannot set such headers), so it may send any content type: `curl -d` without a
// Content-Type keeps working. Any other request that has a body (keyless, or a key only in ?key=) must send
// what no HTML form can: JSON to a JSON route, and to an upload route multipart/related or the object's own
// media type, but never the three types a form sends across origins.
//
// Routes say which kind of body they take in their config (`config: { body: 'upload' }`); 'json' is the default.
import type { FastifyInstance, FastifyRequest } from 'fastify';
import fp from 'fastify-plugin';
import { ServiceError, invalidArgument } from '../../service/errors.js';
import { isLoopback } from '../../service/config.js';

export type BodyKind = 'json' | 'upload';

declare module 'fastify' {
  interface FastifyContextConfig {
    /** The body a route takes (default 'json'): decides the content types a request without a header key may send. */
    body?: BodyKind;
  }
}

export interface RequestPolicyOptions {
  keyless: boolean;
}

/** The types an HTML form (or a simple cross-origin fetch) can send without a preflight. */
const formTypes = new Set(['application/x-www-form-urlencoded', 'multipart/form-data', 'text/plain']);

export const mediaTypeOf = (contentType: string | undefined): string => (contentType ?? '').split(';')[0]!.trim().toLowerCase();

export const isJsonMediaType = (type: string): boolean => type === 'application/json' || /^application\/[\w.-]+\+json$/.test(type);

/** `localhost:8080`, `127.0.0.1`, `[::1]:8080` → the host name without port or brackets. */
export function hostnameOf(hostHeader: string): string {
  const host = hostHeader.trim().toLowerCase();
  if (host.startsWith('[')) return host.slice(1, host.indexOf(']') < 0 ? undefined : host.indexOf(']'));
  const colon = host.lastIndexOf(':');
  return colon < 0 ? host : host.slice(0, colon);
}

function originHostname(origin: string): string | undefined {
  try {
    return hostnameOf(new URL(origin).host);
  } catch {
    return undefined; // "null" (sandboxed frames, file: pages) or garbage
  }
}

/** Whether the request names a key in a header, which no cross-origin form or simple request can set. */
export const hasHeaderCredentials = (request: FastifyRequest): boolean =>
  Boolean(request.headers['x-goog-api-key'] || request.headers.authorization);

const hasBody = (request: FastifyRequest): boolean =>
  request.headers['transfer-encoding'] !== undefined || Number(request.headers['content-length'] ?? 0) > 0;

/** A keyless server answers only loopback host names (HTTP's Host, HTTP/2's :authority): no DNS rebinding. */
export function checkKeylessHost(host: string | undefined): void {
  if (!host || !isLoopback(hostnameOf(host))) {
    throw new ServiceError(
      'PERMISSION_DENIED',
      `This keyless Attune server answers only loopback host names (localhost, 127.0.0.1, [::1]), not ${JSON.stringify(host ?? '')}. ` +
        'Serve with API keys to reach it under another name.',
    );
  }
}

function checkKeylessOrigin(request: FastifyRequest): void {
  checkKeylessHost(request.headers.host);
  const origin = request.headers.origin;
  if (origin !== undefined) {
    const hostname = originHostname(origin);
    if (!hostname || !isLoopback(hostname)) {
      throw new ServiceError('PERMISSION_DENIED', `This keyless Attune server refuses requests from other origins (Origin: ${origin}).`);
    }
  }
  // A navigation from another site (a link, a redirect) carries no Origin; browsers mark it cross-site. Only
  // the console's pages may be opened that way: nothing else is for a browser to land on from elsewhere.
  if (request.headers['sec-fetch-site'] === 'cross-site' && !request.routeOptions.config?.public) {
    throw new ServiceError('PERMISSION_DENIED', 'This keyless Attune server refuses requests another site started (Sec-Fetch-Site: cross-site).');
  }
}

function checkContentType(request: FastifyRequest): void {
  // An unknown route never uses its body (404 for everyone).
  if (request.is404 || !hasBody(request) || hasHeaderCredentials(request)) return;
  const type = mediaTypeOf(request.headers['content-type']);
  const kind = request.routeOptions.config?.body ?? 'json';
  const why = 'A request without a key in the x-goog-api-key or Authorization header';
  if (kind === 'json' && !isJsonMediaType(type)) {
    throw invalidArgument(`${why} must send its body as JSON (Content-Type: application/json), not ${type || 'without a Content-Type'}.`);
  }
  if (kind === 'upload' && (type === '' || formTypes.has(type))) {
    throw invalidArgument(
      `${why} must send an upload as multipart/related (uploadType=multipart) or with the object's own media type (uploadType=media), ` +
        `not ${type || 'without a Content-Type'}.`,
    );
  }
}

export const requestPolicyPlugin = fp(async (app: FastifyInstance, { keyless }: RequestPolicyOptions) => {
  app.addHook('onRequest', async (request) => {
    if (keyless) checkKeylessOrigin(request);
    checkContentType(request);
  });
});
