// The flame graph (an icicle): the same span tree as the waterfall, each
// span under its parent and as wide as its duration on the trace's time
// axis. Siblings that run at the same time get their own lanes (with their
// subtrees) instead of overlapping. Clicking a span zooms the axis to it;
// its ancestors stay visible above, clipped to the zoomed range.
import { useEffect, useMemo, useRef, useState } from 'preact/hooks';
import { colorFor, fmtMs } from '../../lib/format';
import { textOn, type TraceModel } from './model';

const LEVEL_H = 22;

/** The level (row) of every span: a span sits one level below its parent;
 *  concurrent siblings are packed into lanes, each lane as tall as its
 *  tallest subtree. Returns the levels and the total number of levels. */
export function flameLevels(model: TraceModel): { level: Int32Array; levels: number } {
  const spans = model.spans;
  const n = spans.length;
  const height = new Int32Array(n);
  const offset = new Int32Array(n);
  // Children before parents: reverse pre-order.
  for (let i = n - 1; i >= 0; i--) {
    const lanes: { end: number; height: number }[] = [];
    const laneOf: number[] = [];
    for (const c of spans[i].children) {
      let k = lanes.findIndex((l) => l.end <= spans[c].start);
      if (k < 0) {
        k = lanes.length;
        lanes.push({ end: -Infinity, height: 0 });
      }
      lanes[k].end = Math.max(lanes[k].end, spans[c].end);
      lanes[k].height = Math.max(lanes[k].height, height[c]);
      laneOf.push(k);
    }
    const base: number[] = [];
    let total = 0;
    for (const l of lanes) {
      base.push(total);
      total += l.height;
    }
    spans[i].children.forEach((c, j) => (offset[c] = 1 + base[laneOf[j]]));
    height[i] = 1 + total;
  }
  const level = new Int32Array(n);
  let levels = 0;
  let top = 0;
  for (let i = 0; i < n; i++) {
    const p = spans[i].parent;
    if (p < 0) {
      level[i] = top;
      top += height[i];
    } else level[i] = level[p] + offset[i];
    levels = Math.max(levels, level[i] + 1);
  }
  return { level, levels };
}

export function FlameGraph({ model, selected, onSelect, matches }: { model: TraceModel; selected: number; onSelect: (i: number) => void; matches: Uint8Array | null }) {
  const box = useRef<HTMLDivElement>(null);
  const [width, setWidth] = useState(900);
  const [zoom, setZoom] = useState<number>(-1);
  useEffect(() => {
    const el = box.current;
    if (!el) return;
    // The box has 12px of padding each side.
    const measure = () => setWidth(Math.max(200, el.clientWidth - 24));
    measure();
    const ro = new ResizeObserver(measure);
    ro.observe(el);
    return () => ro.disconnect();
  }, []);
  const traceId = model.spans[0]?.span.trace_id;
  useEffect(() => setZoom(-1), [traceId]);

  const zoomed = zoom >= 0 && zoom < model.spans.length;
  const [v0, v1] = zoomed ? [model.spans[zoom].start, model.spans[zoom].end] : [0, model.duration];
  const scale = width / Math.max(v1 - v0, 1e-9);
  const { level, levels } = useMemo(() => flameLevels(model), [model]);
  const [hover, setHover] = useState<{ i: number; x: number; y: number } | null>(null);
  const { out: rects, hidden } = useMemo(() => {
    const out: { i: number; x: number; w: number; y: number }[] = [];
    let hidden = 0;
    model.spans.forEach((s, i) => {
      const a = Math.max(s.start, v0);
      const b = Math.min(s.end, v1);
      if (b < a || (b === a && s.end > s.start)) return;
      const x = (a - v0) * scale;
      const w = (b - a) * scale;
      // Narrower than half a pixel: invisible; zooming in brings it back.
      if (w < 0.5) {
        hidden++;
        return;
      }
      out.push({ i, x, w: Math.max(w, 1), y: level[i] * LEVEL_H });
    });
    return { out, hidden };
  }, [model, level, v0, v1, scale]);
  const height = levels * LEVEL_H;
  const bad = 'var(--bad)';

  return (
    <div class="flame">
      <div class="flame-bar">
        <span class="muted">
          {zoomed ? (
            <>
              Zoomed to <b>{model.spans[zoom].span.name}</b> ({fmtMs(v1 - v0)})
            </>
          ) : (
            'Click a span to zoom to it; width is duration.'
          )}
          {hidden > 0 && ` ${hidden.toLocaleString('en-US')} spans too narrow to draw at this zoom.`}
        </span>
        <span class="row-wrap">
          {model.services.map((svc) => (
            <span key={svc} class="svc-chip">
              <span class="dot" style={{ background: colorFor(svc) }} />
              {svc}
            </span>
          ))}
          {zoomed && (
            <button class="btn btn-sm" onClick={() => setZoom(-1)}>
              Reset zoom
            </button>
          )}
        </span>
      </div>
      <div
        ref={box}
        class="flame-box"
        onMouseMove={(e) => {
          // One tooltip for the whole chart instead of a title per span.
          const g = (e.target as Element).closest?.('[data-i]');
          const r = box.current!.getBoundingClientRect();
          setHover(g ? { i: Number(g.getAttribute('data-i')), x: e.clientX - r.left + box.current!.scrollLeft, y: e.clientY - r.top + box.current!.scrollTop } : null);
        }}
        onMouseLeave={() => setHover(null)}
      >
        {hover && model.spans[hover.i] && (
          <div class="flame-tip" style={{ left: `${Math.min(hover.x + 12, width - 220)}px`, top: `${hover.y + 14}px` }}>
            <b>{model.spans[hover.i].span.name}</b>
            <div class="muted">
              {model.spans[hover.i].span.service_name} · {fmtMs(model.spans[hover.i].end - model.spans[hover.i].start)}
              {model.spans[hover.i].error ? ' · error' : ''}
            </div>
          </div>
        )}
        <svg width={width} height={height} class="flame-svg" role="img" aria-label="Flame graph of the trace's spans">
          {rects.map(({ i, x, w, y }) => {
            const s = model.spans[i];
            const label = `${s.span.name}`;
            const fits = Math.floor((w - 8) / 6.6);
            const text = fits >= label.length ? label : fits > 3 ? `${label.slice(0, fits - 1)}…` : '';
            return (
              <g
                key={i}
                class={`flame-node${i === selected ? ' selected' : ''}${model.critical[i] ? ' critical' : ''}${matches && !matches[i] ? ' no-match' : ''}`}
                data-span-id={s.span.span_id}
                data-i={i}
                transform={`translate(${x},${y})`}
                onClick={() => {
                  onSelect(i);
                  setZoom(i === zoom || s.end <= s.start ? -1 : i);
                }}
              >
                <rect class="flame-rect" width={w} height={LEVEL_H - 2} rx={2} fill={colorFor(s.span.service_name)} stroke={s.error ? bad : 'none'} stroke-width={s.error ? 2 : 0} />
                {text && (
                  <text x={4} y={LEVEL_H / 2 + 3} class="flame-text" fill={textOn(colorFor(s.span.service_name))}>
                    {text}
                  </text>
                )}
              </g>
            );
          })}
        </svg>
      </div>
    </div>
  );
}
