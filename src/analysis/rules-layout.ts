/**
 * Rules for ops that move positions around without computing: Reshape/Flatten/Squeeze/Unsqueeze, Transpose,
 * Concat, Split, Slice, Gather, Expand, Tile, Pad, Resize. Index maps compose through the label fields
 * (Concat offsets, Split/Slice ranges, head split/merge, channel shuffle); shape-like inputs are recorded as
 * shape uses for the plumbing solver.
 */
import type { Node } from '../ir/node';
import { DECLINE } from './decline';
import { type Field, NONE, checkedFieldSize, fieldSize, makeField, materialize, newLabels, pickAlong, remapAxes, takeAt, transposeField } from './field';
import { declineInputs, id, normAxis, reshapeField, unionFields } from './rule-kit';
import { embeddingRule } from './rules-contract';
import { sliceIndices } from './shape-plumbing';
import type { ShapeUseKind, State } from './state';

function shapesOrDecline(st: State, n: Node, names: string[]): number[][] | undefined {
  const out: number[][] = [];
  for (const nm of names) {
    const s = st.shape(nm);
    if (!s) { declineInputs(st, n, DECLINE.unknownShape); return undefined; }
    out.push(s);
  }
  return out;
}

function use(st: State, kind: ShapeUseKind, n: Node, outs?: string[]): void {
  st.shapeUses.push({ kind, node: n, data: n.inputs[0], outs: outs ?? n.outputs.filter((o) => o) });
}

/** Reshape, Flatten, Squeeze, Unsqueeze: label fields follow the factorization of the two shapes. */
export function reshapeRule(st: State, n: Node): void {
  const f = st.field(n.inputs[0]);
  if (!f) return;
  const s = shapesOrDecline(st, n, [n.inputs[0], n.outputs[0]]);
  if (!s) return;
  const r = reshapeField(f, s[0], s[1]);
  if (typeof r === 'string') { st.declineField(f, r, n, n.inputs[0]); return; }
  st.setField(n.outputs[0], r);
  if (n.opType === 'Reshape') use(st, 'reshape', n);
}

export function transposeRule(st: State, n: Node): void {
  const f = st.field(n.inputs[0]);
  if (!f) return;
  const perm = n.attrInts('perm') ?? Array.from({ length: f.rank }, (_, i) => f.rank - 1 - i);
  st.setField(n.outputs[0], transposeField(f, perm));
}

export function concatRule(st: State, n: Node): void {
  const ins = n.inputs.filter((i) => i);
  if (!ins.some((i) => st.field(i))) return;
  const s = shapesOrDecline(st, n, [...ins, n.outputs[0]]);
  if (!s) return;
  const os = s[s.length - 1];
  const R = os.length;
  const ax = normAxis(n.attrInt('axis', 0), R);
  const fields = ins.map((i) => st.field(i));
  const out = n.outputs[0];
  if (fields.some((f) => f?.axes.includes(ax))) {
    // Positions along the concat axis come from different inputs: offsets compose.
    const axes = [...new Set([ax, ...fields.flatMap((f) => f?.axes ?? [])])].sort((a, b) => a - b);
    const dims = axes.map((a) => os[a]);
    const k = axes.indexOf(ax);
    const outer = fieldSize(dims.slice(0, k));
    const inner = fieldSize(dims.slice(k + 1));
    const labels = newLabels(dims).fill(NONE);
    let off = 0;
    ins.forEach((name, i) => {
      const d = s[i][ax];
      const f = fields[i];
      if (f) {
        const pd = dims.slice();
        pd[k] = d;
        const m = materialize(f, axes, pd);
        for (let o = 0; o < outer; o++) labels.set(m.subarray(o * d * inner, (o + 1) * d * inner), (o * dims[k] + off) * inner);
      } else {
        for (const a of axes) if (a !== ax && s[i][a] !== 1) st.attach(out, a, { tensor: name, node: id(n), input: n.inputs.indexOf(name), axis: a }, 'param');
      }
      off += d;
    });
    st.setField(out, makeField(R, axes, dims, labels));
    return;
  }
  // Concat along an unlabeled axis: every input covers the same labeled positions.
  const mapped: Field[] = [];
  ins.forEach((name, i) => {
    const f = fields[i];
    if (f) mapped.push(f);
  });
  const outF = unionFields(st, n, mapped, os);
  if (!outF) return;
  ins.forEach((name, i) => {
    if (fields[i]) return;
    for (const a of outF.axes) if (s[i][a] !== 1) st.attach(out, a, { tensor: name, node: id(n), input: n.inputs.indexOf(name), axis: a }, 'param');
  });
  st.setField(out, outF);
}

