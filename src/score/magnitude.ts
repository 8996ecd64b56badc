/**
 * Magnitude scores. For every learned member (see learnedMembers), the unit's slice is reduced to Σ|w| (L1) or
 * Σw² (L2, squared norm as in DepGraph's group norm); member vectors are then combined by the member reduction
 * (mean by default). BN-scale uses |γ| of BatchNormalization members (where BN is still unfolded).
 */
import type { Group } from '../analysis/types';
import type { ScoreContext } from './context';
import { axisProfile, learnedMembers, memberUse, reduceMembers, unitSums, weightMembers } from './tensor-math';

export function magnitudeScores(ctx: ScoreContext, group: Group, p: 1 | 2): Float64Array {
  const vectors: Float64Array[] = [];
  for (const m of learnedMembers(ctx.graph, group, ctx.weights)) {
    const w = ctx.weights.get(m.tensor)!;
    vectors.push(unitSums(axisProfile(w, m.axis, p === 1 ? 'l1' : 'l2sq'), m.indices));
  }
  return reduceMembers(vectors, group.size, ctx.reduce);
}

export function bnScaleScores(ctx: ScoreContext, group: Group): Float64Array {
  const vectors: Float64Array[] = [];
  for (const m of weightMembers(group)) {
    if (m.role !== 'param') continue;
    const use = memberUse(ctx.graph, m);
    if (!use || use.input !== 1 || use.node.opType !== 'BatchNormalization') continue;
    const w = ctx.weights.get(m.tensor);
    if (w) vectors.push(unitSums(axisProfile(w, m.axis, 'l1'), m.indices));
  }
  if (vectors.length === 0) {
    ctx.fallback(group, 'no unfolded BatchNormalization: scored by L2 magnitude');
    return magnitudeScores(ctx, group, 2);
  }
  return reduceMembers(vectors, group.size, ctx.reduce);
}
