// The login page for a qyl with a token. The token is checked against the
// API first (so a typo is an inline error, not a JSON 401 page), then the
// browser goes to `/?t=TOKEN`, where qyl sets its HttpOnly cookie and
// redirects without the token in the URL.
import { useState } from 'preact/hooks';
import { useParams } from '../lib/params';

export function Login() {
  const p = useParams();
  const next = p.get('next') || '/';
  const [token, setToken] = useState('');
  const [error, setError] = useState(p.get('error') === 'invalid' ? 'That token is not valid.' : '');
  const [busy, setBusy] = useState(false);

  const submit = async (e: Event) => {
    e.preventDefault();
    const t = token.trim();
    if (!t) return;
    setBusy(true);
    setError('');
    try {
      const resp = await fetch('/api/v1/storage', { headers: { authorization: `Bearer ${t}` } });
      if (resp.status === 401) {
        setError('That token is not valid.');
        return;
      }
      const safeNext = next.startsWith('/') && !next.startsWith('//') ? next : '/';
      const [path, query] = safeNext.split('?');
      const q = new URLSearchParams(query ?? '');
      q.set('t', t);
      location.replace(`${path}?${q}`);
    } catch (err) {
      setError(`qyl did not answer: ${(err as Error).message}`);
    } finally {
      setBusy(false);
    }
  };

  return (
    <div class="login">
      <form class="card login-card" onSubmit={submit}>
        <div class="brand login-brand">
          <span class="brand-mark" aria-hidden="true">q</span> qyl
        </div>
        <p class="muted">This qyl needs a token. It is <code>auth.token</code> in qyl.toml (or <code>QYL_AUTH_TOKEN</code>); a qyl listening beyond localhost without one prints a login URL at start.</p>
        <label class="field">
          <span>Token</span>
          <input name="token" type="password" autoComplete="current-password" autoFocus value={token} onInput={(e) => setToken((e.target as HTMLInputElement).value)} />
        </label>
        {error && (
          <div class="form-error" role="alert">
            {error}
          </div>
        )}
        <button class="btn btn-primary" type="submit" disabled={busy || !token.trim()}>
          {busy ? 'Checking…' : 'Log in'}
        </button>
      </form>
    </div>
  );
}
