// The durable job queue: one row per tuned model's training run, shared by every server and worker on the
// database. A worker claims a job under a lease: FOR UPDATE SKIP LOCKED picks it (so concurrent claimers
// never take the same row), and the claim increments the job's fencing token. The holder heartbeats to keep
// the lease; one that stops (killed, partitioned) loses it when it expires, and the next claim takes the job
// from its last recorded checkpoint. Every write a holder makes carries its token and runs in a transaction
// that first checks the token is still the job's (fenced), so a worker whose lease was taken writes nothing.
//
// Fairness: projects take turns. A claim serves the project whose latest claim is the oldest (a project never
// served first; project_turns keeps each project's latest), and within it the oldest job, so a project that
// queues many jobs cannot starve the others.
//
// Attempts: `attempts` counts the training processes started for a job that did not end cleanly (a graceful
// stop gives its attempt back), so a job whose worker keeps dying is failed after a few, across restarts.
import { sql, type Kysely, type Selectable } from 'kysely';
import { now } from '../tuning/tuned-model.js';
import type { Dialect } from './database.js';
import type { JobTable, Schema, WorkerTable } from './schema.js';
import { atomically } from './transactions.js';

export type JobState = 'queued' | 'running' | 'finished';

export interface Job {
  tunedModelId: string;
  state: JobState;
  attempts: number;
  cancelRequested: boolean;
  /** The current (or last) lease's fencing token; 0 before the first claim. */
  leaseToken: number;
  leaseOwner?: string;
  leaseExpiresMs?: number;
  /** The last checkpoint a lease holder recorded. */
  checkpoint?: Checkpoint;
}

export interface Checkpoint {
  /** Its storage key (checkpoints/<id>/<token>-<step>). */
  key: string;
  step: number;
}

/** A claim: the job and the token every write for it must carry. */
export interface Lease {
  tunedModelId: string;
  token: number;
  workerId: string;
}

export interface ClaimedJob extends Job {
  lease: Lease;
  /** The project whose job it is. */
  project: string;
  /** The lease this claim replaced: its holder stopped heartbeating (or its process is gone). */
  tookOverFrom?: { token: number; workerId: string };
}

/** A queued job as a claimer sees it, to decide whether it can hold it. */
export interface Candidate {
  tunedModelId: string;
  project: string;
  baseModel: string;
  baseDir: string;
  /** Set when the base model is a folder in the object store (Vertex customBaseModel): baseDir is it. */
  customBaseModel?: string;
  hyperparameters: string;
}

export interface ClaimOptions {
  workerId: string;
  leaseMs: number;
  /** Workers known to be gone (their leases are taken at once rather than at expiry). */
  deadWorkers?: string[];
  /** Whether this worker can hold the job; a string says why not (the job is left for another worker). */
  canHold?: (candidate: Candidate) => Promise<true | string> | true | string;
  /** Candidates looked at per claim. */
  candidates?: number;
}

/** The job's lease is no longer this holder's: another worker claimed it, or the job was deleted or ended. */
export class LeaseLostError extends Error {
  constructor(
    readonly lease: Lease,
    readonly reason: 'taken' | 'deleted' | 'ended',
  ) {
    super(`the lease of job ${lease.tunedModelId} (token ${lease.token}) is lost: ${reason === 'taken' ? 'another worker claimed it' : reason === 'deleted' ? 'the job was deleted' : 'the job ended'}`);
    this.name = 'LeaseLostError';
  }
}

export interface WorkerInfo {
  id: string;
  host: string;
  bootId: string;
  pid: number;
  device: string;
  dtype: string;
  memoryBytes?: number;
  concurrency: number;
}

const fromRow = (r: Selectable<JobTable>): Job => ({
  tunedModelId: r.tuned_model_id,
  state: r.state as JobState,
  attempts: r.attempts,
  cancelRequested: r.cancel_requested === 1,
  leaseToken: r.lease_token,
  leaseOwner: r.lease_owner ?? undefined,
  leaseExpiresMs: r.lease_expires_ms ?? undefined,
  checkpoint: r.checkpoint_key !== null && r.checkpoint_step !== null ? { key: r.checkpoint_key, step: r.checkpoint_step } : undefined,
});

