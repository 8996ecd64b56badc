/**
 * Shape rules for data-movement ops (Shape, Reshape, Gather, Concat, Slice, Split, Expand, Pad, ...), with
 * constant folding of small values so that shape plumbing resolves.
 */
import { DataType } from '../dtype';
import { ConstTensor } from '../tensor';
import { type Rule, type RuleCtx, normAxis } from './context';
import {
  type Dim, type Shape, addDim, broadcastShapes, exactDivDim, isFullyKnown, mulDim, prodDims, subDim,
} from './sym';
import {
  type TValue, VALUE_CAP, broadcastValues, concatValues, numbersOf, numel, selectValue, transposeValue,
  valueFromConst,
} from './values';

/** Slice ends at or beyond this count as "to the end" (exporters use INT64_MAX or INT32_MAX). */
const HUGE = 2 ** 31 - 1;

function reshapeValue(v: TValue | undefined, dims: Shape | undefined): TValue | undefined {
  if (!v || !dims || !dims.every((d) => typeof d === 'number')) return undefined;
  if (numel(dims as number[]) !== v.data.length) return undefined;
  return { dims: dims as number[], data: v.data, float: v.float };
}

/** A 1-D input's length as a number, when its shape is known. */
function length1d(c: RuleCtx, i: number): number | undefined {
  const s = c.shape(i);
  return s && s.length === 1 && typeof s[0] === 'number' ? s[0] : undefined;
}

/** A shape-valued input (Reshape/Expand/ConstantOfShape/Tile): its elements, or unknowns of known count. */
function shapeInput(c: RuleCtx, i: number): Dim[] | undefined {
  const v = c.value(i);
  if (v) return v.data;
  const n = length1d(c, i);
  return n === undefined ? undefined : new Array<Dim>(n).fill(undefined);
}

/** Axes from an attribute (before `sinceOpset`) or from input `i` (from `sinceOpset`). */
export function axesOf(c: RuleCtx, i: number, sinceOpset: number, attr = 'axes'): number[] | undefined | 'unknown' {
  if (c.opset < sinceOpset) return c.attrInts(attr);
  if (!c.has(i)) return undefined;
  return c.ints(i) ?? 'unknown';
}

const shape: Rule = (c) => {
  const s = c.shape(0);
  if (!s) return c.out(0, DataType.INT64, [undefined]);
  const r = s.length;
  const clampAxis = (a: number) => Math.min(Math.max(a < 0 ? a + r : a, 0), r);
  const start = c.opset >= 15 ? clampAxis(c.attrInt('start', 0)) : 0;
  const end = c.opset >= 15 && c.node.hasAttr('end') ? clampAxis(c.attrInt('end', r)) : r;
  const dims = s.slice(start, Math.max(start, end));
  c.out(0, DataType.INT64, [dims.length], { dims: [dims.length], data: dims });
};

const size: Rule = (c) => {
  const s = c.shape(0);
  const p = s ? prodDims(s) : undefined;
  c.out(0, DataType.INT64, [], p === undefined ? undefined : { dims: [], data: [p] });
};

const reshape: Rule = (c) => {
  const s = c.shape(0);
  const target = c.opset < 5 ? c.attrInts('shape') : shapeInput(c, 1);
  if (!target) return c.out(0, c.dtype(0));
  const allowzero = c.attrInt('allowzero', 0) === 1;
  const out: Dim[] = target.map((t, i) => (t === 0 && !allowzero ? s?.[i] : t));
  const inf = target.indexOf(-1);
  if (inf >= 0) {
    const total = s && isFullyKnown(s) ? prodDims(s) : undefined;
    const others = prodDims(out.filter((_, i) => i !== inf));
    out[inf] = total === undefined || others === undefined || others === 0 ? undefined : exactDivDim(total, others);
  }
  c.out(0, c.dtype(0), out, reshapeValue(c.value(0), out));
};

const flatten: Rule = (c) => {
  const s = c.shape(0);
  if (!s) return c.out(0, c.dtype(0), [undefined, undefined]);
  let a = c.attrInt('axis', 1);
  if (a < 0) a += s.length;
  const out = [prodDims(s.slice(0, a)), prodDims(s.slice(a))];
  c.out(0, c.dtype(0), out, reshapeValue(c.value(0), out));
};

