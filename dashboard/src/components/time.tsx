// A timestamp in the browser's zone, with the raw value on hover.
import { fmtDateTime, fmtClock, fmtAgo, toMs } from '../lib/time';

export function Time({ t, mode = 'datetime' }: { t: string | number | null | undefined; mode?: 'datetime' | 'clock' | 'ago' }) {
  const ms = toMs(t as string);
  if (Number.isNaN(ms)) return <span class="muted">–</span>;
  const text = mode === 'clock' ? fmtClock(ms) : mode === 'ago' ? fmtAgo(ms) : fmtDateTime(ms);
  const raw = `${new Date(ms).toISOString()}${typeof t === 'string' && /^\d+$/.test(t) ? `\n${t} ns` : ''}`;
  return (
    <time class="ts" dateTime={new Date(ms).toISOString()} title={raw}>
      {text}
    </time>
  );
}