/** The database's clock in epoch milliseconds: every machine's leases are timed by one clock. */
export function databaseNowMs(dialect: Dialect) {
  return dialect === 'postgres'
    ? sql<number>`(extract(epoch from clock_timestamp()) * 1000)::bigint`
    : sql<number>`CAST(unixepoch('subsec') * 1000 AS INTEGER)`;
}

export class JobQueue {
  constructor(
    private readonly db: Kysely<Schema>,
    readonly dialect: Dialect,
  ) {}

  in(trx: Kysely<Schema>): JobQueue {
    return new JobQueue(trx, this.dialect);
  }

  private get nowMs() {
    return databaseNowMs(this.dialect);
  }

  async enqueue(tunedModelId: string, project: string): Promise<void> {
    await this.db
      .insertInto('jobs')
      .values({ tuned_model_id: tunedModelId, project, state: 'queued', attempts: 0, cancel_requested: 0, enqueue_time: now(), lease_token: 0, lease_owner: null, lease_expires_ms: null, checkpoint_key: null, checkpoint_step: null, checkpoint_time: null })
      .execute();
  }

  async get(tunedModelId: string): Promise<Job | undefined> {
    const row = await this.db.selectFrom('jobs').selectAll().where('tuned_model_id', '=', tunedModelId).executeTakeFirst();
    return row && fromRow(row);
  }

  /** Jobs of a project that are queued or running. */
  async unfinishedCount(project: string): Promise<number> {
    const row = await this.db
      .selectFrom('jobs as j')
      .select((eb) => eb.fn.countAll<number>().as('n'))
      .where('j.project', '=', project)
      .where('j.state', '!=', 'finished')
      .executeTakeFirstOrThrow();
    return Number(row.n);
  }

  /**
   * Claims the next job this worker can hold, under a lease: a queued one, or a running one whose lease
   * expired (or whose worker is known dead). Returns undefined when there is none.
   */
  async claim(options: ClaimOptions): Promise<ClaimedJob | undefined> {
    const claimed = await this.claimJob(options);
    // The project's turn, after the claim commits: every claimer would queue behind one row lock otherwise
    // (a claim lost between the two only bends fairness once).
    if (claimed) {
      const next = sql<number>`(SELECT COALESCE(MAX(last_claim), 0) + 1 FROM project_turns)`;
      await this.db
        .insertInto('project_turns')
        .values({ project: claimed.project, last_claim: next })
        .onConflict((oc) => oc.column('project').doUpdateSet((eb) => ({ last_claim: eb.ref('excluded.last_claim') })))
        .execute();
    }
    return claimed;
  }

  /**
   * Two steps, so that a claim locks only the row it takes. First the candidates are read without a lock and
   * this worker judges which it can hold (no transaction is open meanwhile); then one short transaction takes
   * the first of those still claimable, skipping rows another transaction holds. Locking every candidate while
   * judging them would hide jobs from the other claimers (they skip locked rows, and would wait for their next
   * poll): a worker that can hold none of them, or one frozen mid-claim, would starve the rest.
   */
  private async claimJob({ workerId, leaseMs, deadWorkers = [], canHold, candidates = 16 }: ClaimOptions): Promise<ClaimedJob | undefined> {
    for (let look = 0; look < 3; look++) {
      const rows = await this.claimable(this.db, deadWorkers)
        .innerJoin('tuned_models as m', 'm.id', 'j.tuned_model_id')
        .select(['j.tuned_model_id', 'm.project', 'm.base_model', 'm.base_dir', 'm.custom_base_model', 'm.hyperparameters'])
        .limit(candidates)
        .execute();
      if (rows.length === 0) return undefined;
      const holdable: string[] = [];
      for (const row of rows) {
        const verdict = canHold
          ? await canHold({ tunedModelId: row.tuned_model_id, project: row.project, baseModel: row.base_model, baseDir: row.base_dir, customBaseModel: row.custom_base_model ?? undefined, hyperparameters: row.hyperparameters })
          : true;
        if (verdict === true) holdable.push(row.tuned_model_id);
      }
      if (holdable.length === 0) return undefined;
      const claimed = await this.take(holdable, { workerId, leaseMs, deadWorkers });
      if (claimed) return { ...claimed, project: rows.find((r) => r.tuned_model_id === claimed.tunedModelId)!.project };
      // Every one was taken by other claimers meanwhile: look again (there may be more behind them).
    }
    return undefined;
  }