const squeeze: Rule = (c) => {
  const s = c.shape(0);
  const axes = axesOf(c, 1, 13);
  if (!s || axes === 'unknown') return c.out(0, c.dtype(0));
  let out: Shape;
  if (!axes || axes.length === 0) {
    if (!s.every((d) => typeof d === 'number')) return c.out(0, c.dtype(0));
    out = s.filter((d) => d !== 1);
  } else {
    const drop = new Set(axes.map((a) => normAxis(a, s.length)));
    out = s.filter((_, i) => !drop.has(i));
  }
  c.out(0, c.dtype(0), out, reshapeValue(c.value(0), out));
};

const unsqueeze: Rule = (c) => {
  const s = c.shape(0);
  const axes = axesOf(c, 1, 13);
  if (!s || !axes || axes === 'unknown') return c.out(0, c.dtype(0));
  const r = s.length + axes.length;
  const ins = new Set(axes.map((a) => normAxis(a, r)));
  const out: Shape = [];
  let k = 0;
  for (let i = 0; i < r; i++) out.push(ins.has(i) ? 1 : s[k++]);
  c.out(0, c.dtype(0), out, reshapeValue(c.value(0), out));
};

const transpose: Rule = (c) => {
  const s = c.shape(0);
  if (!s) return c.out(0, c.dtype(0));
  const perm = c.attrInts('perm') ?? s.map((_, i) => s.length - 1 - i);
  if (perm.length !== s.length) return c.out(0, c.dtype(0));
  const v = c.value(0);
  c.out(0, c.dtype(0), perm.map((p) => s[p]), v && v.dims.length === perm.length ? transposeValue(v, perm) : undefined);
};

const concat: Rule = (c) => {
  const idx = Array.from({ length: c.nIn }, (_, i) => i).filter((i) => c.has(i));
  const shapes = idx.map((i) => c.shape(i));
  const known = shapes.find((s) => s !== undefined);
  const dtype = idx.map((i) => c.dtype(i)).find((d) => d !== undefined);
  if (!known) return c.out(0, dtype);
  const r = known.length;
  const axis = normAxis(c.attrInt('axis', c.opset < 4 ? 1 : 0), r);
  if (axis === undefined) return c.out(0, dtype);
  const out: Shape = [];
  for (let d = 0; d < r; d++) {
    if (d === axis) {
      let sum: Dim = 0;
      for (const s of shapes) sum = s ? addDim(sum, s[d]) : undefined;
      out.push(sum);
    } else {
      const ds = shapes.map((s) => s?.[d]);
      out.push(ds.find((x) => typeof x === 'number') ?? ds.find((x) => x !== undefined));
    }
  }
  const vals = idx.map((i) => c.value(i));
  let value: TValue | undefined;
  if (vals.every((v) => v && v.dims.length === r)) value = concatValues(vals as TValue[], axis);
  c.out(0, dtype, out, value);
};

const split: Rule = (c) => {
  const s = c.shape(0);
  const n = c.nOut;
  const dtype = c.dtype(0);
  if (!s) return;
  const axis = normAxis(c.attrInt('axis', 0), s.length);
  if (axis === undefined) return;
  const d = s[axis];
  let sizes: Dim[] | undefined;
  const given = c.opset < 13 ? c.attrInts('split') : c.has(1) ? c.ints(1) : undefined;
  if (given && given.length) sizes = given;
  else if (c.opset < 13 || !c.has(1)) {
    const parts = c.opset >= 18 && c.node.hasAttr('num_outputs') ? c.attrInt('num_outputs', n) : n;
    if (typeof d === 'number') {
      const chunk = Math.ceil(d / parts);
      sizes = Array.from({ length: parts }, (_, k) => Math.max(0, Math.min(chunk, d - k * chunk)));
    } else {
      const q = exactDivDim(d, parts);
      sizes = new Array<Dim>(parts).fill(q);
    }
  } else {
    sizes = new Array<Dim>(n).fill(undefined);
  }
  const v = c.value(0);
  let off = 0;
  for (let k = 0; k < n; k++) {
    const sz = sizes[k];
    const out = s.slice();
    out[axis] = sz;
    let value: TValue | undefined;
    if (v && typeof sz === 'number' && v.dims.length === s.length) {
      const idxs = v.dims.map((len) => Array.from({ length: len }, (_, i) => i));
      idxs[axis] = Array.from({ length: sz }, (_, i) => off + i);
      value = selectValue(v, idxs);
    }
    off = typeof sz === 'number' ? off + sz : NaN;
    c.out(k, dtype, out, value);
  }
};

/** Output length of one sliced axis, and the selected indices when everything is numeric. */
/**
 * Slice bounds as the ONNX spec clamps them: negative values count from the end; with a positive step start and
 * end are clamped to [0, dim]; with a negative step start to [0, dim-1] and end to [-1, dim-1].
 */
