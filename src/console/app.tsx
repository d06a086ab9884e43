// The shell: skip link, top bar with navigation and settings, the page for the current route, and a
// boundary so a rendering error shows a message rather than a blank page.
import { useEffect, useState } from 'preact/hooks';
import { ErrorBoundary } from './components/error-boundary';
import { SettingsDialog } from './components/settings-dialog';
import { setNotice, useNotice } from './lib/notice';
import { ComparePage } from './pages/compare-page';
import { CreatePage } from './pages/create-page';
import { DetailsPage } from './pages/details-page';
import { ModelsPage } from './pages/models-page';
import { TestPage } from './pages/test-page';
import { Link, matchPath, useRoute, type Route } from './router';
import { useSettings } from './settings';

const nav = [
  { href: '/', label: 'Tuned models', section: 'list' },
  { href: '/new', label: 'New tuning job', section: 'new' },
  { href: '/compare', label: 'Compare', section: 'compare' },
  { href: '/test', label: 'Test', section: 'test' },
] as const;

function page(route: Route): { section: string; title: string; element: preact.JSX.Element } {
  let params: Record<string, string> | undefined;
  if (route.path === '/') return { section: 'list', title: 'Tuned models', element: <ModelsPage /> };
  if (route.path === '/new') {
    const clone = route.query.get('clone') ?? undefined;
    const from = route.query.get('continue') ?? undefined;
    return { section: 'new', title: 'New tuning job', element: <CreatePage key={`${clone}/${from}`} cloneOf={clone} continueFrom={from} /> };
  }
  if ((params = matchPath('/jobs/:id', route.path))) return { section: 'list', title: `Job ${params.id}`, element: <DetailsPage key={params.id} id={params.id!} /> };
  if (route.path === '/compare') {
    const ids = (route.query.get('jobs') ?? '').split(',').filter(Boolean);
    return { section: 'compare', title: 'Compare runs', element: <ComparePage ids={ids} /> };
  }
  if (route.path === '/test') return { section: 'test', title: 'Test', element: <TestPage /> };
  if ((params = matchPath('/test/:id', route.path))) return { section: 'test', title: 'Test', element: <TestPage key={params.id} id={params.id} /> };
  return {
    section: '',
    title: 'Not found',
    element: (
      <section>
        <h1 tabIndex={-1}>No such page</h1>
        <p>
          <Link href="/">Go to the tuned models</Link>.
        </p>
      </section>
    ),
  };
}

export function App() {
  const route = useRoute();
  const settings = useSettings();
  const notice = useNotice();
  const [settingsOpen, setSettingsOpen] = useState(false);
  const current = page(route);

  // After a navigation, move focus to the new page's heading, as a full page load would for screen readers.
  useEffect(() => {
    document.title = `${current.title} · Attune`;
    const heading = document.querySelector<HTMLElement>('main h1');
    if (heading && document.activeElement?.closest('main, nav')) heading.focus({ preventScroll: true });
    window.scrollTo(0, 0);
    if (notice && notice.path !== route.path) setNotice(undefined);
  }, [route.path, route.query.toString()]);

  return (
    <>
      <a class="skip-link" href="#main">
        Skip to content
      </a>
      <header class="topbar">
        <Link href="/" class="brand">
          Attune
        </Link>
        <nav aria-label="Main">
          <ul>
            {nav.map((item) => (
              <li>
                <Link href={item.href} aria-current={item.section === current.section ? 'page' : undefined}>
                  {item.label}
                </Link>
              </li>
            ))}
          </ul>
        </nav>
        <button type="button" class="settings-button" onClick={() => setSettingsOpen(true)}>
          Settings
          <span class="muted small">{settings.apiKey ? ` (${settings.project}, key set)` : ` (${settings.project}, no key)`}</span>
        </button>
      </header>
      <main id="main" tabIndex={-1}>
        {notice?.path === route.path && (
          <p class="notice" role="status">
            {notice.text}
          </p>
        )}
        <ErrorBoundary key={route.path}>{current.element}</ErrorBoundary>
      </main>
      <SettingsDialog open={settingsOpen} onClose={() => setSettingsOpen(false)} />
    </>
  );
}
