/**
 * Constant tensors (initializers and Constant-node values) with typed access to their data, wherever it is
 * stored: raw_data (copied out, since protobufjs gives unaligned views), the typed repeated fields, or external
 * data files (read lazily).
 */
import { numel } from './dims';
import { DataType, bfloat16ToFloat32, bitsPerElement, byteLength, dtypeName, float16ToFloat32, float32ToFloat16 } from './dtype';
import { UserError } from './errors';
import { ExternalRef, ModelFiles, isExternal, readExternal, resolveExternal } from './external-data';
import { checkTensorData } from './limits';
import { toBigInt, toNumber } from './long';
import { onnx } from './proto';

export type TypedArray =
  | Float32Array | Float64Array | Int8Array | Uint8Array | Int16Array | Uint16Array | Int32Array | Uint32Array
  | BigInt64Array | BigUint64Array;

/** External tensors up to this size keep their bytes in memory once read. */
export const EXTERNAL_CACHE_MAX_BYTES = 1 << 20;

/** Element types ConstTensor.setData stores float32 values in (converting to float16 / double). */
export const FLOAT32_STORABLE: ReadonlySet<number> = new Set<number>([DataType.FLOAT, DataType.FLOAT16, DataType.DOUBLE]);

export class ConstTensor {
  /** Resolved external data location, when the tensor's bytes live in a file. */
  readonly external?: ExternalRef;
  private cachedBytes?: Uint8Array;

  /**
   * @param files the model's files (external data is relative to their folder and read only from the files checked
   * at load); a folder path makes a new ModelFiles.
   * Throws a UserError when the tensor's dims are invalid or its data (inline, or the external file's range) is not
   * exactly the size they declare: no data is read or allocated from a size the data does not back.
   */
  constructor(public proto: onnx.TensorProto, files?: ModelFiles | string) {
    if (isExternal(proto)) this.external = resolveExternal(proto, typeof files === 'string' ? new ModelFiles(files) : files);
    checkTensorData(proto, this.external?.length);
  }

  get name(): string { return this.proto.name ?? ''; }
  get dtype(): number { return this.proto.dataType ?? 0; }
  get dims(): number[] { return (this.proto.dims ?? []).map((d) => toNumber(d)); }
  get size(): number { return numel(this.dims); }
  /** Bytes the data takes (exact for fixed-size types; string tensors count their bytes). */
  get byteSize(): number {
    if (this.dtype === DataType.STRING) return (this.proto.stringData ?? []).reduce((a, s) => a + s.length, 0);
    return byteLength(this.dtype, this.size);
  }

  /**
   * Little-endian raw bytes of the data: a fresh, 8-byte-aligned copy for raw/external/typed-field data (small
   * external tensors come from a cache: do not write into the result).
   */
  bytes(): Uint8Array {
    return this.load().bytes;
  }

  /**
   * The data bytes without copying them when the tensor stores them inline: a plain Uint8Array over raw_data's
   * memory (often unaligned; never a Buffer, whose slice() would not copy), shared with the model, so read only.
   * Otherwise the same as bytes().
   */
  bytesView(): Uint8Array {
    const raw = this.proto.rawData;
    if (!this.external && this.dtype !== DataType.STRING && raw && raw.length > 0 && raw.length === this.byteSize) {
      return new Uint8Array(raw.buffer, raw.byteOffset, raw.byteLength);
    }
    return this.bytes();
  }

  /** The bytes, and whether the caller owns them (false when they are the external-data cache). */
  private load(): { bytes: Uint8Array; owned: boolean } {
    if (this.cachedBytes) return { bytes: this.cachedBytes, owned: false };
    const p = this.proto;
    let out: Uint8Array;
    if (this.external) {
      out = readExternal(this.external);
    } else if (p.rawData && p.rawData.length > 0) {
      out = new Uint8Array(p.rawData.length);
      out.set(p.rawData);
    } else {
      out = encodeTypedFields(p, this.size);
    }
    const want = byteLength(this.dtype, this.size);
    if (this.dtype !== DataType.STRING && out.length !== want) {
      throw new UserError(`tensor '${this.name}' has ${out.length} data bytes, expected ${want} for ${dtypeName(this.dtype)}[${this.dims.join(',')}]`);
    }
    // Only small external tensors are cached (re-reading them is the expensive part); large ones are read on
    // each use, so that a model with gigabytes of external weights does not keep them all in memory.
    if (this.external && out.length <= EXTERNAL_CACHE_MAX_BYTES) {
      this.cachedBytes = out;
      return { bytes: out, owned: false };
    }
    return { bytes: out, owned: true };
  }

