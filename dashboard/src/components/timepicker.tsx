// The global time range picker and auto-refresh control in the top bar.
// Both live in the URL (`from`, `to`, `refresh`) so every page shares them.
import { useEffect, useRef, useState } from 'preact/hooks';
import { useParams, useSetParams } from '../lib/params';
import { Icon } from './icons';
import { DEFAULT_FROM, RANGE_PRESETS, REFRESH_CHOICES, parseDurationMs, rangeLabel, refreshNow, resolveTime } from '../lib/time';

const toInput = (ms: number) => {
  const d = new Date(ms - new Date(ms).getTimezoneOffset() * 60e3);
  return d.toISOString().slice(0, 16);
};

export function TimePicker() {
  const p = useParams();
  const set = useSetParams();
  const from = p.get('from') || DEFAULT_FROM;
  const to = p.get('to') || 'now';
  const [open, setOpen] = useState(false);
  const [customFrom, setCustomFrom] = useState('');
  const [customTo, setCustomTo] = useState('');
  const box = useRef<HTMLDivElement>(null);

  useEffect(() => {
    if (!open) return;
    setCustomFrom(toInput(resolveTime(from)));
    setCustomTo(toInput(resolveTime(to)));
    const close = (e: MouseEvent) => box.current && !box.current.contains(e.target as Node) && setOpen(false);
    const esc = (e: KeyboardEvent) => e.key === 'Escape' && setOpen(false);
    document.addEventListener('mousedown', close);
    document.addEventListener('keydown', esc);
    return () => {
      document.removeEventListener('mousedown', close);
      document.removeEventListener('keydown', esc);
    };
  }, [open]);

  const apply = (f: string, t: string) => {
    set({ from: f === DEFAULT_FROM ? null : f, to: t === 'now' ? null : t });
    setOpen(false);
  };

  return (
    <div class="timepicker" ref={box}>
      <button class="btn" aria-haspopup="true" aria-expanded={open} onClick={() => setOpen(!open)} title={`from=${from} to=${to}`}>
        <Icon name="clock" /> {rangeLabel(from, to)}
      </button>
      {open && (
        <div class="popover timepicker-pop" role="dialog" aria-label="Time range">
          <div class="timepicker-presets">
            {RANGE_PRESETS.map((r) => (
              <button key={r.value} class={`menu-item${from === r.value && to === 'now' ? ' active' : ''}`} onClick={() => apply(r.value, 'now')}>
                {r.label}
              </button>
            ))}
          </div>
          <form
            class="timepicker-custom"
            onSubmit={(e) => {
              e.preventDefault();
              const f = Date.parse(customFrom);
              const t = Date.parse(customTo);
              if (!Number.isNaN(f) && !Number.isNaN(t) && f < t) apply(String(f), String(t));
            }}
          >
            <label>
              From <input type="datetime-local" value={customFrom} onInput={(e) => setCustomFrom((e.target as HTMLInputElement).value)} />
            </label>
            <label>
              To <input type="datetime-local" value={customTo} onInput={(e) => setCustomTo((e.target as HTMLInputElement).value)} />
            </label>
            <button class="btn btn-primary" type="submit">
              Apply
            </button>
          </form>
        </div>
      )}
    </div>
  );
}

export function RefreshControl() {
  const p = useParams();
  const set = useSetParams();
  const refresh = p.get('refresh') || 'off';
  useEffect(() => {
    const ms = parseDurationMs(refresh);
    if (!ms) return;
    const id = setInterval(refreshNow, ms);
    return () => clearInterval(id);
  }, [refresh]);
  return (
    <div class="refresh">
      <button class="btn" onClick={refreshNow} title="Refresh now" aria-label="Refresh now">
        <Icon name="refresh" />
      </button>
      <select aria-label="Auto-refresh" value={refresh} onChange={(e) => set({ refresh: (e.target as HTMLSelectElement).value === 'off' ? null : (e.target as HTMLSelectElement).value })}>
        {REFRESH_CHOICES.map((c) => (
          <option key={c} value={c}>
            {c === 'off' ? 'Auto-refresh off' : `Every ${c}`}
          </option>
        ))}
      </select>
    </div>
  );
}
