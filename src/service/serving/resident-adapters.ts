// Which tuned models' adapters occupy the adapter stack's slots on one base model: a bounded set, least
// recently used first out, loaded from disk on demand.
//
// A job holds its adapter from the moment it is queued until it ends, so a slot in use is never replaced.
// A request for an adapter that is not resident takes a free slot, or the least recently used slot that
// no job holds, and reads the files in the background (async I/O): the decode loop keeps stepping, and
// the weights are copied into the slot between two steps. When every slot is held, the request waits for
// one to be released; requests for resident adapters go ahead meanwhile.
import type { AdapterStack } from '../../engine/lora/adapter-stack.js';
import type { AdapterRef } from './job.js';

interface Entry {
  ref: AdapterRef;
  slot: number;
  state: 'waiting' | 'loading' | 'resident';
  /** Jobs holding it. */
  users: number;
  /** Dropped (its model was deleted): its slot is freed when its last user lets go. */
  forgotten: boolean;
  ready: Promise<number>;
  settle: { resolve(slot: number): void; reject(error: unknown): void };
}

/** One job's hold on an adapter. */
export interface AdapterLease {
  /** Settles with the slot once the adapter is resident; rejects if it cannot be loaded. */
  readonly ready: Promise<number>;
  /** The slot while resident, else undefined. */
  slot(): number | undefined;
  /** Ends the hold; a second call does nothing. */
  release(): void;
}

export class ResidentAdapters {
  /** By key, least recently used first. */
  private readonly entries = new Map<string, Entry>();
  private readonly freeSlots: number[];

  constructor(
    private readonly stack: AdapterStack,
    /** Called when an adapter becomes resident (a waiting job may now run). */
    private readonly onResident: () => void,
  ) {
    this.freeSlots = Array.from({ length: stack.slots }, (_, i) => stack.slots - 1 - i); // lowest slots first
  }

  /** Adapters resident or being loaded. */
  get size(): number {
    let n = 0;
    for (const entry of this.entries.values()) if (entry.state !== 'waiting') n++;
    return n;
  }

  /** Holds ref's adapter for one job, loading it if needed. */
  acquire(ref: AdapterRef): AdapterLease {
    let entry = this.entries.get(ref.key);
    if (entry && !entry.forgotten) {
      this.entries.delete(ref.key); // most recently used goes last
      this.entries.set(ref.key, entry);
    } else {
      let settle!: Entry['settle'];
      const ready = new Promise<number>((resolve, reject) => (settle = { resolve, reject }));
      ready.catch(() => {}); // each acquirer awaits it; an unawaited rejection must not crash the process
      entry = { ref, slot: -1, state: 'waiting', users: 0, forgotten: false, ready, settle };
      this.entries.set(ref.key, entry);
    }
    entry.users++;
    this.schedule();
    const held = entry;
    let released = false;
    return {
      ready: held.ready,
      slot: () => (held.state === 'resident' ? held.slot : undefined),
      release: () => {
        if (released) return;
        released = true;
        this.release(held);
      },
    };
  }

  private release(entry: Entry): void {
    if (entry.users === 0) return;
    entry.users--;
    if (entry.users > 0) return;
    if (entry.state === 'waiting' || (entry.forgotten && entry.state === 'resident')) this.drop(entry);
    this.schedule();
  }

  /** Forgets every version of a tuned model's adapter: at once where no job holds it, else when its last job ends. */
  forget(modelId: string): void {
    for (const entry of [...this.entries.values()]) {
      if (entry.ref.modelId !== modelId) continue;
      entry.forgotten = true;
      if (entry.users === 0 && entry.state !== 'loading') this.drop(entry);
    }
    this.schedule();
  }

  /** Starts loading waiting adapters into free slots, or into slots whose adapters no job holds. */
  private schedule(): void {
    for (const entry of this.entries.values()) {
      if (entry.state !== 'waiting' || entry.users === 0) continue;
      const slot = this.freeSlots.pop() ?? this.evictOne();
      if (slot === undefined) return;
      this.load(entry, slot);
    }
  }

  /** Frees the least recently used slot no job holds. */
  private evictOne(): number | undefined {
    for (const entry of this.entries.values()) {
      if (entry.state === 'resident' && entry.users === 0) {
        this.drop(entry);
        return this.freeSlots.pop();
      }
    }
    return undefined;
  }

  private load(entry: Entry, slot: number): void {
    entry.state = 'loading';
    entry.slot = slot;
    entry.ref.load().then(
      (adapter) => {
        try {
          this.stack.install(slot, adapter);
        } catch (error) {
          this.fail(entry, error);
          return;
        } finally {
          adapter.dispose(); // the stack holds its own copy
        }
        entry.state = 'resident';
        if (entry.forgotten && entry.users === 0) this.drop(entry);
        entry.settle.resolve(slot);
        this.onResident();
      },
      (error) => this.fail(entry, error),
    );
  }

  private fail(entry: Entry, error: unknown): void {
    entry.state = 'resident'; // so that drop() frees its slot
    this.drop(entry);
    entry.settle.reject(error);
    this.schedule();
  }

  private drop(entry: Entry): void {
    if (this.entries.get(entry.ref.key) === entry) this.entries.delete(entry.ref.key);
    if (entry.state !== 'waiting' && entry.slot >= 0) {
      this.freeSlots.push(entry.slot);
      entry.slot = -1;
    }
    entry.state = 'waiting';
  }
}