  /** Natural typed view of the data (float16/bfloat16 come back as Uint16Array bits); always a fresh array. */
  data(): TypedArray {
    const { bytes: b, owned } = this.load();
    const size = bitsPerElement(this.dtype) / 8;
    // Fresh bytes that start at an aligned offset are wrapped as they are; anything else is copied.
    const own = owned && size > 0 && b.byteOffset % size === 0 && b.byteLength === b.buffer.byteLength;
    const buf = own ? b.buffer : b.buffer.slice(b.byteOffset, b.byteOffset + b.byteLength);
    switch (this.dtype) {
      case DataType.FLOAT: return new Float32Array(buf);
      case DataType.DOUBLE: return new Float64Array(buf);
      case DataType.INT8: return new Int8Array(buf);
      case DataType.UINT8: case DataType.BOOL: return new Uint8Array(buf);
      case DataType.INT16: return new Int16Array(buf);
      case DataType.UINT16: case DataType.FLOAT16: case DataType.BFLOAT16: return new Uint16Array(buf);
      case DataType.INT32: return new Int32Array(buf);
      case DataType.UINT32: return new Uint32Array(buf);
      case DataType.INT64: return new BigInt64Array(buf);
      case DataType.UINT64: return new BigUint64Array(buf);
      default: throw new UserError(`tensor '${this.name}': typed access to ${dtypeName(this.dtype)} is not supported`);
    }
  }

  /** Data as float32 (float types converted; integer types cast). */
  toFloat32(): Float32Array {
    const d = this.data();
    if (d instanceof Float32Array) return d;
    const out = new Float32Array(d.length);
    if (this.dtype === DataType.FLOAT16) for (let i = 0; i < d.length; i++) out[i] = float16ToFloat32(d[i] as number);
    else if (this.dtype === DataType.BFLOAT16) for (let i = 0; i < d.length; i++) out[i] = bfloat16ToFloat32(d[i] as number);
    else for (let i = 0; i < d.length; i++) out[i] = Number(d[i]);
    return out;
  }

  /** Integer data as JS numbers (int64 values past 2^53 lose precision; use data() for exact values). */
  toNumbers(): number[] {
    const d = this.data();
    const out = new Array<number>(d.length);
    if (this.dtype === DataType.FLOAT16) for (let i = 0; i < d.length; i++) out[i] = float16ToFloat32(d[i] as number);
    else for (let i = 0; i < d.length; i++) out[i] = Number(d[i]);
    return out;
  }

  /**
   * Replaces the data (and optionally dims); the tensor is stored inline as raw_data afterwards.
   * Float32 input is converted to the tensor's dtype when it is float16/double.
   */
  setData(data: TypedArray, dims?: number[]): void {
    let src: TypedArray = data;
    if (data instanceof Float32Array && this.dtype === DataType.FLOAT16) {
      const h = new Uint16Array(data.length);
      for (let i = 0; i < data.length; i++) h[i] = float32ToFloat16(data[i]);
      src = h;
    } else if (data instanceof Float32Array && this.dtype === DataType.DOUBLE) {
      src = Float64Array.from(data);
    }
    this.storeRaw(new Uint8Array(src.buffer, src.byteOffset, src.byteLength).slice(), dims, 'setData');
  }

  /**
   * Like setData with little-endian bytes of the tensor's own dtype, without copying them: the tensor takes
   * ownership of `bytes` (the caller must not write into them afterwards).
   */
  adoptBytes(bytes: Uint8Array, dims?: number[]): void {
    this.storeRaw(bytes, dims, 'adoptBytes');
  }

