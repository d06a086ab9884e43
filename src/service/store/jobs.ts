// The durable job queue: one row per tuned model's training run. A row survives a crash, so a restarted
// server finds runs that were queued or running and starts them again (from their last checkpoint).
//
// Fairness: projects take turns. claim() serves the project whose last claim is the oldest (a project never
// served first), and within it the oldest queued job, so a project that queues many jobs cannot starve the
// others. `claim_seq` orders claims.
//
// Attempts: `attempts` counts the workers started for a job that did not end cleanly. It is stored, so a job
// whose worker keeps dying (or takes the server down with it) is failed after a few attempts, across restarts.
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

  /** Marks the next queued job running (round-robin across projects, oldest first within one) and returns it. */
  claim(): Job | undefined {
    return this.db.transaction(() => {
      const row = this.db
        .prepare(
          `WITH turns AS (
             SELECT m.project, MAX(j.claim_seq) AS last FROM jobs j JOIN tuned_models m ON m.id = j.tuned_model_id GROUP BY m.project
           )
           SELECT j.* FROM jobs j JOIN tuned_models m ON m.id = j.tuned_model_id LEFT JOIN turns t ON t.project = m.project
           WHERE j.state = 'queued'
           ORDER BY COALESCE(t.last, 0), j.enqueue_time, j.rowid LIMIT 1`,
        )
        .get() as Row | undefined;
      if (!row) return undefined;
      this.db
        .prepare("UPDATE jobs SET state = 'running', claim_seq = (SELECT COALESCE(MAX(claim_seq), 0) + 1 FROM jobs) WHERE tuned_model_id = ?")
        .run(row.tuned_model_id);
      return fromRow({ ...row, state: 'running' });
    })();
  }

  /** A worker is starting for the job: counts the attempt (durably, before the worker can crash anything); returns the count. */
  attemptStarted(tunedModelId: string): number {
    this.db.prepare('UPDATE jobs SET attempts = attempts + 1 WHERE tuned_model_id = ?').run(tunedModelId);
    return this.get(tunedModelId)?.attempts ?? 1;
  }

  /** The worker ended cleanly (it checkpointed and stopped when asked): that attempt does not count. */
  attemptEndedCleanly(tunedModelId: string): void {
    this.db.prepare('UPDATE jobs SET attempts = MAX(attempts - 1, 0) WHERE tuned_model_id = ?').run(tunedModelId);
  }

  /** Jobs of a project that are queued or running. */
  unfinishedCount(project: string): number {
    return (
      this.db
        .prepare("SELECT COUNT(*) AS n FROM jobs j JOIN tuned_models m ON m.id = j.tuned_model_id WHERE m.project = ? AND j.state != 'finished'")
        .get(project) as { n: number }
    ).n;
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
