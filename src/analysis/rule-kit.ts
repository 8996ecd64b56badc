/** Building blocks shared by the op rules: elementwise coupling, mixing, reductions, reshape factorization. */
import type { Node } from '../ir/node';
import type { MemberRole } from './types';
import { DECLINE } from './decline';
import { type Field, NONE, makeField, materialize, newLabels, pickAlong, remapAxes, strides } from './field';
import { State } from './state';

export const id = (n: Node) => State.id(n);

export function normAxis(a: number, rank: number): number {
  return a < 0 ? a + rank : a;
}

/** Declines every labeled input of a node (an op we cannot map, or an unsupported case of a known op). */
export function declineInputs(st: State, n: Node, reason: string): void {
  for (const i of n.inputs) st.declineField(st.field(i), reason, n, i);
}

/**
 * Unites fields that describe the same output positions (already in output axis numbering): the result is
 * labeled on the union of their axes and every position's labels are coupled.
 */
export function unionFields(st: State, n: Node, fields: Field[], outShape: number[]): Field | undefined {
  if (!fields.length) return undefined;
  if (fields.length === 1) return fields[0];
  const axes = [...new Set(fields.flatMap((f) => f.axes))].sort((a, b) => a - b);
  const dims = axes.map((a) => outShape[a]);
  const mats = fields.map((f) => materialize(f, axes, dims));
  const out = newLabels(dims).fill(NONE);
  for (let i = 0; i < out.length; i++) {
    let rep = NONE;
    let sawNone = false;
    for (const m of mats) {
      const l = m[i];
      if (l === NONE) { sawNone = true; continue; }
      if (rep === NONE) rep = l;
      else st.uf.union(rep, l);
    }
    if (sawNone && rep !== NONE) st.decline([rep], DECLINE.pinned, n);
    out[i] = rep;
  }
  return makeField(outShape.length, axes, dims, out);
}

/**
 * Elementwise op with numpy broadcasting over `inputs`: labeled inputs are coupled position by position;
 * an unlabeled input that is not broadcast along a labeled axis must shrink with it (attach: a constant
 * becomes a parameter member, anything else blocks the group).
 */
export function elementwise(st: State, n: Node, inputs?: number[], outputs: number[] = [0], role: MemberRole = 'param'): void {
  const out = n.outputs[outputs[0]];
  const os = st.shape(out);
  const idx = inputs ?? n.inputs.map((_, i) => i);
  const labeled = idx.filter((i) => st.field(n.inputs[i]));
  if (!labeled.length) return;
  if (!os) { declineInputs(st, n, DECLINE.unknownShape); return; }
  const R = os.length;
  const mapped: Field[] = [];
  const others: { name: string; input: number; shape?: number[] }[] = [];
  for (const i of idx) {
    const name = n.inputs[i];
    if (!name) continue;
    const f = st.field(name);
    if (!f) { others.push({ name, input: i, shape: st.shape(name) }); continue; }
    const off = R - f.rank;
    const g = remapAxes(f, (a) => a + off, R);
    if (g.axes.some((a, k) => g.dims[k] !== os[a])) { st.declineField(f, DECLINE.unknownShape, n, name); continue; }
    mapped.push(g);
  }
  const outF = unionFields(st, n, mapped, os);
  if (!outF) return;
  for (const o of others) {
    if (!o.shape) { st.declineField(outF, DECLINE.unknownShape, n, o.name); continue; }
    const off = R - o.shape.length;
    for (const a of outF.axes) {
      const ua = a - off;
      if (ua >= 0 && o.shape[ua] !== 1) st.attach(out, a, { tensor: o.name, node: id(n), input: o.input, axis: ua }, role);
    }
  }
  for (const k of outputs) st.setField(n.outputs[k], outF);
}

/** Same field on the outputs as on input `from` (unary ops). */
export function passThrough(st: State, n: Node, from = 0, outputs: number[] = [0]): void {
  const f = st.field(n.inputs[from]);
  if (!f) return;
  for (const k of outputs) if (n.outputs[k]) st.setField(n.outputs[k], f);
}

/** Multi-index → offset helpers over a field's dims. */
function rKeyFn(f: Field, keep: number[]): (flat: number) => number {
  const st = strides(f.dims);
  const ks = keep.map((a) => f.axes.indexOf(a));
  const kd = ks.map((k) => f.dims[k]);
  return (flat: number) => {
    let key = 0;
    for (let j = 0; j < ks.length; j++) key = key * kd[j] + (Math.floor(flat / st[ks[j]]) % f.dims[ks[j]]);
    return key;
  };
}

/**
 * An op whose outputs along `axes` mix every position along them (normalization statistics, Softmax,
 * reductions, activation·activation contractions). If the field labels none of `axes`, nothing happens.
 * If other labeled axes survive (e.g. the head axis when mixing over head_dim), the positions mixed together
 * form one unit (united per slice of the surviving axes). Otherwise the pruned channels would change the
 * unpruned ones: the labels are declined with `reason`.
 */
export function mixAlong(st: State, n: Node, f: Field, axes: number[], reason: string, headEvidence = false): Field {
  const M = f.axes.filter((a) => axes.includes(a));
  if (!M.length) return f;
  const R = f.axes.filter((a) => !axes.includes(a));
  if (!R.length) {
    st.declineField(f, reason, n);
    return f;
  }
  const key = rKeyFn(f, R);
  const mixedSize = M.reduce((acc, a) => acc * f.dims[f.axes.indexOf(a)], 1);
  const reps = new Map<number, number>();
  for (let i = 0; i < f.labels.length; i++) {
    const l = f.labels[i];
    const k = key(i);
    const r = reps.get(k);
    if (r === undefined) reps.set(k, l);
    else st.union(r, l, n);
    if (headEvidence && l !== NONE) st.mixed.set(l, mixedSize);
  }
  return f;
}

