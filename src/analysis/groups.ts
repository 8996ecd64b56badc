/**
 * Phase 2: turns the coupled labels of phase 1 into groups. Classes are made regular, spaces linked by
 * classes form groups, and each group gets its members (weights from attach facts, directly or traced back
 * to stored constants; attributes; shape constants from the solver), its unit description and parameter
 * counts — or is declined with the reasons collected for any of its classes.
 */
import { numel } from '../ir/dims';
import type { Graph } from '../ir/graph';
import type { AttrMember, DeclinedGroup, Group, GroupAnalysis, Member } from './types';
import { type Occurrence, Occurrences, components, regularize } from './classes';
import { DECLINE } from './decline';
import { describeUnits } from './heads';
import { type TracedStep, coupleSharedParams, traceParam } from './param-trace';
import type { Plumbing } from './shape-plumbing';
import { type GroupView, ShapeSolver } from './shape-solver';
import type { AttachFact, AttrFact, DeclineFact, ShapeUseFact, ShapeUseKind, State, StatFact } from './state';

/** Shape uses of the ops a traced parameter path can pass (their shape inputs must follow the pruned sizes). */
const TRACED_USES: Record<string, ShapeUseKind> = { Reshape: 'reshape', Expand: 'expand', Slice: 'slice', Gather: 'gather' };

export interface BuildOptions {
  /** Allow −1 rewrites of Reshape elements computed from unpruned dims (ShapeMember.replaceWith). */
  rewriteComputedShapes?: boolean;
  /**
   * Grouped-query attention: offer "query heads within kv-groups" (unit r = query head r of every kv-group)
   * instead of kv-groups where it is proven (see gqa-query-heads.ts; the two overlap, so not both).
   */
  gqaQueryHeads?: boolean;
  /**
   * Channels a normalization reduces over (the hidden size of a transformer: LayerNorm / RMSNorm, also written
   * as ReduceMean/Pow/Sqrt/Div) are prunable, the statistics then running over the kept channels (StatMember);
   * default true. false: they are declined ("normalization over the pruned axis").
   */
  normStatistics?: boolean;
}

/** A normalized stream: a group whose channels a normalization reduces over (a transformer's hidden size). */
export function normalizedStream(g: Group): boolean {
  return g.members.some((m) => m.kind === 'stat');
}

function push<K, V>(m: Map<K, V[]>, k: K, v: V): void {
  let l = m.get(k);
  if (!l) m.set(k, (l = []));
  l.push(v);
}

class Failure {
  constructor(readonly reason: string, readonly node?: string, readonly tensor?: string) {}
}

/** Elements of all weights of the graph (initializers, Constant nodes, sparse; subgraphs too). */
export function totalParams(graph: Graph): number {
  let n = 0;
  for (const w of graph.weights(true)) n += w.tensor.size;
  return n;
}

/** Elements removed from a tensor when the given positions go along each axis. */
function removedElements(dims: number[], removed: Map<number, Set<number>>): number {
  const total = numel(dims);
  let kept = 1;
  dims.forEach((d, a) => { kept *= d - (removed.get(a)?.size ?? 0); });
  return total - kept;
}

function weightParams(st: State, members: Member[], unit: number | 'all'): Map<string, Map<number, Set<number>>> {
  const per = new Map<string, Map<number, Set<number>>>();
  for (const m of members) {
    if (m.kind !== 'weight') continue;
    let axes = per.get(m.tensor);
    if (!axes) per.set(m.tensor, (axes = new Map()));
    let s = axes.get(m.axis);
    if (!s) axes.set(m.axis, (s = new Set()));
    const lists = unit === 'all' ? m.indices : [m.indices[unit]];
    for (const l of lists) for (const i of l) s.add(i);
  }
  return per;
}

/** A last check of a group's members (e.g. scope rules for subgraphs): a reason to decline it, or undefined. */
export type MemberCheck = (members: Member[]) => { reason: string; node?: string; tensor?: string } | undefined;

