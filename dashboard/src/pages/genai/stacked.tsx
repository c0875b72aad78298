// A stacked bar chart over time in SVG. The shared uPlot wrapper draws
// overlapping series, which misreads "tokens by model" (each model's share
// of a bucket); this one stacks them and names each model's own value on hover.
import { useEffect, useRef, useState } from 'preact/hooks';
import { niceStep } from '../../lib/format';
import { fmtDateTime } from '../../lib/time';

export interface StackSeries {
  label: string;
  color: string;
  /** One value per bucket (null or 0: nothing drawn). */
  values: (number | null)[];
}

const PAD = { right: 8, top: 8, bottom: 22 };

/** Round numbers for the y axis: about four ticks from 0 to at least `max`. */
function ticks(max: number): number[] {
  if (max <= 0) return [0];
  const step = niceStep(max / 4);
  const out: number[] = [];
  for (let v = 0; v <= max + step * 0.001; v += step) out.push(v);
  if (out[out.length - 1] < max) out.push(out[out.length - 1] + step);
  return out;
}

const clock = (ms: number, spanMs: number) => {
  const s = fmtDateTime(ms);
  return spanMs > 36 * 3600e3 ? s.slice(5, 16) : s.slice(11, 16);
};

export function StackedBars({ x, series, fmt, height = 200, ariaLabel }: { x: number[]; series: StackSeries[]; fmt: (v: number) => string; height?: number; ariaLabel: string }) {
  const box = useRef<HTMLDivElement>(null);
  const [width, setWidth] = useState(600);
  const [hover, setHover] = useState<number | null>(null);
  useEffect(() => {
    const el = box.current;
    if (!el) return;
    const ro = new ResizeObserver(() => setWidth(el.clientWidth || 600));
    ro.observe(el);
    setWidth(el.clientWidth || 600);
    return () => ro.disconnect();
  }, []);

  const totals = x.map((_, i) => series.reduce((s, se) => s + (se.values[i] ?? 0), 0));
  const yTicks = ticks(Math.max(...totals, 0));
  const yMax = yTicks[yTicks.length - 1] || 1;
  // Room for the widest y label (11px text, about 6.5px a character).
  const left = Math.round(Math.max(...yTicks.map((t) => fmt(t).length)) * 6.5 + 14);
  const plotW = Math.max(width - left - PAD.right, 10);
  const plotH = height - PAD.top - PAD.bottom;
  const slot = plotW / Math.max(x.length, 1);
  const barW = Math.max(Math.min(slot * 0.72, 28), 1);
  const y = (v: number) => PAD.top + plotH - (v / yMax) * plotH;
  const spanMs = x.length > 1 ? x[x.length - 1] - x[0] : 0;
  const labelEvery = Math.max(1, Math.ceil(x.length / Math.max(Math.floor(plotW / 70), 1)));

  const onMove = (e: MouseEvent) => {
    const rect = (e.currentTarget as SVGElement).getBoundingClientRect();
    const i = Math.floor((e.clientX - rect.left - left) / slot);
    setHover(i >= 0 && i < x.length ? i : null);
  };

  return (
    <div class="stacked" ref={box}>
      <svg width={width} height={height} role="img" aria-label={ariaLabel} onMouseMove={onMove} onMouseLeave={() => setHover(null)}>
        {yTicks.map((t) => (
          <g key={t}>
            <line x1={left} x2={width - PAD.right} y1={y(t)} y2={y(t)} class="stacked-grid" />
            <text x={left - 6} y={y(t) + 4} class="stacked-axis" text-anchor="end">
              {fmt(t)}
            </text>
          </g>
        ))}
        {x.map((t, i) =>
          i % labelEvery === 0 ? (
            <text key={t} x={left + slot * i + slot / 2} y={height - 6} class="stacked-axis" text-anchor="middle">
              {clock(t, spanMs)}
            </text>
          ) : null,
        )}
        {hover !== null && <rect x={left + slot * hover} y={PAD.top} width={slot} height={plotH} class="stacked-hover" />}
        {x.map((_, i) => {
          let base = 0;
          return series.map((s) => {
            const v = s.values[i] ?? 0;
            if (v <= 0) return null;
            const top = base + v;
            const rect = <rect key={`${i}-${s.label}`} x={left + slot * i + (slot - barW) / 2} y={y(top)} width={barW} height={Math.max(y(base) - y(top), 1)} fill={s.color} rx={1} />;
            base = top;
            return rect;
          });
        })}
      </svg>
      {hover !== null && totals[hover] > 0 && (
        <div class="stacked-tip" style={{ left: `${Math.min(left + slot * hover + slot + 8, width - 220)}px` }}>
          <div class="muted">{fmtDateTime(x[hover])}</div>
          {series
            .filter((s) => (s.values[hover] ?? 0) > 0)
            .map((s) => (
              <div class="row" key={s.label}>
                <span class="dot" style={{ background: s.color }} />
                <span class="grow ellipsis">{s.label}</span>
                <span class="num">{fmt(s.values[hover] ?? 0)}</span>
              </div>
            ))}
          <div class="row stacked-total">
            <span class="grow">Total</span>
            <span class="num">{fmt(totals[hover])}</span>
          </div>
        </div>
      )}
      <div class="stacked-legend" style={{ paddingLeft: `${left}px` }}>
        {series.map((s) => (
          <span key={s.label} class="row">
            <span class="dot" style={{ background: s.color }} />
            {s.label}
          </span>
        ))}
      </div>
    </div>
  );
}