export function sliceBounds(dim: number, start: number, end: number, step: number): [number, number] {
  const s = start < 0 ? start + dim : start;
  const e = end < 0 ? end + dim : end;
  if (step > 0) return [Math.min(Math.max(s, 0), dim), Math.min(Math.max(e, 0), dim)];
  return [Math.min(Math.max(s, 0), dim - 1), Math.min(Math.max(e, -1), dim - 1)];
}

function sliceAxis(d: Dim, start: Dim, end: Dim, step: Dim): { len: Dim; idx?: number[] } {
  if (typeof step !== 'number' || step === 0) return { len: undefined };
  if (typeof d === 'number' && typeof start === 'number' && typeof end === 'number') {
    const [s, e] = sliceBounds(d, start, end, step);
    const len = Math.max(0, Math.ceil((e - s) / step));
    return { len, idx: Array.from({ length: len }, (_, i) => s + i * step) };
  }
  if (step !== 1) return { len: undefined };
  // Symbolic: normalize bounds, assuming symbolic bounds lie within the axis (true for valid models).
  const norm = (x: Dim, isEnd: boolean): Dim => {
    if (typeof x === 'number') {
      if (x >= HUGE) return isEnd ? d : undefined;
      if (x <= -HUGE) return isEnd ? undefined : 0;
      if (x < 0) return addDim(d, x);
      if (x === 0) return 0;
      // A positive numeric bound on a symbolic axis may be clamped: unknown.
      return typeof d === 'number' ? Math.min(x, d) : undefined;
    }
    return x;
  };
  const s = norm(start, false);
  const e = norm(end, true);
  const len = subDim(e, s);
  return { len: typeof len === 'number' && len < 0 ? 0 : len };
}

const slice: Rule = (c) => {
  const s = c.shape(0);
  const dtype = c.dtype(0);
  if (!s) return c.out(0, dtype);
  const r = s.length;
  let starts: Dim[] | undefined, ends: Dim[] | undefined, axes: number[] | undefined, steps: Dim[] | undefined;
  let axesUnknown = false;
  if (c.opset < 10) {
    starts = c.attrInts('starts');
    ends = c.attrInts('ends');
    axes = c.attrInts('axes');
  } else {
    starts = c.value(1)?.data;
    ends = c.value(2)?.data;
    if (c.has(3)) {
      axes = c.ints(3);
      axesUnknown = !axes;
    }
    if (c.has(4)) steps = c.value(4)?.data;
  }
  const n = starts?.length ?? ends?.length ?? length1d(c, 1);
  if (axesUnknown || !starts || !ends || (c.has(4) && !steps) || n === undefined) {
    // Rank is kept; the sliced axes are unknown (all of them when the axes are unknown).
    const out = s.slice();
    const touched = axes && !axesUnknown ? axes.map((a) => normAxis(a, r)) : s.map((_, i) => i);
    for (const a of touched) if (a !== undefined) out[a] = undefined;
    return c.out(0, dtype, out);
  }
  const ax = axes ?? Array.from({ length: n }, (_, i) => i);
  const out = s.slice();
  const v = c.value(0);
  const idx: (number[] | undefined)[] | undefined = v && v.dims.length === r ? v.dims.map((len) => Array.from({ length: len }, (_, i) => i)) : undefined;
  for (let k = 0; k < ax.length; k++) {
    const a = normAxis(ax[k], r);
    if (a === undefined) return c.out(0, dtype);
    const res = sliceAxis(s[a], starts[k], ends[k], steps ? steps[k] : 1);
    out[a] = res.len;
    if (idx) idx[a] = res.idx;
  }
  const value = v && idx && idx.every((l) => l !== undefined) ? selectValue(v, idx as number[][]) : undefined;
  c.out(0, dtype, out, value);
};

const gather: Rule = (c) => {
  const s = c.shape(0);
  const q = c.shape(1);
  const dtype = c.dtype(0);
  if (!s || !q) return c.out(0, dtype);
  const axis = normAxis(c.attrInt('axis', 0), s.length);
  if (axis === undefined) return c.out(0, dtype);
  const out = [...s.slice(0, axis), ...q, ...s.slice(axis + 1)];
  const v = c.value(0);
  const ind = c.ints(1);
  let value: TValue | undefined;
  const d = s[axis];
  if (v && ind && typeof d === 'number' && v.dims.length === s.length && ind.every((i) => i >= -d && i < d)) {
    const idxs = v.dims.map((len) => Array.from({ length: len }, (_, i) => i));
    idxs[axis] = ind.map((i) => (i < 0 ? i + d : i));
    value = reshapeValue(selectValue(v, idxs), out);
  }
  c.out(0, dtype, out, value);
};

