// A one-line message for the page a navigation leads to ("Deleted …" on the list after deleting). It
// belongs to that page's path and is dropped on the next navigation elsewhere.
import { useEffect, useState } from 'preact/hooks';

export interface Notice {
  text: string;
  /** The route path it is shown on. */
  path: string;
}

let current: Notice | undefined;
const listeners = new Set<(notice: Notice | undefined) => void>();

export function setNotice(notice: Notice | undefined): void {
  current = notice;
  for (const listener of listeners) listener(current);
}

export function useNotice(): Notice | undefined {
  const [notice, set] = useState(current);
  useEffect(() => {
    listeners.add(set);
    return () => void listeners.delete(set);
  }, []);
  return notice;
}
