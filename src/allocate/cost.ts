/**
 * What a removal costs/saves, fast enough to evaluate inside a search.
 *
 * Params (exact when the model is given): every weight member slices a tensor, as read by one node, along an
 * axis; that reader keeps Π_axis (dim − removed positions on that axis) elements. Positions removed by several
 * groups on one axis add up (groups own disjoint positions); a slice listed twice in one group counts once.
 * A shared weight pruned differently by its readers becomes one copy per distinct pruning (distinct removed
 * positions, as apply decides: readers pruned identically by different groups keep sharing one copy).
 * Without the model: Σ paramsPerUnit × removed units.
 *
 * FLOPs (MACs): each node's MACs (countMacs with inferred shapes) scale with the kept fraction of its main
 * weight: the highest-rank weight member on that node (e.g. a Conv's W[O, I/g, k, k]; a depthwise conv's
 * W[C, 1, k, k] is sliced on axis 0 only); a weight stored behind a Cast / DequantizeLinear chain counts for the op
 * after the chain. MACs(after) = MACs × Π_axis kept(tensor, axis).
 * A MatMul between two activations (attention scores Q·Kᵀ, and probabilities·V) scales with the kept units of the
 * head (or kv-group) group whose head-splitting Reshape its inputs come from: walking up each input through
 * layout and element-wise ops (Transpose, Reshape, Mul/Div by the scale, Add of a mask, Softmax, Cast, ...: the
 * ops whose spec has `attentionPath`, src/ir/ops) and through the other attention MatMul, the first node that is
 * a shape member of a group names it.
 * Other nodes with no weight member (activations, pooling) keep their MACs.
 */
import type { Graph } from '../ir/graph';
import { numel } from '../ir/dims';
import type { Group, GroupAnalysis } from '../analysis/types';
import type { FlopsReport } from '../analysis/flops';
import type { Model } from '../ir/model';
import { specOf } from '../ir/ops';
import { weightUse } from '../analysis/weight-chain';

/** Positions of one (tensor, reading node, axis) that groups may remove. */
interface Slot {
  tensor: string;
  node: string;
  axis: number;
  dim: number;
}

/** Per group and unit: the positions the unit removes on each slot. */
interface UnitSlots {
  slots: number[];
  counts: number[];
  /** The positions themselves (the member's indices for the unit), parallel to slots. */
  positions: number[][];
}

interface TensorInfo {
  dims: number[];
  /** Reading node → its slots on this tensor. */
  readers: Map<string, number[]>;
  /** Some real consumer of the tensor is not a member reader (it keeps the full tensor). */
  unprunedReader: boolean;
}

export class CostModel {
  private slots: Slot[] = [];
  /** Slot → ids of the groups that slice it. */
  private slotGroups: string[][] = [];
  private slotIndex = new Map<string, number>();
  private tensors = new Map<string, TensorInfo>();
  private units = new Map<string, UnitSlots[]>();
  private nodes: { macs: number; slots: number[] }[] = [];
  /** Activation × activation MatMuls that shrink with the kept units of a head group. */
  private headNodes: { macs: number; group: string; size: number }[] = [];
  /** Slots of tensors with several readers (or a reader outside the groups): their copies depend on positions. */
  private sharedSlots = new Set<number>();
  readonly totalParams: number;
  readonly totalMacs?: number;
  readonly exact: boolean;

