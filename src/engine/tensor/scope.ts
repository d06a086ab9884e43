// Deterministic freeing: tidy(fn) disposes every tensor created while fn runs, except the ones it
// returns and the ones passed to keep(). Tensors made outside any scope are left to their owner
// (or, as a last resort, to the garbage collector, which the addon tells about native memory).

interface Disposable {
  dispose(): void;
  readonly disposed: boolean;
}

const scopes: Set<Disposable>[] = [];

export function track(tensor: Disposable): void {
  scopes[scopes.length - 1]?.add(tensor);
}

/** Removes tensors from every enclosing scope, so they outlive it. */
export function keep<T>(value: T): T {
  forEachDisposable(value, (tensor) => {
    for (const scope of scopes) scope.delete(tensor);
  });
  return value;
}

export function tidy<T>(fn: () => T): T {
  const scope = new Set<Disposable>();
  scopes.push(scope);
  let result: T;
  try {
    result = fn();
  } catch (error) {
    for (const tensor of scope) tensor.dispose();
    throw error;
  } finally {
    scopes.pop();
  }
  if (result instanceof Promise) throw new Error('tidy() takes synchronous functions; use keep() across awaits');
  // What is returned moves to the enclosing scope, like any tensor created there.
  forEachDisposable(result, (tensor) => {
    scope.delete(tensor);
    track(tensor);
  });
  for (const tensor of scope) tensor.dispose();
  return result;
}

function forEachDisposable(value: unknown, visit: (tensor: Disposable) => void, depth = 0): void {
  // Bytes hold no tensors (and walking a large Buffer's elements would exhaust the heap).
  if (value === null || typeof value !== 'object' || depth > 4 || ArrayBuffer.isView(value) || value instanceof ArrayBuffer) return;
  if ('dispose' in value && 'disposed' in value) {
    visit(value as Disposable);
    return;
  }
  const children = Array.isArray(value) ? value : value instanceof Map ? [...value.values()] : Object.values(value);
  for (const child of children) forEachDisposable(child, visit, depth + 1);
}