/**
 * Statistics of a normalization along `axes` of input 0 (mean / variance / RMS, a ReduceMean kept as size 1).
 * When exactly one labeled axis is among them and no labeled axis survives, the op is recorded as a StatFact:
 * pruned, it runs over the kept positions (`gather`: the inputs to slice with input 0's axis, which is listed
 * first; `scatter`: the outputs that carry that axis) and true is returned. Otherwise (`st.normStats` off,
 * per-head statistics, two labeled axes mixed) it is `mixAlong` with `reason`; false. The field is unchanged.
 */
export function statisticsAlong(
  st: State, n: Node, f: Field, axes: number[], reason: string,
  params: { input: number; axis: number }[] = [], scatter: number[] = [],
): boolean {
  const M = f.axes.filter((a) => axes.includes(a));
  if (!M.length) return false;
  if (!st.normStats || M.length !== 1 || f.axes.some((a) => !axes.includes(a))) {
    mixAlong(st, n, f, axes, reason);
    return false;
  }
  const a = M[0];
  st.stats.push({
    field: n.inputs[0], axis: a, node: id(n),
    gather: [{ input: 0, axis: a }, ...params],
    scatter: scatter.map((output) => ({ output, axis: a })),
  });
  return true;
}

/** Removes `axes` (mixed away, labels constant along them) from a field; keepdims keeps the numbering. */
export function dropAxes(f: Field, axes: number[], keepdims: boolean): Field {
  let g = f;
  for (const a of axes) if (g.axes.includes(a)) g = pickAlong(g, a, [0]);
  const k = g.axes.map((a, i) => ({ a, i })).filter((x) => !axes.includes(x.a));
  const labelsDims = g.dims;
  // Axes picked down to size 1 carry no information: drop them from the label tensor (order is preserved).
  const dims = k.map((x) => labelsDims[x.i]);
  if (keepdims) return makeField(f.rank, k.map((x) => x.a), dims, g.labels);
  const renum = (a: number) => a - axes.filter((r) => r < a).length;
  return makeField(f.rank - axes.length, k.map((x) => renum(x.a)), dims, g.labels);
}

/** Mixing reduction (ReduceX, ArgMax, GlobalPool...) of input `input` into output `out`. */
export function reduceLike(st: State, n: Node, input: string, out: string, axes: number[], keepdims: boolean, reason: string): void {
  const f = st.field(input);
  if (!f) return;
  const g = mixAlong(st, n, f, axes, reason);
  st.setField(out, dropAxes(g, axes, keepdims));
}

/**
 * Maps a field through a reshape. Axes of size 1 are ignored; the remaining axes are split into the smallest
 * consecutive blocks whose sizes match (e.g. [C·H·W] ↔ [C, H, W], [128] ↔ [4, 32]); labels are carried over
 * within each block in row-major order. Returns a reason string when the shapes cannot be matched.
 */
export interface ReshapeBlock { i: number[]; o: number[] }

/**
 * Splits the non-1 axes of two shapes with equal element counts into the smallest consecutive blocks of equal
 * size (e.g. [C·H·W] ↔ [C, H, W], [128] ↔ [4, 32]); undefined when they do not match.
 */
export function reshapeBlocks(inShape: number[], outShape: number[]): ReshapeBlock[] | undefined {
  if (inShape.some((d) => d === 0) || outShape.some((d) => d === 0)) return undefined;
  const ins = inShape.map((d, a) => ({ d, a })).filter((x) => x.d !== 1);
  const outs = outShape.map((d, a) => ({ d, a })).filter((x) => x.d !== 1);
  const blocks: ReshapeBlock[] = [];
  let i = 0, j = 0;
  while (i < ins.length || j < outs.length) {
    if (i >= ins.length || j >= outs.length) return undefined;
    const b: ReshapeBlock = { i: [ins[i].a], o: [outs[j].a] };
    let pi = ins[i++].d, po = outs[j++].d;
    while (pi !== po) {
      if (pi < po) {
        if (i >= ins.length) return undefined;
        b.i.push(ins[i].a);
        pi *= ins[i++].d;
      } else {
        if (j >= outs.length) return undefined;
        b.o.push(outs[j].a);
        po *= outs[j++].d;
      }
    }
    blocks.push(b);
  }
  return blocks;
}

/** The input axis that output axis `outAxis` is a plain copy of (a 1 ↔ 1 block), if any. */
export function reshapeAxisMap(inShape: number[], outShape: number[], outAxis: number): number | undefined {
  const blocks = reshapeBlocks(inShape, outShape);
  const b = blocks?.find((x) => x.o.includes(outAxis));
  return b && b.i.length === 1 && b.o.length === 1 ? b.i[0] : undefined;
}

/**
 * Maps a field through a reshape: within each block of matching axes the labels are carried over in
 * row-major order. Returns a reason string when the shapes cannot be matched.
 */
export function reshapeField(f: Field, inShape: number[], outShape: number[]): Field | string {
  const blocks = reshapeBlocks(inShape, outShape);
  if (!blocks || f.axes.some((a) => inShape[a] === 1)) return DECLINE.reshape;
  const labeled = blocks.filter((b) => b.i.some((a) => f.axes.includes(a)));
  const inAxes = labeled.flatMap((b) => b.i).sort((x, y) => x - y);
  const outAxes = labeled.flatMap((b) => b.o).sort((x, y) => x - y);
  const labels = materialize(f, inAxes, inAxes.map((a) => inShape[a]));
  return makeField(outShape.length, outAxes, outAxes.map((a) => outShape[a]), labels);
}
