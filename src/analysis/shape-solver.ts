/**
 * Phase 2c: shape members. When a group loses k units, every shape-like input that feeds a data op
 * (Reshape/Expand target, Slice bounds, Split sizes, and any other plumbing value read by a data op — a
 * "sink") must still evaluate to what the pruned model needs. Sinks are expressions over dims and stored
 * constants (see shape-plumbing.ts); dims follow the pruning automatically, constants do not. The solver
 * finds, for each sink element that would be wrong, one constant element whose per-unit change makes it
 * right for k = 1, 2 and size−1 units removed, then verifies every sink that reads a changed constant or a
 * pruned dim (sinks outside Reshape/Expand/Slice/Split/Resize sizes must keep their value). Optionally (when
 * `rewriteComputed` is set) a Reshape element computed from an unpruned dim is replaced by −1.
 */
import type { Graph } from '../ir/graph';
import type { Node } from '../ir/node';
import type { ShapeMember } from './types';
import type { Occurrence } from './classes';
import { DECLINE } from './decline';
import { type ConstLeaf, type Env, type Expr, type Plumbing, type PlumbValue, type SlotExpr, effectiveBounds, evaluate, leaves } from './shape-plumbing';
import type { ShapeUseFact, State } from './state';

type SinkKind = 'reshape' | 'expand' | 'starts' | 'ends' | 'split' | 'sizes' | 'indices' | 'fixed';

interface Sink {
  /** The data node reading the value at `input` (for a graph output: its producer, input −1). */
  node: Node;
  input: number;
  tensor: string;
  kind: SinkKind;
  value: PlumbValue;
  orig: number[];
  dims: { tensor: string; axis: number }[];
}

/** What the solver needs to know about one group. */
export interface GroupView {
  size: number;
  /** Positions removed per unit along tensor axis (uniform over units), 0 when untouched. */
  cnt(tensor: string, axis: number): number;
  /** Where unit u lives in a tensor. */
  occurrence(tensor: string, u: number): Occurrence | undefined;
}

export type SolveResult = { ok: true; members: ShapeMember[] } | { ok: false; reason: string; node?: string; tensor?: string };

const SHAPE_SLOTS: Record<string, number[]> = {
  Reshape: [1], Expand: [1], Slice: [1, 2, 3, 4], Split: [1], Tile: [1], Pad: [1, 2, 3], Resize: [1, 2, 3], Upsample: [1],
  ConstantOfShape: [0], Range: [0, 1, 2], Gather: [1], Unsqueeze: [1], Squeeze: [1], CumSum: [1], TopK: [1], OneHot: [1],
};

function sinkKind(n: Node, input: number): SinkKind {
  switch (n.opType) {
    case 'Reshape': return input === 1 ? 'reshape' : 'fixed';
    case 'Expand': return input === 1 ? 'expand' : 'fixed';
    case 'Slice': return input === 1 ? 'starts' : input === 2 ? 'ends' : 'fixed';
    case 'Split': return input === 1 ? 'split' : 'fixed';
    case 'Resize': return input === 3 ? 'sizes' : 'fixed';
    case 'Gather': return input === 1 ? 'indices' : 'fixed';
    default: return 'fixed';
  }
}

const leafKey = (l: ConstLeaf) => `${l.tensor}|${l.node}|${l.input}|${l.position}`;
const slotKey = (s: SlotExpr) => `${s.node}|${s.input}|${s.position}`;

export class ShapeSolver {
  private sinks: Sink[] = [];
  private byNode = new Map<Node, Sink[]>();
  private byDim = new Map<string, Sink[]>();
  private byLeaf = new Map<string, Sink[]>();
  private bySlot = new Map<string, Sink[]>();

  constructor(private st: State, private graph: Graph, plumb: Plumbing, private rewriteComputed: boolean) {
    const add = (n: Node, i: number, tensor: string, v: PlumbValue, kind: SinkKind) => {
      const memo = new Map<Expr, number>();
      const s: Sink = { node: n, input: i, tensor, kind, value: v, orig: v.elems.map((e) => evaluate(e, {}, memo)), dims: [] };
      this.sinks.push(s);
      push(this.byNode, n, s);
      const seen = new Set<string>();
      for (const e of v.elems) {
        for (const l of leaves(e)) {
          if (l.k === 'dim') {
            if (!seen.has(`d${l.tensor}|${l.axis}`)) { s.dims.push({ tensor: l.tensor, axis: l.axis }); seen.add(`d${l.tensor}|${l.axis}`); push(this.byDim, l.tensor, s); }
          } else if (l.k === 'const') {
            const k = leafKey(l);
            if (!seen.has(k)) { seen.add(k); push(this.byLeaf, k, s); }
          } else {
            const k = slotKey(l);
            if (!seen.has(k)) { seen.add(k); push(this.bySlot, k, s); }
          }
        }
      }
    };
    for (const n of graph.nodes) {
      if (n.outputs.some((o) => plumb.values.has(o))) continue;
      n.inputs.forEach((name, i) => {
        if (!name) return;
        let v = plumb.values.get(name);
        if (!v && SHAPE_SLOTS[n.opType]?.includes(i)) v = plumb.input(n, i);
        if (v) add(n, i, name, v, sinkKind(n, i));
      });
    }
    // A plumbing value that is a graph output must keep its value too.
    for (const o of graph.outputs) {
      const v = plumb.values.get(o.name ?? '');
      const p = graph.producer(o.name ?? '');
      if (v && p) add(p, -1, o.name ?? '', v, 'fixed');
    }
  }

