// A tiny inline SVG line for tables (counts over time); no axes.
export function Sparkline({ values, width = 100, height = 24, color = 'var(--accent)', fill = true, label }: { values: (number | null)[]; width?: number; height?: number; color?: string; fill?: boolean; label?: string }) {
  const vs = values.map((v) => (v === null || Number.isNaN(v) ? 0 : v));
  if (vs.length === 0) return <svg width={width} height={height} class="sparkline" aria-label={label} />;
  const max = Math.max(...vs, 1e-9);
  const step = vs.length > 1 ? width / (vs.length - 1) : width;
  const pts = vs.map((v, i) => `${(i * step).toFixed(1)},${(height - 1 - (v / max) * (height - 3)).toFixed(1)}`);
  const line = `M${pts.join(' L')}`;
  return (
    <svg width={width} height={height} class="sparkline" role="img" aria-label={label ?? `max ${max}`} viewBox={`0 0 ${width} ${height}`}>
      {fill && <path d={`${line} L${width},${height} L0,${height} Z`} fill={color} opacity="0.15" />}
      <path d={line} fill="none" stroke={color} stroke-width="1.5" stroke-linejoin="round" />
    </svg>
  );
}