export function splitRule(st: State, n: Node): void {
  const f = st.field(n.inputs[0]);
  if (!f) return;
  const si = st.shape(n.inputs[0]);
  if (!si) { declineInputs(st, n, DECLINE.unknownShape); return; }
  const R = si.length;
  const ax = normAxis(n.attrInt('axis', 0), R);
  const outs = n.outputs;
  let sizes: number[] | undefined;
  let kind: ShapeUseKind = 'split';
  if (n.inputs[1]) sizes = st.plumb.numbers(n.inputs[1]);
  else if (n.attrInts('split')?.length) { sizes = n.attrInts('split'); kind = 'split-attr'; }
  else {
    const k = outs.length;
    const chunk = Math.ceil(si[ax] / k);
    sizes = outs.map((_, j) => Math.max(0, Math.min(chunk, si[ax] - j * chunk)));
  }
  if (!sizes || sizes.length !== outs.length) { st.declineField(f, DECLINE.shapeRewrite, n, n.inputs[1]); return; }
  if (!f.axes.includes(ax)) {
    for (const o of outs) if (o) st.setField(o, f);
    return;
  }
  let off = 0;
  outs.forEach((o, j) => {
    const pos = Array.from({ length: sizes![j] }, (_, q) => off + q);
    off += sizes![j];
    if (o) st.setField(o, pickAlong(f, ax, pos));
    if (kind === 'split-attr') st.attrs.push({ node: id(n), attr: 'split', position: j, field: o, axis: ax, divisor: 1 });
  });
  use(st, kind, n);
}

export function sliceRule(st: State, n: Node): void {
  let f = st.field(n.inputs[0]);
  if (!f) return;
  const si = st.shape(n.inputs[0]);
  if (!si) { declineInputs(st, n, DECLINE.unknownShape); return; }
  const R = si.length;
  let starts: number[] | undefined, ends: number[] | undefined, axes: number[] | undefined, steps: number[] | undefined;
  if (n.inputs.length > 1) {
    starts = st.plumb.numbers(n.inputs[1]);
    ends = st.plumb.numbers(n.inputs[2]);
    axes = n.inputs[3] ? st.plumb.numbers(n.inputs[3]) : undefined;
    steps = n.inputs[4] ? st.plumb.numbers(n.inputs[4]) : undefined;
  } else {
    starts = n.attrInts('starts');
    ends = n.attrInts('ends');
    axes = n.attrInts('axes');
  }
  if (!starts || !ends || (n.inputs[3] && !axes) || (n.inputs[4] && !steps)) { st.declineField(f, DECLINE.shapeRewrite, n, n.inputs[0]); return; }
  const ax = (axes ?? starts.map((_, i) => i)).map((a) => normAxis(a, R));
  if (n.inputs.length === 1) {
    // Slice-1..9: the bounds are attributes; each becomes an attribute member of the groups it crosses.
    ax.forEach((a, j) => {
      if (!f!.axes.includes(a)) return;
      const d = si[a];
      (['starts', 'ends'] as const).forEach((attr, k) => {
        const b = (k === 0 ? starts : ends)![j];
        if (b >= d || b <= -d) return; // clamped to an end of the axis: stays right when the axis shrinks
        const window: [number, number] = b >= 0 ? [0, Math.min(b, d)] : [Math.max(0, b + d), d];
        st.attrs.push({ node: id(n), attr, position: j, field: n.inputs[0], axis: a, divisor: 1, window, sign: b >= 0 ? 1 : -1 });
      });
    });
  }
  ax.forEach((a, j) => {
    const step = steps?.[j] ?? 1;
    if (f!.axes.includes(a)) f = pickAlong(f!, a, sliceIndices(si[a], starts![j], ends![j], step));
  });
  st.setField(n.outputs[0], f);
  use(st, 'slice', n);
}

export function gatherRule(st: State, n: Node): void {
  const f = st.field(n.inputs[0]);
  if (!f) { embeddingRule(st, n); return; }
  const si = st.shape(n.inputs[0]), sidx = st.shape(n.inputs[1]);
  if (!si || !sidx) { declineInputs(st, n, DECLINE.unknownShape); return; }
  const R = si.length;
  const ax = normAxis(n.attrInt('axis', 0), R);
  const q = sidx.length;
  const out = n.outputs[0];
  if (!f.axes.includes(ax)) {
    const g = remapAxes(f, (a) => (a < ax ? a : a + q - 1), R + q - 1);
    st.setField(out, g);
    use(st, 'gather', n);
    return;
  }
  const idx = st.plumb.numbers(n.inputs[1]);
  if (!idx || q > 1) { st.declineField(f, DECLINE.dataIndex, n, n.inputs[1]); return; }
  const picks = idx.map((v) => (v < 0 ? v + si[ax] : v));
  st.setField(out, q === 0 ? takeAt(f, ax, picks[0]) : pickAlong(f, ax, picks));
  use(st, 'gather', n);
}

