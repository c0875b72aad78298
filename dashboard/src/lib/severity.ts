// OTel severity numbers (1-24) grouped the way people read them: six levels,
// each with a badge and a colour, shared by the Logs list, its histogram and
// the Live page.

export type Level = 'trace' | 'debug' | 'info' | 'warn' | 'error' | 'fatal' | 'unset';

/** Lowest to highest; `unset` (0, no text) is shown apart. */
export const LEVELS: { id: Exclude<Level, 'unset'>; label: string; min: number }[] = [
  { id: 'trace', label: 'TRACE', min: 1 },
  { id: 'debug', label: 'DEBUG', min: 5 },
  { id: 'info', label: 'INFO', min: 9 },
  { id: 'warn', label: 'WARN', min: 13 },
  { id: 'error', label: 'ERROR', min: 17 },
  { id: 'fatal', label: 'FATAL', min: 21 },
];

const BY_TEXT: Record<string, Level> = {
  TRACE: 'trace',
  DEBUG: 'debug',
  INFO: 'info',
  INFORMATION: 'info',
  WARN: 'warn',
  WARNING: 'warn',
  ERROR: 'error',
  CRITICAL: 'fatal',
  FATAL: 'fatal',
};

/** The level of a record; SDKs that send only text get the text's level. */
export function levelOf(severityNumber: number | null | undefined, severityText?: string | null): Level {
  const n = severityNumber ?? 0;
  if (n >= 1 && n <= 24) return LEVELS[Math.min(5, Math.floor((n - 1) / 4))].id;
  const t = (severityText ?? '').toUpperCase().replace(/\d+$/, '');
  return BY_TEXT[t] ?? 'unset';
}

/** The text shown in the badge: what the SDK sent, else the level's name. */
export function levelLabel(level: Level, severityText?: string | null): string {
  if (severityText) return severityText.toUpperCase();
  return level === 'unset' ? '—' : level.toUpperCase();
}
