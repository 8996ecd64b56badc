/**
 * NumPy `.npy` reading (format versions 1.0, 2.0 and 3.0): a magic string, a Python-literal header with
 * `descr`, `fortran_order` and `shape`, then the raw array bytes. Big-endian data is byte-swapped and
 * Fortran-ordered arrays are reordered to C order, so callers always get a little-endian C-order typed array.
 */
import { DataType, dtypeName } from '../ir/dtype';
import { UserError } from '../ir/errors';
import { checkedNumel } from '../ir/limits';
import type { TypedArray } from '../ir/tensor';

export interface NdArray {
  dtype: DataType;
  dims: number[];
  /** C-order data; float16 comes as Uint16Array bits, bool as Uint8Array. */
  data: TypedArray;
}

const DESCR: Record<string, { dtype: DataType; bytes: number }> = {
  f4: { dtype: DataType.FLOAT, bytes: 4 }, f8: { dtype: DataType.DOUBLE, bytes: 8 }, f2: { dtype: DataType.FLOAT16, bytes: 2 },
  i1: { dtype: DataType.INT8, bytes: 1 }, i2: { dtype: DataType.INT16, bytes: 2 }, i4: { dtype: DataType.INT32, bytes: 4 },
  i8: { dtype: DataType.INT64, bytes: 8 }, u1: { dtype: DataType.UINT8, bytes: 1 }, u2: { dtype: DataType.UINT16, bytes: 2 },
  u4: { dtype: DataType.UINT32, bytes: 4 }, u8: { dtype: DataType.UINT64, bytes: 8 }, b1: { dtype: DataType.BOOL, bytes: 1 },
};

const MAGIC = [0x93, 0x4e, 0x55, 0x4d, 0x50, 0x59]; // \x93NUMPY

export function isNpy(bytes: Uint8Array): boolean {
  return bytes.length >= 10 && MAGIC.every((b, i) => bytes[i] === b);
}

/**
 * Parses `.npy` bytes; `label` names the source in error messages. The data may share memory with `bytes`
 * (little-endian C-order arrays at an aligned offset are not copied).
 */
export function parseNpy(bytes: Uint8Array, label = '.npy data'): NdArray {
  if (!isNpy(bytes)) throw new UserError(`${label} is not a .npy file (bad magic)`);
  const major = bytes[6];
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  let headerLen: number;
  let headerStart: number;
  if (major === 1) {
    headerLen = view.getUint16(8, true);
    headerStart = 10;
  } else if (major === 2 || major === 3) {
    if (bytes.length < 12) throw new UserError(`${label}: truncated .npy header`);
    headerLen = view.getUint32(8, true);
    headerStart = 12;
  } else {
    throw new UserError(`${label}: unsupported .npy format version ${major}.${bytes[7]}`);
  }
  if (headerStart + headerLen > bytes.length) throw new UserError(`${label}: truncated .npy header`);
  const header = Buffer.from(bytes.subarray(headerStart, headerStart + headerLen)).toString(major === 3 ? 'utf8' : 'latin1');
  const descr = /'descr'\s*:\s*'([^']*)'/.exec(header)?.[1];
  const fortran = /'fortran_order'\s*:\s*(True|False)/.exec(header)?.[1];
  const shapeText = /'shape'\s*:\s*\(([^)]*)\)/.exec(header)?.[1];
  if (descr === undefined || fortran === undefined || shapeText === undefined) {
    throw new UserError(`${label}: malformed .npy header ${JSON.stringify(header.trim())}`);
  }
  const dims = shapeText.split(',').map((s) => s.trim()).filter((s) => s !== '').map((s) => {
    const v = Number(s.replace(/L$/, ''));
    if (!Number.isSafeInteger(v) || v < 0) throw new UserError(`${label}: bad dimension '${s}' in .npy shape`);
    return v;
  });
  const order = descr[0];
  const code = '<>|='.includes(order) ? descr.slice(1) : descr;
  const info = DESCR[code];
  if (!info) throw new UserError(`${label}: unsupported .npy dtype '${descr}' (numeric and bool arrays only)`);
  // The declared shape is checked against the bytes present before anything is allocated for it.
  const count = checkedNumel(dims, `${label}: the .npy shape`);
  const start = headerStart + headerLen;
  const need = count * info.bytes;
  if (bytes.length - start < need) {
    throw new UserError(`${label}: has ${bytes.length - start} data bytes, expected ${need} for ${dtypeName(info.dtype)}[${dims.join(',')}]`);
  }
  const body = bytes.subarray(start, start + need);
  let data: TypedArray;
  if (order === '>' && info.bytes > 1) {
    const raw = new Uint8Array(body); // a copy (Buffer#slice would be a view of the caller's bytes)
    swapBytes(raw, info.bytes);
    data = typedView(raw, info.dtype);
  } else {
    data = typedView(body, info.dtype);
  }
  if (fortran === 'True' && dims.length > 1) data = fortranToC(data, dims);
  return { dtype: info.dtype, dims, data };
}

