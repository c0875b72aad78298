// Building blocks every page shares: the header row, tabs, stat tiles and
// badges, so pages look alike without repeating markup.
import type { ComponentChildren } from 'preact';
import { Link } from 'wouter-preact';

export function PageHeader({ title, subtitle, children }: { title: ComponentChildren; subtitle?: ComponentChildren; children?: ComponentChildren }) {
  return (
    <header class="page-header">
      <div>
        <h1>{title}</h1>
        {subtitle && <div class="page-subtitle">{subtitle}</div>}
      </div>
      {children && <div class="page-actions">{children}</div>}
    </header>
  );
}

export function Tabs({ tabs, active, onChange }: { tabs: { id: string; label: ComponentChildren }[]; active: string; onChange: (id: string) => void }) {
  return (
    <div class="tabs" role="tablist">
      {tabs.map((t) => (
        <button key={t.id} role="tab" aria-selected={active === t.id} class={`tab${active === t.id ? ' active' : ''}`} onClick={() => onChange(t.id)}>
          {t.label}
        </button>
      ))}
    </div>
  );
}

export function Stat({ label, value, sub, tone, href }: { label: string; value: ComponentChildren; sub?: ComponentChildren; tone?: 'bad' | 'warn' | 'good'; href?: string }) {
  const body = (
    <>
      <div class="stat-label">{label}</div>
      <div class={`stat-value${tone ? ` tone-${tone}` : ''}`}>{value}</div>
      {sub && <div class="stat-sub">{sub}</div>}
    </>
  );
  return href ? (
    <Link href={href} class="stat card stat-link">
      {body}
    </Link>
  ) : (
    <div class="stat card">{body}</div>
  );
}

export function Badge({ children, tone = 'neutral', title }: { children: ComponentChildren; tone?: 'neutral' | 'bad' | 'warn' | 'good' | 'info' | 'accent'; title?: string }) {
  return (
    <span class={`badge badge-${tone}`} title={title}>
      {children}
    </span>
  );
}

export function Card({ title, actions, children, class: cls }: { title?: ComponentChildren; actions?: ComponentChildren; children: ComponentChildren; class?: string }) {
  return (
    <section class={`card${cls ? ` ${cls}` : ''}`}>
      {(title || actions) && (
        <div class="card-head">
          {title && <h2>{title}</h2>}
          {actions && <div class="card-actions">{actions}</div>}
        </div>
      )}
      {children}
    </section>
  );
}