  solve(view: GroupView, uses: ShapeUseFact[], tensors: Iterable<string>): SolveResult {
    const st = this.st;
    const ks = [...new Set([1, Math.min(2, view.size - 1), view.size - 1])].filter((k) => k >= 1);
    const relevant = new Set<Sink>();
    const shape = (t: string) => st.shape(t) ?? [];
    const fail = (reason: string, node?: Node, tensor?: string): SolveResult => ({ ok: false, reason, node: node?.outputs[0], tensor });

    for (const u of uses) {
      const n = u.node;
      const sinks = this.byNode.get(n) ?? [];
      const slot = (i: number) => sinks.find((s) => s.input === i);
      const ds = shape(u.data);
      const outCnt = u.outs.some((o) => shape(o).some((_, a) => view.cnt(o, a) > 0));
      if (u.kind === 'gather') {
        // Constant indices on the pruned axis (Falcon's fused[..., [-2], :]) must keep picking the same kept
        // positions (checked as 'indices' sinks); picking positions of the group's units is declined.
        const ax = (n.attrInt('axis', 0) + ds.length) % ds.length;
        if (view.cnt(u.data, ax) > 0) {
          const idx = slot(1)?.orig;
          if (!idx) return fail(DECLINE.gatherAxis, n, u.data);
          const picks = new Set(idx.map((v) => (v < 0 ? v + ds[ax] : v)));
          for (let k = 0; k < view.size; k++) {
            const o = view.occurrence(u.data, k);
            if (o && o.axis === ax && o.positions.some((p) => picks.has(p))) return fail(DECLINE.gatherAxis, n, u.data);
          }
        }
      } else if (u.kind === 'reshape' || u.kind === 'expand') {
        if (!slot(1) && outCnt) return fail(DECLINE.shapeRewrite, n, n.inputs[1]);
      } else if (u.kind === 'resize') {
        if (!slot(3) && outCnt) return fail(DECLINE.shapeRewrite, n, n.inputs[3]);
      } else if (u.kind === 'slice' && n.inputs.length === 1) {
        continue; // attribute bounds (Slice-1..9) are attribute members, checked per unit in groups.ts
      } else if (u.kind === 'slice') {
        const axesV = slot(3)?.orig ?? (n.inputs[3] ? undefined : slot(1)?.orig.map((_, i) => i));
        const steps = slot(4)?.orig;
        if (!slot(1) || !slot(2) || !axesV) { if (outCnt) return fail(DECLINE.shapeRewrite, n, n.inputs[1]); continue; }
        for (let j = 0; j < axesV.length; j++) {
          const a = (axesV[j] + ds.length) % ds.length;
          if (view.cnt(u.data, a) === 0) continue;
          const step = steps?.[j] ?? 1;
          if (step !== 1) return fail(DECLINE.strided, n, u.data);
          for (const b of [slot(1)!.orig[j], slot(2)!.orig[j]]) {
            const eff = effectiveBounds(ds[a], b, b, 1)[0];
            if (this.below(view, u.data, a, eff) === undefined) return fail(DECLINE.sliceBound, n, u.data);
          }
        }
      } else if (u.kind === 'split' && !n.inputs[1]) {
        const ax = (n.attrInt('axis', 0) + ds.length) % ds.length;
        const c = u.outs.map((o) => view.cnt(o, ax));
        if (c.some((x) => x !== c[0])) return fail(DECLINE.nonUniform, n, u.data);
      }
      for (const s of sinks) relevant.add(s);
    }
    for (const t of tensors) {
      for (const s of this.byDim.get(t) ?? []) if (s.dims.some((d) => d.tensor === t && view.cnt(t, d.axis) > 0)) relevant.add(s);
    }
    if (!relevant.size) return { ok: true, members: [] };

    const assign = new Map<string, { leaf: ConstLeaf; perUnit: number }>();
    const overrides = new Map<string, { slot: SlotExpr; value: number }>();
    const env = (k: number): Env => ({
      dim: (t, a) => shape(t)[a] - k * view.cnt(t, a),
      leaf: (l) => { const x = assign.get(leafKey(l)); return x ? l.value - k * x.perUnit : undefined; },
      slot: (s) => overrides.get(slotKey(s))?.value,
    });
    const valueAt = (s: Sink, j: number, k: number) => evaluate(s.value.elems[j], env(k));
    const okElem = (s: Sink, j: number): boolean => ks.every((k) => this.accept(view, s, j, valueAt(s, j, k), k));

    for (const s of relevant) {
      for (let j = 0; j < s.value.elems.length; j++) {
        if (okElem(s, j)) continue;
        const e = s.value.elems[j];
        const ls = leaves(e);
        let fixed = false;
        for (const l of this.linearLeaves(e)) {
          if (assign.has(leafKey(l))) continue;
          const bound = Math.min(100000, Math.abs(l.value) * 2 + 64);
          for (let m = 1; m <= bound && !fixed; m++) {
            for (const p of [m, -m]) {
              assign.set(leafKey(l), { leaf: l, perUnit: p });
              if (okElem(s, j)) { fixed = true; break; }
              assign.delete(leafKey(l));
            }
          }
          if (fixed) break;
        }
        if (!fixed && this.rewriteComputed) {
          // A one-element slot computed from a pruned dim (a Concat input, an elementwise op's input) becomes a
          // constant: its original value where the element must not change (a head size read off the hidden
          // size, the attention scale computed from it), else −1 in a Reshape target (the Reshape infers it).
          for (const l of ls) {
            if (l.k !== 'slot' || l.elems !== 1) continue;
            for (const value of s.kind === 'reshape' ? [evaluate(l.arg, {}), -1] : [evaluate(l.arg, {})]) {
              overrides.set(slotKey(l), { slot: l, value });
              if (okElem(s, j)) { fixed = true; break; }
              overrides.delete(slotKey(l));
            }
            if (fixed) break;
          }
        }
        if (!fixed) return fail(s.kind === 'fixed' ? DECLINE.shapeAsData : DECLINE.shapeRewrite, s.node, s.tensor);
      }
    }
    // Everything that reads a changed constant or an overridden slot must still be right.
    const verify = new Set(relevant);
    for (const key of assign.keys()) for (const s of this.byLeaf.get(key) ?? []) verify.add(s);
    for (const key of overrides.keys()) for (const s of this.bySlot.get(key) ?? []) verify.add(s);
    for (const s of verify) {
      for (let j = 0; j < s.value.elems.length; j++) {
        if (!okElem(s, j)) return fail(s.kind === 'fixed' ? DECLINE.shapeAsData : DECLINE.shapeRewrite, s.node, s.tensor);
      }
      if (s.kind === 'reshape' && ks.some((k) => s.value.elems.filter((_, j) => valueAt(s, j, k) === -1).length > 1)) {
        return fail(DECLINE.shapeRewrite, s.node, s.tensor);
      }
    }
    const members: ShapeMember[] = [];
    for (const { leaf, perUnit } of assign.values()) {
      members.push({ kind: 'shape', tensor: leaf.tensor, node: leaf.node, input: leaf.input, position: leaf.position, perUnit });
    }
    for (const { slot: sl, value } of overrides.values()) {
      const concat = this.graph.producer(sl.node)!;
      const orig = evaluate(sl.arg, {});
      const sink = this.bySlot.get(slotKey(sl))![0];
      const j = sink.value.elems.indexOf(sl);
      const out = sink.node.outputs[0];
      const perUnit = j >= 0 ? view.cnt(out, j) : 0;
      members.push({ kind: 'shape', tensor: concat.inputs[sl.input], node: sl.node, input: sl.input, position: sl.position, perUnit, replaceWith: value, value: orig });
    }
    return { ok: true, members };
  }

