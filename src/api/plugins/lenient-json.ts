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

const quote = 0x22;
const backslash = 0x5c;
const comma = 0x2c;
/** JSON's whitespace (RFC 8259): space, tab, line feed, carriage return. */
const isJsonSpace = (c: number) => c === 0x20 || c === 0x09 || c === 0x0a || c === 0x0d;

/**
 * Removes commas that directly precede a closing bracket or brace, outside strings. One pass over the text:
 * each character is looked at a bounded number of times, and the result is joined once from slices of it.
 */
export function stripTrailingCommas(text: string): string {
  const kept: string[] = [];
  let from = 0;
  let inString = false;
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (inString) {
      if (c === backslash) i++;
      else if (c === quote) inString = false;
    } else if (c === quote) {
      inString = true;
    } else if (c === comma) {
      let next = i + 1;
      while (next < text.length && isJsonSpace(text.charCodeAt(next))) next++;
      const closer = text[next];
      if (closer === '}' || closer === ']') {
        kept.push(text.slice(from, i));
        from = i + 1;
      }
      i = next - 1; // the spaces are not looked at again
    }
  }
  if (from === 0) return text;
  kept.push(text.slice(from));
  return kept.join('');
}

export function parseLenientJson(text: string): unknown {
  if (text.trim() === '') return {};
  try {
    return camelizeKeys(JSON.parse(stripTrailingCommas(text)));
  } catch (error) {
    // Nesting thousands deep overflows the stack (JSON.parse's or camelizeKeys'): no real request nests so deep.
    const why = error instanceof RangeError ? 'Values are nested too deeply.' : (error as Error).message;
    throw new ServiceError('INVALID_ARGUMENT', `Invalid JSON payload received. ${why}`);
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
