// Loading, error and empty states, the same on every page. The empty state
// tells a new user how to send data, since that is why a page is empty.
import type { ComponentChildren } from 'preact';

export function Loading({ label = 'Loading…' }: { label?: string }) {
  return (
    <div class="state state-loading" role="status" aria-live="polite">
      <span class="spinner" aria-hidden="true" />
      {label}
    </div>
  );
}

export function ErrorBox({ error, title = 'Could not load this' }: { error: unknown; title?: string }) {
  const e = error as { message?: string; code?: string; status?: number };
  return (
    <div class="state state-error" role="alert">
      <strong>{title}</strong>
      <div class="mono">
        {e?.status ? `${e.status} ${e.code ?? ''}: ` : ''}
        {e?.message ?? String(error)}
      </div>
    </div>
  );
}

export const OTLP_HINT = `export OTEL_EXPORTER_OTLP_ENDPOINT=http://${typeof location !== 'undefined' ? location.hostname : 'localhost'}:4317
export OTEL_EXPORTER_OTLP_PROTOCOL=grpc`;

/** Nothing to show. With `hint` (the default), shows how to send data. */
export function Empty({ title = 'No data in this time range', children, hint = true }: { title?: string; children?: ComponentChildren; hint?: boolean }) {
  return (
    <div class="state state-empty">
      <strong>{title}</strong>
      {children && <div>{children}</div>}
      {hint && (
        <div class="empty-hint">
          <div>Point any OpenTelemetry SDK at qyl:</div>
          <pre class="code">{OTLP_HINT}</pre>
          <div class="muted">or HTTP: <code>OTEL_EXPORTER_OTLP_PROTOCOL=http/protobuf</code> with port 4318.</div>
        </div>
      )}
    </div>
  );
}