  /**
   * Constant leaves that an element depends on linearly (through Add/Sub/Neg/Concat slots, Where branches and
   * Mul by factors that no pruning changes). Only these may be rewritten, so that the changes of several
   * groups add up; a leaf under Div/Mod (e.g. torch.chunk's (C+1)/2) is never rewritten.
   */
  private linearLeaves(root: Expr): ConstLeaf[] {
    const out: ConstLeaf[] = [];
    const stack: Expr[] = [root];
    // A factor is static when nothing can change it: only dims of tensors that carry no channels.
    const pruneable = (e: Expr) => leaves(e).some((l) => l.k !== 'dim' || this.st.fields.has(l.tensor));
    while (stack.length) {
      const e = stack.pop()!;
      if (e.k === 'const') out.push(e);
      else if (e.k === 'slot') stack.push(e.arg);
      else if (e.k === 'op') {
        if (['Add', 'Sub', 'Neg', 'Id'].includes(e.op)) stack.push(...e.args);
        // Where picks a branch per element (the -1 → 1 fix-up exporters emit before Expand): follow both.
        else if (e.op === 'Where') stack.push(e.args[1], e.args[2]);
        else if (e.op === 'Mul' && e.args.length === 2) {
          const [a, b] = e.args;
          if (!pruneable(b)) stack.push(a);
          if (!pruneable(a)) stack.push(b);
        }
      }
    }
    return out;
  }

