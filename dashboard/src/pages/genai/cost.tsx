// A cost as the GenAI and session pages show it: calls without a price are
// never summed into a `$0` that reads as "free".
import { fmtCost } from '../../lib/format';

/** Cost as people should read it: never `$0` when some calls had no price. */
export function CostText({ cost, unpriced, requests, tokens }: { cost: number | null; unpriced: number; requests: number; tokens?: number }) {
  if (requests > 0 && unpriced >= requests) return <span class="muted" title="No call had a known price">–</span>;
  if (tokens === 0 && !cost) return <span class="muted" title="No tokens, so nothing to price">–</span>;
  return <>{fmtCost(cost)}</>;
}
