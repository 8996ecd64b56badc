/**
 * Rules for per-channel parameter ops and for ops that mix positions along axes: BatchNormalization,
 * Instance/Layer/Group/RMS normalization, Softmax, reductions and pooling, CumSum. (Ops that mix along axes
 * their spec names, e.g. LpNormalization or TopK, and position-dependent ones like Trilu are built in
 * op-rules.ts from rule-kit's mixAlong.)
 *
 * The masked-model property (pruning a unit ≡ zeroing its consumers' weights) only survives ops that never
 * let a pruned position influence a kept one. Statistics over the pruned axis break it, so they decline the
 * labels they see, unless a surviving labeled axis makes each mixed slice belong to one unit (per-head norms).
 */
import type { Node } from '../ir/node';
import { DECLINE } from './decline';
import { type Field, strides } from './field';
import { declineInputs, dropAxes, id, mixAlong, normAxis, passThrough, reduceLike, statisticsAlong } from './rule-kit';
import type { State } from './state';

/** Attaches 1-D per-channel parameters (inputs `inputs`, their axis 0) to axis `axis` of `field`. */
function perChannel(st: State, n: Node, field: string, axis: number, inputs: number[]): void {
  for (const i of inputs) {
    const p = n.inputs[i];
    if (!p) continue;
    const s = st.shape(p);
    if (s && s.length >= 1 && s[0] > 1) st.attach(field, axis, { tensor: p, node: id(n), input: i, axis: 0 }, 'param');
  }
}

export function batchNormRule(st: State, n: Node): void {
  const f = st.field(n.inputs[0]);
  if (!f) return;
  if (f.axes.some((a) => a !== 1)) { st.declineField(f, DECLINE.irregular, n); return; }
  st.setField(n.outputs[0], f);
  perChannel(st, n, n.outputs[0], 1, [1, 2, 3, 4]);
}

export function instanceNormRule(st: State, n: Node): void {
  const f = st.field(n.inputs[0]);
  if (!f) return;
  const spatial = Array.from({ length: f.rank - 2 }, (_, i) => i + 2);
  const g = mixAlong(st, n, f, spatial, DECLINE.normalization);
  st.setField(n.outputs[0], g);
  perChannel(st, n, n.outputs[0], 1, [1, 2]);
}

/**
 * LayerNormalization / RMSNormalization / SimplifiedLayerNormalization over axes [axis, rank). A labeled
 * normalized axis (a transformer's hidden size) is a statistics axis (statisticsAlong): the scale and bias
 * follow it as parameters, and pruned the op normalizes over the kept channels.
 */
export function layerNormRule(st: State, n: Node): void {
  const f = st.field(n.inputs[0]);
  if (!f) return;
  const R = f.rank;
  const ax = normAxis(n.attrInt('axis', -1), R);
  const normAxes = Array.from({ length: R - ax }, (_, i) => ax + i);
  // Scale and bias (inputs 1, 2) along each labeled axis they do not broadcast over: per-channel parameters, and,
  // on the normalized axis, inputs the statistics gather.
  const out = n.outputs[0];
  const params: { input: number; axis: number }[] = [];
  for (const i of [1, 2]) {
    const p = n.inputs[i];
    const s = p ? st.shape(p) : undefined;
    if (!p || !s) continue;
    for (const a of f.axes) {
      const pa = a - (R - s.length);
      if (pa < 0 || s[pa] <= 1) continue;
      st.attach(out, a, { tensor: p, node: id(n), input: i, axis: pa }, 'param');
      if (normAxes.includes(a)) params.push({ input: i, axis: pa });
    }
  }
  statisticsAlong(st, n, f, normAxes, DECLINE.normalization, params, [0]);
  st.setField(out, f);
}

/** GroupNormalization: channels of one normalization group become one unit; num_groups counts units. */
export function groupNormRule(st: State, n: Node): void {
  const f = st.field(n.inputs[0]);
  if (!f) return;
  const sx = st.shape(n.inputs[0]);
  const G = n.attrInt('num_groups', 0);
  if (!sx || !G || sx[1] % G !== 0) { declineInputs(st, n, DECLINE.unknownShape); return; }
  const C = sx[1];
  const block = C / G;
  const spatial = Array.from({ length: f.rank - 2 }, (_, i) => i + 2);
  const g = mixAlong(st, n, f, spatial, DECLINE.normalization);
  if (g.axes.includes(1)) {
    const k = g.axes.indexOf(1);
    const stride = strides(g.dims)[k];
    const reps = new Map<number, number>();
    for (let i = 0; i < g.labels.length; i++) {
      const grp = Math.floor((Math.floor(i / stride) % g.dims[k]) / block);
      const r = reps.get(grp);
      if (r === undefined) reps.set(grp, g.labels[i]);
      else st.union(r, g.labels[i], n);
    }
    st.attrs.push({ node: id(n), attr: 'num_groups', field: n.inputs[0], axis: 1, divisor: block });
  }
  st.setField(n.outputs[0], g);
  const scale = st.shape(n.inputs[1]);
  if (scale && scale[0] === C) perChannel(st, n, n.outputs[0], 1, [1, 2]);
  else if (block > 1) st.declineField(g, DECLINE.normalization, n);
}

