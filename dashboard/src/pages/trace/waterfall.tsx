// The trace waterfall: a collapsible span tree beside a time axis, with a
// minimap of the whole trace on top whose window zooms the axis. Rows are
// virtualised (@tanstack/virtual-core) so a 10,000-span trace paints only
// the few dozen rows in view; every row has the same height, so positions
// are arithmetic and scrolling never measures the DOM.
import { Component } from 'preact';
import { useCallback, useEffect, useLayoutEffect, useMemo, useRef, useState } from 'preact/hooks';
import { useVirtualizer } from '../../components/virtual';
import { colorFor, fmtMs } from '../../lib/format';
import { textOn, ticks, type TraceModel } from './model';

export const ROW_H = 24;
const rowHeight = () => ROW_H;
const INDENT = 14;

export interface WaterfallProps {
  model: TraceModel;
  rows: Int32Array;
  collapsed: Set<number>;
  onToggle: (i: number, collapse?: boolean) => void;
  onCollapseAll: (collapse: boolean) => void;
  selected: number;
  onSelect: (i: number) => void;
  showCritical: boolean;
  /** Spans matching the trace search; null when there is no search. */
  matches: Uint8Array | null;
}

export function Waterfall({ model, rows, collapsed, onToggle, onCollapseAll, selected, onSelect, showCritical, matches }: WaterfallProps) {
  const scrollRef = useRef<HTMLDivElement>(null);
  // The zoomed time range; null shows the whole trace (and follows it when
  // a refresh brings later spans). A different trace starts unzoomed.
  const [zoom, setZoom] = useState<[number, number] | null>(null);
  const traceId = model.spans[0]?.span.trace_id;
  useEffect(() => setZoom(null), [traceId]);
  const full: [number, number] = [0, model.duration || 1];
  const view = zoom ?? full;
  const setView = (v: [number, number]) => setZoom(v[0] <= 0 && v[1] >= full[1] ? null : v);
  const [nameW, setNameW] = useState(0.38);
  const scrollEl = useCallback(() => scrollRef.current, []);
  const v = useVirtualizer({
    count: rows.length,
    getScrollElement: scrollEl,
    estimateSize: rowHeight,
    overscan: 10,
    // Rows can paint in the very first render, before the element is measured.
    initialRect: { width: 1000, height: Math.max(300, window.innerHeight - 250) },
  });

  // Where each span sits among the visible rows (for keyboard moves).
  const posOf = useMemo(() => {
    const p = new Int32Array(model.spans.length).fill(-1);
    rows.forEach((s, i) => (p[s] = i));
    return p;
  }, [rows, model]);

  // A span selected by the URL (a shared link) is scrolled into view once.
  useEffect(() => {
    if (selected >= 0 && posOf[selected] >= 0) v.scrollToIndex(posOf[selected], { align: 'center' });
  }, [model]);

  const selectAt = (pos: number) => {
    const clamped = Math.max(0, Math.min(rows.length - 1, pos));
    onSelect(rows[clamped]);
    v.scrollToIndex(clamped, { align: 'auto' });
  };

  const onKey = (e: KeyboardEvent) => {
    const cur = selected >= 0 ? posOf[selected] : -1;
    const s = selected >= 0 ? model.spans[selected] : undefined;
    switch (e.key) {
      case 'ArrowDown':
        selectAt(cur + 1);
        break;
      case 'ArrowUp':
        selectAt(cur < 0 ? 0 : cur - 1);
        break;
      case 'Home':
        selectAt(0);
        break;
      case 'End':
        selectAt(rows.length - 1);
        break;
      case 'PageDown':
        selectAt(cur + 20);
        break;
      case 'PageUp':
        selectAt(cur - 20);
        break;
      case 'Escape':
        if (selected < 0) return;
        onSelect(-1);
        break;
      case 'ArrowLeft':
        if (!s) return;
        if (s.children.length && !collapsed.has(selected)) onToggle(selected, true);
        else if (s.parent >= 0) selectAt(posOf[s.parent]);
        break;
      case 'ArrowRight':
        if (!s) return;
        if (s.children.length && collapsed.has(selected)) onToggle(selected, false);
        else if (s.children.length) selectAt(cur + 1);
        break;
      default:
        return;
    }
    e.preventDefault();
  };

  const [v0, v1] = view;
  const width = Math.max(v1 - v0, 1e-9);
  const pct = (t: number) => ((t - v0) / width) * 100;
  const tickList = useMemo(() => ticks(v0, v1, 6), [v0, v1]);
  const zoomed = zoom !== null;
  const items = v.getVirtualItems();
  // A classic (non-overlay) scrollbar narrows the rows but not the header
  // and grid; they are offset by its width so the axes line up.
  const [scrollbar, setScrollbar] = useState(0);
  useLayoutEffect(() => {
    const el = scrollRef.current;
    if (el && el.offsetWidth - el.clientWidth !== scrollbar) setScrollbar(el.offsetWidth - el.clientWidth);
  });

  return (
    <div class="wf" style={{ '--wf-name-frac': String(nameW), '--wf-sb': `${scrollbar}px` } as Record<string, string>}>
      <Minimap model={model} view={view} onView={setView} />
      <div class="wf-head">
        <div class="wf-head-name">
          <span class="ellipsis">Span</span>
          <span class="wf-head-actions">
            <button class="btn btn-sm" onClick={() => onCollapseAll(false)} title="Expand every span">
              Expand all
            </button>
            <button class="btn btn-sm" onClick={() => onCollapseAll(true)} title="Collapse to the roots' children">
              Collapse all
            </button>
          </span>
        </div>
        <Divider onDrag={(f) => setNameW(Math.min(0.7, Math.max(0.15, f)))} />
        <div class="wf-ruler">
          <span aria-hidden="true">
            {tickList.map((t) => (
              <span key={t} class={`wf-tick${t <= v0 ? ' wf-tick-first' : ''}`} style={{ left: `${pct(t)}%` }}>
                {fmtMs(t)}
              </span>
            ))}
          </span>
          {zoomed && (
            <button class="btn btn-sm wf-reset" onClick={() => setZoom(null)}>
              Reset zoom
            </button>
          )}
        </div>
      </div>
      <div class="wf-body">
        <div class="wf-grid" aria-hidden="true">
          {tickList.map((t) => (
            <span key={t} style={{ left: `${pct(t)}%` }} />
          ))}
        </div>
        <div
          ref={scrollRef}
          class="wf-scroll"
          tabIndex={0}
          role="tree"
          aria-label="Spans"
          aria-activedescendant={selected >= 0 ? `span-${model.spans[selected].span.span_id}` : undefined}
          onKeyDown={onKey}
        >
          <div class="wf-rows" style={{ height: `${v.getTotalSize()}px` }}>
            {items.map((it) => {
              const i = rows[it.index];
              if (i === undefined) return null;
              return (
                <Row
                  key={i}
                  i={i}
                  top={it.start}
                  model={model}
                  isCollapsed={collapsed.has(i)}
                  isSelected={i === selected}
                  showCritical={showCritical}
                  match={matches ? (matches[i] === 1 ? 1 : 0) : -1}
                  v0={v0}
                  width={width}
                  onSelect={onSelect}
                  onToggle={onToggle}
                />
              );
            })}
          </div>
        </div>
      </div>
    </div>
  );
}

