/**
 * Selection under a uniform ratio: in every group, remove the round(ratio · size) lowest-scoring units
 * (at least one unit always stays). Ties are broken by unit index (lower index removed first), NaN scores
 * count as most important, so the result is deterministic.
 */
import type { Group } from '../analysis/types';
import { UserError } from '../ir/errors';
import type { PlanGroups } from './plan';

/** How many of `size` units a uniform `ratio` removes. */
export function unitsToRemove(size: number, ratio: number): number {
  return Math.max(0, Math.min(size - 1, Math.round(ratio * size)));
}

export function selectUniform(groups: Group[], scores: Record<string, ArrayLike<number>>, ratio: number): PlanGroups {
  if (!Number.isFinite(ratio) || ratio < 0 || ratio >= 1) throw new UserError(`ratio must be in [0, 1), got ${ratio}`);
  const plan: PlanGroups = {};
  for (const g of groups) {
    const k = unitsToRemove(g.size, ratio);
    if (k === 0) continue;
    const s = scores[g.id];
    if (!s || s.length !== g.size) throw new Error(`selection: group '${g.id}' has ${s?.length ?? 0} scores for ${g.size} units`);
    const key = (u: number) => (Number.isNaN(s[u]) ? Infinity : s[u]);
    const order = Array.from({ length: g.size }, (_, u) => u).sort((a, b) => key(a) - key(b) || a - b);
    plan[g.id] = order.slice(0, k).sort((a, b) => a - b);
  }
  return plan;
}
