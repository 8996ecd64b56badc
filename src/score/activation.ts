/**
 * Data-aware scores, computed on the consumers of a group (its 'in' members) from calibration statistics of
 * the consumer's input activation X (see sites.ts: the tensor the consumer actually reads, i.e. after any
 * BatchNormalization / Relu / pooling / Flatten between producer and consumer; a unit that a Flatten spreads
 * over several positions owns several columns j):
 *   wanda       Σ_{j ∈ unit} Σ_rows |W_{:,j}| · ‖X_j‖   (structured Wanda, "Wanda-sp": Wanda's per-weight score
 *               |W_ij|·‖X_j‖₂ summed over every consumer weight that reads the unit; ‖X_j‖ is taken as the RMS
 *               over every sample position, the L2 norm divided by √count — the same ranking within a member)
 *   fluctuation Σ_{j ∈ unit} Var(X_j) · ‖W_{:,j}‖²       (FLAP)
 * Member vectors are combined by the member reduction. A group with no measurable consumer falls back to the
 * L1 (wanda) or L2 (fluctuation) magnitude, and says so.
 *
 * Measured limit (bench/quality.ts): a per-unit score cannot see that the removed units' mean contributions
 * Σ_{j∈J} W_{:,j}·E[x_j] add up. On mnist_lenet_bn with uniform allocation, plain Wanda scores below random
 * (0.872 / 0.745 vs random 0.923 / 0.820 at 30 / 50 % params): conv2's low-score channels have consumer weights
 * that lean positive, so removing them together shifts conv3's pre-activations coherently. ‖W_{:,j}‖₂·‖X_j‖₂,
 * the centred FLAP score without compensation and a per-output normalized Wanda do no better there. Folding
 * the mean into the bias (compensate.ts; on by default for wanda and fluctuation) removes that shift: Wanda +
 * bias 0.954 / 0.941.
 */
import type { Group } from '../analysis/types';
import { UserError } from '../ir/errors';
import { channelRms, channelVariance, statKey } from '../ort/capture';
import type { ScoreContext } from './context';
import { magnitudeScores } from './magnitude';
import { inputSite } from './sites';
import { axisProfile, inSubgraph, reduceMembers, unitSums, weightMembers } from './tensor-math';

export function activationScores(ctx: ScoreContext, group: Group, method: 'wanda' | 'fluctuation'): Float64Array {
  if (!ctx.stats) throw new UserError(`importance '${method}' needs activation statistics (calibration)`);
  if (inSubgraph(ctx.graph, group)) {
    ctx.fallback(group, `inside a control-flow subgraph (its activations cannot be captured): scored by ${method === 'wanda' ? 'L1' : 'L2'} magnitude`);
    return magnitudeScores(ctx, group, method === 'wanda' ? 1 : 2);
  }
  const vectors: Float64Array[] = [];
  for (const m of weightMembers(group)) {
    if (m.role !== 'in') continue;
    const w = ctx.weights.get(m.tensor);
    if (!w) continue;
    const site = inputSite(ctx.graph, m, w.dims.length);
    const st = site && ctx.stats.get(statKey(site.tensor, site.axis));
    const axis = m.axis < 0 ? m.axis + w.dims.length : m.axis;
    if (!st || st.channels !== w.dims[axis]) continue;
    const act = method === 'wanda' ? channelRms(st) : channelVariance(st);
    const prof = axisProfile(w, axis, method === 'wanda' ? 'l1' : 'l2sq');
    for (let j = 0; j < prof.length; j++) prof[j] *= act[j];
    vectors.push(unitSums(prof, m.indices));
  }
  if (vectors.length === 0) {
    ctx.fallback(group, `no consumer with captured input activations: scored by ${method === 'wanda' ? 'L1' : 'L2'} magnitude`);
    return magnitudeScores(ctx, group, method === 'wanda' ? 1 : 2);
  }
  return reduceMembers(vectors, group.size, ctx.reduce);
}