  constructor(private analysis: GroupAnalysis, model?: Model, flops?: FlopsReport) {
    this.exact = !!model;
    this.totalParams = analysis.summary.totalParams;
    if (!model) return;
    const graph = model.graph;
    for (const g of analysis.groups) {
      const per: UnitSlots[] = Array.from({ length: g.size }, () => ({ slots: [], counts: [], positions: [] }));
      const seen = new Set<string>();
      for (const m of g.members) {
        if (m.kind !== 'weight') continue;
        // findConstant: weights of groups inside control-flow subgraphs are stored there.
        const t = graph.findConstant(m.tensor);
        if (!t) continue;
        const axis = m.axis < 0 ? m.axis + t.dims.length : m.axis;
        const key = `${m.tensor}\u0000${m.node}\u0000${axis}`;
        if (seen.has(key)) continue;
        seen.add(key);
        let s = this.slotIndex.get(key);
        if (s === undefined) {
          s = this.slots.length;
          this.slots.push({ tensor: m.tensor, node: m.node, axis, dim: t.dims[axis] });
          this.slotGroups.push([]);
          this.slotIndex.set(key, s);
          let te = this.tensors.get(m.tensor);
          if (!te) this.tensors.set(m.tensor, (te = { dims: t.dims, readers: new Map(), unprunedReader: false }));
          const r = te.readers.get(m.node);
          if (r) r.push(s);
          else te.readers.set(m.node, [s]);
        }
        this.slotGroups[s].push(g.id);
        for (let u = 0; u < g.size; u++) {
          per[u].slots.push(s);
          per[u].counts.push(m.indices[u]?.length ?? 0);
          per[u].positions.push(m.indices[u] ?? []);
        }
      }
      this.units.set(g.id, per);
    }
    for (const [name, te] of this.tensors) {
      // Readers in the graph of the pruning nodes (an If branch for a group inside control flow; analysis makes
      // sure nothing outside that subgraph reads a weight a subgraph group prunes).
      const first = [...te.readers.keys()][0];
      const scope = (graph.producer(first) ? graph : graph.findNode(first)?.graph) ?? graph;
      te.unprunedReader = scope.realConsumers(name).some((n) => !te.readers.has(n.outputs[0]));
      if (te.unprunedReader || te.readers.size > 1) for (const slots of te.readers.values()) for (const s of slots) this.sharedSlots.add(s);
    }
    if (flops?.macs === undefined) return;
    this.totalMacs = flops.macs;
    const byId = new Map<string, number>();
    for (const p of flops.perNode) byId.set(p.node, (byId.get(p.node) ?? 0) + p.macs);
    // The main weight of each node: its highest-rank member tensor (lowest input slot on ties). A weight behind a
    // Cast / DequantizeLinear chain belongs to the op after the chain (its member names the chain's first op).
    const main = new Map<string, { tensor: string; rank: number; input: number; reader: string }>();
    for (const g of analysis.groups) {
      for (const m of g.members) {
        if (m.kind !== 'weight') continue;
        const te = this.tensors.get(m.tensor);
        if (!te) continue;
        const use = weightUse(graph, m.node, m.input);
        const id = use ? use.node.outputs[0] : m.node;
        const input = use ? use.input : m.input;
        const cur = main.get(id);
        if (!cur || te.dims.length > cur.rank || (te.dims.length === cur.rank && input < cur.input)) main.set(id, { tensor: m.tensor, rank: te.dims.length, input, reader: m.node });
      }
    }
    const headOf = headReshapes(analysis);
    for (const n of graph.nodes) {
      const id = n.outputs[0];
      const macs = byId.get(id) ?? (n.name ? byId.get(n.name) : undefined);
      if (!macs) continue;
      const mw = main.get(id);
      if (mw) {
        this.nodes.push({ macs, slots: this.tensors.get(mw.tensor)!.readers.get(mw.reader) ?? [] });
        continue;
      }
      if (n.opType !== 'MatMul' || headOf.size === 0) continue;
      const g = attentionGroup(graph, n.inputs, headOf);
      if (g) this.headNodes.push({ macs, group: g.id, size: g.size });
    }
  }

  /** Calls `visit(slot, count, positions)` for every slot position list that the removed units take. */
  private forEachRemoved(removed: Map<string, number[]> | Record<string, number[]>, visit: (slot: number, count: number, positions: number[]) => void): void {
    const entries = removed instanceof Map ? removed.entries() : Object.entries(removed);
    for (const [gid, list] of entries) {
      const per = this.units.get(gid);
      if (!per) continue;
      for (const u of list) {
        const us = per[u];
        for (let i = 0; i < us.slots.length; i++) visit(us.slots[i], us.counts[i], us.positions[i]);
      }
    }
  }

  /** Positions removed per slot. */
  private removedPerSlot(removed: Map<string, number[]> | Record<string, number[]>): Float64Array {
    const acc = new Float64Array(this.slots.length);
    this.forEachRemoved(removed, (s, count) => { acc[s] += count; });
    return acc;
  }

