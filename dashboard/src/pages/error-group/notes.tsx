// The group's Activity, as Sentry's issue sidebar shows it: a box to leave a
// note (what was tried, who is on it, a link to the fix), then the notes
// people and assistants left, newest first, among the group's own
// milestones (first seen, triaged, resolved) so they read as one timeline.
import type { ComponentChildren } from 'preact';
import { useState } from 'preact/hooks';
import { Link } from 'wouter-preact';
import { Card } from '../../components/page';
import { Time } from '../../components/time';
import { apiSend } from '../../lib/api';
import { fmtNum } from '../../lib/format';
import { withRange } from '../../lib/params';
import { toMs } from '../../lib/time';
import type { ErrorGroupRow, ErrorNote, TriageReport } from '../../lib/types';

/** What the API accepts (a longer note is refused with 400). */
export const NOTE_MAX = 10_000;

/** The API signs notes `api` unless told otherwise, MCP ones with the
 *  client's name (`mcp` when it gave none); these are the dashboard's. */
const AUTHOR = 'dashboard';
const AUTHOR_LABEL: Record<string, string> = { api: 'API', dashboard: 'Dashboard', mcp: 'MCP assistant' };

function authorLabel(a: string): string {
  return AUTHOR_LABEL[a] ?? a;
}

/** The group's milestones the activity list shows around the notes. */
type Item = { kind: 'note'; ms: number; note: ErrorNote } | { kind: 'event'; ms: number; at: string; text: ComponentChildren; tone: 'neutral' | 'accent' | 'good' };

export function Activity({ g, notes, triage, onAdded }: { g: ErrorGroupRow; notes: ErrorNote[]; triage: TriageReport | null; onAdded: () => void }) {
  // Notes added here, shown at once; the group's next load brings them too.
  const [added, setAdded] = useState<ErrorNote[]>([]);
  const all = [...notes, ...added.filter((a) => !notes.some((n) => n.note_id === a.note_id))];

  const items: Item[] = all.map((note) => ({ kind: 'note', ms: toMs(note.created_at), note }));
  if (triage) items.push({ kind: 'event', ms: toMs(triage.created_at), at: triage.created_at, tone: 'accent', text: <>Auto-triaged ({triage.change})</> });
  if (g.status === 'resolved' && g.resolved_at) items.push({ kind: 'event', ms: toMs(g.resolved_at), at: g.resolved_at, tone: 'good', text: <>Resolved{g.resolved_in_release ? <> in <span class="mono">{g.resolved_in_release}</span></> : null}</> });
  items.push({ kind: 'event', ms: toMs(g.first_seen), at: g.first_seen, tone: 'neutral', text: <>First seen{g.first_release ? <> in <span class="mono">{g.first_release}</span></> : null}</> });
  // Newest first; at equal times notes (people) before milestones.
  items.sort((x, y) => y.ms - x.ms || (x.kind === 'note' ? -1 : 1) - (y.kind === 'note' ? -1 : 1));

  return (
    <Card class="eg-activity" title="Activity" actions={all.length > 0 && <span class="faint">{all.length === 1 ? '1 note' : `${fmtNum(all.length)} notes`}</span>}>
      {g.status === 'merged' ? (
        <div class="muted eg-note-merged">
          Merged into <Link href={withRange(`/errors/${g.merged_into}`)}>#{g.merged_into}</Link>: leave notes there.
        </div>
      ) : (
        <NoteForm
          groupId={g.id}
          onPosted={(note) => {
            setAdded((a) => [...a, note]);
            onAdded();
          }}
        />
      )}
      <ol class="eg-timeline" aria-label="Activity">
        {items.map((it) =>
          it.kind === 'note' ? (
            <NoteItem key={`n${it.note.note_id}`} note={it.note} />
          ) : (
            <li key={`e-${it.tone}`} class={`eg-milestone eg-milestone-${it.tone}`}>
              <span class="eg-milestone-dot" aria-hidden="true" />
              <span class="eg-milestone-text">{it.text}</span>
              <span class="faint">
                <Time t={it.at} mode="ago" />
              </span>
            </li>
          ),
        )}
      </ol>
    </Card>
  );
}

/** The comment box: posts the note, keeps the text when qyl refuses it
 *  (empty, too long, a read-only token) and says why beneath. */
function NoteForm({ groupId, onPosted }: { groupId: number; onPosted: (note: ErrorNote) => void }) {
  const [text, setText] = useState('');
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState<string | null>(null);
  const trimmed = text.trim();
  const tooLong = text.length > NOTE_MAX;

  const submit = async () => {
    if (!trimmed || tooLong || busy) return;
    setBusy(true);
    setError(null);
    try {
      const note = await apiSend<ErrorNote>('POST', `/errors/${groupId}/notes`, { text: trimmed, author: AUTHOR });
      setText('');
      onPosted(note);
    } catch (e) {
      setError((e as Error).message || 'Could not add the note');
    }
    setBusy(false);
  };

  return (
    <form
      class="eg-note-form"
      onSubmit={(e) => {
        e.preventDefault();
        submit();
      }}
    >
      <label class="sr-only" for="eg-note-text">
        Note
      </label>
      <textarea
        id="eg-note-text"
        class="eg-note-input"
        rows={3}
        placeholder="Add a note: what you found, who is on it, a link to the fix…"
        value={text}
        readOnly={busy}
        aria-invalid={tooLong || !!error || undefined}
        onInput={(e) => {
          setText((e.target as HTMLTextAreaElement).value);
          if (error) setError(null);
        }}
        onKeyDown={(e) => {
          // Ctrl/⌘+Enter posts, as in Sentry's comment box.
          if (e.key === 'Enter' && (e.ctrlKey || e.metaKey)) {
            e.preventDefault();
            submit();
          }
        }}
      />
      {error && (
        <div class="form-error eg-note-error" role="alert">
          {error}
        </div>
      )}
      <div class="eg-note-actions">
        <span class={`eg-note-count${tooLong ? ' tone-bad' : ' faint'}`}>{text.length > NOTE_MAX * 0.8 ? `${fmtNum(text.length)} / ${fmtNum(NOTE_MAX)}` : trimmed ? 'Ctrl+Enter to post' : ''}</span>
        <button type="submit" class="btn btn-primary btn-sm" disabled={!trimmed || tooLong || busy}>
          {busy ? 'Adding…' : 'Add note'}
        </button>
      </div>
    </form>
  );
}

function NoteItem({ note }: { note: ErrorNote }) {
  const label = authorLabel(note.author);
  const mcp = note.author === 'mcp';
  return (
    <li class="eg-note" data-note={note.note_id}>
      <span class={`eg-avatar${mcp ? ' eg-avatar-mcp' : ''}`} aria-hidden="true">
        {mcp ? '✦' : (label[0] ?? '?').toUpperCase()}
      </span>
      <div class="eg-note-main">
        <div class="eg-note-head">
          <span class="eg-note-author" title={note.author}>
            {label}
          </span>
          <span class="faint">
            <Time t={note.created_at} mode="ago" />
          </span>
        </div>
        <div class="eg-note-text">{note.text}</div>
      </div>
    </li>
  );
}