  private storeRaw(bytes: Uint8Array, dims: number[] | undefined, what: string): void {
    const p = this.proto;
    if (dims) p.dims = dims.slice();
    clearData(p);
    p.rawData = bytes;
    (this as { external?: ExternalRef }).external = undefined;
    this.cachedBytes = undefined;
    if (bytes.length !== byteLength(this.dtype, this.size)) {
      throw new Error(`${what}: ${bytes.length} bytes do not match ${dtypeName(this.dtype)}[${this.dims.join(',')}]`);
    }
  }

  /** Makes the proto self-contained: external data is read in and stored as raw_data. */
  internalize(): void {
    if (!this.external) return;
    const b = this.bytes();
    clearData(this.proto);
    this.proto.rawData = b;
    (this as { external?: ExternalRef }).external = undefined;
    this.cachedBytes = undefined;
  }
}

/** Removes every data field (raw, typed, external) from a TensorProto. */
export function clearData(p: onnx.TensorProto): void {
  const fields = ['rawData', 'floatData', 'int32Data', 'int64Data', 'doubleData', 'uint64Data', 'externalData', 'dataLocation'] as const;
  for (const f of fields) delete (p as unknown as Record<string, unknown>)[f];
}

/** Encodes the typed repeated fields (float_data, int32_data, ...) as little-endian raw bytes. */
function encodeTypedFields(p: onnx.TensorProto, count: number): Uint8Array {
  const dt = p.dataType ?? 0;
  switch (dt) {
    case DataType.FLOAT: return u8(Float32Array.from(p.floatData ?? []));
    case DataType.COMPLEX64: return u8(Float32Array.from(p.floatData ?? []));
    case DataType.DOUBLE: case DataType.COMPLEX128: return u8(Float64Array.from(p.doubleData ?? []));
    case DataType.INT64: return u8(BigInt64Array.from((p.int64Data ?? []).map((v) => toBigInt(v))));
    case DataType.UINT64: return u8(BigUint64Array.from((p.uint64Data ?? []).map((v) => BigInt.asUintN(64, toBigInt(v)))));
    case DataType.UINT32: return u8(Uint32Array.from((p.uint64Data ?? []).map((v) => toNumber(v))));
    case DataType.INT32: return u8(Int32Array.from(p.int32Data ?? []));
    case DataType.INT16: return u8(Int16Array.from(p.int32Data ?? []));
    case DataType.UINT16: case DataType.FLOAT16: case DataType.BFLOAT16: return u8(Uint16Array.from(p.int32Data ?? []));
    case DataType.INT8: return u8(Int8Array.from(p.int32Data ?? []));
    case DataType.UINT8: case DataType.BOOL:
    case DataType.FLOAT8E4M3FN: case DataType.FLOAT8E4M3FNUZ: case DataType.FLOAT8E5M2: case DataType.FLOAT8E5M2FNUZ:
    case DataType.FLOAT8E8M0:
      return Uint8Array.from(p.int32Data ?? []);
    case DataType.UINT4: case DataType.INT4: case DataType.FLOAT4E2M1: case DataType.UINT2: case DataType.INT2:
      // Packed types keep one packed byte per int32_data entry.
      return Uint8Array.from(p.int32Data ?? []);
    case DataType.STRING: return new Uint8Array(0);
    default:
      if (count === 0) return new Uint8Array(0);
      throw new UserError(`tensor '${p.name ?? ''}' has unsupported element type ${dtypeName(dt)}`);
  }
}

function u8(a: TypedArray): Uint8Array {
  return new Uint8Array(a.buffer, a.byteOffset, a.byteLength);
}

/** Builds a new inline TensorProto from a typed array. */
export function makeTensorProto(name: string, dtype: number, dims: number[], data: TypedArray): onnx.TensorProto {
  const p = onnx.TensorProto.create({ name, dataType: dtype, dims: dims.slice() });
  p.rawData = new Uint8Array(data.buffer, data.byteOffset, data.byteLength).slice();
  return p;
}
