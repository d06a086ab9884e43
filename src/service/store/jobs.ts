// The durable job queue: one row per tuned model's training run. A row survives a crash, so a restarted
// server finds runs that were queued or running and starts them again (from their last checkpoint).
import type { Kysely, Selectable } from 'kysely';
import { now } from '../tuning/tuned-model.js';
import type { Dialect } from './database.js';
import type { JobTable, Schema } from './schema.js';
import { atomically } from './transactions.js';

export type JobState = 'queued' | 'running' | 'finished';

export interface Job {
  tunedModelId: string;
  state: JobState;
  attempts: number;
  cancelRequested: boolean;
}

const fromRow = (r: Selectable<JobTable>): Job => ({
  tunedModelId: r.tuned_model_id,
  state: r.state as JobState,
  attempts: r.attempts,
  cancelRequested: r.cancel_requested === 1,
});

export class JobQueue {
  constructor(
    private readonly db: Kysely<Schema>,
    readonly dialect: Dialect,
  ) {}

  in(trx: Kysely<Schema>): JobQueue {
    return new JobQueue(trx, this.dialect);
  }

  async enqueue(tunedModelId: string): Promise<void> {
    await this.db.insertInto('jobs').values({ tuned_model_id: tunedModelId, state: 'queued', attempts: 0, cancel_requested: 0, enqueue_time: now() }).execute();
  }

  /** Marks the oldest queued job running and returns it, or undefined when none waits. */
  async claim(): Promise<Job | undefined> {
    return atomically(this.db, async (trx) => {
      const row = await trx.selectFrom('jobs').selectAll().where('state', '=', 'queued').orderBy('enqueue_time').limit(1).executeTakeFirst();
      if (!row) return undefined;
      await trx.updateTable('jobs').set((eb) => ({ state: 'running', attempts: eb('attempts', '+', 1) })).where('tuned_model_id', '=', row.tuned_model_id).execute();
      return fromRow({ ...row, state: 'running', attempts: row.attempts + 1 });
    });
  }

  async get(tunedModelId: string): Promise<Job | undefined> {
    const row = await this.db.selectFrom('jobs').selectAll().where('tuned_model_id', '=', tunedModelId).executeTakeFirst();
    return row && fromRow(row);
  }

  async requestCancel(tunedModelId: string): Promise<void> {
    await this.db.updateTable('jobs').set({ cancel_requested: 1 }).where('tuned_model_id', '=', tunedModelId).execute();
  }

  async finish(tunedModelId: string): Promise<void> {
    await this.db.updateTable('jobs').set({ state: 'finished' }).where('tuned_model_id', '=', tunedModelId).execute();
  }

  /** After a crash or restart: runs left 'running' have no worker any more; queue them again. */
  async requeueInterrupted(): Promise<number> {
    const result = await this.db.updateTable('jobs').set({ state: 'queued' }).where('state', '=', 'running').executeTakeFirst();
    return Number(result.numUpdatedRows);
  }
}
