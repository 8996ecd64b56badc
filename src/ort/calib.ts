/**
 * Calibration inputs for data-aware importance passes.
 *
 * Sources (`--calib FILE`):
 *  - `.npy`: one array, for a single-input model; axis 0 indexes samples;
 *  - `.npz`: one array per graph input, matched by name (`<input>.npy` in the archive), else by order;
 *  - raw `.bin` (any other file): little-endian data of `--calib-dtype` (default: the input's type) and
 *    `--calib-shape` (default: the model's input shape with the sample count inferred from the file size).
 * Without a file, seeded random inputs are made (at sizes the model runs on, see prepareCalibration) and a
 * warning says that data-aware scores then measure noise.
 * Arrays are converted within a type family when needed (float64 → float32, int32 → int64, ...).
 */
import { numel } from '../ir/dims';
import { DataType, byteLength, dtypeName, float16ToFloat32, float32ToFloat16, isFloat, ortTypeName } from '../ir/dtype';
import { UserError } from '../ir/errors';
import { readInputFile } from '../ir/files';
import { checkedNumel } from '../ir/limits';
import { valueTypeOf } from '../ir/graph';
import type { Model } from '../ir/model';
import type { TypedArray } from '../ir/tensor';
import { isNpy, parseNpy, typedView, type NdArray } from './npy';
import { uniformInputShapes } from '../ir/input-shapes';
import { ort } from './session';
import { VERIFY_SEQ_LADDER, runOnAcceptedInputs, verificationFeeds } from './feeds';
import { readZip } from './zip';

export interface CalibInput {
  name: string;
  dtype: DataType;
  /** Full dims; dims[0] is the sample axis. */
  dims: number[];
  data: TypedArray;
}

export interface CalibSet {
  inputs: CalibInput[];
  samples: number;
  /** The file, or 'random'. */
  source: string;
  random: boolean;
  /** Batch size the model requires (its input's dim 0 is a fixed number), if any. */
  fixedBatch?: number;
  /**
   * Random sets: the seeded feeds of `count` samples from sample `start` (made on demand; `inputs` is empty,
   * since a sample need not be a row of axis 0, e.g. a recurrent state [2, batch, 128] or a scalar input).
   */
  generate?: (start: number, count: number) => Record<string, ort.Tensor>;
  /** Random sets: the value of the non-batch symbolic dims. */
  seq?: number;
}

export interface CalibOptions {
  file?: string;
  /** Shape of a raw .bin file (sample axis first). */
  shape?: number[];
  /** Element type of a raw .bin file: float32, float16, float64, int64, int32, int16, int8, uint8, bool. */
  dtype?: string;
  seed?: number;
  /** Number of random samples when no file is given (default 16). */
  randomSamples?: number;
  /** Value of the non-batch symbolic dims of random inputs (default: the first verification size). */
  seq?: number;
  warn?: (message: string) => void;
}

/**
 * Largest calibration file read (bytes). The file is read whole and its arrays are converted and batched, which
 * costs about twice its size: 1 GiB keeps a run within the memory budget.
 */
export const CALIB_MAX_BYTES = 2 ** 30;

const DTYPE_NAMES: Record<string, DataType> = {
  float32: DataType.FLOAT, float: DataType.FLOAT, float16: DataType.FLOAT16, float64: DataType.DOUBLE, double: DataType.DOUBLE,
  int64: DataType.INT64, int32: DataType.INT32, int16: DataType.INT16, int8: DataType.INT8, uint8: DataType.UINT8, bool: DataType.BOOL,
};

export const CALIB_DTYPES = Object.keys(DTYPE_NAMES);

interface InputSpec {
  name: string;
  dtype: DataType;
  shape: (number | string | undefined)[];
}

function inputSpecs(model: Model): InputSpec[] {
  return model.graph.realInputs.map((vi) => {
    const t = valueTypeOf(vi);
    if (!t || !t.shape) throw new UserError(`graph input '${vi.name}' has no tensor shape; cannot calibrate`);
    return { name: vi.name ?? '', dtype: t.dtype, shape: t.shape };
  });
}

