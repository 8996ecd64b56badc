/**
 * Size limits, checked before memory is allocated for anything a file declares. A size read from a file (tensor
 * dims, an input's declared shape, a .npy shape, a zip entry's size) is never trusted to allocate: tensor data must
 * be present in full (inline bytes, or the referenced range of an external file), and what we make ourselves from
 * declared sizes (random inputs, inflated archive entries) stays within a memory budget. Violations are one-line
 * UserErrors naming the tensor, input or entry.
 */
import { DataType, bitsPerElement, byteLength, dtypeName } from './dtype';
import { UserError } from './errors';
import { toNumber } from './long';
import type { onnx } from './proto';

/**
 * Bytes of inputs made from declared shapes for one run (random verification / calibration / shape-probe inputs,
 * all inputs together).
 */
export const GENERATED_INPUT_MAX_BYTES = 256 * 2 ** 20;

/** Bytes an archive (an .npz) may inflate to, all entries together. */
export const INFLATE_MAX_BYTES = 2 ** 30;

/** `1.5 GB`-style size for messages. */
export function formatBytes(n: number): string {
  if (!Number.isFinite(n)) return String(n);
  if (n >= 2 ** 30) return `${(n / 2 ** 30).toFixed(1)} GiB`;
  if (n >= 2 ** 20) return `${(n / 2 ** 20).toFixed(1)} MiB`;
  if (n >= 2 ** 10) return `${(n / 2 ** 10).toFixed(1)} KiB`;
  return `${n} bytes`;
}

/**
 * The element count of a tensor with these dims, after checking that every dim is a non-negative integer and the
 * count is exact (a safe integer). `what` names the tensor or input in the error.
 */
export function checkedNumel(dims: readonly number[], what: string): number {
  let n = 1;
  for (const d of dims) {
    if (!Number.isSafeInteger(d) || d < 0) throw new UserError(`${what} has an invalid dimension ${d} in [${dims.join(',')}]`);
    n *= d;
  }
  if (!Number.isSafeInteger(n)) throw new UserError(`${what} has too many elements: [${dims.join(',')}]`);
  return n;
}

/** Bytes per entry of the typed repeated field that holds each element type (see ConstTensor), with its name. */
const TYPED_FIELDS: Record<number, { field: 'floatData' | 'doubleData' | 'int64Data' | 'uint64Data' | 'int32Data'; bytes: number }> = {
  [DataType.FLOAT]: { field: 'floatData', bytes: 4 }, [DataType.COMPLEX64]: { field: 'floatData', bytes: 4 },
  [DataType.DOUBLE]: { field: 'doubleData', bytes: 8 }, [DataType.COMPLEX128]: { field: 'doubleData', bytes: 8 },
  [DataType.INT64]: { field: 'int64Data', bytes: 8 }, [DataType.UINT64]: { field: 'uint64Data', bytes: 8 },
  [DataType.UINT32]: { field: 'uint64Data', bytes: 4 }, [DataType.INT32]: { field: 'int32Data', bytes: 4 },
  [DataType.INT16]: { field: 'int32Data', bytes: 2 }, [DataType.UINT16]: { field: 'int32Data', bytes: 2 },
  [DataType.FLOAT16]: { field: 'int32Data', bytes: 2 }, [DataType.BFLOAT16]: { field: 'int32Data', bytes: 2 },
  [DataType.INT8]: { field: 'int32Data', bytes: 1 }, [DataType.UINT8]: { field: 'int32Data', bytes: 1 },
  [DataType.BOOL]: { field: 'int32Data', bytes: 1 }, [DataType.FLOAT8E4M3FN]: { field: 'int32Data', bytes: 1 },
  [DataType.FLOAT8E4M3FNUZ]: { field: 'int32Data', bytes: 1 }, [DataType.FLOAT8E5M2]: { field: 'int32Data', bytes: 1 },
  [DataType.FLOAT8E5M2FNUZ]: { field: 'int32Data', bytes: 1 }, [DataType.FLOAT8E8M0]: { field: 'int32Data', bytes: 1 },
  // Packed types keep one packed byte per int32_data entry.
  [DataType.UINT4]: { field: 'int32Data', bytes: 1 }, [DataType.INT4]: { field: 'int32Data', bytes: 1 },
  [DataType.FLOAT4E2M1]: { field: 'int32Data', bytes: 1 }, [DataType.UINT2]: { field: 'int32Data', bytes: 1 },
  [DataType.INT2]: { field: 'int32Data', bytes: 1 },
};

/** The tensor's dims as numbers, checked (checkedNumel), with its element count. */
export function tensorDims(p: onnx.ITensorProto): { dims: number[]; count: number } {
  const dims = (p.dims ?? []).map((d) => toNumber(d));
  return { dims, count: checkedNumel(dims, `tensor '${p.name ?? ''}'`) };
}

/**
 * Checks a TensorProto's declared size against the data it holds, without touching the data: valid dims, and as
 * many bytes (raw_data, the typed field, or `externalLength` bytes of an external file) or strings as the dims
 * and element type need. Element types of unknown size are left alone (their data is refused when read).
 */
export function checkTensorData(p: onnx.ITensorProto, externalLength?: number): void {
  const { dims, count } = tensorDims(p);
  const dt = p.dataType ?? 0;
  const what = `tensor '${p.name ?? ''}'`;
  if (dt === DataType.STRING) {
    const have = p.stringData?.length ?? 0;
    if (have !== count) throw new UserError(`${what} has ${have} strings, expected ${count} for string[${dims.join(',')}]`);
    return;
  }
  if (bitsPerElement(dt) === 0) return;
  let have: number;
  if (externalLength !== undefined) have = externalLength;
  else if (p.rawData && p.rawData.length > 0) have = p.rawData.length;
  else {
    const f = TYPED_FIELDS[dt];
    have = f ? (p[f.field]?.length ?? 0) * f.bytes : 0;
  }
  const want = byteLength(dt, count);
  if (have !== want) throw new UserError(`${what} has ${have} data bytes, expected ${want} for ${dtypeName(dt)}[${dims.join(',')}]`);
}

/**
 * Checks that inputs of these shapes can be made (valid dims, and all of them together within
 * GENERATED_INPUT_MAX_BYTES); `why` says what they are for. Throws a UserError naming the largest input.
 */
export function checkGeneratedInputs(shapes: { name: string; dims: readonly number[]; dtype: number }[], why: string): void {
  let total = 0;
  let largest: { name: string; dims: readonly number[]; bytes: number } | undefined;
  for (const s of shapes) {
    const n = checkedNumel(s.dims, `input '${s.name}'`);
    const bytes = n * Math.max(1, bitsPerElement(s.dtype) / 8);
    total += bytes;
    if (!largest || bytes > largest.bytes) largest = { name: s.name, dims: s.dims, bytes };
  }
  if (total > GENERATED_INPUT_MAX_BYTES && largest) {
    throw new UserError(
      `${why}: input '${largest.name}' of shape [${largest.dims.join(',')}] needs ${formatBytes(largest.bytes)}` +
      `${shapes.length > 1 ? ` (all inputs ${formatBytes(total)})` : ''}, over the ${formatBytes(GENERATED_INPUT_MAX_BYTES)} limit for generated inputs`,
    );
  }
}