interface RowProps {
  i: number;
  top: number;
  model: TraceModel;
  isCollapsed: boolean;
  isSelected: boolean;
  showCritical: boolean;
  /** 1 matches the trace search, 0 does not, -1 no search. */
  match: number;
  /** The visible time range: its start and length, ms. */
  v0: number;
  width: number;
  onSelect: (i: number) => void;
  onToggle: (i: number, collapse?: boolean) => void;
}

/** Rows re-render only when what they show changes, so a scroll step
 *  renders just the rows that come into view. */
class Row extends Component<RowProps> {
  shouldComponentUpdate(n: RowProps) {
    const p = this.props;
    return (
      n.i !== p.i || n.top !== p.top || n.model !== p.model || n.isCollapsed !== p.isCollapsed || n.isSelected !== p.isSelected || n.showCritical !== p.showCritical || n.match !== p.match || n.v0 !== p.v0 || n.width !== p.width
    );
  }
  render(props: RowProps) {
    return <RowBody {...props} />;
  }
}

function RowBody({ i, top, model, isCollapsed, isSelected, showCritical, match, v0, width, onSelect, onToggle }: RowProps) {
  const pct = (t: number) => ((t - v0) / width) * 100;
  const s = model.spans[i];
  const span = s.span;
  const color = colorFor(span.service_name);
  const critical = model.critical[i] === 1;
  const left = pct(s.start);
  const w = ((s.end - s.start) / width) * 100;
  // Duration label: after the bar when there is room, else before it, else inside.
  const labelPlace = left + w < 80 ? 'right' : left > 14 ? 'left' : 'inside';
  const hasKids = s.children.length > 0;
  const parentService = s.parent >= 0 ? model.spans[s.parent].span.service_name : null;
  const cls = `wf-row${isSelected ? ' selected' : ''}${critical ? ' critical' : ''}${s.error ? ' error' : ''}${showCritical && critical ? ' show-crit' : ''}${match === 1 ? ' match' : match === 0 ? ' no-match' : ''}`;
  return (
    <div
      id={`span-${span.span_id}`}
      class={cls}
      style={{ transform: `translateY(${top}px)` }}
      role="treeitem"
      aria-level={s.depth + 1}
      aria-selected={isSelected}
      aria-expanded={hasKids ? !isCollapsed : undefined}
      data-span-id={span.span_id}
      data-depth={s.depth}
      data-critical={critical ? 'true' : 'false'}
      onClick={() => onSelect(i)}
    >
      <div class="wf-name" title={`${span.service_name}: ${span.name}`}>
        <span class="wf-indent" style={{ width: `${s.depth * INDENT}px` }} />
        {hasKids ? (
          <button
            class="wf-toggle"
            tabIndex={-1}
            aria-label={isCollapsed ? `Expand ${span.name}` : `Collapse ${span.name}`}
            onClick={(e) => {
              e.stopPropagation();
              onToggle(i);
            }}
          >
            {isCollapsed ? '▸' : '▾'}
          </button>
        ) : (
          <span class="wf-toggle-space" />
        )}
        <span class="wf-svc-mark" style={{ background: color }} />
        {s.error && (
          <span class="wf-err" title={span.status_message ?? 'error'} aria-label="error">
            !
          </span>
        )}
        {span.service_name !== parentService && <span class="wf-svc">{span.service_name}</span>}
        <span class="wf-op">{span.name}</span>
        {hasKids && isCollapsed && <span class="wf-count">{s.descendants}</span>}
      </div>
      <div class="wf-timeline">
        <div class={`wf-bar${s.error ? ' wf-bar-error' : ''}`} style={{ left: `${left}%`, width: `${w}%`, background: color }}>
          {span.events.length > 0 &&
            span.events.map((ev, k) => {
              const at = (Number(ev.time_unix_nano) - Number(span.start_time_unix_nano)) / 1e6;
              const dur = s.end - s.start;
              return dur > 0 ? <span key={k} class="wf-event" style={{ left: `${(at / dur) * 100}%` }} title={ev.name} /> : null;
            })}
        </div>
        {showCritical &&
          model.criticalSections.get(i)?.map(([a, b], k) => <div key={k} class="wf-crit" style={{ left: `${pct(a)}%`, width: `${((b - a) / width) * 100}%` }} />)}
        <span
          class={`wf-dur${labelPlace === 'inside' ? ' wf-dur-inside' : ''}`}
          style={
            labelPlace === 'right'
              ? { left: `calc(${left + w}% + 4px)` }
              : labelPlace === 'left'
                ? { right: `calc(${100 - left}% + 4px)` }
                : { right: `calc(${Math.max(0, 100 - left - w)}% + 4px)`, color: textOn(color) }
          }
        >
          {fmtMs(s.end - s.start)}
        </span>
      </div>
    </div>
  );
}

