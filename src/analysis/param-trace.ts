/**
 * Traces a computed, constant-derived tensor that must shrink with a unit (e.g. Swin's relative position
 * bias: table → Gather → Reshape → Transpose → Unsqueeze → Add to the attention scores) back to the stored
 * constants it is made from, composing the index map of each step. Each computed step must be used only by
 * the next one (else pruning the source would change other users).
 *
 * Every tensor visited is reported as a step, so that the shape solver can check (and rewrite) the Reshape /
 * Expand / Slice / Gather shape inputs along the way: the tensors of the path shrink too (e.g. a k/v head
 * repeated by Expand for every query head, or Bloom's ALiBi reshaped to [b·H, 1, s]).
 */
import type { Node } from '../ir/node';
import { DECLINE } from './decline';
import { type Field, NONE, strides } from './field';
import { reshapeAxisMap, reshapeBlocks } from './rule-kit';
import { sliceIndices } from './shape-plumbing';
import type { Partner, State } from './state';

export interface TracedUse {
  tensor: string;
  node: string;
  input: number;
  axis: number;
  /** map[i] = position in the stored tensor of position i of the partner axis. */
  map: number[];
}

/** A tensor on the traced path: position i of the partner axis is position map[i] of `axis`; `producer` made it. */
export interface TracedStep {
  tensor: string;
  axis: number;
  map: number[];
  producer?: Node;
  /** The node that reads it on the path (first output name). */
  reader?: string;
}

export type TraceResult = { ok: true; uses: TracedUse[]; steps: TracedStep[] } | { ok: false; reason: string; tensor: string };

/**
 * Through a Reshape that merges several input axes into the partner's axis (e.g. [b, H, s] → [b·H, 1, s]):
 * the input axis whose positions each unit covers completely across the other merged axes (every b for a
 * head h), with the map onto it; undefined when there is none.
 */
function throughMerge(inShape: number[], outShape: number[], axis: number, map: number[], units: number[][]): { axis: number; map: number[] } | undefined {
  const block = reshapeBlocks(inShape, outShape)?.find((b) => b.o.includes(axis));
  if (!block || block.o.length !== 1 || block.i.length < 2) return undefined;
  const dims = block.i.map((a) => inShape[a]);
  const total = dims.reduce((x, y) => x * y, 1);
  const coord = (p: number, k: number) => Math.floor(p / dims.slice(k + 1).reduce((x, y) => x * y, 1)) % dims[k];
  for (let k = 0; k < dims.length; k++) {
    if (dims[k] <= 1) continue;
    const ok = units.every((u) => {
      const pos = new Set(u.map((i) => map[i]));
      const own = new Set([...pos].map((p) => coord(p, k)));
      return pos.size === own.size * (total / dims[k]);
    });
    if (ok) return { axis: block.i[k], map: map.map((p) => coord(p, k)) };
  }
  return undefined;
}

const PASS = new Set(['Identity', 'Cast', 'Neg', 'Sqrt', 'Exp', 'Log', 'Sigmoid', 'Tanh', 'Relu', 'Abs', 'Reciprocal', 'Softplus', 'Erf', 'Dropout']);
const BINARY = new Set(['Add', 'Sub', 'Mul', 'Div', 'Pow', 'Max', 'Min', 'Where']);

export interface TraceOptions {
  /** Each unit's positions along the partner axis (lets the trace pass a merging Reshape). */
  units?: number[][];
  /** Shared computed tensors (`tensor|axis`) whose readers' units are coupled (see coupleSharedParams). */
  coupled?: Set<string>;
  /** Stop at shared computed tensors and report them instead of failing. */
  junctions?: TracedStep[];
}

