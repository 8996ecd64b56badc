/**
 * Label fields: which producer channel ("element") each position of a tensor carries.
 *
 * A field covers a subset of a tensor's axes (the labeled axes, ascending); the other axes are "broadcast":
 * every position along them carries the same labels. `labels` is row-major over `dims` (the sizes of the
 * labeled axes). A label is an element id (>= 0) or NONE (a position that comes from no prunable producer).
 */

import { numel, strides } from '../ir/dims';
import { UserError } from '../ir/errors';

export const NONE = -1;

export interface Field {
  /** Rank of the tensor the field belongs to. */
  rank: number;
  /** Labeled axes, ascending. */
  axes: number[];
  /** Sizes of the labeled axes. */
  dims: number[];
  labels: Int32Array;
}

/** Number of positions of a field with these dims. */
export { numel as fieldSize, strides };

/**
 * Most positions one field may have. Field dims come from inferred shapes, which a broken or hostile model can
 * make huge (a pad of 10^8, a Tile of 10^6 repeats): they are checked before labels are allocated.
 */
export const MAX_FIELD_POSITIONS = 1 << 25;

/** The number of positions of a field with these dims; a UserError when it exceeds MAX_FIELD_POSITIONS. */
export function checkedFieldSize(dims: readonly number[]): number {
  const n = numel(dims);
  if (!(n <= MAX_FIELD_POSITIONS) || dims.some((d) => !Number.isSafeInteger(d) || d < 0)) {
    throw new UserError(
      `group analysis: a tensor's channel layout [${dims.join(',')}] has ${n} positions, over the limit of ${MAX_FIELD_POSITIONS} ` +
      '(its inferred shape is implausibly large: check the model\'s dims, pads, strides and repeats)',
    );
  }
  return n;
}

/** A zeroed label array for a field with these dims (checkedFieldSize). */
export function newLabels(dims: readonly number[]): Int32Array {
  return new Int32Array(checkedFieldSize(dims));
}

export function makeField(rank: number, axes: number[], dims: number[], labels: Int32Array): Field {
  if (labels.length !== numel(dims)) throw new Error(`field: ${labels.length} labels for dims [${dims}]`);
  return { rank, axes, dims, labels };
}

/** True when the field carries at least one real label. */
export function hasLabels(f: Field | undefined): f is Field {
  if (!f) return false;
  for (let i = 0; i < f.labels.length; i++) if (f.labels[i] !== NONE) return true;
  return false;
}

/**
 * Re-expresses `f` over `axes` (a superset of f.axes, ascending, in the same tensor's axis numbering) with
 * `dims` for them: positions along the new axes repeat the labels.
 */
export function materialize(f: Field, axes: number[], dims: number[]): Int32Array {
  const out = newLabels(dims);
  const src = strides(f.dims);
  // For each target axis, the stride into f.labels (0 when f does not label it).
  const st = axes.map((a) => {
    const k = f.axes.indexOf(a);
    return k < 0 ? 0 : src[k];
  });
  for (let k = 0; k < f.axes.length; k++) {
    const j = axes.indexOf(f.axes[k]);
    if (j < 0) throw new Error('materialize: target axes must include the field axes');
    if (dims[j] !== f.dims[k]) throw new Error(`materialize: axis ${f.axes[k]} is ${f.dims[k]} in the field, ${dims[j]} in the target`);
  }
  const n = out.length;
  if (!n) return out;
  // Trailing target axes that f does not label (one label repeated: fill) or labels contiguously (one run: copy).
  let inner = 1, t = dims.length;
  const fill = t > 0 && st[t - 1] === 0;
  if (fill) while (t > 0 && st[t - 1] === 0) inner *= dims[--t];
  else while (t > 0 && st[t - 1] === inner) inner *= dims[--t];
  const idx = new Array<number>(t).fill(0);
  let off = 0;
  for (let i = 0; i < n; i += inner) {
    if (fill) out.fill(f.labels[off], i, i + inner);
    else if (inner === 1) out[i] = f.labels[off];
    else out.set(f.labels.subarray(off, off + inner), i);
    // increment the multi-index of the outer axes
    for (let d = t - 1; d >= 0; d--) {
      idx[d]++;
      off += st[d];
      if (idx[d] < dims[d]) break;
      off -= st[d] * idx[d];
      idx[d] = 0;
    }
  }
  return out;
}

/** Drops labeled axes along which the labels never change (keeps fields small). */
export function compact(f: Field): Field {
  let cur = f;
  for (let k = cur.axes.length - 1; k >= 0; k--) {
    if (constantAlong(cur, k)) cur = dropAxis(cur, k);
  }
  return cur;
}

