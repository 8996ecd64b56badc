/**
 * Physical pruning: removes the planned units of every group from the model. Weight members are sliced along
 * their axis (initializers and Constant-node weights, every fixed-size dtype), shape members shrink by
 * perUnit per removed unit, attribute members (Conv group, Split split) likewise; shared weights pruned
 * differently by their users get private copies. Afterwards stale shapes are dropped and re-inferred.
 */
import type { Group, GroupAnalysis } from '../analysis/types';
import { valueTypeOf } from '../ir/graph';
import { toLong } from '../ir/long';
import type { Model } from '../ir/model';
import { onnx } from '../ir/proto';
import { inferShapes } from '../ir/shapes';
import { EditSet, type CommitSummary } from './edits';
import { checkPlanGroups, type PlanGroups } from './plan';

export interface ApplySummary extends CommitSummary {
  /** Groups with at least one unit removed. */
  groupsPruned: number;
  unitsRemoved: number;
}

/** Positions (along the member's axis) of the removed units, checked against the group's size. */
export function removedPositions(group: Group, indices: number[][], units: number[], what: string): number[] {
  if (indices.length !== group.size) throw new Error(`${what}: has ${indices.length} unit index lists, the group has ${group.size} units`);
  const out: number[] = [];
  for (const u of units) out.push(...indices[u]);
  return out;
}

/** Adds the edits of one group's removed units: 'remove' slices everything, 'mask' zeroes the consumers' inputs. */
export function collectGroupEdits(edits: EditSet, group: Group, units: number[], mode: 'remove' | 'mask'): void {
  if (units.length === 0) return;
  const seen = new Set<string>();
  group.members.forEach((m, i) => {
    const what = `group '${group.id}' member ${i}`;
    const key = m.kind === 'attr' ? `a|${m.node}|${m.attr}|${m.position ?? ''}` : m.kind === 'shape'
      ? `s|${m.tensor}|${m.node}|${m.input}|${m.position}|${m.replaceWith ?? ''}` : `w|${m.tensor}|${m.node}|${m.input}|${m.axis}|${m.role}`;
    if (seen.has(key)) return;
    seen.add(key);
    if (m.kind === 'weight') {
      const pos = removedPositions(group, m.indices, units, what);
      if (mode === 'remove') edits.remove(m.tensor, m.node, m.input, m.axis, pos, what);
      else if (m.role === 'in') edits.zero(m.tensor, m.node, m.input, m.axis, pos, what);
    } else if (mode === 'remove') {
      if (m.kind === 'shape' && m.replaceWith !== undefined) edits.replaceInput(m.tensor, m.node, m.input, m.replaceWith, what);
      else if (m.kind === 'shape') edits.subtract(m.tensor, m.node, m.input, m.position, m.perUnit * units.length, what);
      else edits.subtractAttr(m.node, m.attr, m.position, m.perUnit * units.length, what);
    }
  });
}

/**
 * Removes `planGroups` (group id → unit indices) from `model` in place. The plan is checked against the
 * analysis first (unknown group, index out of range, all units removed → UserError).
 */
export function applyPlan(model: Model, analysis: GroupAnalysis, planGroups: PlanGroups): ApplySummary {
  const plan = checkPlanGroups(planGroups, analysis);
  const g = model.graph;
  const edits = new EditSet(g);
  let groupsPruned = 0;
  let unitsRemoved = 0;
  for (const group of analysis.groups) {
    const units = plan[group.id] ?? [];
    if (!units.length) continue;
    collectGroupEdits(edits, group, units, 'remove');
    groupsPruned++;
    unitsRemoved += units.length;
  }
  if (groupsPruned === 0) return { edited: [], copies: [], attrs: [], replaced: [], groupsPruned, unitsRemoved };
  const summary = edits.commit();
  refreshShapes(model);
  return { ...summary, groupsPruned, unitsRemoved };
}

/**
 * Drops shapes that may be stale after pruning: value_info shapes (element types are kept) and the inferred
 * types of intermediate tensors; then runs shape inference and writes back the shapes it now knows.
 * Graph inputs and outputs keep their declared shapes (a group touching them is declined by the analysis).
 */
export function refreshShapes(model: Model): void {
  const g = model.graph;
  const declared = new Set<string>([...g.proto.input, ...g.proto.output].map((v) => v.name ?? ''));
  for (const name of [...g.types.keys()]) {
    if (!declared.has(name) && !g.initializers.has(name)) g.types.delete(name);
  }
  for (const vi of [...g.proto.input, ...g.proto.output]) {
    const vt = valueTypeOf(vi);
    if (vt && vi.name && !g.initializers.has(vi.name)) g.types.set(vi.name, vt);
  }
  const hadShape: typeof g.proto.valueInfo = [];
  for (const vi of g.proto.valueInfo) {
    const tt = vi.type?.tensorType;
    if (tt?.shape) {
      tt.shape = null;
      hadShape.push(vi);
    }
  }
  inferShapes(model);
  for (const vi of hadShape) {
    const t = g.types.get(vi.name ?? '');
    const tt = vi.type!.tensorType!;
    if (!t?.shape || t.shape.some((d) => d === undefined)) continue;
    tt.shape = onnx.TensorShapeProto.create({
      dim: t.shape.map((d) => onnx.TensorShapeProto.Dimension.create(typeof d === 'number' ? { dimValue: toLong(d) } : { dimParam: d as string })),
    });
  }
}
