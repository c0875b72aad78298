// Time-series charts on uPlot (small, fast canvas charts). Colours follow
// the light/dark theme through CSS variables read at draw time.
import { useEffect, useRef } from 'preact/hooks';
import uPlot from 'uplot';
import 'uplot/dist/uPlot.min.css';
import { fmtDateTime } from '../lib/time';

export interface Series {
  label: string;
  values: (number | null)[];
  color?: string;
  /** Dashed, thinner line (e.g. a percentile guide). */
  dash?: boolean;
}

export interface ChartProps {
  /** X values in epoch **seconds** (uPlot's convention). */
  x: number[];
  series: Series[];
  height?: number;
  /** `line` (default), `area` (filled lines), `bars` (stacked look per bucket),
   *  `points` (scatter: no lines). */
  kind?: 'line' | 'area' | 'bars' | 'points';
  /** Formats values on the y axis and in the legend. */
  fmt?: (v: number) => string;
  /** Called with the index into `x` when a point/bucket is clicked. */
  onClick?: (index: number, seriesIndex: number) => void;
  ariaLabel?: string;
}

const cssVar = (name: string, fallback: string) => getComputedStyle(document.documentElement).getPropertyValue(name).trim() || fallback;

export function Chart({ x, series, height = 220, kind = 'line', fmt, onClick, ariaLabel }: ChartProps) {
  const box = useRef<HTMLDivElement>(null);
  const handlers = useRef({ onClick });
  handlers.current = { onClick };

  useEffect(() => {
    const el = box.current;
    if (!el) return;
    const axisColor = cssVar('--text-muted', '#888');
    const gridColor = cssVar('--grid', 'rgba(128,128,128,0.15)');
    const fmtV = fmt ?? ((v: number) => (Math.abs(v) >= 1000 ? v.toLocaleString('en-US', { maximumFractionDigits: 0 }) : String(+v.toFixed(3))));
    const bars = kind === 'bars' ? uPlot.paths.bars!({ size: [0.7, 24] }) : undefined;
    const opts: uPlot.Options = {
      width: el.clientWidth || 600,
      height,
      cursor: { drag: { x: false, y: false, setScale: false }, points: { size: 6 } },
      legend: { show: series.length > 1 || kind !== 'points', live: true },
      scales: { x: { time: true }, y: { auto: true, range: (_u, min, max) => [Math.min(0, min), max > 0 ? max * 1.08 : 1] } },
      axes: [
        { stroke: axisColor, grid: { stroke: gridColor, width: 1 }, ticks: { stroke: gridColor } },
        { stroke: axisColor, grid: { stroke: gridColor, width: 1 }, ticks: { stroke: gridColor }, values: (_u, vals) => vals.map((v) => (v === null ? '' : fmtV(v))), size: 60 },
      ],
      series: [
        { value: (_u, v) => (v === null ? '–' : fmtDateTime(v * 1000)) },
        ...series.map((s, i) => {
          const color = s.color ?? palette(i);
          return {
            label: s.label,
            stroke: color,
            width: s.dash ? 1 : 1.5,
            dash: s.dash ? [4, 4] : undefined,
            fill: kind === 'area' || kind === 'bars' ? color + '33' : undefined,
            paths: kind === 'points' ? () => null : bars,
            points: kind === 'points' ? { show: true, size: 7, stroke: color, fill: color + 'aa', width: 1 } : { show: false },
            spanGaps: false,
            value: (_u: uPlot, v: number | null) => (v === null || v === undefined ? '–' : fmtV(v)),
          } as uPlot.Series;
        }),
      ],
    };
    const data = [x, ...series.map((s) => s.values)] as uPlot.AlignedData;
    const u = new uPlot(opts, data, el);
    const click = () => {
      const idx = u.cursor.idx;
      if (idx === null || idx === undefined || !handlers.current.onClick) return;
      // The series whose point is nearest the cursor vertically.
      let best = 0;
      let bestDist = Infinity;
      const top = u.cursor.top ?? 0;
      series.forEach((s, si) => {
        const v = s.values[idx];
        if (v === null || v === undefined) return;
        const d = Math.abs(u.valToPos(v, 'y') - top);
        if (d < bestDist) {
          bestDist = d;
          best = si;
        }
      });
      handlers.current.onClick(idx, best);
    };
    u.over.addEventListener('click', click);
    const ro = new ResizeObserver(() => u.setSize({ width: el.clientWidth, height }));
    ro.observe(el);
    return () => {
      ro.disconnect();
      u.destroy();
    };
  }, [x, series, height, kind]);

  return <div ref={box} class={`chart${onClick ? ' chart-clickable' : ''}`} role="img" aria-label={ariaLabel} />;
}

const PALETTE = ['#6d5dfc', '#0ea5e9', '#10b981', '#f59e0b', '#ec4899', '#8b5cf6', '#14b8a6', '#f97316', '#84cc16', '#e11d48'];
export function palette(i: number): string {
  return PALETTE[i % PALETTE.length];
}