/**
 * Query-head mode only: an Expand that repeats exactly one size-1 axis of a labeled tensor (LLaMA's repeat_kv,
 * [b, kv, 1, s, d] → [b, kv, n_rep, s, d]) makes n_rep identical copies. The copies get fresh labels (a
 * weightless space along the repeated axis) and the input's labels stop here, so that a consumer coupling
 * the copies with query heads groups the query heads by their index within the repeat, not by kv head.
 */
function repeatSpace(st: State, n: Node, f: Field, os: number[], off: number): boolean {
  const si = st.shape(n.inputs[0]);
  if (!si) return false;
  const rep = os.map((d, a) => (d > 1 && (a < off || si[a - off] === 1) ? a : -1)).filter((a) => a >= 0);
  if (rep.length !== 1 || rep[0] < off || f.axes.includes(rep[0] - off)) return false;
  const out = n.outputs[0];
  const space = st.newSpace(n, out, rep[0], os[rep[0]], os.length);
  st.repeatSpaceIds.add(st.spaceOf(space.labels[0]).id);
  st.setField(out, space);
  use(st, 'expand', n);
  return true;
}

export function expandRule(st: State, n: Node): void {
  const f = st.field(n.inputs[0]);
  if (!f) return;
  const os = st.shape(n.outputs[0]);
  if (!os) { declineInputs(st, n, DECLINE.unknownShape); return; }
  const off = os.length - f.rank;
  if (st.repeatSpaces && repeatSpace(st, n, f, os, off)) return;
  const g = remapAxes(f, (a) => a + off, os.length);
  if (g.axes.some((a, k) => g.dims[k] !== os[a])) { st.declineField(f, DECLINE.unknownShape, n); return; }
  st.setField(n.outputs[0], g);
  use(st, 'expand', n);
}

export function tileRule(st: State, n: Node): void {
  let f = st.field(n.inputs[0]);
  if (!f) return;
  const reps = st.plumb.numbers(n.inputs[1]);
  const si = st.shape(n.inputs[0]);
  if (!reps || !si) { st.declineField(f, DECLINE.shapeRewrite, n, n.inputs[1]); return; }
  for (const a of [...f.axes]) {
    const r = reps[a] ?? 1;
    if (r > 1) {
      // The positions list is as long as the tiled axis: the field it makes is checked first.
      const tiled = f;
      checkedFieldSize(tiled.dims.map((d, k) => (tiled.axes[k] === a ? r * si[a] : d)));
      f = pickAlong(f, a, Array.from({ length: r * si[a] }, (_, i) => i % si[a]));
    }
  }
  st.setField(n.outputs[0], f);
}

export function padRule(st: State, n: Node): void {
  const f = st.field(n.inputs[0]);
  if (!f) return;
  const pads = n.inputs[1] ? st.plumb.numbers(n.inputs[1]) : n.attrInts('pads');
  const R = f.rank;
  let axes = Array.from({ length: R }, (_, i) => i);
  if (n.inputs[3]) {
    const a = st.plumb.numbers(n.inputs[3]);
    if (!a) { st.declineField(f, DECLINE.shapeRewrite, n); return; }
    axes = a.map((x) => normAxis(x, R));
  }
  if (!pads) { st.declineField(f, DECLINE.shapeRewrite, n); return; }
  const k = axes.length;
  if (axes.some((a, j) => f.axes.includes(a) && (pads[j] !== 0 || pads[j + k] !== 0))) { st.declineField(f, DECLINE.pad, n); return; }
  st.setField(n.outputs[0], f);
}

export function resizeRule(st: State, n: Node): void {
  const f = st.field(n.inputs[0]);
  if (!f) return;
  const si = st.shape(n.inputs[0]), os = st.shape(n.outputs[0]);
  if (!si || !os) { declineInputs(st, n, DECLINE.unknownShape); return; }
  if (f.axes.some((a) => si[a] !== os[a])) { st.declineField(f, DECLINE.resize, n); return; }
  st.setField(n.outputs[0], f);
  // Labeled axes pass through; a `sizes` input names them and must shrink with them (shape members).
  if (n.opType === 'Resize' && n.inputs[3]) use(st, 'resize', n);
}

export { embeddingRule };
