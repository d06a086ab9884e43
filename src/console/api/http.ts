// Every API call goes through here: the user's key (or, keyless, the project) is attached, and failures
// become ApiError carrying the server's google.rpc message, which the UI shows as is.
import { getSettings } from '../settings';

export class ApiError extends Error {
  constructor(
    message: string,
    /** HTTP status; 0 when the server could not be reached. */
    readonly httpStatus: number,
    /** google.rpc status name, e.g. INVALID_ARGUMENT. */
    readonly status?: string,
    readonly details?: unknown[],
  ) {
    super(message);
    this.name = 'ApiError';
  }
}

export interface RequestOptions {
  method?: string;
  /** A plain object is sent as JSON; a Blob or string as is, with contentType. */
  body?: unknown;
  contentType?: string;
  query?: Record<string, string | number | boolean | undefined>;
  signal?: AbortSignal;
}

export function authHeaders(): Record<string, string> {
  const { apiKey, project } = getSettings();
  // Keyless servers act for x-goog-user-project; with a key the key names the project.
  return apiKey ? { 'x-goog-api-key': apiKey } : { 'x-goog-user-project': project };
}

export function withQuery(path: string, query: RequestOptions['query'] = {}): string {
  const params = new URLSearchParams();
  for (const [name, value] of Object.entries(query)) if (value !== undefined && value !== '') params.set(name, String(value));
  const text = params.toString();
  return text ? `${path}${path.includes('?') ? '&' : '?'}${text}` : path;
}

async function errorFrom(response: Response): Promise<ApiError> {
  const text = await response.text().catch(() => '');
  try {
    const { error } = JSON.parse(text) as { error?: { message?: string; status?: string; details?: unknown[] } };
    if (error?.message) return new ApiError(error.message, response.status, error.status, error.details);
  } catch {
    // not a google.rpc body: fall through
  }
  const snippet = text.trim().slice(0, 200);
  return new ApiError(`HTTP ${response.status} ${response.statusText}${snippet ? `: ${snippet}` : ''}`, response.status);
}

/** Sends the request; resolves only for 2xx answers, throws ApiError otherwise. */
export async function apiFetch(path: string, options: RequestOptions = {}): Promise<Response> {
  const headers: Record<string, string> = { ...authHeaders() };
  let body: BodyInit | undefined;
  if (options.body instanceof Blob || typeof options.body === 'string') {
    body = options.body;
    headers['content-type'] = options.contentType ?? 'application/octet-stream';
  } else if (options.body !== undefined) {
    body = JSON.stringify(options.body);
    headers['content-type'] = 'application/json';
  }
  let response: Response;
  try {
    response = await fetch(withQuery(path, options.query), { method: options.method ?? 'GET', headers, body, signal: options.signal });
  } catch (error) {
    if ((error as Error).name === 'AbortError') throw error;
    throw new ApiError(`Cannot reach the Attune server (${(error as Error).message}).`, 0);
  }
  if (!response.ok) throw await errorFrom(response);
  return response;
}

export async function apiJson<T>(path: string, options: RequestOptions = {}): Promise<T> {
  const response = await apiFetch(path, options);
  const text = await response.text();
  return (text ? JSON.parse(text) : {}) as T;
}

/** What to show for any thrown value: the API's message when there is one. */
export function errorMessage(error: unknown): string {
  if (error instanceof Error) return error.message;
  return String(error);
}