  /** Jobs a claim may take: queued, or running under a lease that expired (or whose worker is gone); fairest first. */
  private claimable(db: Kysely<Schema>, deadWorkers: string[]) {
    return db
      .selectFrom('jobs as j')
      .leftJoin('project_turns as t', 't.project', 'j.project')
      .where((eb) =>
        eb.or([
          eb('j.state', '=', 'queued'),
          eb.and([
            eb('j.state', '=', 'running'),
            eb.or([eb('j.lease_expires_ms', '<', this.nowMs), ...(deadWorkers.length ? [eb('j.lease_owner', 'in', deadWorkers)] : [])]),
          ]),
        ]),
      )
      .orderBy(sql`COALESCE(t.last_claim, 0)`)
      .orderBy('j.enqueue_time')
      .orderBy('j.tuned_model_id');
  }

  /** Takes the first of these jobs that is still claimable and not locked by another transaction. */
  private async take(ids: string[], { workerId, leaseMs, deadWorkers }: { workerId: string; leaseMs: number; deadWorkers: string[] }): Promise<Omit<ClaimedJob, 'project'> | undefined> {
    return this.db.transaction().execute(async (trx) => {
      const row = await this.claimable(trx, deadWorkers)
        .selectAll('j')
        .where('j.tuned_model_id', 'in', ids)
        .limit(1)
        .$if(this.dialect === 'postgres', (q) => q.forUpdate('j').skipLocked())
        .executeTakeFirst();
      if (!row) return undefined;
      const claimed = await trx
        .updateTable('jobs')
        .set((eb) => ({ state: 'running', lease_token: eb('lease_token', '+', 1), lease_owner: workerId, lease_expires_ms: sql<number>`${this.nowMs} + ${leaseMs}` }))
        .where('tuned_model_id', '=', row.tuned_model_id)
        .returningAll()
        .executeTakeFirstOrThrow();
      const lease: Lease = { tunedModelId: row.tuned_model_id, token: claimed.lease_token, workerId };
      const took = row.state === 'running' && row.lease_owner ? { token: row.lease_token, workerId: row.lease_owner } : undefined;
      if (took) {
        await trx
          .updateTable('leases')
          .set({ end_ms: this.nowMs, outcome: 'expired' })
          .where('tuned_model_id', '=', row.tuned_model_id)
          .where('token', '=', took.token)
          .where('end_ms', 'is', null)
          .execute();
      }
      await trx
        .insertInto('leases')
        .values({ tuned_model_id: lease.tunedModelId, token: lease.token, worker_id: workerId, claim_ms: this.nowMs, heartbeat_ms: this.nowMs, end_ms: null, outcome: null })
        .execute();
      return { ...fromRow(claimed), lease, tookOverFrom: took };
    });
  }

