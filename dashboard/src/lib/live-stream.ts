// One connection to qyl's live stream (GET /api/v1/live, Server-Sent
// Events), used by the Live page and the Logs page's live tail. It keeps the
// id of the last event seen so that every reopen of ours (filters changed,
// the user restarted the stream, qyl refused or ended it) resumes where the
// page left off with ?last_event_id=; the browser's own reconnects after a
// network error send Last-Event-ID by themselves.
import { apiUrl, type Params } from './api';

export type StreamStatus = 'connecting' | 'open' | 'reconnecting' | 'stopped';

export interface StreamHandlers {
  /** A record: `type` is the SSE event name (span, log, error, function, metric). */
  onRecord(type: string, id: number | null, data: any): void;
  /** Records after our resume point had already left qyl's ring, so they
   *  are lost to this page; `fellBehind` when that is because the page did
   *  not keep up (qyl ended the stream with `lagged` and we resumed). */
  onGap?(missed: number, fellBehind: boolean): void;
  onStatus(status: StreamStatus): void;
}

export class LiveStream {
  private source: EventSource | null = null;
  private retryTimer: ReturnType<typeof setTimeout> | undefined;
  private retryDelay = 1000;
  /** qyl ended the stream for falling a ring behind; the reopened stream's
   *  `gap` (if any) says how much of that was really lost. */
  private lagged = false;
  /** The id of the newest record received, kept across reopens. */
  lastId: number | null = null;

  constructor(
    private params: Params,
    private types: string[],
    private handlers: StreamHandlers,
  ) {}

  /** Opens (or reopens) the stream, resuming after `lastId` when known. */
  open() {
    this.closeSource();
    this.handlers.onStatus(this.lastId === null ? 'connecting' : 'reconnecting');
    const url = apiUrl('/live', { ...this.params, types: this.types.join(','), last_event_id: this.lastId ?? undefined });
    const es = new EventSource(url, { withCredentials: true });
    this.source = es;
    es.onopen = () => {
      this.retryDelay = 1000;
      this.handlers.onStatus('open');
    };
    es.onerror = (e) => {
      // qyl's `event: error` (an error group changed) is dispatched under the
      // same name as a connection error; only the latter is a plain Event.
      if (this.source !== es || e instanceof MessageEvent) return;
      if (es.readyState === EventSource.CLOSED) {
        // Refused (400, 503 when qyl has too many streams) or the body ended
        // in a way the browser will not retry: try again ourselves, backing off.
        this.closeSource();
        this.handlers.onStatus('reconnecting');
        this.retryTimer = setTimeout(() => this.open(), this.retryDelay);
        this.retryDelay = Math.min(this.retryDelay * 2, 30000);
      } else {
        // The browser is reconnecting by itself, with Last-Event-ID.
        this.handlers.onStatus('reconnecting');
      }
    };
    const onRecord = (e: Event) => {
      if (this.source !== es || !(e instanceof MessageEvent)) return;
      const id = e.lastEventId ? Number(e.lastEventId) : null;
      if (id !== null && !Number.isNaN(id)) this.lastId = id;
      this.lagged = false;
      let data: unknown;
      try {
        data = JSON.parse(e.data);
      } catch {
        return;
      }
      this.handlers.onRecord(e.type, id, data);
    };
    for (const t of this.types) es.addEventListener(t, onRecord);
    es.addEventListener('gap', ((e: MessageEvent) => {
      if (this.source !== es) return;
      const d = safeJson(e.data);
      this.handlers.onGap?.(Number(d?.missed ?? 0), this.lagged);
      this.lagged = false;
    }) as EventListener);
    es.addEventListener('lagged', (() => {
      if (this.source !== es) return;
      // qyl ends the stream after this; resume now rather than after the
      // browser's reconnection delay. What the ring still holds is replayed.
      this.lagged = true;
      this.open();
    }) as EventListener);
  }

  /** Closes the stream; `open()` later resumes after the last id seen. */
  stop() {
    this.closeSource();
    this.handlers.onStatus('stopped');
  }

  private closeSource() {
    clearTimeout(this.retryTimer);
    this.retryTimer = undefined;
    if (this.source) {
      this.source.close();
      this.source = null;
    }
  }
}

function safeJson(text: string): any {
  try {
    return JSON.parse(text);
  } catch {
    return null;
  }
}
