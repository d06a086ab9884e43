// The durable job queue: one row per tuned model's training run. A row survives a crash, so a restarted
// server finds runs that were queued or running and starts them again (from their last checkpoint).
import type { Db } from './database.js';
import { now } from '../tuning/tuned-model.js';

export type JobState = 'queued' | 'running' | 'finished';

export interface Job {
  tunedModelId: string;
  state: JobState;
  attempts: number;
  cancelRequested: boolean;
}

interface Row {
  tuned_model_id: string;
  state: JobState;
  attempts: number;
  cancel_requested: number;
}

const fromRow = (r: Row): Job => ({
  tunedModelId: r.tuned_model_id,
  state: r.state,
  attempts: r.attempts,
  cancelRequested: r.cancel_requested === 1,
});

export class JobQueue {
  constructor(private readonly db: Db) {}

  enqueue(tunedModelId: string): void {
    this.db.prepare("INSERT INTO jobs (tuned_model_id, state, enqueue_time) VALUES (?, 'queued', ?)").run(tunedModelId, now());
  }

  /** Marks the oldest queued job running and returns it, or undefined when none waits. */
  claim(): Job | undefined {
    return this.db.transaction(() => {
      const row = this.db.prepare("SELECT * FROM jobs WHERE state = 'queued' ORDER BY enqueue_time LIMIT 1").get() as Row | undefined;
      if (!row) return undefined;
      this.db.prepare("UPDATE jobs SET state = 'running', attempts = attempts + 1 WHERE tuned_model_id = ?").run(row.tuned_model_id);
      return fromRow({ ...row, state: 'running', attempts: row.attempts + 1 });
    })();
  }

  get(tunedModelId: string): Job | undefined {
    const row = this.db.prepare('SELECT * FROM jobs WHERE tuned_model_id = ?').get(tunedModelId) as Row | undefined;
    return row && fromRow(row);
  }

  requestCancel(tunedModelId: string): void {
    this.db.prepare('UPDATE jobs SET cancel_requested = 1 WHERE tuned_model_id = ?').run(tunedModelId);
  }

  finish(tunedModelId: string): void {
    this.db.prepare("UPDATE jobs SET state = 'finished' WHERE tuned_model_id = ?").run(tunedModelId);
  }

  /** After a crash or restart: runs left 'running' have no worker any more; queue them again. */
  requeueInterrupted(): number {
    return this.db.prepare("UPDATE jobs SET state = 'queued' WHERE state = 'running'").run().changes;
  }
}
