// A body checked against its TypeBox schema inside a handler, for routes whose verb (`x:verb`) decides which
// schema applies, so Fastify's per-route schema cannot. Errors read like Google's: the field, then why.
import type { Static, TSchema } from '@sinclair/typebox';
import { TypeCompiler } from '@sinclair/typebox/compiler';
import { invalidArgument } from '../service/errors.js';

export function bodyChecker<T extends TSchema>(schema: T, message: string) {
  const compiled = TypeCompiler.Compile(schema);
  return (body: unknown): Static<T> => {
    const value = body ?? {};
    if (compiled.Check(value)) return value;
    const error = compiled.Errors(value).First();
    const field = error?.path.replace(/^\//, '').replace(/\//g, '.') || 'body';
    throw invalidArgument(`Invalid value at '${field}': ${error?.message ?? 'invalid'}. ${message}`, field);
  };
}