export function loadCalibration(model: Model, opts: CalibOptions = {}): CalibSet {
  if (!opts.file) {
    opts.warn?.('no --calib data given: calibration (data-aware importance, reconstruction) uses seeded random inputs and so measures noise, not your data');
    return randomCalibration(model, opts);
  }
  const file = opts.file;
  // One descriptor, checked (a regular file: a FIFO does not block) and within the memory budget, then read.
  const bytes = readInputFile(file, {
    label: `calibration file '${file}'`,
    missing: `calibration file '${file}' does not exist`,
    maxBytes: CALIB_MAX_BYTES,
    tooLarge: (size) => `calibration file '${file}' is ${size} bytes, over the ${CALIB_MAX_BYTES / 2 ** 30} GiB limit for calibration data (use fewer samples)`,
  });
  const specs = inputSpecs(model);
  if (isNpy(bytes)) {
    if (specs.length !== 1) throw new UserError(`the model has ${specs.length} inputs: give calibration data as .npz (one array per input), not .npy`);
    return calibFromArrays(model, [parseNpy(bytes, `'${file}'`)], file);
  }
  if (bytes.length >= 4 && bytes[0] === 0x50 && bytes[1] === 0x4b && bytes[2] === 0x03 && bytes[3] === 0x04) {
    const entries = readZip(bytes, `'${file}'`, { filter: (name) => name.endsWith('.npy') });
    if (entries.length === 0) throw new UserError(`'${file}' holds no .npy arrays`);
    const named: Record<string, NdArray> = {};
    for (const e of entries) named[e.name.slice(0, -4)] = parseNpy(e.data, `'${file}:${e.name}'`);
    return calibFromArrays(model, named, file);
  }
  if (specs.length !== 1) throw new UserError(`the model has ${specs.length} inputs: give calibration data as .npz (one array per input), not a raw file`);
  return calibFromArrays(model, [rawArray(bytes, specs[0], opts, file)], file);
}

function rawArray(bytes: Uint8Array, spec: InputSpec, opts: CalibOptions, file: string): NdArray {
  let dtype = spec.dtype;
  if (opts.dtype !== undefined) {
    const d = DTYPE_NAMES[opts.dtype.toLowerCase()];
    if (d === undefined) throw new UserError(`--calib-dtype '${opts.dtype}' is not one of ${CALIB_DTYPES.join(', ')}`);
    dtype = d;
  }
  const item = byteLength(dtype, 1);
  if (bytes.length % item !== 0) throw new UserError(`'${file}' has ${bytes.length} bytes, not a whole number of ${dtypeName(dtype)} elements`);
  const count = bytes.length / item;
  let dims: number[];
  if (opts.shape) {
    dims = opts.shape.slice();
    const want = checkedNumel(dims, '--calib-shape');
    if (want !== count) throw new UserError(`'${file}' holds ${count} ${dtypeName(dtype)} elements, but --calib-shape ${dims.join(',')} needs ${want}`);
  } else {
    const rest = spec.shape.slice(1);
    if (rest.some((d) => typeof d !== 'number')) {
      throw new UserError(`input '${spec.name}' has symbolic dims [${spec.shape.join(',')}]: give --calib-shape for the raw file '${file}'`);
    }
    const row = numel(rest as number[]);
    if (row === 0 || count % row !== 0) throw new UserError(`'${file}' holds ${count} elements, not a multiple of one sample [${rest.join(',')}] of input '${spec.name}'`);
    dims = [count / row, ...(rest as number[])];
  }
  return { dtype, dims, data: typedView(bytes, dtype) };
}

/**
 * Builds a calibration set from arrays: a list (matched to graph inputs by order) or a record (matched by
 * name, else by order when the counts agree). Checks ranks and fixed dims, converts types within a family.
 */
