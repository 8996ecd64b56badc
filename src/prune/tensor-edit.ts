/**
 * Byte-level edits of constant tensors, for every fixed-size element type (float32, float16, bfloat16,
 * double, int8..int64, bool): remove positions along axes, zero positions along axes, and subtract from
 * single elements of integer shape-like tensors.
 */
import { numel } from '../ir/dims';
import { DataType, bitsPerElement, dtypeName } from '../ir/dtype';

export interface RawTensor {
  dtype: number;
  dims: number[];
  /** Little-endian element bytes (owned by the caller; edits return new buffers). */
  bytes: Uint8Array;
}

function elemBytes(dtype: number, what: string): number {
  const bits = bitsPerElement(dtype);
  if (bits === 0 || bits % 8 !== 0) throw new Error(`${what}: cannot edit ${dtypeName(dtype)} tensors element by element`);
  return bits / 8;
}

function checkAxis(t: RawTensor, axis: number, what: string): void {
  if (!Number.isInteger(axis) || axis < 0 || axis >= t.dims.length) {
    throw new Error(`${what}: axis ${axis} is out of range for a tensor of shape [${t.dims.join(',')}]`);
  }
}

function checkPositions(positions: Iterable<number>, size: number, what: string): void {
  for (const p of positions) {
    if (!Number.isInteger(p) || p < 0 || p >= size) throw new Error(`${what}: position ${p} is out of range [0, ${size})`);
  }
}

type Words = Uint8Array | Uint16Array | Uint32Array;

/** The bytes as the widest word type (4, 2 or 1 bytes) that divides `blockBytes` (copied when unaligned). */
function words(bytes: Uint8Array, blockBytes: number): { view: Words; unit: number } {
  const unit = blockBytes % 4 === 0 ? 4 : blockBytes % 2 === 0 ? 2 : 1;
  if (unit === 1) return { view: bytes, unit };
  const b = bytes.byteOffset % unit === 0 ? bytes : bytes.slice();
  const view = unit === 4 ? new Uint32Array(b.buffer, b.byteOffset, b.byteLength / 4) : new Uint16Array(b.buffer, b.byteOffset, b.byteLength / 2);
  return { view, unit };
}

/** Removes `positions` along `axis`, keeping the other positions in order. */
/** Maximal runs [start, end) of consecutive positions in 0..n-1 for which `pick` holds, flattened. */
function runsOf(n: number, pick: (k: number) => boolean): number[] {
  const runs: number[] = [];
  for (let k = 0; k < n; k++) {
    if (!pick(k)) continue;
    const start = k;
    while (k + 1 < n && pick(k + 1)) k++;
    runs.push(start, k + 1);
  }
  return runs;
}

export function removeAlongAxis(t: RawTensor, axis: number, positions: Iterable<number>, what = 'tensor'): RawTensor {
  checkAxis(t, axis, what);
  const n = t.dims[axis];
  const drop = new Set(positions);
  checkPositions(drop, n, what);
  if (drop.size === 0) return t;
  const eb = elemBytes(t.dtype, what);
  const outer = numel(t.dims.slice(0, axis));
  const inner = numel(t.dims.slice(axis + 1)) * eb;
  const kept = n - drop.size;
  const runs = runsOf(n, (k) => !drop.has(k));
  const out = new Uint8Array(outer * kept * inner);
  // Copy in words, one block per run of consecutive kept positions: short blocks element by element, long ones
  // (whole heads, rows) with set().
  const { view: src, unit } = words(t.bytes, inner);
  const dst = unit === 1 ? out : unit === 2 ? new Uint16Array(out.buffer) : new Uint32Array(out.buffer);
  const w = inner / unit;
  let o = 0;
  for (let i = 0; i < outer; i++) {
    const base = i * n * w;
    for (let r = 0; r < runs.length; r += 2) {
      const from = base + runs[r] * w;
      const len = (runs[r + 1] - runs[r]) * w;
      if (len <= 16) for (let j = 0; j < len; j++) dst[o + j] = src[from + j];
      else dst.set(src.subarray(from, from + len), o);
      o += len;
    }
  }
  const dims = t.dims.slice();
  dims[axis] = kept;
  return { dtype: t.dtype, dims, bytes: out };
}

/** Sets `positions` along `axis` to zero (all-zero bytes are 0 in every numeric type). */
export function zeroAlongAxis(t: RawTensor, axis: number, positions: Iterable<number>, what = 'tensor'): RawTensor {
  checkAxis(t, axis, what);
  const n = t.dims[axis];
  const zero = [...new Set(positions)];
  checkPositions(zero, n, what);
  if (zero.length === 0) return t;
  const eb = elemBytes(t.dtype, what);
  const outer = numel(t.dims.slice(0, axis));
  const inner = numel(t.dims.slice(axis + 1)) * eb;
  const out = t.bytes.slice();
  const { view, unit } = words(out, inner);
  const w = inner / unit;
  for (let i = 0; i < outer; i++) {
    const base = i * n * w;
    for (const k of zero) {
      if (w <= 16) for (let j = 0; j < w; j++) view[base + k * w + j] = 0;
      else view.fill(0, base + k * w, base + (k + 1) * w);
    }
  }
  return { dtype: t.dtype, dims: t.dims.slice(), bytes: out };
}

/** Subtracts `delta` from the integer element at flat `position` (Reshape sizes, Split sizes, Slice bounds...). */
export function subtractAt(t: RawTensor, position: number, delta: number, what = 'tensor'): RawTensor {
  const size = numel(t.dims);
  if (!Number.isInteger(position) || position < 0 || position >= size) {
    throw new Error(`${what}: element ${position} is out of range for a tensor of ${size} elements`);
  }
  // A fresh copy (not Buffer#slice, which is a view) starts at byte 0 of its own buffer, so typed views are aligned.
  const out = new Uint8Array(t.bytes);
  const views: Record<number, () => BigInt64Array | BigUint64Array | Int32Array | Uint32Array | Int16Array> = {
    [DataType.INT64]: () => new BigInt64Array(out.buffer, out.byteOffset, out.byteLength / 8),
    [DataType.UINT64]: () => new BigUint64Array(out.buffer, out.byteOffset, out.byteLength / 8),
    [DataType.INT32]: () => new Int32Array(out.buffer, out.byteOffset, out.byteLength / 4),
    [DataType.UINT32]: () => new Uint32Array(out.buffer, out.byteOffset, out.byteLength / 4),
    [DataType.INT16]: () => new Int16Array(out.buffer, out.byteOffset, out.byteLength / 2),
  };
  const view = views[t.dtype]?.();
  if (!view) throw new Error(`${what}: shape-like edits need an integer tensor, not ${dtypeName(t.dtype)}`);
  const before = view[position];
  const after = typeof before === 'bigint' ? before - BigInt(delta) : before - delta;
  if (Number(before) < 0) throw new Error(`${what}: element ${position} is ${before} (a special value), not a size that can shrink`);
  if (Number(after) < 0) throw new Error(`${what}: element ${position} would become ${after} (was ${before}, minus ${delta})`);
  view[position] = after as never;
  return { dtype: t.dtype, dims: t.dims.slice(), bytes: out };
}
