// The global time range (`from`/`to` in the URL, as the API's since/until
// accept them: `1h`, RFC 3339, Unix ms, `now`) and the auto-refresh tick.
import { signal } from '@preact/signals';
import { useParams } from './params';

export const RANGE_PRESETS = [
  { value: '5m', label: 'Last 5 minutes' },
  { value: '15m', label: 'Last 15 minutes' },
  { value: '1h', label: 'Last 1 hour' },
  { value: '6h', label: 'Last 6 hours' },
  { value: '24h', label: 'Last 24 hours' },
  { value: '7d', label: 'Last 7 days' },
  { value: '30d', label: 'Last 30 days' },
];
export const DEFAULT_FROM = '1h';

export const REFRESH_CHOICES = ['off', '5s', '10s', '30s', '1m', '5m'];

/** Bumped by the refresh button and the auto-refresh timer; data hooks
 *  re-fetch when it changes. */
export const refreshTick = signal(0);
export function refreshNow() {
  refreshTick.value++;
}

const UNIT_MS: Record<string, number> = { ms: 1, s: 1e3, m: 60e3, h: 3600e3, d: 86400e3, w: 7 * 86400e3 };

/** `15m` → 900000; null when not a duration. */
export function parseDurationMs(s: string): number | null {
  const m = /^(\d+(?:\.\d+)?)\s*(ms|s|m|h|d|w)$/.exec(s.trim());
  return m ? parseFloat(m[1]) * UNIT_MS[m[2]] : null;
}

/** A `from`/`to` value as epoch ms, relative to `now`. */
export function resolveTime(v: string | null | undefined, now = Date.now()): number {
  if (!v || v === 'now') return now;
  const d = parseDurationMs(v);
  if (d !== null) return now - d;
  if (/^\d{10,}$/.test(v)) return Number(v);
  const t = Date.parse(v);
  return Number.isNaN(t) ? now : t;
}

export interface TimeRange {
  /** As in the URL, for the API's since/until. */
  from: string;
  to: string;
  /** Resolved now, epoch ms. */
  startMs: number;
  endMs: number;
  label: string;
}

export function rangeLabel(from: string, to: string): string {
  const preset = RANGE_PRESETS.find((p) => p.value === from);
  if (preset && (to === 'now' || !to)) return preset.label;
  const d = parseDurationMs(from);
  if (d !== null && (to === 'now' || !to)) return `Last ${from}`;
  return `${fmtDateTime(resolveTime(from))} → ${to === 'now' ? 'now' : fmtDateTime(resolveTime(to))}`;
}

/** The range in force on this page; reading `refreshTick` makes callers
 *  re-render (and re-resolve relative ranges) on every refresh. */
export function useTimeRange(): TimeRange {
  const p = useParams();
  void refreshTick.value;
  const from = p.get('from') || DEFAULT_FROM;
  const to = p.get('to') || 'now';
  const now = Date.now();
  return { from, to, startMs: resolveTime(from, now), endMs: resolveTime(to, now), label: rangeLabel(from, to) };
}

/** since/until for API calls. */
export function rangeParams(r: TimeRange): { since: string; until?: string } {
  return r.to === 'now' ? { since: r.from } : { since: r.from, until: r.to };
}

/** A step (in the API's duration syntax) giving about `points` buckets. */
export function stepFor(r: TimeRange, points = 60): string {
  const span = Math.max(r.endMs - r.startMs, 60e3);
  const steps = [10e3, 30e3, 60e3, 5 * 60e3, 15 * 60e3, 30 * 60e3, 3600e3, 3 * 3600e3, 6 * 3600e3, 12 * 3600e3, 86400e3];
  const want = span / points;
  const s = steps.find((x) => x >= want) ?? 86400e3;
  return s < 60e3 ? `${s / 1e3}s` : s < 3600e3 ? `${s / 60e3}m` : s < 86400e3 ? `${s / 3600e3}h` : '1d';
}

const pad = (n: number, w = 2) => String(n).padStart(w, '0');

/** Local date and time, e.g. `2026-12-02 15:04:05`. */
export function fmtDateTime(ms: number): string {
  const d = new Date(ms);
  return `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())} ${pad(d.getHours())}:${pad(d.getMinutes())}:${pad(d.getSeconds())}`;
}

/** Local time with milliseconds, e.g. `15:04:05.123`. */
export function fmtClock(ms: number): string {
  const d = new Date(ms);
  return `${pad(d.getHours())}:${pad(d.getMinutes())}:${pad(d.getSeconds())}.${pad(d.getMilliseconds(), 3)}`;
}

/** Anything the API gives as a time (RFC 3339, ns string, ms number) → ms. */
export function toMs(t: string | number | bigint | null | undefined): number {
  if (t === null || t === undefined) return NaN;
  if (typeof t === 'number') return t > 1e14 ? t / 1e6 : t;
  if (typeof t === 'bigint') return Number(t / 1000000n);
  if (/^\d+$/.test(t)) return t.length > 14 ? Number(BigInt(t) / 1000n) / 1000 : Number(t);
  return Date.parse(t);
}

/** `3m ago`, `2h ago`, `in 5s`. */
export function fmtAgo(ms: number, now = Date.now()): string {
  const d = now - ms;
  const a = Math.abs(d);
  const s = a < 60e3 ? `${Math.round(a / 1e3)}s` : a < 3600e3 ? `${Math.round(a / 60e3)}m` : a < 86400e3 ? `${Math.round(a / 3600e3)}h` : `${Math.round(a / 86400e3)}d`;
  return d >= 0 ? `${s} ago` : `in ${s}`;
}