export function traceParam(st: State, partner: Partner, dim: number, opts: TraceOptions = {}): TraceResult {
  const units = opts.units ?? [];
  const g = st.graph;
  const uses: TracedUse[] = [];
  const steps: TracedStep[] = [];
  const stack: { name: string; axis: number; map: number[]; node: string; input: number }[] = [
    { name: partner.tensor, axis: partner.axis, map: Array.from({ length: dim }, (_, i) => i), node: partner.node, input: partner.input },
  ];
  let visits = 0;
  while (stack.length) {
    if (++visits > 500) return { ok: false, reason: DECLINE.pinned, tensor: partner.tensor };
    const cur = stack.pop()!;
    const s = st.stored(cur.name);
    if (s) {
      for (const c of st.chainMembers(s, cur, cur.axis)) uses.push({ tensor: c.tensor, node: c.node, input: c.input, axis: c.axis, map: cur.map });
      steps.push({ tensor: cur.name, axis: cur.axis, map: cur.map });
      continue;
    }
    if (g.isGraphInput(cur.name)) return { ok: false, reason: DECLINE.graphInput, tensor: cur.name };
    const p = g.producer(cur.name);
    if (!p || p.domain !== '') return { ok: false, reason: DECLINE.pinned, tensor: cur.name };
    if (g.isGraphOutput(cur.name)) return { ok: false, reason: DECLINE.sharedParam, tensor: cur.name };
    if (g.realConsumers(cur.name).length > 1 && !opts.coupled?.has(`${cur.name}|${cur.axis}`)) {
      if (!opts.junctions) return { ok: false, reason: DECLINE.sharedParam, tensor: cur.name };
      opts.junctions.push({ tensor: cur.name, axis: cur.axis, map: cur.map, reader: cur.node });
      continue;
    }
    const pid = p.outputs[0];
    const os = st.shape(cur.name);
    steps.push({ tensor: cur.name, axis: cur.axis, map: cur.map, producer: p });
    const push = (i: number, axis: number, map: number[]) => stack.push({ name: p.inputs[i], axis, map, node: pid, input: i });
    const op = p.opType;
    if (PASS.has(op)) { push(0, cur.axis, cur.map); continue; }
    if (op === 'Transpose') {
      const perm = p.attrInts('perm') ?? Array.from({ length: os?.length ?? 0 }, (_, i) => (os!.length - 1 - i));
      push(0, perm[cur.axis], cur.map);
      continue;
    }
    if (['Reshape', 'Flatten', 'Squeeze', 'Unsqueeze'].includes(op)) {
      const si = st.shape(p.inputs[0]);
      const a = si && os ? reshapeAxisMap(si, os, cur.axis) : undefined;
      if (a !== undefined) { push(0, a, cur.map); continue; }
      const merged = si && os && units.length ? throughMerge(si, os, cur.axis, cur.map, units) : undefined;
      if (!merged) return { ok: false, reason: DECLINE.pinned, tensor: cur.name };
      push(0, merged.axis, merged.map);
      continue;
    }
    if (op === 'Expand' || BINARY.has(op)) {
      const R = os?.length ?? 0;
      const ins = op === 'Expand' ? [0] : p.inputs.map((_, i) => i).filter((i) => p.inputs[i]);
      for (const i of ins) {
        const si = st.shape(p.inputs[i]);
        if (!si) return { ok: false, reason: DECLINE.unknownShape, tensor: p.inputs[i] };
        const ia = cur.axis - (R - si.length);
        if (ia >= 0 && si[ia] !== 1) push(i, ia, cur.map);
      }
      continue;
    }
    if (op === 'Gather') {
      const si = st.shape(p.inputs[0]);
      const idx = st.plumb.numbers(p.inputs[1]);
      const sidx = st.shape(p.inputs[1]);
      if (!si || !idx || !sidx) return { ok: false, reason: DECLINE.pinned, tensor: cur.name };
      const ga = (p.attrInt('axis', 0) + si.length) % si.length;
      const q = sidx.length;
      if (cur.axis < ga) push(0, cur.axis, cur.map);
      else if (cur.axis >= ga + q) push(0, cur.axis - q + 1, cur.map);
      else if (q === 1) push(0, ga, cur.map.map((i) => (idx[i] < 0 ? idx[i] + si[ga] : idx[i])));
      else return { ok: false, reason: DECLINE.pinned, tensor: cur.name };
      continue;
    }
    if (op === 'Slice') {
      const si = st.shape(p.inputs[0]);
      const starts = st.plumb.numbers(p.inputs[1]), ends = st.plumb.numbers(p.inputs[2]);
      const axes = p.inputs[3] ? st.plumb.numbers(p.inputs[3]) : starts?.map((_, i) => i);
      const steps = p.inputs[4] ? st.plumb.numbers(p.inputs[4]) : undefined;
      if (!si || !starts || !ends || !axes) return { ok: false, reason: DECLINE.pinned, tensor: cur.name };
      const j = axes.map((a) => (a < 0 ? a + si.length : a)).indexOf(cur.axis);
      if (j < 0) push(0, cur.axis, cur.map);
      else {
        const pos = sliceIndices(si[cur.axis], starts[j], ends[j], steps?.[j] ?? 1);
        push(0, cur.axis, cur.map.map((i) => pos[i]));
      }
      continue;
    }
    return { ok: false, reason: DECLINE.pinned, tensor: cur.name };
  }
  return { ok: true, uses, steps };
}

