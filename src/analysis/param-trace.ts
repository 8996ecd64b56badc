/**
 * Traces a computed, constant-derived tensor that must shrink with a unit (e.g. Swin's relative position
 * bias: table → Gather → Reshape → Transpose → Unsqueeze → Add to the attention scores) back to the stored
 * constants it is made from, composing the index map of each step. Each computed step must be used only by
 * the next one (else pruning the source would change other users).
 */
import { DECLINE } from './decline';
import { reshapeAxisMap } from './rule-kit';
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

export type TraceResult = { ok: true; uses: TracedUse[] } | { ok: false; reason: string; tensor: string };

const PASS = new Set(['Identity', 'Cast', 'Neg', 'Sqrt', 'Exp', 'Log', 'Sigmoid', 'Tanh', 'Relu', 'Abs', 'Reciprocal', 'Softplus', 'Erf', 'Dropout']);
const BINARY = new Set(['Add', 'Sub', 'Mul', 'Div', 'Pow', 'Max', 'Min', 'Where']);

export function traceParam(st: State, partner: Partner, dim: number): TraceResult {
  const g = st.graph;
  const uses: TracedUse[] = [];
  const stack: { name: string; axis: number; map: number[]; node: string; input: number }[] = [
    { name: partner.tensor, axis: partner.axis, map: Array.from({ length: dim }, (_, i) => i), node: partner.node, input: partner.input },
  ];
  let steps = 0;
  while (stack.length) {
    if (++steps > 500) return { ok: false, reason: DECLINE.pinned, tensor: partner.tensor };
    const cur = stack.pop()!;
    const s = st.stored(cur.name);
    if (s) { uses.push({ tensor: s.name, node: cur.node, input: cur.input, axis: cur.axis, map: cur.map }); continue; }
    if (g.isGraphInput(cur.name)) return { ok: false, reason: DECLINE.graphInput, tensor: cur.name };
    const p = g.producer(cur.name);
    if (!p || p.domain !== '') return { ok: false, reason: DECLINE.pinned, tensor: cur.name };
    if (g.realConsumers(cur.name).length > 1 || g.isGraphOutput(cur.name)) return { ok: false, reason: DECLINE.sharedParam, tensor: cur.name };
    const pid = p.outputs[0];
    const os = st.shape(cur.name);
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
      if (a === undefined) return { ok: false, reason: DECLINE.pinned, tensor: cur.name };
      push(0, a, cur.map);
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
  return { ok: true, uses };
}
