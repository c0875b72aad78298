// The options of a "minimum severity" select, shared by the Logs filters
// and the Live page's log filter so both offer the same levels.
import { LEVELS } from './severity';

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
