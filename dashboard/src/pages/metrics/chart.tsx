// The metrics page's chart. The shared Chart hides points and never joins
// across empty steps, which suits dense span counts; metric points arrive
// at each SDK's export interval, so a series can be a few isolated steps.
// Here points show whenever uPlot has room for them (a lone step stays
// visible) and gauge-like lines can be drawn across steps with no point.
import { useEffect, useRef } from 'preact/hooks';
import uPlot from 'uplot';
import 'uplot/dist/uPlot.min.css';
import { fmtDateTime } from '../../lib/time';

export interface MetricLine {
  label: string;
  values: (number | null)[];
  color: string;
  dash?: boolean;
}

const cssVar = (name: string, fallback: string) => getComputedStyle(document.documentElement).getPropertyValue(name).trim() || fallback;

/** Room for the widest y label (values carry their unit, e.g. `1.5 order/s`). */
const axisWidth = (_u: uPlot, values: string[] | null) => 16 + 7 * Math.max(4, ...(values ?? []).map((v) => String(v ?? '').length));

export function MetricChart({ x, lines, fmt, joinGaps, height = 280, ariaLabel }: { x: number[]; lines: MetricLine[]; fmt: (v: number) => string; joinGaps: boolean; height?: number; ariaLabel: string }) {
  const box = useRef<HTMLDivElement>(null);
  useEffect(() => {
    const el = box.current;
    if (!el) return;
    const axis = cssVar('--text-muted', '#888');
    const grid = cssVar('--grid', 'rgba(128,128,128,0.15)');
    const opts: uPlot.Options = {
      width: el.clientWidth || 600,
      height,
      cursor: { points: { size: 6 } },
      legend: { show: true, live: true },
      scales: { x: { time: true }, y: { auto: true, range: (_u, min, max) => [Math.min(0, min), max > 0 ? max * 1.08 : 1] } },
      axes: [
        { stroke: axis, grid: { stroke: grid, width: 1 }, ticks: { stroke: grid } },
        { stroke: axis, grid: { stroke: grid, width: 1 }, ticks: { stroke: grid }, values: (_u, vals) => vals.map((v) => (v === null ? '' : fmt(v))), size: axisWidth },
      ],
      series: [
        { value: (_u, v) => (v === null ? '–' : fmtDateTime(v * 1000)) },
        ...lines.map(
          (l) =>
            ({
              label: l.label,
              stroke: l.color,
              width: l.dash ? 1.25 : 1.75,
              dash: l.dash ? [5, 4] : undefined,
              spanGaps: joinGaps,
              points: { size: 5, fill: l.color },
              value: (_u: uPlot, v: number | null) => (v === null || v === undefined ? '–' : fmt(v)),
            }) as uPlot.Series,
        ),
      ],
    };
    const u = new uPlot(opts, [x, ...lines.map((l) => l.values)] as uPlot.AlignedData, el);
    const ro = new ResizeObserver(() => u.setSize({ width: el.clientWidth, height }));
    ro.observe(el);
    return () => {
      ro.disconnect();
      u.destroy();
    };
  }, [x, lines, height, joinGaps]);
  return <div ref={box} class="chart" role="img" aria-label={ariaLabel} />;
}