  /**
   * Runs fn in a transaction that holds the job's row and has checked the lease is still the holder's;
   * throws LeaseLostError (writing nothing) when it is not.
   */
  async fenced<T>(lease: Lease, fn: (trx: Kysely<Schema>) => Promise<T>): Promise<T> {
    return atomically(this.db, async (trx) => {
      const row = await trx
        .selectFrom('jobs')
        .select(['state', 'lease_token'])
        .where('tuned_model_id', '=', lease.tunedModelId)
        .$if(this.dialect === 'postgres', (q) => q.forUpdate())
        .executeTakeFirst();
      if (!row) throw new LeaseLostError(lease, 'deleted');
      if (row.lease_token !== lease.token) throw new LeaseLostError(lease, 'taken');
      if (row.state !== 'running') throw new LeaseLostError(lease, 'ended');
      return fn(trx);
    });
  }

  /** Extends the lease; says whether it is still held and whether a cancel was asked for. */
  async heartbeat(lease: Lease, leaseMs: number): Promise<{ held: boolean; cancelRequested: boolean }> {
    return atomically(this.db, async (trx) => {
      const row = await trx
        .updateTable('jobs')
        .set({ lease_expires_ms: sql<number>`${this.nowMs} + ${leaseMs}` })
        .where('tuned_model_id', '=', lease.tunedModelId)
        .where('lease_token', '=', lease.token)
        .where('state', '=', 'running')
        .returning('cancel_requested')
        .executeTakeFirst();
      if (!row) return { held: false, cancelRequested: false };
      await trx
        .updateTable('leases')
        .set({ heartbeat_ms: this.nowMs })
        .where('tuned_model_id', '=', lease.tunedModelId)
        .where('token', '=', lease.token)
        .execute();
      return { held: true, cancelRequested: row.cancel_requested === 1 };
    });
  }

  /** A training process is starting under the lease: counts the attempt durably first; returns the count. */
  async attemptStarted(lease: Lease): Promise<number> {
    return this.fenced(lease, async (trx) => {
      const row = await trx
        .updateTable('jobs')
        .set((eb) => ({ attempts: eb('attempts', '+', 1) }))
        .where('tuned_model_id', '=', lease.tunedModelId)
        .returning('attempts')
        .executeTakeFirstOrThrow();
      return row.attempts;
    });
  }

  /** The training process ended as asked (it checkpointed and stopped): its attempt does not count. */
  async attemptEndedCleanly(lease: Lease): Promise<void> {
    await this.fenced(lease, (trx) =>
      trx
        .updateTable('jobs')
        .set({ attempts: sql<number>`CASE WHEN attempts > 0 THEN attempts - 1 ELSE 0 END` })
        .where('tuned_model_id', '=', lease.tunedModelId)
        .execute(),
    );
  }

  /** Records where the last checkpoint is; a later claim resumes from it. */
  async recordCheckpoint(lease: Lease, checkpoint: Checkpoint): Promise<void> {
    await this.fenced(lease, (trx) =>
      trx.updateTable('jobs').set({ checkpoint_key: checkpoint.key, checkpoint_step: checkpoint.step, checkpoint_time: now() }).where('tuned_model_id', '=', lease.tunedModelId).execute(),
    );
  }

  /**
   * Gives the job back to the queue (a graceful stop: it checkpointed first). `cleanly` gives the attempt back
   * too, as the training process ended as asked.
   */
  async release(lease: Lease, { cleanly }: { cleanly: boolean }): Promise<void> {
    await this.fenced(lease, async (trx) => {
      await trx
        .updateTable('jobs')
        .set((eb) => ({
          state: 'queued',
          lease_owner: null,
          lease_expires_ms: null,
          ...(cleanly ? { attempts: sql<number>`CASE WHEN attempts > 0 THEN attempts - 1 ELSE 0 END` } : {}),
        }))
        .where('tuned_model_id', '=', lease.tunedModelId)
        .execute();
      await this.in(trx).endLease(lease, 'released');
    });
  }

  /** The run ended (inside the fenced transaction that records its outcome). */
  async finish(lease: Lease): Promise<void> {
    await this.db
      .updateTable('jobs')
      .set({ state: 'finished', lease_owner: null, lease_expires_ms: null })
      .where('tuned_model_id', '=', lease.tunedModelId)
      .execute();
    await this.endLease(lease, 'finished');
  }

