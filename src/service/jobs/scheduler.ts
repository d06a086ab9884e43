// PLACEHOLDER until the worker-process scheduler lands: the interface the rest of the service uses.
import type { TuningService, RunControl } from '../tuning/service.js';
import type { JobQueue } from '../store/jobs.js';

export class Scheduler implements RunControl {
  constructor(
    readonly tuning: TuningService,
    readonly jobs: JobQueue,
    readonly concurrency: number,
  ) {}
  /** Requeues interrupted jobs and starts queued ones. */
  start(): void {}
  wake(): void {}
  cancel(_tunedModelId: string): void {}
  /** Stops workers after checkpointing; their jobs stay queued for the next start. */
  async stop(): Promise<void> {}
}
