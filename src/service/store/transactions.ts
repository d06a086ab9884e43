// Store methods that write several rows run in one transaction: the caller's, when it passes one in.
import type { Kysely } from 'kysely';
import type { Schema } from './schema.js';

export function atomically<T>(db: Kysely<Schema>, fn: (trx: Kysely<Schema>) => Promise<T>): Promise<T> {
  return db.isTransaction ? fn(db) : db.transaction().execute(fn);
}