export function calibFromArrays(model: Model, arrays: NdArray[] | Record<string, NdArray>, source: string): CalibSet {
  const specs = inputSpecs(model);
  let ordered: NdArray[];
  if (Array.isArray(arrays)) {
    ordered = arrays;
  } else {
    const names = Object.keys(arrays);
    if (specs.every((s) => s.name in arrays)) ordered = specs.map((s) => arrays[s.name]);
    else if (names.length === specs.length) ordered = names.map((n) => arrays[n]);
    else {
      const missing = specs.filter((s) => !(s.name in arrays)).map((s) => s.name);
      throw new UserError(`calibration data '${source}' has arrays [${names.join(', ')}] but no array for input(s) ${missing.join(', ')}`);
    }
  }
  if (ordered.length !== specs.length) throw new UserError(`calibration data '${source}' has ${ordered.length} arrays for ${specs.length} model inputs`);
  let samples = -1;
  let fixedBatch: number | undefined;
  const inputs: CalibInput[] = specs.map((spec, i) => {
    const a = ordered[i];
    if (a.dims.length !== spec.shape.length) {
      throw new UserError(`calibration array for input '${spec.name}' has shape [${a.dims.join(',')}]; the model expects rank ${spec.shape.length} [${spec.shape.join(',')}]`);
    }
    for (let k = 1; k < a.dims.length; k++) {
      const want = spec.shape[k];
      if (typeof want === 'number' && want !== a.dims[k]) {
        throw new UserError(`calibration array for input '${spec.name}' has shape [${a.dims.join(',')}]; the model expects [${spec.shape.join(',')}]`);
      }
    }
    // A sample of no elements would make any sample count "fit" the bytes (and calibration loop over nothing).
    if (a.dims.length === 0 || a.dims.slice(1).some((d) => d === 0)) {
      throw new UserError(`calibration array for input '${spec.name}' has shape [${a.dims.join(',')}]: ${a.dims.length ? 'a sample has no elements' : 'no sample axis'}`);
    }
    if (typeof spec.shape[0] === 'number') fixedBatch = spec.shape[0];
    if (samples >= 0 && a.dims[0] !== samples) throw new UserError(`calibration arrays disagree on the sample count (${samples} vs ${a.dims[0]})`);
    samples = a.dims[0];
    checkFinite(a.data, a.dtype, a.dims, `calibration data '${source}': input '${spec.name}'`);
    const data = convert(a, spec);
    if (data !== a.data) checkFinite(data, spec.dtype, a.dims, `calibration data '${source}': input '${spec.name}'`, a);
    return { name: spec.name, dtype: spec.dtype, dims: a.dims.slice(), data };
  });
  if (samples <= 0) throw new UserError(`calibration data '${source}' has no samples`);
  return { inputs, samples, source, random: false, fixedBatch };
}

/**
 * UserError when float calibration values hold a NaN or an infinity (every statistic computed from them, and so
 * the scores, bias compensation and the pruned model, would be NaN): names the input (`what`) and the first bad
 * sample (index on axis 0). `from`: the array before its conversion to `dtype`, when converted (a finite value
 * there that is infinite here overflowed the conversion, e.g. float64 1e300 → float32).
 */
export function checkFinite(data: TypedArray, dtype: DataType, dims: readonly number[], what: string, from?: NdArray): void {
  if (dtype !== DataType.FLOAT && dtype !== DataType.DOUBLE && dtype !== DataType.FLOAT16) return;
  const half = dtype === DataType.FLOAT16;
  let bad = -1;
  for (let i = 0; i < data.length; i++) {
    const x = data[i] as number;
    if (half ? (x & 0x7c00) === 0x7c00 : !Number.isFinite(x)) {
      bad = i;
      break;
    }
  }
  if (bad < 0) return;
  const row = numel(dims.slice(1));
  const sample = row > 0 ? Math.floor(bad / row) : 0;
  const decode = (d: TypedArray, t: DataType) => (t === DataType.FLOAT16 ? float16ToFloat32(d[bad] as number) : Number(d[bad]));
  const value = decode(data, dtype);
  const before = from ? decode(from.data, from.dtype) : undefined;
  if (before !== undefined && Number.isFinite(before)) {
    throw new UserError(`${what}: value ${before} at sample ${sample} overflows ${dtypeName(dtype)}`);
  }
  throw new UserError(`${what}: ${Number.isNaN(value) ? 'NaN' : value > 0 ? '+Infinity' : '-Infinity'} at sample ${sample}: calibration values must be finite`);
}

function convert(a: NdArray, spec: InputSpec): TypedArray {
  if (a.dtype === spec.dtype) return a.data;
  const from = dtypeName(a.dtype);
  const to = dtypeName(spec.dtype);
  const intTypes = [DataType.INT8, DataType.INT16, DataType.INT32, DataType.INT64, DataType.UINT8, DataType.UINT16, DataType.UINT32];
  const n = a.data.length;
  // Converted element by element into the result (no intermediate copy of what may be large data).
  if (isFloat(a.dtype) && isFloat(spec.dtype)) {
    const src = a.data as ArrayLike<number>;
    const at = a.dtype === DataType.FLOAT16 ? (i: number) => float16ToFloat32(src[i]) : (i: number) => src[i];
    if (spec.dtype === DataType.FLOAT || spec.dtype === DataType.DOUBLE) {
      const out = spec.dtype === DataType.FLOAT ? new Float32Array(n) : new Float64Array(n);
      for (let i = 0; i < n; i++) out[i] = at(i);
      return out;
    }
    if (spec.dtype === DataType.FLOAT16) {
      const out = new Uint16Array(n);
      for (let i = 0; i < n; i++) out[i] = float32ToFloat16(at(i));
      return out;
    }
  } else if (intTypes.includes(a.dtype) && intTypes.includes(spec.dtype)) {
    const src = a.data as ArrayLike<number | bigint>;
    if (spec.dtype === DataType.INT64) {
      const out = new BigInt64Array(n);
      for (let i = 0; i < n; i++) out[i] = BigInt(Number(src[i]));
      return out;
    }
    const T = { [DataType.INT32]: Int32Array, [DataType.INT16]: Int16Array, [DataType.INT8]: Int8Array, [DataType.UINT8]: Uint8Array }[spec.dtype as number];
    if (T) {
      const out = new T(n);
      for (let i = 0; i < n; i++) out[i] = Number(src[i]);
      return out;
    }
  }
  throw new UserError(`calibration array for input '${spec.name}' is ${from}; the model expects ${to}`);
}

