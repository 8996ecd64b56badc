/**
 * The masked dense model: the same graph with, for every group, the removed units' positions zeroed in each
 * weight that *consumes* the group's channels (members with role 'in'). The producers still compute the
 * pruned channels but nothing downstream reads them, so the physically pruned model must compute exactly the
 * same function (up to float summation order). Shared weights masked differently get private copies.
 *
 * A quantized weight (stored codes read by a DequantizeLinear with a non-zero zero-point) is masked to its
 * zero-point, not to 0: its dequantized value (q − zero_point) · scale is then 0.
 */
import type { Group, GroupAnalysis, WeightMember } from '../analysis/types';
import { numel, strides } from '../ir/dims';
import type { Graph } from '../ir/graph';
import type { Model } from '../ir/model';
import type { Node } from '../ir/node';
import { makeTensorProto } from '../ir/tensor';
import { ScopedEdits, collectGroupEdits, groupScope, removedPositions } from './apply';
import type { CommitSummary } from './edits';
import { checkPlanGroups, type PlanGroups } from './plan';

/** Zeroes the consumers' inputs of every planned unit, in place. */
export function maskPlan(model: Model, analysis: GroupAnalysis, planGroups: PlanGroups): CommitSummary {
  const plan = checkPlanGroups(planGroups, analysis);
  const edits = new ScopedEdits(model.graph);
  for (const group of analysis.groups) {
    const units = plan[group.id] ?? [];
    if (units.length) collectGroupEdits(edits.forGroup(group), group, units, 'mask');
  }
  const summary = edits.commit();
  // Each group in the graph that holds it (a group inside an If branch edits that branch).
  for (const group of analysis.groups) {
    const units = plan[group.id] ?? [];
    if (units.length) maskToZeroPoints(groupScope(model.graph, group), group, units);
  }
  return summary;
}

/** The DequantizeLinear reading a member's stored tensor at input 0, when its zero-point is not all zeros. */
function quantizedReader(g: Graph, m: WeightMember): { node: Node; zp: Float32Array; axis: number } | undefined {
  if (m.role !== 'in' || m.input !== 0) return undefined;
  const n = g.producer(m.node);
  if (!n || n.opType !== 'DequantizeLinear' || (n.domain !== '' && n.domain !== 'ai.onnx') || !n.inputs[2]) return undefined;
  const zp = g.resolveConstant(n.inputs[2])?.toFloat32();
  if (!zp || zp.every((v) => v === 0)) return undefined;
  const rank = g.resolveConstant(n.inputs[0])?.dims.length ?? 0;
  const a = n.attrInt('axis', 1);
  return { node: n, zp, axis: a < 0 ? a + rank : a };
}

/**
 * After zeroing: sets the masked positions of quantized 'in' members to their zero-points. The tensor a
 * DequantizeLinear reads is edited in place when it is a private initializer, else replaced by a private copy.
 */
function maskToZeroPoints(g: Graph, group: Group, units: number[]): void {
  if (!units.length) return;
  for (const m of group.members) {
    if (m.kind !== 'weight') continue;
    const q = quantizedReader(g, m);
    if (!q) continue;
    const name = g.resolveIdentity(q.node.inputs[0]);
    const t = g.constant(name);
    if (!t) continue;
    const data = t.data();
    const dims = t.dims;
    const st = strides(dims);
    const drop = new Set(removedPositions(group, m.indices, units, `group '${group.id}'`));
    const total = numel(dims);
    for (let i = 0; i < total; i++) {
      if (!drop.has(Math.floor(i / st[m.axis]) % dims[m.axis])) continue;
      const c = q.zp.length === 1 ? 0 : Math.floor(i / st[q.axis]) % dims[q.axis];
      (data as unknown as number[])[i] = q.zp[c];
    }
    if (g.initializers.get(name) === t && g.realConsumers(name).length === 1 && !g.isGraphOutput(name)) {
      t.setData(data);
      continue;
    }
    const copy = g.uniqueName(`${name}_masked`);
    g.setInitializer(makeTensorProto(copy, t.dtype, dims, data));
    q.node.inputs[0] = copy;
    g.invalidate();
  }
}
