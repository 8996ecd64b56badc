/** ONNX tensor element types (TensorProto.DataType) and their storage facts. */

export enum DataType {
  UNDEFINED = 0, FLOAT = 1, UINT8 = 2, INT8 = 3, UINT16 = 4, INT16 = 5, INT32 = 6, INT64 = 7, STRING = 8,
  BOOL = 9, FLOAT16 = 10, DOUBLE = 11, UINT32 = 12, UINT64 = 13, COMPLEX64 = 14, COMPLEX128 = 15,
  BFLOAT16 = 16, FLOAT8E4M3FN = 17, FLOAT8E4M3FNUZ = 18, FLOAT8E5M2 = 19, FLOAT8E5M2FNUZ = 20, UINT4 = 21,
  INT4 = 22, FLOAT4E2M1 = 23, FLOAT8E8M0 = 24, UINT2 = 25, INT2 = 26,
}

/** Bits per element in raw_data (0 for STRING / UNDEFINED, whose size is not fixed). */
const BITS: Record<number, number> = {
  [DataType.FLOAT]: 32, [DataType.UINT8]: 8, [DataType.INT8]: 8, [DataType.UINT16]: 16, [DataType.INT16]: 16,
  [DataType.INT32]: 32, [DataType.INT64]: 64, [DataType.BOOL]: 8, [DataType.FLOAT16]: 16,
  [DataType.DOUBLE]: 64, [DataType.UINT32]: 32, [DataType.UINT64]: 64, [DataType.COMPLEX64]: 64,
  [DataType.COMPLEX128]: 128, [DataType.BFLOAT16]: 16, [DataType.FLOAT8E4M3FN]: 8,
  [DataType.FLOAT8E4M3FNUZ]: 8, [DataType.FLOAT8E5M2]: 8, [DataType.FLOAT8E5M2FNUZ]: 8, [DataType.UINT4]: 4,
  [DataType.INT4]: 4, [DataType.FLOAT4E2M1]: 4, [DataType.FLOAT8E8M0]: 8, [DataType.UINT2]: 2, [DataType.INT2]: 2,
};

export function dtypeName(dt: number): string {
  return DataType[dt] !== undefined ? DataType[dt].toLowerCase() : `dtype(${dt})`;
}

export function bitsPerElement(dt: number): number {
  return BITS[dt] ?? 0;
}

/** Bytes taken by `count` elements in raw_data (sub-byte types are packed, rounded up). */
export function byteLength(dt: number, count: number): number {
  return Math.ceil((bitsPerElement(dt) * count) / 8);
}

export function isFloat(dt: number): boolean {
  return dt === DataType.FLOAT || dt === DataType.FLOAT16 || dt === DataType.DOUBLE || dt === DataType.BFLOAT16;
}

/** The name onnxruntime-node uses for a tensor type, for the types it can feed. */
export function ortTypeName(dt: number): string {
  const names: Record<number, string> = {
    [DataType.FLOAT]: 'float32', [DataType.FLOAT16]: 'float16', [DataType.DOUBLE]: 'float64',
    [DataType.INT8]: 'int8', [DataType.UINT8]: 'uint8', [DataType.INT16]: 'int16', [DataType.UINT16]: 'uint16',
    [DataType.INT32]: 'int32', [DataType.UINT32]: 'uint32', [DataType.INT64]: 'int64', [DataType.UINT64]: 'uint64',
    [DataType.BOOL]: 'bool', [DataType.STRING]: 'string',
  };
  const n = names[dt];
  if (!n) throw new Error(`element type ${dtypeName(dt)} cannot be fed to onnxruntime-node`);
  return n;
}

export function float16ToFloat32(h: number): number {
  const s = (h & 0x8000) >> 15;
  const e = (h & 0x7c00) >> 10;
  const f = h & 0x03ff;
  let v: number;
  if (e === 0) v = f * 2 ** -24;
  else if (e === 0x1f) v = f ? NaN : Infinity;
  else v = (1 + f / 1024) * 2 ** (e - 15);
  return s ? -v : v;
}

const f32 = new Float32Array(1);
const u32 = new Uint32Array(f32.buffer);

/** float32 → IEEE half bits, round-to-nearest-even. */
export function float32ToFloat16(v: number): number {
  f32[0] = v;
  const x = u32[0];
  const sign = (x >>> 16) & 0x8000;
  const exp = (x >>> 23) & 0xff;
  let mant = x & 0x7fffff;
  if (exp === 0xff) return sign | 0x7c00 | (mant ? 0x200 : 0);
  let e = exp - 127 + 15;
  if (e >= 0x1f) return sign | 0x7c00;
  if (e <= 0) {
    if (e < -10) return sign;
    mant |= 0x800000;
    const shift = 14 - e;
    let half = mant >>> shift;
    const rem = mant & ((1 << shift) - 1);
    const mid = 1 << (shift - 1);
    if (rem > mid || (rem === mid && (half & 1))) half++;
    return sign | half;
  }
  let half = (e << 10) | (mant >>> 13);
  const rem = mant & 0x1fff;
  if (rem > 0x1000 || (rem === 0x1000 && (half & 1))) half++;
  e = half >>> 10;
  return sign | half;
}

export function bfloat16ToFloat32(b: number): number {
  u32[0] = b << 16;
  return f32[0];
}
