/**
 * Small constant tensors tracked during shape inference ("shape plumbing" values: Shape → Gather → Concat →
 * Reshape, ConstantOfShape, Range, ...). Elements are dims: numbers, symbolic monomials (see ./sym) or undefined.
 * Booleans are 0/1. Only small tensors are tracked (VALUE_CAP elements; FLOAT_VALUE_CAP for float tensors).
 */
import { numel, strides } from '../dims';
import { DataType } from '../dtype';
import type { ConstTensor } from '../tensor';
import type { Dim } from './sym';

export interface TValue {
  /** Concrete shape of the value tensor. */
  dims: number[];
  /** Row-major elements. */
  data: Dim[];
  /** Float element semantics (Div does not truncate). */
  float?: boolean;
}

export const VALUE_CAP = 4096;
export const FLOAT_VALUE_CAP = 64;

const INT_TYPES = new Set<number>([
  DataType.INT64, DataType.INT32, DataType.INT16, DataType.INT8, DataType.UINT8, DataType.UINT16,
  DataType.UINT32, DataType.UINT64, DataType.BOOL,
]);
const FLOAT_TYPES = new Set<number>([DataType.FLOAT, DataType.DOUBLE, DataType.FLOAT16]);

export function isIntType(dt: number | undefined): boolean {
  return dt !== undefined && INT_TYPES.has(dt);
}
export function isFloatType(dt: number | undefined): boolean {
  return dt !== undefined && FLOAT_TYPES.has(dt);
}

export { numel };

/** The value of a constant tensor, when it is small and of a numeric type we track. */
export function valueFromConst(t: ConstTensor): TValue | undefined {
  const dims = t.dims;
  const n = numel(dims);
  if (t.external) return undefined;
  if (INT_TYPES.has(t.dtype)) {
    if (n > VALUE_CAP) return undefined;
    return { dims, data: t.toNumbers() };
  }
  if (FLOAT_TYPES.has(t.dtype)) {
    if (n > FLOAT_VALUE_CAP) return undefined;
    return { dims, data: t.toNumbers(), float: true };
  }
  return undefined;
}

/** A value's elements as numbers, when all are numeric. */
export function numbersOf(v: TValue | undefined): number[] | undefined {
  if (!v) return undefined;
  for (const d of v.data) if (typeof d !== 'number') return undefined;
  return v.data as number[];
}

/**
 * Gathers `v` into a tensor of shape idx.map(length): output position p reads the source element at
 * sum_a idx[a][p[a]] * st[a]. Selection and transpose are both this walk with different strides/indices.
 */
function gatherValue(v: TValue, idx: number[][], st: number[]): TValue {
  const dims = idx.map((l) => l.length);
  const n = numel(dims);
  const data = new Array<Dim>(n);
  const r = dims.length;
  const pos = new Array<number>(r).fill(0);
  for (let k = 0; k < n; k++) {
    let off = 0;
    for (let a = 0; a < r; a++) off += idx[a][pos[a]] * st[a];
    data[k] = v.data[off];
    for (let a = r - 1; a >= 0; a--) {
      if (++pos[a] < dims[a]) break;
      pos[a] = 0;
    }
  }
  return { dims, data, float: v.float };
}

/** Cartesian selection: for each axis, the list of source indices to take (in order). */
export function selectValue(v: TValue, idx: number[][]): TValue {
  return gatherValue(v, idx, strides(v.dims));
}

export function transposeValue(v: TValue, perm: number[]): TValue {
  const st = strides(v.dims);
  return gatherValue(v, perm.map((p) => Array.from({ length: v.dims[p] }, (_, i) => i)), perm.map((p) => st[p]));
}

export function concatValues(vs: TValue[], axis: number): TValue {
  const dims = vs[0].dims.slice();
  dims[axis] = vs.reduce((a, v) => a + v.dims[axis], 0);
  const outer = numel(dims.slice(0, axis));
  const data: Dim[] = [];
  for (let o = 0; o < outer; o++) {
    for (const v of vs) {
      const chunk = numel(v.dims.slice(axis));
      for (let i = 0; i < chunk; i++) data.push(v.data[o * chunk + i]);
    }
  }
  return { dims, data, float: vs.some((v) => v.float) };
}

/** Elementwise function over broadcast inputs (numpy rules; dims must be numeric and compatible). */
export function broadcastValues(vs: TValue[], fn: (xs: Dim[]) => Dim, float?: boolean): TValue | undefined {
  const r = Math.max(...vs.map((v) => v.dims.length));
  const dims = new Array<number>(r).fill(1);
  for (const v of vs) {
    const off = r - v.dims.length;
    for (let i = 0; i < v.dims.length; i++) {
      const d = v.dims[i];
      if (d === dims[off + i] || d === 1) continue;
      if (dims[off + i] !== 1) return undefined;
      dims[off + i] = d;
    }
  }
  const n = numel(dims);
  if (n > VALUE_CAP) return undefined;
  const vstrides = vs.map((v) => {
    const st = strides(v.dims);
    const off = r - v.dims.length;
    const full = new Array<number>(r).fill(0);
    for (let i = 0; i < v.dims.length; i++) full[off + i] = v.dims[i] === 1 ? 0 : st[i];
    return full;
  });
  const data = new Array<Dim>(n);
  const pos = new Array<number>(r).fill(0);
  const xs = new Array<Dim>(vs.length);
  for (let k = 0; k < n; k++) {
    for (let j = 0; j < vs.length; j++) {
      let off = 0;
      const s = vstrides[j];
      for (let a = 0; a < r; a++) off += pos[a] * s[a];
      xs[j] = vs[j].data[off];
    }
    data[k] = fn(xs);
    for (let a = r - 1; a >= 0; a--) {
      if (++pos[a] < dims[a]) break;
      pos[a] = 0;
    }
  }
  return { dims, data, float: float ?? vs.some((v) => v.float) };
}

/** Reduces over `axes` (sorted, non-negative) with a binary fold. */
export function reduceValue(v: TValue, axes: number[], keep: boolean, fold: (a: Dim, b: Dim) => Dim): TValue {
  const r = v.dims.length;
  const red = new Set(axes);
  const outDims = v.dims.map((d, i) => (red.has(i) ? 1 : d));
  const ost = strides(outDims);
  const out = new Array<Dim>(numel(outDims)).fill(undefined);
  const seen = new Array<boolean>(out.length).fill(false);
  const pos = new Array<number>(r).fill(0);
  for (let k = 0; k < v.data.length; k++) {
    let off = 0;
    for (let a = 0; a < r; a++) if (!red.has(a)) off += pos[a] * ost[a];
    out[off] = seen[off] ? fold(out[off], v.data[k]) : v.data[k];
    seen[off] = true;
    for (let a = r - 1; a >= 0; a--) {
      if (++pos[a] < v.dims[a]) break;
      pos[a] = 0;
    }
  }
  const dims = keep ? outDims : v.dims.filter((_, i) => !red.has(i));
  return { dims, data: out, float: v.float };
}
