// The request log, without secrets: Fastify logs each request's URL, which may carry ?key= or ?access_token=,
// and error objects may quote one. Query values of credential parameters become [REDACTED] in the request
// serializer; credential headers are redacted should anything log them; and as a last line, every finished
// log line is scrubbed of Attune keys (atk_…) and credential parameters before it is written.
import type { FastifyRequest } from 'fastify';

/** Query parameters that carry credentials (Google's names and the camelCase ones clients send). */
const secretParams = new Set(['key', 'access_token', 'accesstoken', 'oauth_token']);
const redacted = '[REDACTED]';

function decodedName(name: string): string {
  try {
    return decodeURIComponent(name.replace(/\+/g, ' ')).toLowerCase();
  } catch {
    return name.toLowerCase();
  }
}

/** `/v1beta/x?key=abc&alt=sse` → `/v1beta/x?key=[REDACTED]&alt=sse` (names compared decoded, as the server reads them). */
export function redactUrl(url: string): string {
  const at = url.indexOf('?');
  if (at < 0) return url;
  const query = url
    .slice(at + 1)
    .split('&')
    .map((pair) => {
      const eq = pair.indexOf('=');
      const name = eq < 0 ? pair : pair.slice(0, eq);
      return secretParams.has(decodedName(name)) ? `${name}=${redacted}` : pair;
    });
  return `${url.slice(0, at)}?${query.join('&')}`;
}

/** Any text: Attune keys, and credential parameters written into URLs or messages. */
export const redactSecrets = (text: string): string =>
  text
    .replace(/atk_[A-Za-z0-9_-]{8,}/g, redacted)
    .replace(/([?&](?:key|access_token|accessToken|oauth_token)=)[^&#\s"\\]*/gi, `$1${redacted}`);

/** Fastify's request serializer, with the URL redacted. */
export function requestForLog(request: FastifyRequest) {
  return {
    method: request.method,
    url: redactUrl(request.url),
    host: request.host,
    remoteAddress: request.ip,
    remotePort: request.socket?.remotePort,
  };
}

/** Pino options for the server's logger at `level`. */
export function loggerOptions(level: string) {
  return {
    level,
    serializers: { req: requestForLog },
    redact: {
      paths: ['req.headers.authorization', 'req.headers["x-goog-api-key"]', 'headers.authorization', 'headers["x-goog-api-key"]'],
      censor: redacted,
    },
    hooks: { streamWrite: redactSecrets },
  };
}
