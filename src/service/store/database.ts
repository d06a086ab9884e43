// The database behind every store: SQLite in WAL mode (the embedded default, one machine) or PostgreSQL
// (shared by any number of servers and workers), both through Kysely, migrated to the latest schema on open.
import BetterSqlite3 from 'better-sqlite3';
import { Kysely, Migrator, PostgresDialect, SqliteDialect, sql } from 'kysely';
import pg from 'pg';
import { mkdirSync } from 'node:fs';
import path from 'node:path';
import { migrationProvider } from './migrations.js';
import type { Schema } from './schema.js';

export type Dialect = 'sqlite' | 'postgres';

/** Where the database is: a SQLite file or a PostgreSQL URL. */
export type DatabaseTarget = { dialect: 'sqlite'; file: string } | { dialect: 'postgres'; url: string };

export const sqliteFileName = 'attune.sqlite';

/**
 * How long a PostgreSQL session may sit idle inside a transaction before the server ends it (rolling it back).
 * Attune's transactions wait on nothing but their own statements, so a session idle that long belongs to a
 * process that stalled mid-transaction: stopped (SIGSTOP, a paused VM), swapping, or cut off. Until it ended,
 * the rows it locked would stay locked, a job's row among them, which every claim skips (SKIP LOCKED): the job's
 * lease would lapse and no worker could take it over for as long as the holder stayed frozen.
 */
export const idleInTransactionTimeoutMs = 10_000;