  /** Finishes a job no worker holds (a queued job that is cancelled, or one whose model ended or vanished). */
  async finishUnleased(tunedModelId: string): Promise<void> {
    await this.db.updateTable('jobs').set({ state: 'finished', lease_owner: null, lease_expires_ms: null }).where('tuned_model_id', '=', tunedModelId).execute();
  }

  private async endLease(lease: Lease, outcome: string): Promise<void> {
    await this.db
      .updateTable('leases')
      .set({ end_ms: this.nowMs, outcome })
      .where('tuned_model_id', '=', lease.tunedModelId)
      .where('token', '=', lease.token)
      .execute();
  }

  /** Asks for a cancel; returns the job as it was (queued, running, finished or gone), holding its row. */
  async requestCancel(tunedModelId: string): Promise<Job | undefined> {
    return atomically(this.db, async (trx) => {
      const row = await trx
        .selectFrom('jobs')
        .selectAll()
        .where('tuned_model_id', '=', tunedModelId)
        .$if(this.dialect === 'postgres', (q) => q.forUpdate())
        .executeTakeFirst();
      if (!row) return undefined;
      await trx.updateTable('jobs').set({ cancel_requested: 1 }).where('tuned_model_id', '=', tunedModelId).execute();
      return fromRow(row);
    });
  }

  /** Every lease the job has had, oldest first. */
  async leases(tunedModelId: string): Promise<Selectable<Schema['leases']>[]> {
    return this.db.selectFrom('leases').selectAll().where('tuned_model_id', '=', tunedModelId).orderBy('token').execute();
  }

  // Workers: each advertises itself, heartbeats, and says when it stops.

  async registerWorker(info: WorkerInfo): Promise<void> {
    await this.db
      .insertInto('workers')
      .values({
        id: info.id, host: info.host, boot_id: info.bootId, pid: info.pid, device: info.device, dtype: info.dtype,
        memory_bytes: info.memoryBytes ?? null, concurrency: info.concurrency, start_ms: this.nowMs, heartbeat_ms: this.nowMs, stop_ms: null,
      })
      .execute();
  }

  async workerHeartbeat(id: string, memoryBytes?: number): Promise<void> {
    await this.db.updateTable('workers').set({ heartbeat_ms: this.nowMs, ...(memoryBytes !== undefined ? { memory_bytes: memoryBytes } : {}) }).where('id', '=', id).execute();
  }

  async workerStopped(ids: string[]): Promise<void> {
    if (ids.length) await this.db.updateTable('workers').set({ stop_ms: this.nowMs }).where('id', 'in', ids).where('stop_ms', 'is', null).execute();
  }

  /** Marks gone workers stopped once no running job's lease names them. */
  async workersStoppedIfIdle(ids: string[]): Promise<void> {
    if (!ids.length) return;
    await this.db
      .updateTable('workers')
      .set({ stop_ms: this.nowMs })
      .where('id', 'in', ids)
      .where((eb) => eb.not(eb.exists(eb.selectFrom('jobs').select('jobs.tuned_model_id').whereRef('jobs.lease_owner', '=', 'workers.id').where('jobs.state', '=', 'running'))))
      .execute();
  }

  /** Workers on a host (same boot) that have not said they stopped. */
  async runningWorkersOn(host: string, bootId: string): Promise<Selectable<WorkerTable>[]> {
    return this.db.selectFrom('workers').selectAll().where('host', '=', host).where('boot_id', '=', bootId).where('stop_ms', 'is', null).execute();
  }

  /** Workers that heartbeat within the last `withinMs` (database clock). */
  async liveWorkers(withinMs: number): Promise<Selectable<WorkerTable>[]> {
    return this.db.selectFrom('workers').selectAll().where('stop_ms', 'is', null).where('heartbeat_ms', '>', sql<number>`${this.nowMs} - ${withinMs}`).orderBy('start_ms').execute();
  }
}