const gatherND: Rule = (c) => {
  const s = c.shape(0);
  const q = c.shape(1);
  const b = c.attrInt('batch_dims', 0);
  const k = q?.[q.length - 1];
  if (!s || !q || typeof k !== 'number') return c.out(0, c.dtype(0));
  c.out(0, c.dtype(0), [...q.slice(0, -1), ...s.slice(b + k)]);
};

const expand: Rule = (c) => {
  const s = c.shape(0);
  const target = shapeInput(c, 1);
  const out = target ? broadcastShapes([s, target]) : undefined;
  const v = c.value(0);
  let value: TValue | undefined;
  const t = target && numbersOf({ dims: [target.length], data: target });
  if (v && t && numel(t) <= VALUE_CAP) {
    value = broadcastValues([v, { dims: t, data: new Array<Dim>(numel(t)).fill(0) }], (xs) => xs[0], v.float);
  }
  c.out(0, c.dtype(0), out, value);
};

const tile: Rule = (c) => {
  const s = c.shape(0);
  const reps = shapeInput(c, 1);
  if (!s || !reps || reps.length !== s.length) return c.out(0, c.dtype(0), s?.map(() => undefined));
  const out = s.map((d, i) => mulDim(d, reps[i]));
  const v = c.value(0);
  const rn = numbersOf({ dims: [reps.length], data: reps });
  let value: TValue | undefined;
  if (v && rn && out.every((d) => typeof d === 'number') && numel(out as number[]) <= VALUE_CAP) {
    value = selectValue(v, v.dims.map((len, i) => Array.from({ length: len * rn[i] }, (_, j) => j % len)));
  }
  c.out(0, c.dtype(0), out, value);
};

const constantOfShape: Rule = (c) => {
  const target = shapeInput(c, 0);
  const t = c.node.attrTensor('value');
  const fill = t ? new ConstTensor(t) : undefined;
  const dtype = fill ? fill.dtype : DataType.FLOAT;
  let value: TValue | undefined;
  const dims = target && numbersOf({ dims: [target.length], data: target });
  if (dims && numel(dims) <= VALUE_CAP) {
    const fv = fill ? valueFromConst(fill) : { dims: [1], data: [0], float: true };
    if (fv && fv.data.length === 1) value = { dims, data: new Array<Dim>(numel(dims)).fill(fv.data[0]), float: fv.float };
  }
  c.out(0, dtype, target, value);
};

const range: Rule = (c) => {
  const [a, b, d] = [c.value(0)?.data[0], c.value(1)?.data[0], c.value(2)?.data[0]];
  const dtype = c.dtype(0);
  if (typeof a === 'number' && typeof b === 'number' && typeof d === 'number' && d !== 0) {
    const n = Math.max(Math.ceil((b - a) / d), 0);
    const value = n <= VALUE_CAP ? { dims: [n], data: Array.from({ length: n }, (_, i) => a + i * d), float: !!c.value(0)?.float } : undefined;
    return c.out(0, dtype, [n], value);
  }
  const n = d === 1 ? subDim(b, a) : d === -1 ? subDim(a, b) : undefined;
  c.out(0, dtype, [n]);
};

const pad: Rule = (c) => {
  const s = c.shape(0);
  if (!s) return c.out(0, c.dtype(0));
  const r = s.length;
  let pads: Dim[] | undefined;
  let axes: number[] | undefined = s.map((_, i) => i);
  if (c.opset < 11) pads = c.attrInts('pads') ?? c.attrInts('paddings');
  else {
    pads = c.value(1)?.data;
    if (c.has(3)) axes = c.ints(3)?.map((a) => (a < 0 ? a + r : a));
  }
  if (!pads || !axes || pads.length !== 2 * axes.length) {
    return c.out(0, c.dtype(0), axes ? s.map((d, i) => (axes!.includes(i) ? undefined : d)) : s.map(() => undefined));
  }
  const out = s.slice();
  axes.forEach((a, k) => {
    out[a] = addDim(addDim(s[a], pads![k]), pads![k + axes!.length]);
  });
  c.out(0, c.dtype(0), out);
};