function constantAlong(f: Field, k: number): boolean {
  const d = f.dims[k];
  if (d === 1) return true;
  const st = strides(f.dims)[k];
  const n = f.labels.length;
  for (let i = 0; i < n; i++) {
    const c = Math.floor(i / st) % d;
    if (c !== 0 && f.labels[i] !== f.labels[i - c * st]) return false;
  }
  return true;
}

function dropAxis(f: Field, k: number): Field {
  const dims = f.dims.filter((_, i) => i !== k);
  const st = strides(f.dims)[k];
  const d = f.dims[k];
  const out = new Int32Array(numel(dims));
  let j = 0;
  for (let i = 0; i < f.labels.length; i++) {
    if (Math.floor(i / st) % d === 0) out[j++] = f.labels[i];
  }
  return makeField(f.rank, f.axes.filter((_, i) => i !== k), dims, out);
}

/** Field of a transposed tensor: out axis i is in axis perm[i]. */
export function transposeField(f: Field, perm: number[]): Field {
  const outAxes: number[] = [];
  for (let i = 0; i < perm.length; i++) if (f.axes.includes(perm[i])) outAxes.push(i);
  const srcK = outAxes.map((i) => f.axes.indexOf(perm[i]));
  const dims = srcK.map((k) => f.dims[k]);
  const src = strides(f.dims);
  const out = new Int32Array(f.labels.length);
  const idx = new Array<number>(dims.length).fill(0);
  for (let i = 0; i < out.length; i++) {
    let off = 0;
    for (let j = 0; j < dims.length; j++) off += idx[j] * src[srcK[j]];
    out[i] = f.labels[off];
    for (let d = dims.length - 1; d >= 0; d--) {
      if (++idx[d] < dims[d]) break;
      idx[d] = 0;
    }
  }
  return makeField(perm.length, outAxes, dims, out);
}

/** Renumbers the axes of a field (e.g. right-aligned broadcasting into a higher rank). */
export function remapAxes(f: Field, map: (axis: number) => number, rank: number): Field {
  const pairs = f.axes.map((a, k) => ({ a: map(a), k }));
  const sorted = [...pairs].sort((x, y) => x.a - y.a);
  if (sorted.every((p, i) => p.k === i)) return makeField(rank, sorted.map((p) => p.a), f.dims.slice(), f.labels);
  // Order changed: transpose the label tensor.
  const perm = sorted.map((p) => p.k);
  const t = transposeField(makeField(f.axes.length, f.axes.map((_, i) => i), f.dims, f.labels), perm);
  return makeField(rank, sorted.map((p) => p.a), t.dims, t.labels);
}

/** Selects positions along a labeled axis (Slice, Gather with a 1-D index, Split). */
export function pickAlong(f: Field, axis: number, positions: number[]): Field {
  const k = f.axes.indexOf(axis);
  if (k < 0) return f;
  const dims = f.dims.slice();
  dims[k] = positions.length;
  const src = strides(f.dims);
  const dst = strides(dims);
  const out = newLabels(dims);
  const outer = numel(f.dims.slice(0, k));
  const inner = src[k];
  for (let o = 0; o < outer; o++) {
    for (let j = 0; j < positions.length; j++) {
      const sOff = o * f.dims[k] * inner + positions[j] * inner;
      const dOff = o * dst[k] * positions.length + j * inner;
      for (let i = 0; i < inner; i++) out[dOff + i] = f.labels[sOff + i];
    }
  }
  return makeField(f.rank, f.axes.slice(), dims, out);
}

/** Removes a labeled axis by taking index `pos` along it (Gather with a scalar index). */
export function takeAt(f: Field, axis: number, pos: number): Field {
  const k = f.axes.indexOf(axis);
  const picked = pickAlong(f, axis, [pos]);
  if (k < 0) return makeField(f.rank - 1, f.axes.map((a) => (a > axis ? a - 1 : a)), f.dims, f.labels);
  const dims = picked.dims.filter((_, i) => i !== k);
  return makeField(f.rank - 1, picked.axes.filter((_, i) => i !== k).map((a) => (a > axis ? a - 1 : a)), dims, picked.labels);
}

/** Iterates over every distinct label of a field. */
export function labelSet(f: Field): Set<number> {
  const s = new Set<number>();
  for (let i = 0; i < f.labels.length; i++) if (f.labels[i] !== NONE) s.add(f.labels[i]);
  return s;
}
