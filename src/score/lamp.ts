/**
 * LAMP (layer-adaptive magnitude pruning) at unit level: with s the group's L2 scores, a unit's LAMP score is
 * s_u / Σ_{v : s_v ≥ s_u} s_v — its share of the energy of itself and every stronger unit. Scores lie in (0, 1],
 * the strongest unit scores 1, and they are comparable across groups without further normalization.
 */
import type { Group } from '../analysis/types';
import type { ScoreContext } from './context';
import { magnitudeScores } from './magnitude';

export function lampTransform(s: Float64Array): Float64Array {
  const order = Array.from(s.keys()).sort((a, b) => s[a] - s[b] || a - b);
  const out = new Float64Array(s.length);
  let suffix = 0;
  // Walk from the strongest unit down; equal scores share the same denominator.
  for (let k = order.length - 1; k >= 0;) {
    let j = k;
    let tie = 0;
    while (j >= 0 && s[order[j]] === s[order[k]]) tie += s[order[j--]];
    suffix += tie;
    for (let t = k; t > j; t--) out[order[t]] = suffix > 0 ? s[order[t]] / suffix : 0;
    k = j;
  }
  return out;
}

export function lampScores(ctx: ScoreContext, group: Group): Float64Array {
  return lampTransform(magnitudeScores(ctx, group, 2));
}
