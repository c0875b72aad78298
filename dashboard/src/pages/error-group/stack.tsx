// A parsed stack trace as a person debugging reads it: each exception of the
// chain with its message, the application's own (in-app) frames in full,
// and runs of library and runtime frames folded behind "N system frames".
import { useState } from 'preact/hooks';

export interface Frame {
  module?: string | null;
  function?: string | null;
  path?: string | null;
  line?: number | null;
  column?: number | null;
  in_app: boolean;
}

export interface ParsedException {
  type_name?: string | null;
  message?: string | null;
  frames: Frame[];
}

export interface ParsedFrames {
  language?: string;
  exceptions: ParsedException[];
}

type Segment = { kind: 'app'; frame: Frame; index: number } | { kind: 'system'; frames: { frame: Frame; index: number }[] };

/** In-app frames one by one; consecutive system frames as one segment. */
function segments(frames: Frame[]): Segment[] {
  const out: Segment[] = [];
  frames.forEach((frame, index) => {
    if (frame.in_app) out.push({ kind: 'app', frame, index });
    else {
      const last = out[out.length - 1];
      if (last && last.kind === 'system') last.frames.push({ frame, index });
      else out.push({ kind: 'system', frames: [{ frame, index }] });
    }
  });
  return out;
}

export function StackTrace({ frames }: { frames: ParsedFrames }) {
  const chain = frames.exceptions ?? [];
  return (
    <div class="eg-stack">
      {chain.map((ex, i) => (
        <ExceptionBlock key={i} ex={ex} cause={i > 0} language={frames.language} />
      ))}
    </div>
  );
}

function ExceptionBlock({ ex, cause, language }: { ex: ParsedException; cause: boolean; language?: string }) {
  const anyApp = ex.frames.some((f) => f.in_app);
  return (
    <div class="eg-exception">
      {cause && <div class="eg-cause">caused by</div>}
      <div class="eg-exc-head">
        <span class="eg-exc-type">{ex.type_name ?? 'Exception'}</span>
        {ex.message && <span class="eg-exc-msg">{ex.message}</span>}
      </div>
      {ex.frames.length === 0 ? (
        <div class="muted eg-noframes-inline">No frames.</div>
      ) : (
        <ol class="eg-frames" aria-label={`Frames of ${ex.type_name ?? 'the exception'}${language ? ` (${language})` : ''}`}>
          {segments(ex.frames).map((s) =>
            s.kind === 'app' ? (
              <FrameRow key={s.index} f={s.frame} />
            ) : (
              // Without any in-app frame there is nothing better to show: open.
              <SystemFrames key={`s${s.frames[0].index}`} frames={s.frames.map((x) => x.frame)} open={!anyApp} />
            ),
          )}
        </ol>
      )}
    </div>
  );
}

function SystemFrames({ frames, open: initiallyOpen }: { frames: Frame[]; open: boolean }) {
  const [open, setOpen] = useState(initiallyOpen);
  return (
    <li class="eg-sysgroup">
      <button class={`eg-systoggle${open ? ' open' : ''}`} aria-expanded={open} onClick={() => setOpen(!open)}>
        <span class="eg-chevron" aria-hidden="true">
          ▸
        </span>
        {open ? 'Hide' : 'Show'} {frames.length} system frame{frames.length === 1 ? '' : 's'}
      </button>
      {open && (
        <ol class="eg-frames eg-sysframes">
          {frames.map((f, i) => (
            <FrameRow key={i} f={f} />
          ))}
        </ol>
      )}
    </li>
  );
}

/** `path:function:line`, the way a triage report names its suspected
 *  cause, so the report can point at the row. */
function frameKey(f: Frame): string {
  return `${f.path ?? f.module ?? '?'}:${f.function ?? '?'}:${f.line ?? '?'}`;
}

function FrameRow({ f }: { f: Frame }) {
  const where = f.path || f.module || '';
  const pos = f.line ? `:${f.line}${f.column ? `:${f.column}` : ''}` : '';
  return (
    <li class={`eg-frame${f.in_app ? ' in-app' : ' system'}`} data-frame={frameKey(f)}>
      <span class="eg-frame-fn mono">{f.function || '<anonymous>'}</span>
      <span class="eg-frame-where mono" title={`${where}${pos}`}>
        {where && <span class="eg-frame-path">{where}</span>}
        {pos && <span class="eg-frame-line">{pos}</span>}
      </span>
      {f.in_app ? <span class="eg-inapp-tag">in app</span> : null}
    </li>
  );
}
