/**
 * Physical pruning: removes the planned units of every group from the model. Weight members are sliced along
 * their axis (initializers and Constant-node weights, every fixed-size dtype), shape members shrink by
 * perUnit per removed unit, attribute members (Conv group, Split split) likewise; shared weights pruned
 * differently by their users get private copies. Groups inside control-flow subgraphs are edited in their own
 * graph (one EditSet per graph; outer-scope constants they edit are moved into it first). Afterwards stale shapes are dropped and re-inferred.
 */
import type { Block, Group, GroupAnalysis } from '../analysis/types';
import { type Graph, valueTypeOf } from '../ir/graph';
import { toLong } from '../ir/long';
import type { Model } from '../ir/model';
import { onnx } from '../ir/proto';
import { inferShapes } from '../ir/shapes';
import { blockOf, removeBlock } from './depth';
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
    // Statistics members change nothing physically (the node's inputs arrive pruned); the masked reference
    // rewrites them (mask.ts).
    if (m.kind === 'stat') return;
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
 * The graph a group lives in: the graph of its members' nodes (the main graph, or an If branch / Loop body for
 * groups found inside control flow, see src/analysis/subgraphs.ts). Every member must be in the same graph.
 */
export function groupScope(root: Graph, group: Group): Graph {
  let scope: Graph | undefined;
  for (const m of group.members) {
    const n = root.producer(m.node) ?? root.findNode(m.node);
    if (!n) throw new Error(`group '${group.id}': no node has output '${m.node}'`);
    if (scope && n.graph !== scope) throw new Error(`group '${group.id}': members in different graphs ('${m.node}')`);
    scope = n.graph;
  }
  return scope ?? root;
}

/**
 * Moves the constants a subgraph group edits that an enclosing scope stores (main-graph initializers read only
 * inside an If branch) into the subgraph, so that its EditSet can edit them. Analysis declines a group whose
 * outer constant another scope reads; this re-checks it (an internal error otherwise). The model computes the
 * same function afterwards: the value keeps its name and only the subgraph (and what is nested in it) reads it.
 */
export function localizeMembers(root: Graph, scope: Graph, group: Group): void {
  if (scope === root) return;
  for (const m of group.members) {
    if (m.kind === 'attr' || m.kind === 'stat') continue;
    const t = m.tensor;
    if (scope.initializers.has(t) || scope.producer(t)) continue;
    const owner = root.ownerOf(t);
    if (!owner || !scope.isWithin(owner)) throw new Error(`group '${group.id}': '${t}' is not defined in an enclosing scope`);
    for (const g of root.allGraphs()) {
      const outside = !g.isWithin(scope);
      if (outside && (g.nodes.some((n) => n.inputs.includes(t)) || g.isGraphOutput(t))) {
        throw new Error(`group '${group.id}': '${t}' is read outside the subgraph it is pruned in`);
      }
    }
    const init = owner.initializers.get(t);
    if (init) {
      owner.initializers.delete(t);
      owner.types.delete(t);
      owner.invalidate();
      scope.initializers.set(t, init);
      scope.types.set(t, { dtype: init.dtype, shape: init.dims.slice() });
      scope.invalidate();
      continue;
    }
    const node = owner.producer(t);
    if (!node || node.opType !== 'Constant') throw new Error(`group '${group.id}': '${t}' is not a constant`);
    owner.removeNode(node);
    const type = owner.types.get(t);
    owner.types.delete(t);
    node.graph = scope;
    scope.nodes.unshift(node);
    if (type) scope.types.set(t, type);
    scope.invalidate();
  }
}

/** One EditSet per graph that holds planned groups (edits of a subgraph's tensors are committed in it). */
export class ScopedEdits {
  private readonly sets = new Map<Graph, EditSet>();
  constructor(private readonly root: Graph) {}

  /** The EditSet of the group's graph, after moving outer-scope constants it edits into that graph. */
  forGroup(group: Group): EditSet {
    const scope = groupScope(this.root, group);
    localizeMembers(this.root, scope, group);
    let e = this.sets.get(scope);
    if (!e) this.sets.set(scope, (e = new EditSet(scope)));
    return e;
  }

  /** Commits every EditSet (main graph first, then subgraphs in the order they were met) and merges the summaries. */
  commit(): CommitSummary {
    const out: CommitSummary = { edited: [], copies: [], attrs: [], replaced: [] };
    const order = this.root.allGraphs();
    const graphs = [...this.sets.keys()].sort((a, b) => order.indexOf(a) - order.indexOf(b));
    for (const g of graphs) {
      const s = this.sets.get(g)!.commit();
      out.edited.push(...s.edited);
      out.copies.push(...s.copies);
      out.attrs.push(...s.attrs);
      out.replaced.push(...s.replaced);
    }
    return out;
  }
}

/**
 * Removes `planGroups` (group id → unit indices) from `model` in place. The plan is checked against the
 * analysis first (unknown group, index out of range, all units removed → UserError).
 */
export function applyPlan(model: Model, analysis: GroupAnalysis, planGroups: PlanGroups): ApplySummary {
  const plan = checkPlanGroups(planGroups, analysis);
  const edits = new ScopedEdits(model.graph);
  let groupsPruned = 0;
  let unitsRemoved = 0;
  const blocks: Block[] = [];
  for (const group of analysis.groups) {
    const units = plan[group.id] ?? [];
    if (!units.length) continue;
    const b = blockOf(group);
    if (b) {
      // A whole residual branch (depth): removed after the width edits, see src/prune/depth.ts.
      blocks.push(b);
      groupsPruned++;
      unitsRemoved++;
      continue;
    }
    collectGroupEdits(edits.forGroup(group), group, units, 'remove');
    groupsPruned++;
    unitsRemoved += units.length;
  }
  if (groupsPruned === 0) return { edited: [], copies: [], attrs: [], replaced: [], groupsPruned, unitsRemoved };
  const summary = edits.commit();
  for (const b of blocks) removeBlock(model.graph, b);
  if (blocks.length) model.graph.removeDeadNodes();
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
