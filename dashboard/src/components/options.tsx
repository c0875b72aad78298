// The options of the filter selects several pages share, so every "Service"
// and "minimum severity" filter offers the same choices the same way.
import { LEVELS } from '../lib/severity';

/** "All services" (the empty value), then each name. */
export function ServiceOptions({ names }: { names: string[] }) {
  return (
    <>
      <option value="">All services</option>
      {names.map((s) => (
        <option key={s} value={s}>
          {s}
        </option>
      ))}
    </>
  );
}

/** `anyLabel` (the empty value), then each level from TRACE up. */
export function SeverityOptions({ anyLabel }: { anyLabel: string }) {
  return (
    <>
      <option value="">{anyLabel}</option>
      {LEVELS.map((l) => (
        <option key={l.id} value={l.label}>
          {l.label}
        </option>
      ))}
    </>
  );
}