/** The draggable boundary between the name column and the timeline. */
function Divider({ onDrag }: { onDrag: (fraction: number) => void }) {
  const ref = useRef<HTMLDivElement>(null);
  const start = (e: PointerEvent) => {
    const host = ref.current?.closest('.wf') as HTMLElement | null;
    if (!host) return;
    const rect = host.getBoundingClientRect();
    const move = (m: PointerEvent) => onDrag((m.clientX - rect.left) / rect.width);
    const up = () => {
      window.removeEventListener('pointermove', move);
      window.removeEventListener('pointerup', up);
    };
    window.addEventListener('pointermove', move);
    window.addEventListener('pointerup', up);
    e.preventDefault();
  };
  return <div ref={ref} class="wf-divider" role="separator" aria-orientation="vertical" aria-label="Resize the name column" onPointerDown={start} />;
}

/** The whole trace in small; the window is the visible time range: drag it
 *  to pan, drag elsewhere to zoom to a range, double-click to reset. */
function Minimap({ model, view, onView }: { model: TraceModel; view: [number, number]; onView: (v: [number, number]) => void }) {
  const box = useRef<HTMLDivElement>(null);
  const canvas = useRef<HTMLCanvasElement>(null);
  const [draft, setDraft] = useState<[number, number] | null>(null);
  const H = 44;
  const dur = model.duration || 1;

  useEffect(() => {
    const el = canvas.current;
    const host = box.current;
    if (!el || !host) return;
    // Drawn after the first paint so it never delays the rows.
    const draw = () => {
      const w = host.clientWidth;
      const dpr = window.devicePixelRatio || 1;
      el.width = w * dpr;
      el.height = H * dpr;
      el.style.width = `${w}px`;
      el.style.height = `${H}px`;
      const ctx = el.getContext('2d');
      if (!ctx) return;
      ctx.scale(dpr, dpr);
      ctx.clearRect(0, 0, w, H);
      const n = model.spans.length;
      // One line per span, at most 7px apart so small traces stay lines.
      const step = Math.min((H - 2) / Math.max(n, 1), 7);
      const rowH = Math.max(Math.min(step - 1, 5), 0.6);
      const bad = getComputedStyle(document.documentElement).getPropertyValue('--bad').trim() || '#dc2626';
      model.spans.forEach((s, i) => {
        ctx.fillStyle = s.error ? bad : colorFor(s.span.service_name);
        const x = (s.start / dur) * w;
        ctx.fillRect(x, 1 + i * step, Math.max(((s.end - s.start) / dur) * w, 1), rowH);
      });
    };
    const raf = requestAnimationFrame(draw);
    // Redrawn only when the width really changes (the observer also fires once at start).
    let drawnFor = host.clientWidth;
    const ro = new ResizeObserver(() => {
      if (host.clientWidth === drawnFor) return;
      drawnFor = host.clientWidth;
      draw();
    });
    ro.observe(host);
    return () => {
      cancelAnimationFrame(raf);
      ro.disconnect();
    };
  }, [model]);

  const frac = (clientX: number) => {
    const r = box.current!.getBoundingClientRect();
    return Math.min(1, Math.max(0, (clientX - r.left) / r.width));
  };
  const onDown = (e: PointerEvent) => {
    if (e.button !== 0) return;
    const f0 = frac(e.clientX);
    const [a, b] = view;
    const inside = f0 * dur >= a && f0 * dur <= b && (a > 0 || b < dur);
    const startX = e.clientX;
    let last: [number, number] | null = null;
    const move = (m: PointerEvent) => {
      const f = frac(m.clientX);
      if (inside) {
        const d = (f - f0) * dur;
        const len = b - a;
        const na = Math.min(Math.max(0, a + d), dur - len);
        onView([na, na + len]);
      } else {
        last = [Math.min(f0, f) * dur, Math.max(f0, f) * dur];
        setDraft(last);
      }
    };
    const up = (u: PointerEvent) => {
      window.removeEventListener('pointermove', move);
      window.removeEventListener('pointerup', up);
      setDraft(null);
      if (inside) return;
      if (last && Math.abs(u.clientX - startX) > 3) onView(last);
      else if (a > 0 || b < dur) {
        // A click recentres the zoomed window there.
        const len = b - a;
        const na = Math.min(Math.max(0, f0 * dur - len / 2), dur - len);
        onView([na, na + len]);
      }
    };
    window.addEventListener('pointermove', move);
    window.addEventListener('pointerup', up);
    e.preventDefault();
  };
  const [a, b] = draft ?? view;
  return (
    <div
      ref={box}
      class="wf-minimap"
      style={{ height: `${H}px` }}
      onPointerDown={onDown}
      onDblClick={() => onView([0, dur])}
      title="Drag to zoom to a time range, drag the window to pan, double-click to reset"
    >
      <canvas ref={canvas} />
      <div class="wf-mm-shade" style={{ left: 0, width: `${(a / dur) * 100}%` }} />
      <div class="wf-mm-window" style={{ left: `${(a / dur) * 100}%`, width: `${((b - a) / dur) * 100}%` }} />
      <div class="wf-mm-shade" style={{ left: `${(b / dur) * 100}%`, right: 0 }} />
    </div>
  );
}
