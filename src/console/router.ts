// Client-side routes under /console/ (the server answers index.html for any of them), with the History API.
import { h, type ComponentProps } from 'preact';
import { useEffect, useState } from 'preact/hooks';

export const basePath = '/console';

export interface Route {
  /** The path below /console, e.g. "/jobs/123" ("/" for the list). */
  path: string;
  query: URLSearchParams;
}

const listeners = new Set<() => void>();

function currentRoute(): Route {
  const rest = location.pathname.startsWith(basePath) ? location.pathname.slice(basePath.length) : location.pathname;
  return { path: rest === '' ? '/' : rest, query: new URLSearchParams(location.search) };
}

export function navigate(to: string, { replace = false }: { replace?: boolean } = {}): void {
  const url = basePath + to;
  if (replace) history.replaceState(null, '', url);
  else history.pushState(null, '', url);
  for (const listener of listeners) listener();
}

export function useRoute(): Route {
  const [route, setRoute] = useState(currentRoute);
  useEffect(() => {
    const update = () => setRoute(currentRoute());
    listeners.add(update);
    addEventListener('popstate', update);
    return () => {
      listeners.delete(update);
      removeEventListener('popstate', update);
    };
  }, []);
  return route;
}

/** Matches "/jobs/:id" against a path; returns the decoded parameters. */
export function matchPath(pattern: string, path: string): Record<string, string> | undefined {
  const want = pattern.split('/');
  const have = path.replace(/\/$/, '').split('/');
  if (want.length !== have.length) return undefined;
  const params: Record<string, string> = {};
  for (let i = 0; i < want.length; i++) {
    if (want[i]!.startsWith(':')) params[want[i]!.slice(1)] = decodeURIComponent(have[i]!);
    else if (want[i] !== have[i]) return undefined;
  }
  return params;
}

type AnchorProps = Omit<ComponentProps<'a'>, 'href'> & { href: string };

/** An ordinary link (middle-click and "open in new tab" work); a plain click routes in place. */
export function Link({ href, ...props }: AnchorProps) {
  const onClick = (event: MouseEvent) => {
    if (event.defaultPrevented || event.button !== 0 || event.metaKey || event.ctrlKey || event.shiftKey || event.altKey) return;
    event.preventDefault();
    navigate(href);
  };
  return h('a', { ...props, href: basePath + href, onClick });
}
