// Waiting requests, one FIFO per project, served round-robin: after a project is served it goes to the
// back of the line, so a project with one request waits behind at most one request of each other project,
// however many the others have queued. Bounded per project and in all.
import { resourceExhausted, type ServiceError } from '../errors.js';

export interface QueueBounds {
  perProject: number;
  total: number;
}

export class FairQueue<T> {
  /** Projects with waiting items, in the order they take their turns. */
  private readonly projects = new Map<string, T[]>();
  private count = 0;

  constructor(private readonly bounds: QueueBounds) {}

  get size(): number {
    return this.count;
  }

  sizeOf(project: string): number {
    return this.projects.get(project)?.length ?? 0;
  }

  /** The error for a full queue, or undefined when `project` may add one more. */
  refusal(project: string, retryDelaySeconds: number): ServiceError | undefined {
    if (this.sizeOf(project) >= this.bounds.perProject) {
      return resourceExhausted(
        `Too many generation requests of project ${project} are waiting for this model (queuedGenerationsPerProject is ${this.bounds.perProject}); retry later.`,
        retryDelaySeconds,
      );
    }
    if (this.count >= this.bounds.total) {
      return resourceExhausted(
        `Too many generation requests are waiting for this model (queuedGenerationsPerBaseModel is ${this.bounds.total}); retry later.`,
        retryDelaySeconds,
      );
    }
    return undefined;
  }

  push(project: string, item: T): void {
    let fifo = this.projects.get(project);
    if (!fifo) this.projects.set(project, (fifo = []));
    fifo.push(item);
    this.count++;
  }

  /** Puts an item back at the head of its project's line (a paused request goes on before newer ones). */
  pushFront(project: string, item: T): void {
    let fifo = this.projects.get(project);
    if (!fifo) this.projects.set(project, (fifo = []));
    fifo.unshift(item);
    this.count++;
  }

  /** Projects with waiting items. */
  get waitingProjects(): Iterable<string> {
    return this.projects.keys();
  }

  remove(project: string, item: T): boolean {
    const fifo = this.projects.get(project);
    const at = fifo?.indexOf(item) ?? -1;
    if (!fifo || at < 0) return false;
    fifo.splice(at, 1);
    this.count--;
    if (fifo.length === 0) this.projects.delete(project);
    return true;
  }

  /** Whose turn it is: each project in turn offers its oldest item that `ready` accepts. */
  peek(ready: (item: T) => boolean): { project: string; item: T } | undefined {
    return this.offers(ready).next().value ?? undefined;
  }

  /** Every project's offer (its oldest item that `ready` accepts), in turn order. */
  *offers(ready: (item: T) => boolean): Generator<{ project: string; item: T }> {
    for (const [project, fifo] of this.projects) {
      const item = fifo.find(ready);
      if (item !== undefined) yield { project, item };
    }
  }

  /** Takes an item peek() offered; its project goes to the back of the line. */
  take(project: string, item: T): void {
    if (!this.remove(project, item)) return;
    const fifo = this.projects.get(project);
    if (fifo) {
      this.projects.delete(project);
      this.projects.set(project, fifo);
    }
  }

  /** A project's waiting items, oldest first. */
  itemsOf(project: string): readonly T[] {
    return this.projects.get(project) ?? [];
  }

  *items(): Generator<T> {
    for (const fifo of this.projects.values()) yield* fifo;
  }
}
