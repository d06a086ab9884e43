// What happened to jobs and tuned models, told to every process that cares: workers wake for a queued job or
// a cancel, API servers follow a run's metrics and state for their SSE streams and drop deleted adapters.
// On PostgreSQL events travel by NOTIFY on one channel and every process LISTENs (its own events come back to
// it the same way), so a stream opened on any server follows a run any worker reports. On SQLite (one
// process) they stay in-process. Events are hints: a listener re-reads the database, so a missed or repeated
// event costs nothing but latency ('resync' says events may have been missed).
import { EventEmitter } from 'node:events';
import pg from 'pg';
import { sql } from 'kysely';
import type { Database } from './database.js';

export type ServiceEvent =
  /** A job was queued (or released): a worker with a free slot may claim it. */
  | { type: 'queued' }
  /** A cancel was asked for: the lease holder stops the run. */
  | { type: 'cancel'; id: string }
  /** The tuned model is gone: its holder stops, caches drop it. */
  | { type: 'deleted'; id: string }
  /** The tuned model changed (state, progress). */
  | { type: 'change'; id: string }
  /** A metric was recorded. */
  | { type: 'metric'; id: string; kind: 'train' | 'eval'; step: number }
  /** The event connection was lost and is back: re-read whatever is followed. */
  | { type: 'resync' };

export interface EventBus {
  publish(event: ServiceEvent): Promise<void>;
  /** Returns the function that unsubscribes. */
  subscribe(listener: (event: ServiceEvent) => void): () => void;
  close(): Promise<void>;
}

const channel = 'attune_events';

class LocalEventBus implements EventBus {
  private readonly emitter = new EventEmitter().setMaxListeners(0); // every open metrics stream listens

  async publish(event: ServiceEvent): Promise<void> {
    this.emitter.emit('event', event);
  }

  subscribe(listener: (event: ServiceEvent) => void): () => void {
    this.emitter.on('event', listener);
    return () => this.emitter.off('event', listener);
  }

  async close(): Promise<void> {
    this.emitter.removeAllListeners();
  }
}

/** LISTEN on a connection of its own, reconnecting with backoff; NOTIFY through the pool. */
class PostgresEventBus implements EventBus {
  private readonly local = new LocalEventBus();
  private client?: pg.Client;
  private closed = false;
  private retryMs = 250;
  private retryTimer?: NodeJS.Timeout;

  constructor(
    private readonly database: Database,
    private readonly config: pg.ClientConfig,
  ) {}

  async start(): Promise<void> {
    await this.connect();
  }

  private async connect(): Promise<void> {
    const client = new pg.Client(this.config);
    client.on('notification', (message) => {
      if (message.channel !== channel || !message.payload) return;
      try {
        void this.local.publish(JSON.parse(message.payload) as ServiceEvent);
      } catch {
        // not ours
      }
    });
    client.on('error', () => this.reconnectSoon(client));
    client.on('end', () => this.reconnectSoon(client));
    try {
      await client.connect();
      await client.query(`LISTEN ${channel}`);
    } catch (error) {
      client.removeAllListeners('end');
      void client.end().catch(() => {});
      throw error;
    }
    this.client = client;
    this.retryMs = 250;
  }

  private reconnectSoon(broken: pg.Client): void {
    if (this.closed || this.client !== broken) return;
    this.client = undefined;
    broken.removeAllListeners('end');
    void broken.end().catch(() => {});
    const attempt = () => {
      this.retryTimer = undefined;
      if (this.closed) return;
      this.connect().then(
        () => void this.local.publish({ type: 'resync' }),
        () => {
          this.retryMs = Math.min(this.retryMs * 2, 5_000);
          this.retryTimer = setTimeout(attempt, this.retryMs);
        },
      );
    };
    this.retryTimer = setTimeout(attempt, this.retryMs);
  }

  async publish(event: ServiceEvent): Promise<void> {
    await sql`SELECT pg_notify(${channel}, ${JSON.stringify(event)})`.execute(this.database.db);
  }

  subscribe(listener: (event: ServiceEvent) => void): () => void {
    return this.local.subscribe(listener);
  }

  async close(): Promise<void> {
    this.closed = true;
    clearTimeout(this.retryTimer);
    await this.local.close();
    const client = this.client;
    this.client = undefined;
    await client?.end().catch(() => {});
  }
}

export async function openEventBus(database: Database): Promise<EventBus> {
  if (database.dialect === 'sqlite' || !database.pgConfig) return new LocalEventBus();
  const bus = new PostgresEventBus(database, database.pgConfig);
  await bus.start();
  return bus;
}
