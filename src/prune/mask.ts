/**
 * The masked dense model: the same graph with, for every group, the removed units' positions zeroed in each
 * weight that *consumes* the group's channels (members with role 'in'). The producers still compute the
 * pruned channels but nothing downstream reads them, so the physically pruned model must compute exactly the
 * same function (up to float summation order). Shared weights masked differently get private copies.
 *
 * Normalization statistics over a group's axis (StatMember: LayerNorm / RMSNorm, a decomposed norm's ReduceMean)
 * run over the kept positions in the reference, as they do in the pruned model: the kept positions of the node's
 * inputs are gathered before it and its outputs scattered back to full size (zeros at the removed positions).
 *
 * A quantized weight (stored codes read by a DequantizeLinear with a non-zero zero-point) is masked to its
 * zero-point, not to 0: its dequantized value (q − zero_point) · scale is then 0.
 */
import type { Group, GroupAnalysis, StatMember, WeightMember } from '../analysis/types';
import { attr, int64Tensor, onnx } from '../ir/builder';
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
  statisticsOverKept(model, analysis, plan);
  return summary;
}

/** Rewrites every statistics node of the planned groups to run over the kept positions (see the header). */
export function statisticsOverKept(model: Model, analysis: GroupAnalysis, plan: PlanGroups): void {
  const per = new Map<Graph, Map<string, { m: StatMember; removed: Set<number> }>>();
  for (const group of analysis.groups) {
    const units = plan[group.id] ?? [];
    if (!units.length) continue;
    for (const m of group.members) {
      if (m.kind !== 'stat') continue;
      const g = groupScope(model.graph, group);
      let nodes = per.get(g);
      if (!nodes) per.set(g, (nodes = new Map()));
      let e = nodes.get(m.node);
      if (!e) nodes.set(m.node, (e = { m, removed: new Set() }));
      for (const p of removedPositions(group, m.indices, units, `group '${group.id}'`)) e.removed.add(p);
    }
  }
  for (const [g, nodes] of per) {
    for (const { m, removed } of nodes.values()) overKept(g, m, removed);
    g.sortNodes();
  }
}

function overKept(g: Graph, m: StatMember, removed: Set<number>): void {
  const kept = keptPositions(m.size, removed);
  if (kept.length === m.size) return;
  const constant = (base: string, values: number[]): string => {
    const name = g.uniqueName(base);
    g.setInitializer(int64Tensor(name, [values.length], values));
    return name;
  };
  const keptName = constant(`${m.node}_kept_positions`, kept);
  const mapName = m.scatter.length ? constant(`${m.node}_scatter_positions`, scatterPositions(m.size, kept)) : '';
  statisticsThrough(g, m, keptName, mapName);
}

/** The positions of [0, size) not in `removed`, ascending. */
export function keptPositions(size: number, removed: Set<number>): number[] {
  const kept: number[] = [];
  for (let p = 0; p < size; p++) if (!removed.has(p)) kept.push(p);
  return kept;
}

/** Where each of `size` positions reads from after a scatter: its slot among `kept`, or the appended zero slot. */
export function scatterPositions(size: number, kept: number[]): number[] {
  const where = new Array<number>(size).fill(kept.length);
  kept.forEach((p, k) => { where[p] = k; });
  return where;
}

/**
 * Makes the statistics node of `m` run over the positions listed by the int64 tensor `keptName` (a constant, or a
 * graph input the search feeds): each `gather` input is gathered along its axis first, and each `scatter` output is
 * restored to full size through `mapName` (see scatterPositions) with zeros at the other positions.
 */
export function statisticsThrough(g: Graph, m: Pick<StatMember, 'node' | 'gather' | 'scatter'>, keptName: string, mapName: string): void {
  const n = g.producer(m.node);
  if (!n) throw new Error(`statistics node '${m.node}' is not in the graph`);
  const add = (opType: string, inputs: string[], base: string, attrs: onnx.AttributeProto[] = []): string => {
    const out = g.uniqueName(base);
    g.addNode({ opType, name: out, input: inputs, output: [out], attribute: attrs });
    return out;
  };
  for (const s of m.gather) {
    const src = n.inputs[s.input];
    if (!src) continue;
    n.inputs[s.input] = add('Gather', [src, keptName], `${src}_kept`, [attr.int('axis', s.axis)]);
  }
  if (!m.scatter.length) return;
  const firstName = g.uniqueName(`${m.node}_first_position`);
  g.setInitializer(int64Tensor(firstName, [1], [0]));
  for (const s of m.scatter) {
    const y = n.outputs[s.output];
    if (!y) continue;
    const inner = g.uniqueName(`${y}_kept`);
    n.outputs[s.output] = inner;
    g.invalidate();
    const one = add('Gather', [inner, firstName], `${y}_one`, [attr.int('axis', s.axis)]);
    const zero = add('Sub', [one, one], `${y}_zero`);
    const padded = add('Concat', [inner, zero], `${y}_padded`, [attr.int('axis', s.axis)]);
    g.addNode({ opType: 'Gather', name: g.uniqueName(`${y}_scatter`), input: [padded, mapName], output: [y], attribute: [attr.int('axis', s.axis)] });
  }
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