/** Softmax-like ops: opset >= 13 mixes one axis; older opsets coerce to 2-D (axes [axis, rank)). */
export function softmaxRule(st: State, n: Node): void {
  const f = st.field(n.inputs[0]);
  if (!f) return;
  const R = f.rank;
  const legacy = st.opset < 13;
  const ax = normAxis(n.attrInt('axis', legacy ? 1 : -1), R);
  const axes = legacy ? Array.from({ length: R - ax }, (_, i) => ax + i) : [ax];
  st.setField(n.outputs[0], mixAlong(st, n, f, axes, DECLINE.softmax));
}

/** ReduceX: axes from the attribute or (newer opsets) input 1; empty axes reduce all unless noop_with_empty_axes. */
export function reduceRule(st: State, n: Node): void {
  const f = st.field(n.inputs[0]);
  if (!f) return;
  const R = f.rank;
  let axes = n.attrInts('axes');
  if (!axes && n.inputs[1]) {
    axes = st.plumb.numbers(n.inputs[1]);
    if (!axes) { st.declineField(f, DECLINE.shapeRewrite, n, n.inputs[1]); return; }
  }
  if (!axes || axes.length === 0) {
    if (n.attrInt('noop_with_empty_axes', 0)) { passThrough(st, n); return; }
    axes = Array.from({ length: R }, (_, i) => i);
  }
  const norm = [...new Set(axes.map((a) => normAxis(a, R)))].sort((a, b) => a - b);
  const keepdims = n.attrInt('keepdims', 1) !== 0;
  if (keepdims && STATISTICS.has(n.opType)) {
    // A normalization's statistic, broadcast back over the axis (decomposed LayerNorm / RMSNorm / L2 norm):
    // recorded, its output carries no labels (statisticsAlong only records when no labeled axis survives).
    if (!statisticsAlong(st, n, f, norm, DECLINE.reduction)) st.setField(n.outputs[0], dropAxes(f, norm, true));
    return;
  }
  reduceLike(st, n, n.inputs[0], n.outputs[0], norm, keepdims, DECLINE.reduction);
}

/** Reductions that decomposed normalizations compute over the normalized axis (kept as size 1). */
const STATISTICS = new Set(['ReduceMean', 'ReduceSum', 'ReduceSumSquare', 'ReduceL1', 'ReduceL2']);

export function argReduceRule(st: State, n: Node): void {
  const f = st.field(n.inputs[0]);
  if (!f) return;
  const ax = normAxis(n.attrInt('axis', 0), f.rank);
  reduceLike(st, n, n.inputs[0], n.outputs[0], [ax], n.attrInt('keepdims', 1) !== 0, DECLINE.reduction);
}

/** Global pooling: reduces the spatial axes, keeps them as size 1. */
export function globalPoolRule(st: State, n: Node): void {
  const f = st.field(n.inputs[0]);
  if (!f) return;
  const spatial = Array.from({ length: f.rank - 2 }, (_, i) => i + 2);
  reduceLike(st, n, n.inputs[0], n.outputs[0], spatial, true, DECLINE.reduction);
}

/** Windowed pooling: per channel over spatial windows; output spatial sizes differ. */
export function poolRule(st: State, n: Node): void {
  const f = st.field(n.inputs[0]);
  if (!f) return;
  const spatial = Array.from({ length: f.rank - 2 }, (_, i) => i + 2);
  const g: Field = dropAxes(mixAlong(st, n, f, spatial, DECLINE.reduction), spatial, true);
  for (const o of n.outputs) if (o) st.setField(o, g);
}

export function cumSumRule(st: State, n: Node): void {
  const f = st.field(n.inputs[0]);
  if (!f) return;
  const a = st.plumb.numbers(n.inputs[1]);
  if (!a) { st.declineField(f, DECLINE.shapeRewrite, n, n.inputs[1]); return; }
  st.setField(n.outputs[0], mixAlong(st, n, f, [normAxis(a[0], f.rank)], DECLINE.reduction));
}
