// The app shell: sidebar navigation, the top bar (time range, refresh) and
// the page routes. Each page is its own module under pages/ and its own URL.
import type { ComponentChildren, FunctionComponent } from 'preact';
import { useEffect, useState } from 'preact/hooks';
import { Link, Route, Switch, useLocation, useSearch } from 'wouter-preact';
import { Icon, type IconName } from './components/icons';
import { ErrorBox, Loading } from './components/states';
import { RefreshControl, TimePicker } from './components/timepicker';
import { withRange } from './lib/params';
import { Login } from './pages/login';

/** Each page is its own chunk, loaded when first visited, so a first visit
 *  downloads the shell and one page rather than the whole dashboard. */
function lazyPage<P extends object>(load: () => Promise<FunctionComponent<P>>): FunctionComponent<P> {
  let loaded: FunctionComponent<P> | null = null;
  let pending: Promise<FunctionComponent<P>> | null = null;
  return function LazyPage(props: P) {
    const [, setReady] = useState(0);
    const [failed, setFailed] = useState<unknown>(null);
    useEffect(() => {
      if (loaded) return;
      pending ??= load();
      pending.then(
        (c) => {
          loaded = c;
          setReady((n) => n + 1);
        },
        (e) => {
          pending = null;
          setFailed(e);
        },
      );
    }, []);
    if (failed) return <ErrorBox error={failed} title="Could not load this page (was qyl upgraded? reload)" />;
    if (!loaded) return <Loading />;
    const Page = loaded;
    return <Page {...props} />;
  };
}

const Overview = lazyPage(() => import('./pages/overview').then((m) => m.Overview));
const Traces = lazyPage(() => import('./pages/traces').then((m) => m.Traces));
const TraceView = lazyPage<{ id: string }>(() => import('./pages/trace').then((m) => m.TraceView));
const TraceCompare = lazyPage(() => import('./pages/compare').then((m) => m.TraceCompare));
const Logs = lazyPage(() => import('./pages/logs').then((m) => m.Logs));
const Metrics = lazyPage(() => import('./pages/metrics').then((m) => m.Metrics));
const GenAi = lazyPage(() => import('./pages/genai').then((m) => m.GenAi));
const Sessions = lazyPage(() => import('./pages/sessions').then((m) => m.Sessions));
const SessionView = lazyPage<{ id: string }>(() => import('./pages/session').then((m) => m.SessionView));
const Errors = lazyPage(() => import('./pages/errors').then((m) => m.Errors));
const ErrorGroup = lazyPage<{ id: string }>(() => import('./pages/error-group').then((m) => m.ErrorGroup));
const Slos = lazyPage(() => import('./pages/slo').then((m) => m.Slos));
const Functions = lazyPage(() => import('./pages/functions').then((m) => m.Functions));
const Live = lazyPage(() => import('./pages/live').then((m) => m.Live));
const Sql = lazyPage(() => import('./pages/sql').then((m) => m.Sql));

const NAV: { href: string; label: string; icon: IconName; match: (p: string) => boolean }[] = [
  { href: '/', label: 'Overview', icon: 'overview', match: (p) => p === '/' },
  { href: '/traces', label: 'Traces', icon: 'traces', match: (p) => p.startsWith('/traces') || p.startsWith('/compare') },
  { href: '/logs', label: 'Logs', icon: 'logs', match: (p) => p.startsWith('/logs') },
  // Not `/metrics`: that is qyl's own Prometheus text, which scrapers expect there.
  { href: '/explore/metrics', label: 'Metrics', icon: 'metrics', match: (p) => p.startsWith('/explore/metrics') },
  { href: '/genai', label: 'GenAI', icon: 'genai', match: (p) => p.startsWith('/genai') },
  { href: '/sessions', label: 'Sessions', icon: 'sessions', match: (p) => p.startsWith('/sessions') },
  { href: '/errors', label: 'Errors', icon: 'errors', match: (p) => p.startsWith('/errors') },
  { href: '/slo', label: 'SLOs', icon: 'slo', match: (p) => p.startsWith('/slo') },
  { href: '/functions', label: 'Functions', icon: 'functions', match: (p) => p.startsWith('/functions') },
  { href: '/live', label: 'Live', icon: 'live', match: (p) => p.startsWith('/live') },
  { href: '/sql', label: 'SQL', icon: 'sql', match: (p) => p.startsWith('/sql') },
];

/** `/` focuses the page's search box (an element with `data-search`). */
function useSlashToSearch() {
  useEffect(() => {
    const onKey = (e: KeyboardEvent) => {
      if (e.key !== '/' || e.ctrlKey || e.metaKey || e.altKey) return;
      const t = e.target as HTMLElement;
      if (t && (t.tagName === 'INPUT' || t.tagName === 'TEXTAREA' || t.tagName === 'SELECT' || t.isContentEditable)) return;
      const box = document.querySelector<HTMLElement>('[data-search]');
      if (box) {
        e.preventDefault();
        box.focus();
      }
    };
    document.addEventListener('keydown', onKey);
    return () => document.removeEventListener('keydown', onKey);
  }, []);
}

function Shell({ children }: { children: ComponentChildren }) {
  const [path] = useLocation();
  // Subscribes to query changes too: the nav links carry the time range.
  useSearch();
  useSlashToSearch();
  return (
    <div class="shell">
      <nav class="sidebar" aria-label="Main">
        <Link href={withRange('/')} class="brand">
          <span class="brand-mark" aria-hidden="true">q</span> qyl
        </Link>
        <ul>
          {NAV.map((n) => (
            <li key={n.href}>
              <Link href={withRange(n.href)} class={`nav-link${n.match(path) ? ' active' : ''}`} aria-current={n.match(path) ? 'page' : undefined}>
                <span class="nav-icon">
                  <Icon name={n.icon} />
                </span>
                {n.label}
              </Link>
            </li>
          ))}
        </ul>
        <div class="sidebar-foot">
          <a href="/api/v1/openapi.json" target="_blank" rel="noreferrer">
            API
          </a>
          <a href="/metrics" target="_blank" rel="noreferrer">
            /metrics
          </a>
        </div>
      </nav>
      <div class="main">
        <div class="topbar">
          <div class="topbar-spacer" />
          <TimePicker />
          <RefreshControl />
        </div>
        <main class="content">{children}</main>
      </div>
    </div>
  );
}

function NotFound() {
  return (
    <div class="state state-empty">
      <strong>No such page</strong>
      <Link href="/">Back to the overview</Link>
    </div>
  );
}

export function App() {
  return (
    <Switch>
      <Route path="/login" component={Login} />
      <Route>
        <Shell>
          <Switch>
            <Route path="/" component={Overview} />
            <Route path="/traces" component={Traces} />
            <Route path="/traces/:id">{(p) => <TraceView id={p.id} />}</Route>
            <Route path="/compare" component={TraceCompare} />
            <Route path="/logs" component={Logs} />
            <Route path="/explore/metrics" component={Metrics} />
            <Route path="/genai" component={GenAi} />
            <Route path="/sessions" component={Sessions} />
            <Route path="/sessions/:id">{(p) => <SessionView id={decodeURIComponent(p.id)} />}</Route>
            <Route path="/errors" component={Errors} />
            <Route path="/errors/:id">{(p) => <ErrorGroup id={decodeURIComponent(p.id)} />}</Route>
            <Route path="/slo" component={Slos} />
            <Route path="/functions" component={Functions} />
            <Route path="/live" component={Live} />
            <Route path="/sql" component={Sql} />
            <Route component={NotFound} />
          </Switch>
        </Shell>
      </Route>
    </Switch>
  );
}