const depthToSpace: Rule = (c) => {
  const s = c.shape(0);
  const b = c.attrInt('blocksize', 1);
  if (!s || s.length !== 4) return c.out(0, c.dtype(0));
  c.out(0, c.dtype(0), [s[0], exactDivDim(s[1], b * b), mulDim(s[2], b), mulDim(s[3], b)]);
};

const spaceToDepth: Rule = (c) => {
  const s = c.shape(0);
  const b = c.attrInt('blocksize', 1);
  if (!s || s.length !== 4) return c.out(0, c.dtype(0));
  c.out(0, c.dtype(0), [s[0], mulDim(s[1], b * b), exactDivDim(s[2], b), exactDivDim(s[3], b)]);
};

const oneHot: Rule = (c) => {
  const q = c.shape(0);
  const depth = c.value(1)?.data[0];
  const dtype = c.dtype(2);
  if (!q) return c.out(0, dtype);
  const r = q.length + 1;
  const axis = normAxis(c.attrInt('axis', -1), r) ?? r - 1;
  const out = [...q.slice(0, axis), typeof depth === 'number' ? Math.trunc(depth) : depth, ...q.slice(axis)];
  c.out(0, dtype, out);
};

const topK: Rule = (c) => {
  const s = c.shape(0);
  const k = c.opset < 10 ? c.attrInt('k', 0) : c.value(1)?.data[0];
  if (!s) {
    c.out(0, c.dtype(0));
    return c.out(1, DataType.INT64);
  }
  const axis = normAxis(c.attrInt('axis', -1), s.length);
  const out = s.slice();
  if (axis !== undefined) out[axis] = k;
  c.out(0, c.dtype(0), axis === undefined ? undefined : out);
  c.out(1, DataType.INT64, axis === undefined ? undefined : out);
};

const nonZero: Rule = (c) => c.out(0, DataType.INT64, [c.rank(0), undefined]);

const compress: Rule = (c) => {
  const s = c.shape(0);
  if (!c.node.hasAttr('axis') || !s) return c.out(0, c.dtype(0), [undefined]);
  const a = normAxis(c.attrInt('axis', 0), s.length);
  c.out(0, c.dtype(0), s.map((d, i) => (i === a ? undefined : d)));
};

/** Output dtype from a `dtype` attribute, else `dflt`. */
const dtypeAttr = (c: RuleCtx, dflt: number | undefined) => c.attrInt('dtype', 0) || dflt;

/** The shape rules of tensor / layout / generator ops, by behaviour (src/ir/ops names the rule of each op). */
export const TENSOR_SHAPES = {
  shape,
  size,
  reshape,
  flatten,
  squeeze,
  unsqueeze,
  transpose,
  concat,
  split,
  slice,
  gather,
  /** Output shaped like input 1, dtype of input 0 (GatherElements). */
  likeIndices: ((c) => c.out(0, c.dtype(0), c.shape(1))) as Rule,
  gatherND,
  /** Output shaped and typed like input 0 (ScatterND, ScatterElements, Scatter). */
  likeData: ((c) => c.out(0, c.dtype(0), c.shape(0))) as Rule,
  expand,
  tile,
  constantOfShape,
  range,
  pad,
  depthToSpace,
  spaceToDepth,
  oneHot,
  topK,
  nonZero,
  compress,
  /** Output shaped like input 0, dtype from the `dtype` attribute or input 0 (EyeLike, Random*Like, Bernoulli). */
  likeInputDtypeAttr: ((c) => c.out(0, dtypeAttr(c, c.dtype(0)), c.shape(0))) as Rule,
  /** Output shaped by the `shape` attribute, dtype from `dtype` (default float): RandomNormal, RandomUniform. */
  randomShape: ((c) => c.out(0, dtypeAttr(c, DataType.FLOAT), c.attrInts('shape'))) as Rule,
  multinomial: ((c) => c.out(0, dtypeAttr(c, DataType.INT32), [c.shape(0)?.[0], c.attrInt('sample_size', 1)])) as Rule,
  nonMaxSuppression: ((c) => c.out(0, DataType.INT64, [undefined, 3])) as Rule,
  unique: ((c) => {
    const hasAxis = c.node.hasAttr('axis');
    const s = c.shape(0);
    const a = hasAxis && s ? normAxis(c.attrInt('axis', 0), s.length) : undefined;
    c.out(0, c.dtype(0), hasAxis ? s?.map((d, i) => (i === a ? undefined : d)) : [undefined]);
    for (let k = 1; k < 4; k++) c.out(k, DataType.INT64, [undefined]);
  }) as Rule,
} satisfies Record<string, Rule>;
