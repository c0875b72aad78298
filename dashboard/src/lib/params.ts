// Page state lives in the URL (filters, time range, selected tab), so a page
// can be shared, reloaded and navigated with the back button.
import { useLocation, useSearch } from 'wouter-preact';

export function useParams(): URLSearchParams {
  return new URLSearchParams(useSearch());
}

/** Returns a setter that merges `changes` into the current query string.
 *  `null`/`''` removes a key. `replace` avoids a history entry (typing). */
export function useSetParams() {
  const [loc, navigate] = useLocation();
  return (changes: Record<string, string | number | null | undefined>, opts?: { replace?: boolean; path?: string }) => {
    const q = new URLSearchParams(location.search);
    for (const [k, v] of Object.entries(changes)) {
      if (v === null || v === undefined || v === '') q.delete(k);
      else q.set(k, String(v));
    }
    const qs = q.toString();
    navigate(`${opts?.path ?? loc}${qs ? `?${qs}` : ''}`, { replace: opts?.replace });
  };
}

/** A link target that keeps the global time range (`from`, `to`, `refresh`). */
export function withRange(path: string, extra?: Record<string, string | number | undefined>): string {
  const cur = new URLSearchParams(location.search);
  const q = new URLSearchParams();
  for (const k of ['from', 'to', 'refresh']) {
    const v = cur.get(k);
    if (v) q.set(k, v);
  }
  for (const [k, v] of Object.entries(extra ?? {})) if (v !== undefined && v !== '') q.set(k, String(v));
  const [p, pq] = path.split('?');
  if (pq) new URLSearchParams(pq).forEach((v, k) => q.set(k, v));
  const qs = q.toString();
  return `${p}${qs ? `?${qs}` : ''}`;
}