/**
 * Seeded random calibration made batch by batch like the verification inputs (verificationFeeds): the named
 * symbolic dim on axis 0 of an input is the sample axis wherever it occurs (e.g. a state's axis 1), every other
 * symbolic dim is `seq`, scalars stay scalars, token ids stay below the embedding table's row count. Without a
 * named symbolic axis 0 every run has the model's fixed sizes (`fixedBatch` samples each).
 */
function randomCalibration(model: Model, opts: CalibOptions): CalibSet {
  inputSpecs(model); // every input needs a tensor shape
  const seed = opts.seed ?? 0;
  const seq = opts.seq ?? VERIFY_SEQ_LADDER[0];
  let samples = opts.randomSamples ?? 16;
  const named = model.graph.realInputs.some((vi) => {
    const d = valueTypeOf(vi)?.shape?.[0];
    return typeof d === 'string' && d !== '';
  });
  let fixedBatch: number | undefined;
  if (!named) {
    const first = Object.values(uniformInputShapes(model, 1, seq))[0] ?? [];
    fixedBatch = first.length ? first[0] : 1;
    samples = Math.max(fixedBatch, samples - (samples % fixedBatch));
  }
  const generate = (start: number, count: number): Record<string, ort.Tensor> =>
    verificationFeeds(model, { seed: (seed * 7919 + start) >>> 0, batch: count, seq });
  return { inputs: [], samples, source: 'random', random: true, fixedBatch, generate, seq };
}

/**
 * Calibration for the importance passes: the file's data, or random inputs of sizes the model runs on — the
 * user's `seq` (--verify-seq) when given, else the first size of the verification ladder that runs
 * (runOnAcceptedInputs, as verification does).
 */
export async function prepareCalibration(model: Model, opts: CalibOptions & { batch?: number } = {}): Promise<CalibSet> {
  if (opts.file || opts.seq !== undefined) return loadCalibration(model, opts);
  inputSpecs(model);
  const { seq } = await runOnAcceptedInputs(model, { seed: opts.seed ?? 0, batch: opts.batch });
  return loadCalibration(model, { ...opts, seq });
}

/** Rows [start, end) of every calibration input (sample axis 0), as a new set. */
export function sliceCalibration(set: CalibSet, start: number, end: number): CalibSet {
  const gen = set.generate;
  if (gen) return { ...set, samples: end - start, generate: (s, c) => gen(start + s, c) };
  const inputs = set.inputs.map((x) => {
    const row = numel(x.dims.slice(1));
    return { ...x, dims: [end - start, ...x.dims.slice(1)], data: x.data.slice(start * row, end * row) as TypedArray };
  });
  return { ...set, inputs, samples: end - start };
}

/** Number of batches `calibBatches` yields. */
export function batchCount(set: CalibSet, batch: number): number {
  const b = set.fixedBatch ?? batch;
  return set.fixedBatch ? Math.floor(set.samples / b) : Math.ceil(set.samples / b);
}

/** Feeds of `batch` samples each (the last batch may be smaller unless the model fixes its batch size). */
export function* calibBatches(set: CalibSet, batch: number): Generator<Record<string, ort.Tensor>> {
  if (!Number.isInteger(batch) || batch < 1) throw new UserError(`--calib-batch must be a positive integer, got ${batch}`);
  const b = set.fixedBatch ?? batch;
  const n = batchCount(set, batch);
  for (let k = 0; k < n; k++) {
    const start = k * b;
    const end = Math.min(set.samples, start + b);
    if (set.generate) { yield set.generate(start, end - start); continue; }
    const feeds: Record<string, ort.Tensor> = {};
    for (const x of set.inputs) {
      const row = numel(x.dims.slice(1));
      const data = x.data.subarray(start * row, end * row);
      feeds[x.name] = new ort.Tensor(ortTypeName(x.dtype) as 'float32', data as Float32Array, [end - start, ...x.dims.slice(1)]);
    }
    yield feeds;
  }
}
