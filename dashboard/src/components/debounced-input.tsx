// A filter text box that writes to the URL once typing pauses (Enter writes
// at once) and follows the URL when it changes (back button, "Clear"), so a
// query is not re-run on every keystroke. Used by the Logs, Traces and Live
// filter bars.
import type { JSX } from 'preact';
import { useEffect, useState } from 'preact/hooks';

type Props = Omit<JSX.InputHTMLAttributes<HTMLInputElement>, 'value' | 'onInput' | 'onKeyDown'> & {
  /** The committed value (from the URL). */
  value: string;
  onCommit: (text: string) => void;
  /** The pause after the last keystroke before the text is committed. */
  delayMs: number;
};

export function DebouncedInput({ value, onCommit, delayMs, ...rest }: Props) {
  const [draft, setDraft] = useState(value);
  useEffect(() => setDraft(value), [value]);
  useEffect(() => {
    if (draft === value) return;
    const t = setTimeout(() => onCommit(draft), delayMs);
    return () => clearTimeout(t);
  }, [draft]);
  return (
    <input
      {...rest}
      value={draft}
      onInput={(e) => setDraft((e.target as HTMLInputElement).value)}
      onKeyDown={(e) => e.key === 'Enter' && onCommit(draft)}
    />
  );
}
