/**
 * Grouped-query attention: "query heads within kv-groups" (analysis option `gqaQueryHeads`).
 *
 * The default analysis couples each kv head with the n_rep query heads that read it (unit: kv-group). The
 * finer choice removes query head r of EVERY kv-group (query heads g·n_rep + r for all g): unit r takes the q
 * projection rows and o-projection columns of those n_kv heads and lowers the repeat count of repeat_kv
 * (Expand / Reshape sizes) by one; k and v stay whole.
 *
 * It is found by a second propagation in which an Expand repeating one size-1 axis gives its copies fresh
 * labels (rules-layout.ts `repeatSpace`) instead of carrying the k/v labels: the q·kᵀ and probs·v contractions
 * then couple query head h with copy h mod n_rep, and the ordinary machinery (regular classes, members, shape
 * solver, declines) proves the group like any other. Only groups holding such a repeat space and the q
 * projection of a kv-group group of the first analysis are kept.
 *
 * Why an option, not a second group next to the kv-group one: the two overlap (query head g·n_rep + r is in
 * kv-group g and in unit r), while the group contract (types.ts) has every group own disjoint positions —
 * apply subtracts perUnit·units per group, so removing a kv-groups and b query units would lower the q head
 * count by a·n_rep + b·n_kv instead of a·n_rep + b·n_kv − a·b, and slice q rows twice. With the option, each
 * kv-group group is replaced by its query-head group (when one is proven); without it nothing changes.
 */
import { numel } from '../ir/dims';
import type { Model } from '../ir/model';
import type { Group, GroupAnalysis } from './types';
import { type BuildOptions, buildGroups } from './groups';
import { propagate } from './propagate';
import { Plumbing } from './shape-plumbing';

/** A replacement group and the change of prunable parameters (all units of it vs all units of the kv-group group). */
export interface Replacement { group: Group; deltaParams: number }

/** Parameters a group removes when all its units go (weights sliced on several axes count once). */
function allUnitsParams(dimsOf: (t: string) => number[], g: Group): number {
  const per = new Map<string, Map<number, Set<number>>>();
  for (const m of g.members) {
    if (m.kind !== 'weight') continue;
    let axes = per.get(m.tensor);
    if (!axes) per.set(m.tensor, (axes = new Map()));
    let s = axes.get(m.axis);
    if (!s) axes.set(m.axis, (s = new Set()));
    for (const l of m.indices) for (const i of l) s.add(i);
  }
  let n = 0;
  for (const [t, axes] of per) {
    const dims = dimsOf(t);
    n += numel(dims) - dims.reduce((k, d, a) => k * (d - (axes.get(a)?.size ?? 0)), 1);
  }
  return n;
}

/** The query-head groups of a second propagation, keyed by the id of the kv-group group they replace. */
export function queryHeadGroups(model: Model, shapes: Map<string, number[]>, opts: BuildOptions, base: GroupAnalysis): Map<string, Replacement> {
  const out = new Map<string, Replacement>();
  const kvGroups = base.groups.filter((g) => g.unit === 'kv-group');
  if (!kvGroups.length) return out;
  const g = model.graph;
  const plumb = new Plumbing(g, shapes, g.topoSort());
  const st = propagate(g, shapes, plumb, model.opset() ?? 17, { repeatSpaces: true, normStats: opts.normStatistics });
  if (!st.repeatSpaceIds.size) return out;
  const repeatOutputs = new Set([...st.repeatSpaceIds].map((id) => st.spaces[id].node.outputs[0]));
  const second = buildGroups(st, plumb, opts);
  for (const cand of second.groups) {
    const producers = (cand.info?.producers as string[] | undefined) ?? [];
    const real = producers.filter((p) => !repeatOutputs.has(p));
    if (!real.length || real.length === producers.length) continue;
    const kv = kvGroups.find((k) => {
      const kp = new Set((k.info?.producers as string[] | undefined) ?? []);
      return real.every((p) => kp.has(p));
    });
    if (!kv || out.has(kv.id)) continue;
    const nRep = Number(kv.info?.queriesPerKv), nKv = kv.size, d = kv.unitSize;
    // Unit r must be query head r of every kv-group: n_kv heads of head_dim d in each consumer's input.
    if (cand.size !== nRep) continue;
    const ins = cand.members.filter((m) => m.kind === 'weight' && m.role === 'in');
    if (!ins.length || ins.some((m) => m.kind === 'weight' && !m.indices.every((l) => l.length === nKv * d))) continue;
    const first = st.spaces.find((s) => s.node.outputs[0] === real[0])!;
    const label = first.node.name || `${first.node.opType}(${first.tensor})`;
    const group: Group = {
      ...cand,
      id: `${kv.id}#query-heads`,
      label: real.length > 1 ? `${label} (+${real.length - 1} coupled)` : label,
      unit: 'head',
      unitSize: d,
      info: { queryHeadsWithinKvGroups: true, heads: nRep, headsPerUnit: nKv, headDim: d, kvHeads: nKv, queriesPerKv: nRep, queryHeads: nKv * nRep, producers: real },
    };
    const dimsOf = (t: string) => st.stored(t)!.tensor.dims;
    out.set(kv.id, { group, deltaParams: allUnitsParams(dimsOf, group) - allUnitsParams(dimsOf, kv) });
  }
  return out;
}

/** Replaces every kv-group group that has a proven query-head group by it (recounting prunable parameters). */
export function withQueryHeadGroups(analysis: GroupAnalysis, replacements: Map<string, Replacement>): GroupAnalysis {
  if (!replacements.size) return analysis;
  let delta = 0;
  const groups = analysis.groups.map((g) => {
    const r = replacements.get(g.id);
    if (!r) return g;
    delta += r.deltaParams;
    return r.group;
  });
  return { ...analysis, groups, summary: { ...analysis.summary, prunableParams: analysis.summary.prunableParams + delta } };
}
