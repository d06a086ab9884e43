// Request bodies are parsed as Google's front end parses them: JSON with trailing commas allowed (the
// most-copied tuning sample has them), keys in snake_case or camelCase, mixed (normalised to camelCase).
import type { FastifyInstance } from 'fastify';
import fp from 'fastify-plugin';
import { ServiceError } from '../../service/errors.js';

/** Keys below these hold user-chosen names (schema properties, labels), which stay as written. */
const opaqueParents = new Set(['properties', 'labels', 'responseSchema', 'responseJsonSchema', 'parametersJsonSchema', 'args']);

export const camelCase = (key: string): string => key.replace(/_([a-z0-9])/g, (_, c: string) => c.toUpperCase());

export function camelizeKeys(value: unknown, parent = ''): unknown {
  if (Array.isArray(value)) return value.map((v) => camelizeKeys(v, parent));
  if (value === null || typeof value !== 'object') return value;
  const opaque = opaqueParents.has(parent);
  return Object.fromEntries(
    Object.entries(value).map(([k, v]) => {
      const key = opaque ? k : camelCase(k);
      return [key, camelizeKeys(v, key)];
    }),
  );
}

/** Removes commas that directly precede a closing bracket or brace, outside strings. */
export function stripTrailingCommas(text: string): string {
  let out = '';
  let inString = false;
  for (let i = 0; i < text.length; i++) {
    const c = text[i];
    if (inString) {
      out += c;
      if (c === '\\') out += text[++i] ?? '';
      else if (c === '"') inString = false;
      continue;
    }
    if (c === '"') inString = true;
    if (c === ',') {
      let j = i + 1;
      while (j < text.length && /\s/.test(text[j])) j++;
      if (text[j] === '}' || text[j] === ']') continue;
    }
    out += c;
  }
  return out;
}

export function parseLenientJson(text: string): unknown {
  if (text.trim() === '') return {};
  try {
    return camelizeKeys(JSON.parse(stripTrailingCommas(text)));
  } catch (error) {
    throw new ServiceError('INVALID_ARGUMENT', `Invalid JSON payload received. ${(error as Error).message}`);
  }
}

export const lenientJsonPlugin = fp(async (app: FastifyInstance) => {
  app.removeAllContentTypeParsers();
  // Clients send JSON with or without a content type (curl -d defaults to form encoding).
  app.addContentTypeParser('*', { parseAs: 'string' }, (_request, body, done) => {
    try {
      done(null, parseLenientJson(body as string));
    } catch (error) {
      done(error as Error, undefined);
    }
  });
  app.addHook('preValidation', async (request) => {
    request.query = camelizeKeys(request.query) as typeof request.query;
  });
});
