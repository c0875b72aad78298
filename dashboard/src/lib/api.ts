// The one way pages talk to qyl: the public REST API under /api/v1. Errors
// come back as `{"error": {"code", "message"}}`; a 401 sends the user to the
// login page (the API is the judge of whether a token is needed).

export class ApiError extends Error {
  constructor(
    public status: number,
    public code: string,
    message: string,
  ) {
    super(message);
  }
}

export type Params = Record<string, string | number | boolean | null | undefined | string[]>;

/** `/api/v1{path}?{params}`; empty, null and undefined params are left out. */
export function apiUrl(path: string, params?: Params): string {
  const q = new URLSearchParams();
  for (const [k, v] of Object.entries(params ?? {})) {
    if (v === undefined || v === null || v === '') continue;
    if (Array.isArray(v)) v.forEach((x) => q.append(k, x));
    else q.append(k, String(v));
  }
  const qs = q.toString();
  return `/api/v1${path}${qs ? `?${qs}` : ''}`;
}

function toLogin() {
  if (location.pathname === '/login') return;
  const back = location.pathname + location.search;
  location.assign(`/login?next=${encodeURIComponent(back)}`);
}

async function handle<T>(resp: Response): Promise<T> {
  if (resp.status === 401) {
    toLogin();
    throw new ApiError(401, 'unauthorized', 'a token is required');
  }
  const text = await resp.text();
  let body: any = null;
  try {
    body = text ? JSON.parse(text) : null;
  } catch {
    /* not JSON: reported below */
  }
  if (!resp.ok) {
    const e = body?.error;
    throw new ApiError(resp.status, e?.code ?? `http_${resp.status}`, e?.message ?? (text.slice(0, 300) || resp.statusText));
  }
  return body as T;
}

export async function apiGet<T>(path: string, params?: Params, signal?: AbortSignal): Promise<T> {
  const resp = await fetch(apiUrl(path, params), { signal, credentials: 'same-origin' });
  return handle<T>(resp);
}

export async function apiSend<T>(method: 'POST' | 'PATCH' | 'PUT' | 'DELETE', path: string, body?: unknown, signal?: AbortSignal): Promise<T> {
  const resp = await fetch(apiUrl(path), {
    method,
    signal,
    credentials: 'same-origin',
    headers: body === undefined ? {} : { 'content-type': 'application/json' },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  return handle<T>(resp);
}
