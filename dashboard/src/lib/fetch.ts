// Data loading for pages: a hook that fetches an API path, re-fetches when
// its inputs or the global refresh tick change, and cancels stale requests.
import { useEffect, useRef, useState } from 'preact/hooks';
import { apiGet, ApiError, type Params } from './api';
import { refreshTick } from './time';

export interface Loaded<T> {
  data: T | undefined;
  error: ApiError | Error | undefined;
  /** True until the first answer; stays false during background refreshes
   *  so pages keep showing the previous data instead of flashing. */
  loading: boolean;
  reload: () => void;
}

/** GET `path` with `params`; `path === null` skips loading. */
export function useApi<T>(path: string | null, params?: Params, opts?: { refresh?: boolean }): Loaded<T> {
  const [state, setState] = useState<{ data?: T; error?: Error; loading: boolean }>({ loading: path !== null });
  const [bump, setBump] = useState(0);
  const tick = opts?.refresh === false ? 0 : refreshTick.value;
  const key = path === null ? null : `${path}?${JSON.stringify(params ?? {})}`;
  const lastKey = useRef<string | null>(null);
  useEffect(() => {
    if (key === null || path === null) {
      setState({ loading: false });
      return;
    }
    const ctl = new AbortController();
    // A new question drops the old answer; a refresh of the same one keeps it.
    if (lastKey.current !== key) setState({ loading: true });
    lastKey.current = key;
    apiGet<T>(path, params, ctl.signal).then(
      (data) => !ctl.signal.aborted && setState({ data, loading: false }),
      (error) => !ctl.signal.aborted && error?.name !== 'AbortError' && setState((s) => ({ data: s.data, error, loading: false })),
    );
    return () => ctl.abort();
  }, [key, tick, bump]);
  return { data: state.data, error: state.error, loading: state.loading, reload: () => setBump((b) => b + 1) };
}
