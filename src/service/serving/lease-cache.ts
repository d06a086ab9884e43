// A least-recently-used cache whose values are leased: a value in use (a base model generating, an
// adapter attached to it) is never disposed under its user. Eviction skips leased entries, so the cache
// may run over capacity while everything in it is busy; it shrinks back as leases end.

export interface Lease<V> {
  readonly value: V;
  /** Ends the lease; a second call does nothing. */
  release(): void;
}

interface Entry<V> {
  promise: Promise<V>;
  value?: V;
  users: number;
  /** Dropped from the cache; disposed when its last lease ends. */
  forgotten: boolean;
}

export class LeaseCache<K, V> {
  private readonly entries = new Map<K, Entry<V>>(); // iteration order: least recently used first

  constructor(
    readonly capacity: number,
    private readonly disposeValue: (value: V) => void,
  ) {
    if (!(Number.isInteger(capacity) && capacity >= 1)) throw new Error(`cache capacity must be a positive integer, not ${capacity}`);
  }

  /**
   * Leases the value for key, loading it on a miss (concurrent misses share one load; a failed load is
   * not cached). `isFresh` may reject a cached value (e.g. its file changed): it is forgotten and reloaded.
   */
  async acquire(key: K, load: () => V | Promise<V>, isFresh?: (value: V) => boolean): Promise<Lease<V>> {
    let entry = this.entries.get(key);
    if (entry?.value !== undefined && isFresh && !isFresh(entry.value)) {
      this.forget(key);
      entry = undefined;
    }
    if (entry) {
      this.entries.delete(key); // most recently used goes last
      this.entries.set(key, entry);
    } else {
      const created: Entry<V> = { promise: Promise.resolve().then(load), users: 0, forgotten: false };
      created.promise.then(
        (value) => void (created.value = value),
        () => {
          if (this.entries.get(key) === created) this.entries.delete(key);
        },
      );
      this.entries.set(key, created);
      entry = created;
    }
    const leased = entry;
    leased.users++;
    let value: V;
    try {
      value = await leased.promise;
    } catch (error) {
      leased.users--;
      throw error;
    }
    leased.value = value;
    this.evict();
    let released = false;
    return {
      value,
      release: () => {
        if (released) return;
        released = true;
        leased.users--;
        if (leased.forgotten) {
          if (leased.users === 0) this.disposeValue(value);
        } else {
          this.evict();
        }
      },
    };
  }

  /** Drops key: disposed now if unused, else when its last lease ends. */
  forget(key: K): void {
    const entry = this.entries.get(key);
    if (!entry) return;
    this.entries.delete(key);
    entry.forgotten = true;
    if (entry.users === 0 && entry.value !== undefined) this.disposeValue(entry.value);
  }

  /** Forgets every entry for which the predicate holds. */
  forgetWhere(predicate: (key: K, value: V | undefined) => boolean): void {
    for (const [key, entry] of [...this.entries]) if (predicate(key, entry.value)) this.forget(key);
  }

  clear(): void {
    for (const key of [...this.entries.keys()]) this.forget(key);
  }

  get size(): number {
    return this.entries.size;
  }

  has(key: K): boolean {
    return this.entries.has(key);
  }

  private evict(): void {
    for (const [key, entry] of this.entries) {
      if (this.entries.size <= this.capacity) return;
      if (entry.users === 0 && entry.value !== undefined) this.forget(key);
    }
  }
}
