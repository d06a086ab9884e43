// One HTTP/1.1 request through node:http, for what fetch will not send: any Host header, any method, any
// bytes, a declared length or chunked encoding. Never throws for an HTTP status; rejects on a connection
// error or after timeoutMs.
import http from 'node:http';

export interface RawRequest {
  method?: string;
  /** Path and query, sent as is (no normalisation). */
  path: string;
  headers?: Record<string, string>;
  body?: Buffer | string;
  /** Send the body with Transfer-Encoding: chunked instead of a Content-Length. */
  chunked?: boolean;
  timeoutMs?: number;
}

export interface RawResponse {
  status: number;
  headers: http.IncomingHttpHeaders;
  text: string;
  json: any;
}

export function rawRequest(baseUrl: string, { method = 'GET', path, headers = {}, body, chunked = false, timeoutMs = 30_000 }: RawRequest): Promise<RawResponse> {
  const { hostname, port } = new URL(baseUrl);
  const sent: Record<string, string> = { ...headers };
  const bytes = body === undefined ? undefined : Buffer.isBuffer(body) ? body : Buffer.from(body);
  if (bytes && !chunked && !Object.keys(sent).some((h) => h.toLowerCase() === 'content-length')) sent['content-length'] = String(bytes.length);
  if (!Object.keys(sent).some((h) => h.toLowerCase() === 'host')) sent.host = new URL(baseUrl).host;
  return new Promise((resolve, reject) => {
    const request = http.request(
      { host: hostname.replace(/^\[|\]$/g, ''), port, method, path, headers: sent, setHost: false, agent: false, timeout: timeoutMs },
      (response) => {
        const chunks: Buffer[] = [];
        response.on('data', (d: Buffer) => chunks.push(d));
        response.on('error', reject);
        response.on('end', () => {
          const text = Buffer.concat(chunks).toString('utf8');
          let json: any;
          try {
            json = text ? JSON.parse(text) : undefined;
          } catch {
            json = undefined;
          }
          resolve({ status: response.statusCode ?? 0, headers: response.headers, text, json });
        });
      },
    );
    request.on('timeout', () => request.destroy(new Error(`no answer within ${timeoutMs} ms: ${method} ${path}`)));
    request.on('error', reject);
    if (bytes) request.write(bytes);
    request.end();
  });
}