  /** For every shared slot with removals: its removed positions, sorted, as a key. */
  private sharedPositions(removed: Map<string, number[]> | Record<string, number[]>): Map<number, string> {
    const sets = new Map<number, Set<number>>();
    if (this.sharedSlots.size === 0) return new Map();
    this.forEachRemoved(removed, (s, _count, positions) => {
      if (!this.sharedSlots.has(s)) return;
      let set = sets.get(s);
      if (!set) sets.set(s, (set = new Set()));
      for (const p of positions) set.add(p);
    });
    const out = new Map<number, string>();
    for (const [s, set] of sets) out.set(s, [...set].sort((a, b) => a - b).join(','));
    return out;
  }

  private keptFraction(slots: number[], rp: Float64Array): number {
    let f = 1;
    for (const s of slots) f *= Math.max(0, this.slots[s].dim - rp[s]) / this.slots[s].dim;
    return f;
  }

  /**
   * Params removed. A weight read by several nodes that are pruned differently ends up as one private copy per
   * distinct pruning (as apply does); a reader outside every group keeps the full tensor.
   */
  paramsRemoved(removed: Map<string, number[]> | Record<string, number[]>, groups: Group[]): number {
    if (!this.exact) {
      let s = 0;
      const entries = removed instanceof Map ? [...removed.entries()] : Object.entries(removed);
      const byId = new Map(groups.map((g) => [g.id, g]));
      for (const [gid, list] of entries) s += (byId.get(gid)?.paramsPerUnit ?? 0) * list.length;
      return s;
    }
    const rp = this.removedPerSlot(removed);
    const positions = this.sharedPositions(removed);
    let total = 0;
    for (const te of this.tensors.values()) {
      const before = numel(te.dims);
      const variants = new Map<string, number>();
      if (te.unprunedReader) variants.set('', before);
      for (const slots of te.readers.values()) {
        // Readers with the same removed positions on the same axes share one copy; others get their own.
        const kept = te.dims.slice();
        const by: string[] = [];
        for (const s of slots) {
          if (rp[s] === 0) continue;
          kept[this.slots[s].axis] = Math.max(0, kept[this.slots[s].axis] - rp[s]);
          by.push(`${this.slots[s].axis}:${positions.get(s) ?? this.slotGroups[s].join('+')}`);
        }
        variants.set(by.sort().join('|'), numel(kept));
      }
      let after = 0;
      for (const v of variants.values()) after += v;
      total += before - after;
    }
    return total;
  }

  macsRemoved(removed: Map<string, number[]> | Record<string, number[]>): number {
    if (this.totalMacs === undefined) return 0;
    const rp = this.removedPerSlot(removed);
    let total = 0;
    for (const n of this.nodes) total += n.macs * (1 - this.keptFraction(n.slots, rp));
    if (this.headNodes.length) {
      const count = (gid: string) => (removed instanceof Map ? removed.get(gid) : removed[gid])?.length ?? 0;
      for (const h of this.headNodes) total += (h.macs * count(h.group)) / h.size;
    }
    return total;
  }
}

/** Node id → the head / kv-group group that has a shape member on it (the Reshapes that split heads). */
function headReshapes(analysis: GroupAnalysis): Map<string, Group> {
  const out = new Map<string, Group>();
  for (const g of analysis.groups) {
    if (g.unit !== 'head' && g.unit !== 'kv-group') continue;
    for (const m of g.members) if (m.kind === 'shape' && !out.has(m.node)) out.set(m.node, g);
  }
  return out;
}

/**
 * The head group whose head-splitting Reshape the inputs of an activation × activation MatMul come from
 * (breadth-first up to 24 nodes; undefined when none, or when two different groups are reached).
 */
function attentionGroup(graph: Graph, inputs: string[], headOf: Map<string, Group>): Group | undefined {
  const queue = inputs.filter((i) => i && !graph.constant(i));
  if (queue.length < 2) return undefined;
  const seen = new Set<string>(queue);
  let found: Group | undefined;
  for (let i = 0; i < queue.length && i < 24; i++) {
    const p = graph.producer(queue[i]);
    if (!p) continue;
    const g = headOf.get(p.outputs[0]);
    if (g) {
      if (found && found !== g) return undefined;
      found = g;
      continue;
    }
    if (!specOf(p)?.attentionPath) continue;
    for (const x of p.inputs) if (x && !seen.has(x) && !graph.constant(x)) { seen.add(x); queue.push(x); }
  }
  return found;
}

export function groupsById(analysis: GroupAnalysis): Map<string, Group> {
  return new Map(analysis.groups.map((g) => [g.id, g]));
}
