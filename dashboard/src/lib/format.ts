// Numbers as people read them in an observability tool: durations with
// the right unit, compact counts, dollars with enough precision for tokens.

/** 0.42 → `420µs`, 12.3 → `12.3ms`, 4200 → `4.20s`, 95000 → `1m 35s`. */
export function fmtMs(ms: number | null | undefined): string {
  if (ms === null || ms === undefined || Number.isNaN(ms)) return '–';
  if (ms < 0) return `-${fmtMs(-ms)}`;
  if (ms === 0) return '0ms';
  if (ms < 1) return `${Math.round(ms * 1000)}µs`;
  if (ms < 10) return `${ms.toFixed(2)}ms`;
  if (ms < 100) return `${ms.toFixed(1)}ms`;
  if (ms < 1000) return `${Math.round(ms)}ms`;
  if (ms < 60e3) return `${(ms / 1000).toFixed(ms < 10e3 ? 2 : 1)}s`;
  const m = Math.floor(ms / 60e3);
  if (m < 60) return `${m}m ${Math.round((ms % 60e3) / 1000)}s`;
  return `${Math.floor(m / 60)}h ${m % 60}m`;
}

/** 1234 → `1,234`; 1234567 → `1.23M` when `compact`. */
export function fmtNum(n: number | null | undefined, compact = false): string {
  if (n === null || n === undefined || Number.isNaN(n)) return '–';
  if (compact && Math.abs(n) >= 10000) {
    const units: [number, string][] = [[1e12, 'T'], [1e9, 'B'], [1e6, 'M'], [1e3, 'k']];
    for (const [v, u] of units) if (Math.abs(n) >= v) return `${(n / v).toFixed(n / v >= 100 ? 0 : n / v >= 10 ? 1 : 2)}${u}`;
  }
  return Number.isInteger(n) ? n.toLocaleString('en-US') : n.toLocaleString('en-US', { maximumFractionDigits: 2 });
}

/** An attribute value as text: strings as they are, the rest as JSON. */
export function valueText(v: unknown): string {
  if (typeof v === 'string') return v;
  return JSON.stringify(v);
}

/** `1 event`, `1,234 events`: a count with its noun, singular for one. */
export function plural(n: number, one: string, many = `${one}s`): string {
  return `${fmtNum(n)} ${n === 1 ? one : many}`;
}

/** A round axis step (1, 2, 2.5 or 5 times a power of ten) of at least `raw`. */
export function niceStep(raw: number): number {
  const mag = Math.pow(10, Math.floor(Math.log10(raw)));
  return [1, 2, 2.5, 5, 10].map((m) => m * mag).find((s) => s >= raw) ?? 10 * mag;
}

/** Dollars: `$12.34`, `$0.0042`, `–` when unknown (never `$0` for a missing price). */
export function fmtCost(usd: number | null | undefined): string {
  if (usd === null || usd === undefined || Number.isNaN(usd)) return '–';
  if (usd === 0) return '$0';
  if (Math.abs(usd) >= 100) return `$${usd.toFixed(0)}`;
  if (Math.abs(usd) >= 1) return `$${usd.toFixed(2)}`;
  if (Math.abs(usd) >= 0.01) return `$${usd.toFixed(3)}`;
  return `$${usd.toPrecision(2)}`;
}

/** 0.0123 → `1.23%`. */
export function fmtPct(ratio: number | null | undefined, digits = 2): string {
  if (ratio === null || ratio === undefined || Number.isNaN(ratio)) return '–';
  return `${(ratio * 100).toFixed(ratio === 0 ? 0 : digits)}%`;
}

export function fmtBytes(b: number | null | undefined): string {
  if (b === null || b === undefined || Number.isNaN(b)) return '–';
  const u = ['B', 'KB', 'MB', 'GB', 'TB'];
  let i = 0;
  let v = b;
  while (v >= 1024 && i < u.length - 1) {
    v /= 1024;
    i++;
  }
  return `${v.toFixed(i === 0 ? 0 : v >= 100 ? 0 : 1)} ${u[i]}`;
}

/** A stable colour per service (or any name), readable on light and dark. */
export function colorFor(name: string): string {
  let h = 2166136261;
  for (let i = 0; i < name.length; i++) {
    h ^= name.charCodeAt(i);
    h = Math.imul(h, 16777619);
  }
  const palette = ['#6d5dfc', '#0ea5e9', '#10b981', '#f59e0b', '#ec4899', '#8b5cf6', '#14b8a6', '#f97316', '#84cc16', '#06b6d4', '#e11d48', '#a855f7'];
  return palette[(h >>> 0) % palette.length];
}

export function shortId(id: string | null | undefined, n = 8): string {
  return id ? id.slice(0, n) : '–';
}