/** The labels of each hyperplane `axis = i` of a field (one pass); a field constant along `axis` has one. */
function hyperplanes(f: Field, axis: number): number[][] {
  const k = f.axes.indexOf(axis);
  if (k < 0) return [[...f.labels]];
  const stride = strides(f.dims)[k];
  const d = f.dims[k];
  const out: number[][] = Array.from({ length: d }, () => []);
  for (let p = 0; p < f.labels.length; p++) out[Math.floor(p / stride) % d].push(f.labels[p]);
  return out;
}

/**
 * A computed parameter shared by several readers (Bloom's ALiBi tensor added to the scores of every layer):
 * each reader's units must remove the same positions of it, so they are coupled position by position (head h
 * of every layer becomes one unit, as with T5's shared relative position bias). Only when every real consumer
 * of the shared tensor is reached this way, on one axis; returns those tensors (`tensor|axis`) for traceParam.
 * Call before classes are formed (it unites labels).
 */
export function coupleSharedParams(st: State): Set<string> {
  const g = st.graph;
  const byJunction = new Map<string, { planes: number[][]; map: number[]; reader: string }[]>();
  // Only readers whose units already live along the attached axis (one class per position: the scores' head
  // axis, not RoPE's cos table along head_dim, whose positions every head shares).
  const alongAxis = (planes: number[][]) =>
    planes.every((ls) => ls.every((l) => l !== NONE && st.uf.find(l) === st.uf.find(ls[0])));
  for (const a of st.attaches) {
    const f = st.fields.get(a.field);
    if (!f || !f.axes.includes(a.axis) || st.stored(a.partner.tensor)) continue;
    const planes = hyperplanes(f, a.axis);
    if (!alongAxis(planes)) continue;
    const junctions: TracedStep[] = [];
    const tr = traceParam(st, a.partner, planes.length, { junctions });
    if (!tr.ok) continue;
    for (const j of junctions) {
      const key = `${j.tensor}|${j.axis}`;
      let list = byJunction.get(key);
      if (!list) byJunction.set(key, (list = []));
      list.push({ planes, map: j.map, reader: j.reader ?? '' });
    }
  }
  const coupled = new Set<string>();
  const axesOf = new Map<string, number>();
  for (const key of byJunction.keys()) {
    const t = key.slice(0, key.lastIndexOf('|'));
    axesOf.set(t, (axesOf.get(t) ?? 0) + 1);
  }
  for (const [key, list] of byJunction) {
    const t = key.slice(0, key.lastIndexOf('|'));
    const readers = new Set(list.map((x) => x.reader));
    if (axesOf.get(t) !== 1 || !g.realConsumers(t).every((c) => readers.has(c.outputs[0]))) continue;
    const at = new Map<number, number[]>();
    for (const x of list) {
      x.map.forEach((j, i) => {
        let ls = at.get(j);
        if (!ls) at.set(j, (ls = []));
        ls.push(...x.planes[i]);
      });
    }
    for (const ls of at.values()) st.unionAll(ls);
    coupled.add(key);
  }
  return coupled;
}