  /** Removed positions of one unit below `bound` along tensor axis (undefined when it differs by unit). */
  private below(view: GroupView, tensor: string, axis: number, bound: number): number | undefined {
    let c: number | undefined;
    for (let u = 0; u < view.size; u++) {
      const o = view.occurrence(tensor, u);
      const x = o && o.axis === axis ? o.positions.filter((p) => p < bound).length : 0;
      if (c === undefined) c = x;
      else if (c !== x) return undefined;
    }
    return c ?? 0;
  }

  private accept(view: GroupView, s: Sink, j: number, v: number, k: number): boolean {
    const n = s.node;
    const shape = (t: string) => this.st.shape(t) ?? [];
    switch (s.kind) {
      case 'fixed': return v === s.orig[j];
      case 'reshape': {
        const out = n.outputs[0], os = shape(out);
        const req = os[j] - k * view.cnt(out, j);
        if (v === req || v === -1) return true;
        const is = shape(n.inputs[0]);
        return v === 0 && !n.attrInt('allowzero', 0) && j < is.length && is[j] - k * view.cnt(n.inputs[0], j) === req;
      }
      case 'expand': {
        const out = n.outputs[0], os = shape(out);
        const a = j + os.length - s.value.elems.length;
        const req = os[a] - k * view.cnt(out, a);
        if (v === req) return true;
        const ds = shape(n.inputs[0]);
        const da = a - (os.length - ds.length);
        const dd = da >= 0 ? ds[da] - k * view.cnt(n.inputs[0], da) : 1;
        return v === 1 && dd === req;
      }
      case 'starts': case 'ends': {
        const sinks = this.byNode.get(n) ?? [];
        const ds = shape(n.inputs[0]);
        const axesV = sinks.find((x) => x.input === 3)?.orig ?? s.orig.map((_, i) => i);
        const steps = sinks.find((x) => x.input === 4)?.orig;
        const a = (axesV[j] + ds.length) % ds.length;
        const step = steps?.[j] ?? 1;
        const pick = s.kind === 'starts' ? 0 : 1;
        const eff = (dim: number, x: number) => effectiveBounds(dim, x, x, step)[pick];
        const c = view.cnt(n.inputs[0], a);
        const b = eff(ds[a], s.orig[j]);
        const below = c > 0 ? this.below(view, n.inputs[0], a, b) ?? NaN : 0;
        return eff(ds[a] - k * c, v) === b - k * below;
      }
      case 'split': {
        const ds = shape(n.inputs[0]);
        const ax = (n.attrInt('axis', 0) + ds.length) % ds.length;
        return v === s.orig[j] - k * view.cnt(n.outputs[j], ax);
      }
      case 'indices': {
        // A Gather index: it must still select the same position once the group's positions below it are gone.
        const ds = shape(n.inputs[0]);
        const ax = (n.attrInt('axis', 0) + ds.length) % ds.length;
        const c = view.cnt(n.inputs[0], ax);
        const p = s.orig[j] < 0 ? s.orig[j] + ds[ax] : s.orig[j];
        const below = c > 0 ? this.below(view, n.inputs[0], ax, p) ?? NaN : 0;
        const dim = ds[ax] - k * c;
        const q = v < 0 ? v + dim : v;
        return q === p - k * below && q >= 0 && q < dim;
      }
      case 'sizes': {
        // Resize `sizes` (over the `axes` attribute when given): an axis that loses positions passes through
        // (size = dim) and must keep doing so; every other element keeps its value.
        const os = shape(n.outputs[0]);
        const axes = n.attrInts('axes');
        const a = axes ? (axes[j] + os.length) % os.length : j;
        const c = view.cnt(n.outputs[0], a);
        if (c === 0) return v === s.orig[j];
        return s.orig[j] === os[a] && v === os[a] - k * c;
      }
    }
  }
}

function push<K, V>(m: Map<K, V[]>, k: K, v: V): void {
  let l = m.get(k);
  if (!l) m.set(k, (l = []));
  l.push(v);
}