export function buildGroups(st: State, plumb: Plumbing, opts: BuildOptions = {}, check?: MemberCheck): GroupAnalysis {
  const coupled = coupleSharedParams(st);
  regularize(st);
  const occ = new Occurrences(st);
  const uf = st.uf;

  const declByRoot = new Map<number, DeclineFact[]>();
  for (const d of st.declines) for (const l of d.labels) push(declByRoot, uf.find(l), d);
  const tensorsByRoot = new Map<number, string[]>();
  for (const t of st.fields.keys()) for (const r of occ.of(t).keys()) push(tensorsByRoot, r, t);
  const attachesBy = new Map<string, AttachFact[]>();
  for (const a of st.attaches) push(attachesBy, a.field, a);
  const attrsBy = new Map<string, AttrFact[]>();
  for (const a of st.attrs) push(attrsBy, a.field, a);
  const statsBy = new Map<string, StatFact[]>();
  for (const f of st.stats) push(statsBy, f.field, f);
  const usesBy = new Map<string, ShapeUseFact[]>();
  for (const u of st.shapeUses) for (const t of new Set([u.data, ...u.outs])) push(usesBy, t, u);
  const elementsByRoot = new Map<number, number[]>();
  for (let e = 0; e < uf.count; e++) push(elementsByRoot, uf.find(e), e);

  const solver = new ShapeSolver(st, st.graph, plumb, !!opts.rewriteComputedShapes);
  const groups: Group[] = [];
  const declined: DeclinedGroup[] = [];

  // Units of one component with different footprints (e.g. the two halves of a Split feeding different
  // consumers) become separate groups: within a group every unit has the same footprint.
  const signature = (r: number) => (tensorsByRoot.get(r) ?? []).map((t) => {
    const o = occ.of(t).get(r)!;
    return `${t}:${o.axis}:${o.positions.length}`;
  }).join('|');
  interface Candidate { roots: number[]; spaces: number[]; id: string }
  const candidates: Candidate[] = [];
  for (const comp of components(st)) {
    const firstTensor = st.spaces[comp.spaces[0]].tensor;
    const allDeclined = comp.roots.every((r) => declByRoot.has(r));
    const buckets = new Map<string, number[]>();
    for (const r of comp.roots) push(buckets, allDeclined ? '' : signature(r), r);
    let k = 0;
    for (const roots of buckets.values()) {
      const spaces = allDeclined || buckets.size === 1 ? comp.spaces
        : [...new Set(roots.flatMap((r) => (elementsByRoot.get(r) ?? []).map((e) => st.spaceOf(e).id)))].sort((a, b) => a - b);
      candidates.push({ roots, spaces, id: k++ ? `${firstTensor}#${k - 1}` : firstTensor });
    }
  }

  for (const cand of candidates) {
    const roots = cand.roots;
    const size = roots.length;
    const producers = cand.spaces.map((s) => st.spaces[s].node);
    const first = st.spaces[cand.spaces[0]];
    const tensors = [...new Set(roots.flatMap((r) => tensorsByRoot.get(r) ?? []))];
    const producerParams = (): number => {
      const seen = new Set<string>();
      let p = 0;
      for (const s of cand.spaces) {
        for (const a of attachesBy.get(st.spaces[s].tensor) ?? []) {
          const w = a.role === 'out' ? st.stored(a.partner.tensor) : undefined;
          if (w && !seen.has(w.name)) { seen.add(w.name); p += w.tensor.size; }
        }
      }
      return p;
    };
    const decline = (reasons: string[], node?: string, tensor?: string) => {
      const d: DeclinedGroup = { reason: reasons[0], reasons };
      if (node) d.node = node;
      if (tensor) d.tensor = tensor;
      // The blocking op, and the input it reads the tensor at.
      const n = node ? st.graph.producer(node) : undefined;
      if (n) {
        d.op = n.opType;
        const i = tensor ? n.inputs.indexOf(tensor) : -1;
        if (i >= 0) d.input = i;
      }
      Object.assign(d, { producers: producers.map((n) => n.outputs[0]), params: producerParams(), size });
      declined.push(d);
    };

    const facts = roots.flatMap((r) => declByRoot.get(r) ?? []);
    if (facts.length) {
      const reasons = [...new Set(facts.map((f) => f.reason))];
      decline(reasons, facts[0].node, facts[0].tensor);
      continue;
    }
    if (size < 2) { decline([DECLINE.singleUnit], first.node.outputs[0], first.tensor); continue; }

    try {
      // Every tensor the group touches must hold every unit, on the same axis, with the same width.
      for (const t of tensors) {
        const os = roots.map((r) => occ.of(t).get(r));
        if (os.some((o) => !o)) throw new Failure(DECLINE.nonUniform, undefined, t);
        if (os.some((o) => o!.axis < 0)) throw new Failure(DECLINE.irregular, undefined, t);
        if (os.some((o) => o!.axis !== os[0]!.axis || o!.positions.length !== os[0]!.positions.length)) throw new Failure(DECLINE.nonUniform, undefined, t);
      }
      const touched = new Set(tensors);
      // Computed parameters traced back to stored constants shrink along the path too (per unit positions).
      const traced = new Map<string, Occurrence[]>();
      const tracedUses: ShapeUseFact[] = [];
      const view: GroupView = {
        size,
        cnt: (t, a) => {
          if (!touched.has(t)) {
            const o = traced.get(t)?.[0];
            return o && o.axis === a ? o.positions.length : 0;
          }
          const o = occ.of(t).get(roots[0]);
          return o && o.axis === a ? o.positions.length : 0;
        },
        occurrence: (t, u) => occ.of(t).get(roots[u]) ?? traced.get(t)?.[u],
      };
      const addSteps = (steps: TracedStep[], indices: number[][], node: string) => {
        for (const step of steps) {
          const per = indices.map((l) => [...new Set(l.map((i) => step.map[i]))].sort((x, y) => x - y));
          const all = new Set(per.flat());
          if (per.some((l) => l.length !== per[0].length)) throw new Failure(DECLINE.nonUniform, node, step.tensor);
          if (all.size !== per.length * per[0].length) throw new Failure(DECLINE.irregular, node, step.tensor);
          const prev = traced.get(step.tensor);
          if (prev && (prev[0].axis !== step.axis || prev.some((o, u) => o.positions.join() !== per[u].join()))) {
            throw new Failure(DECLINE.irregular, node, step.tensor);
          }
          if (touched.has(step.tensor)) throw new Failure(DECLINE.irregular, node, step.tensor);
          traced.set(step.tensor, per.map((positions) => ({ axis: step.axis, positions })));
          const p = step.producer;
          const kind = p && TRACED_USES[p.opType];
          if (p && kind) tracedUses.push({ kind, node: p, data: p.inputs[0], outs: [p.outputs[0]] });
        }
      };
      const members: Member[] = [];
      const keys = new Set<string>();
      const add = (m: Member) => {
        const key = JSON.stringify(m.kind === 'weight' ? [m.tensor, m.node, m.input, m.axis, m.role] : m);
        if (!keys.has(key)) { keys.add(key); members.push(m); }
      };
      for (const t of tensors) {
        const o0 = view.occurrence(t, 0)!;
        for (const a of attachesBy.get(t) ?? []) {
          if (a.axis !== o0.axis) continue;
          const indices = roots.map((_, u) => view.occurrence(t, u)!.positions);
          const w = st.stored(a.partner.tensor);
          if (w) {
            const d = w.tensor.dims[a.partner.axis];
            if (d === undefined || indices.some((l) => l.some((i) => i >= d))) throw new Failure(DECLINE.irregular, a.partner.node, w.name);
            for (const c of st.chainMembers(w, a.partner, a.partner.axis)) {
              add({ kind: 'weight', tensor: c.tensor, node: c.node, input: c.input, axis: c.axis, role: c.param ? 'param' : a.role, indices });
            }
            continue;
          }
          const tr = traceParam(st, a.partner, (st.shape(t) ?? [])[a.axis] ?? 0, { units: indices, coupled });
          if (!tr.ok) throw new Failure(tr.reason, a.partner.node, tr.tensor);
          addSteps(tr.steps, indices, a.partner.node);
          for (const u of tr.uses) {
            const mapped = indices.map((l) => [...new Set(l.map((i) => u.map[i]))].sort((x, y) => x - y));
            add({ kind: 'weight', tensor: u.tensor, node: u.node, input: u.input, axis: u.axis, role: 'param', indices: mapped });
          }
        }
        for (const af of attrsBy.get(t) ?? []) {
          if (af.axis !== o0.axis) continue;
          let per = o0.positions.length / af.divisor;
          if (af.window) {
            const [lo, hi] = af.window;
            const counts = roots.map((_, u) => view.occurrence(t, u)!.positions.filter((p) => p >= lo && p < hi).length);
            if (counts.some((c) => c !== counts[0])) throw new Failure(DECLINE.sliceBound, af.node, t);
            per = ((af.sign ?? 1) * counts[0]) / af.divisor;
            if (per === 0) continue;
          }
          if (!Number.isInteger(per)) throw new Failure(DECLINE.nonUniform, af.node, t);
          const m: AttrMember = { kind: 'attr', node: af.node, attr: af.attr, perUnit: per };
          if (af.position !== undefined) m.position = af.position;
          add(m);
        }
        for (const sf of statsBy.get(t) ?? []) {
          if (sf.axis !== o0.axis) continue;
          const size = (st.shape(t) ?? [])[sf.axis];
          if (!size) throw new Failure(DECLINE.unknownShape, sf.node, t);
          const indices = roots.map((_, u) => view.occurrence(t, u)!.positions);
          add({ kind: 'stat', node: sf.node, size, axis: sf.axis, gather: sf.gather, scatter: sf.scatter, indices });
        }
      }
      const uses = [...new Set([...tensors.flatMap((t) => usesBy.get(t) ?? []), ...tracedUses])];
      const solved = solver.solve(view, uses, [...tensors, ...traced.keys()]);
      if (!solved.ok) throw new Failure(solved.reason, solved.node, solved.tensor);
      for (const m of solved.members) add(m);
      if (!members.some((m) => m.kind === 'weight' && m.role === 'in')) throw new Failure(DECLINE.noConsumer, first.node.outputs[0], first.tensor);
      const bad = check?.(members);
      if (bad) throw new Failure(bad.reason, bad.node, bad.tensor);

      const order = { out: 0, param: 1, in: 2 } as const;
      const rank = (m: Member) => (m.kind === 'weight' ? order[m.role] : m.kind === 'attr' ? 3 : m.kind === 'shape' ? 4 : 5);
      members.sort((a, b) => rank(a) - rank(b));
      const desc = describeUnits(st, cand.spaces, elementsByRoot.get(roots[0]) ?? [], size, members);
      let paramsPerUnit = 0;
      for (const [name, axes] of weightParams(st, members, 0)) paramsPerUnit += removedElements(st.stored(name)!.tensor.dims, axes);
      const label = first.node.name || `${first.node.opType}(${first.tensor})`;
      groups.push({
        id: cand.id,
        label: producers.length > 1 ? `${label} (+${producers.length - 1} coupled)` : label,
        unit: desc.unit,
        unitSize: desc.unitSize,
        size,
        members,
        paramsPerUnit,
        info: { ...desc.info, producers: producers.map((n) => n.outputs[0]) },
      });
    } catch (e) {
      if (!(e instanceof Failure)) throw e;
      decline([e.reason], e.node, e.tensor);
    }
  }

  const total = totalParams(st.graph);
  const all = weightParams(st, groups.flatMap((g) => g.members), 'all');
  let prunable = 0;
  for (const [name, axes] of all) prunable += removedElements(st.stored(name)!.tensor.dims, axes);
  return {
    groups,
    declined,
    summary: { totalParams: total, prunableParams: prunable, groups: groups.length, declined: declined.length },
  };
}