/** `--database`: a postgres:// URL, or a SQLite file path (default: attune.sqlite in the data dir). */
export function databaseTarget(option: string | undefined, dataDir: string): DatabaseTarget {
  if (!option) return { dialect: 'sqlite', file: path.join(dataDir, sqliteFileName) };
  if (/^postgres(ql)?:\/\//.test(option)) return { dialect: 'postgres', url: option };
  if (/^[a-z][a-z0-9+.-]*:\/\//i.test(option)) {
    throw new Error(`--database takes a postgres:// URL or a SQLite file path, not '${redact(option)}'`);
  }
  return { dialect: 'sqlite', file: path.resolve(option) };
}

/** The target without its password, for logs and messages. */
export function describeTarget(target: DatabaseTarget): string {
  return target.dialect === 'sqlite' ? target.file : redact(target.url);
}

function redact(url: string): string {
  try {
    const parsed = new URL(url);
    if (parsed.password) parsed.password = '***';
    return parsed.toString();
  } catch {
    return url.replace(/\/\/[^@/]*@/, '//***@');
  }
}

/** The database could not be reached (refused, reset, timed out, shutting down): worth retrying later. */
export function isUnavailable(error: unknown): boolean {
  const e = error as { code?: unknown; message?: unknown } | undefined;
  const code = typeof e?.code === 'string' ? e.code : '';
  if (['ECONNREFUSED', 'ECONNRESET', 'ETIMEDOUT', 'EPIPE', 'EHOSTUNREACH', 'ENETUNREACH', 'ENOTFOUND', 'EAI_AGAIN'].includes(code)) return true;
  // SQLSTATE class 08 (connection exception), 57P01-57P03 (the server is shutting down or starting) and the
  // session ended for idling (25P03 inside a transaction, 57P05 outside): a fresh connection may try again.
  if (/^08|^57P0[1235]$|^25P03$/.test(code)) return true;
  if (code === 'SQLITE_BUSY' || code === 'SQLITE_LOCKED') return true;
  const message = typeof e?.message === 'string' ? e.message : '';
  return /Connection terminated|connection timeout|timeout exceeded when trying to connect|Client has encountered a connection error|Connection ended/i.test(message);
}

/** A unique or primary key was violated (two writers raced to insert the same row). */
export function isUniqueViolation(error: unknown): boolean {
  const code = (error as { code?: unknown } | undefined)?.code;
  return code === '23505' || code === 'SQLITE_CONSTRAINT_PRIMARYKEY' || code === 'SQLITE_CONSTRAINT_UNIQUE';
}

export class DatabaseUnavailableError extends Error {
  constructor(target: DatabaseTarget, cause: unknown) {
    super(`cannot reach the database ${describeTarget(target)}: ${(cause as Error).message ?? String(cause)}`);
    this.name = 'DatabaseUnavailableError';
  }
}

export class Database {
  private constructor(
    readonly db: Kysely<Schema>,
    readonly dialect: Dialect,
    readonly target: DatabaseTarget,
    /** PostgreSQL only: LISTEN needs a connection of its own, made from the same settings. */
    readonly pgConfig?: pg.PoolConfig,
  ) {}

  /** Opens and migrates; an unreachable database is a DatabaseUnavailableError (one plain line for the CLI). */
  static async open(target: DatabaseTarget): Promise<Database> {
    if (target.dialect === 'sqlite') return Database.openSqlite(target);
    const config: pg.PoolConfig = {
      connectionString: target.url,
      max: 10,
      connectionTimeoutMillis: 5_000,
      idle_in_transaction_session_timeout: idleInTransactionTimeoutMs,
      // BIGINT (epoch milliseconds, counters) as numbers: every value Attune keeps fits in 2^53.
      types: { getTypeParser: ((oid: number, format?: 'text' | 'binary') => (oid === 20 ? Number : pg.types.getTypeParser(oid, format))) as typeof pg.types.getTypeParser },
    };
    const pool = new pg.Pool(config);
    // A connection that breaks (the server went away) fails its query, or is dropped from the pool when idle;
    // its 'error' event must not end the process (one held between two queries of a transaction would).
    pool.on('error', () => {});
    pool.on('connect', (client) => client.on('error', () => {}));
    const database = new Database(new Kysely<Schema>({ dialect: new PostgresDialect({ pool }) }), 'postgres', target, config);
    try {
      await database.migrate();
    } catch (error) {
      await database.close();
      throw isUnavailable(error) ? new DatabaseUnavailableError(target, error) : error;
    }
    return database;
  }

  private static async openSqlite(target: Extract<DatabaseTarget, { dialect: 'sqlite' }>): Promise<Database> {
    mkdirSync(path.dirname(target.file), { recursive: true });
    const handle = new BetterSqlite3(target.file);
    handle.pragma('journal_mode = WAL');
    handle.pragma('synchronous = NORMAL');
    handle.pragma('foreign_keys = ON');
    // Another process (`attune keys create`) may be writing: wait for it rather than fail.
    handle.pragma('busy_timeout = 5000');
    const database = new Database(new Kysely<Schema>({ dialect: new SqliteDialect({ database: handle }) }), 'sqlite', target);
    // Kysely takes no lock across SQLite processes: one write transaction around the whole migration does.
    handle.exec('BEGIN IMMEDIATE');
    try {
      await database.migrate();
      handle.exec('COMMIT');
    } catch (error) {
      if (handle.inTransaction) handle.exec('ROLLBACK');
      await database.close();
      throw error;
    }
    return database;
  }

  private async migrate(): Promise<void> {
    const migrator = new Migrator({ db: this.db, provider: migrationProvider(this.dialect) });
    const { error } = await migrator.migrateToLatest();
    if (error) throw error;
  }

  /** Runs fn in one transaction. */
  transaction<T>(fn: (trx: Kysely<Schema>) => Promise<T>): Promise<T> {
    return this.db.transaction().execute(fn);
  }

  /**
   * Inside a transaction: waits for other transactions holding the same project's lock (PostgreSQL advisory
   * lock, released at commit), so checks of a project's quotas and the writes they allow are not interleaved.
   * SQLite serialises every write transaction already.
   */
  async lockProject(trx: Kysely<Schema>, project: string): Promise<void> {
    if (this.dialect === 'postgres') await sql`SELECT pg_advisory_xact_lock(hashtext(${project}))`.execute(trx);
  }

  /** Whether the database answers now (for /healthz). */
  async ping(): Promise<boolean> {
    try {
      await sql`SELECT 1`.execute(this.db);
      return true;
    } catch {
      return false;
    }
  }

  close(): Promise<void> {
    return this.db.destroy();
  }
}