function swapBytes(b: Uint8Array, width: number): void {
  for (let i = 0; i < b.length; i += width) {
    for (let lo = i, hi = i + width - 1; lo < hi; lo++, hi--) {
      const t = b[lo];
      b[lo] = b[hi];
      b[hi] = t;
    }
  }
}

const TYPED: Partial<Record<DataType, { new (b: ArrayBufferLike, offset: number, length: number): TypedArray; BYTES_PER_ELEMENT: number }>> = {
  [DataType.FLOAT]: Float32Array, [DataType.DOUBLE]: Float64Array, [DataType.FLOAT16]: Uint16Array, [DataType.UINT16]: Uint16Array,
  [DataType.INT8]: Int8Array, [DataType.INT16]: Int16Array, [DataType.INT32]: Int32Array, [DataType.INT64]: BigInt64Array,
  [DataType.UINT8]: Uint8Array, [DataType.BOOL]: Uint8Array, [DataType.UINT32]: Uint32Array, [DataType.UINT64]: BigUint64Array,
};

/**
 * `raw` as a typed array of `dtype` (little-endian bytes, a whole number of elements). It shares `raw`'s memory
 * when `raw` is aligned for the type (no copy of large calibration data), else it is a copy.
 */
export function typedView(raw: Uint8Array, dtype: DataType): TypedArray {
  const T = TYPED[dtype];
  if (!T) throw new UserError(`unsupported element type ${dtypeName(dtype)}`);
  const size = T.BYTES_PER_ELEMENT;
  // An unaligned view is copied into a fresh buffer (new Uint8Array copies; Buffer#slice would not).
  const src = raw.byteOffset % size === 0 ? raw : new Uint8Array(raw);
  return new T(src.buffer, src.byteOffset, src.byteLength / size);
}

/** Reorders column-major data into row-major order. */
function fortranToC(src: TypedArray, dims: number[]): TypedArray {
  const n = src.length;
  const out = new (src.constructor as new (len: number) => TypedArray)(n);
  const rank = dims.length;
  const idx = new Array<number>(rank).fill(0);
  // Walk C order; the Fortran offset of index (i0..ik) is Σ i_k · Π_{m<k} dims[m].
  const fstride = new Array<number>(rank);
  let s = 1;
  for (let k = 0; k < rank; k++) {
    fstride[k] = s;
    s *= dims[k];
  }
  for (let c = 0; c < n; c++) {
    let f = 0;
    for (let k = 0; k < rank; k++) f += idx[k] * fstride[k];
    (out as unknown as Record<number, unknown>)[c] = (src as unknown as Record<number, unknown>)[f];
    for (let k = rank - 1; k >= 0; k--) {
      if (++idx[k] < dims[k]) break;
      idx[k] = 0;
    }
  }
  return out;
}

const WRITE_DESCR: Partial<Record<number, string>> = { [DataType.FLOAT]: '<f4', [DataType.DOUBLE]: '<f8', [DataType.FLOAT16]: '<f2', [DataType.INT64]: '<i8', [DataType.INT32]: '<i4' };

/** `.npy` bytes (format 1.0, little-endian, C order) of a float32/float64/float16/int32/int64 array. */
export function formatNpy(a: NdArray): Uint8Array {
  const descr = WRITE_DESCR[a.dtype];
  if (!descr) throw new Error(`formatNpy: no .npy type for ${dtypeName(a.dtype)}`);
  const shape = a.dims.length === 1 ? `(${a.dims[0]},)` : `(${a.dims.join(', ')})`;
  let header = `{'descr': '${descr}', 'fortran_order': False, 'shape': ${shape}, }`;
  // Magic (6) + version (2) + length (2) + header, padded with spaces and ended by \n to a multiple of 64.
  const total = Math.ceil((10 + header.length + 1) / 64) * 64;
  header = header.padEnd(total - 10 - 1, ' ') + '\n';
  const head = new Uint8Array(10);
  head.set(MAGIC, 0);
  head[6] = 1;
  head[7] = 0;
  new DataView(head.buffer).setUint16(8, header.length, true);
  const data = new Uint8Array(a.data.buffer, a.data.byteOffset, a.data.byteLength);
  return Buffer.concat([head, Buffer.from(header, 'latin1'), data]);
}
