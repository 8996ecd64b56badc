/**
 * onnxruntime-node helpers: sessions from a Model or bytes (one intra-op thread, which is fastest on the
 * 2-core machines here), seeded random inputs, and running with extra intermediate outputs.
 */
import { numel } from '../ir/dims';
import * as ort from 'onnxruntime-node';
import { DataType, float32ToFloat16, ortTypeName } from '../ir/dtype';
import { UserError } from '../ir/errors';
import { checkGeneratedInputs } from '../ir/limits';
import { valueTypeOf } from '../ir/graph';
import type { Model } from '../ir/model';
import { runtimeModel, type RuntimeModel } from '../ir/io';
import { rng } from '../util/rng';
import { ortErrorSummary } from './errors';

export { ort, rng };

// onnxruntime's process-wide logger writes warnings to stderr by itself (e.g. "Failed to persist telemetry device
// ID" when HOME is not writable), which would break the one-line error and the clean stderr of a successful run:
// only errors reach it; what a session fails on comes back to us as an exception.
ort.env.logLevel = 'error';

export const SESSION_OPTIONS: ort.InferenceSession.SessionOptions = {
  intraOpNumThreads: 1,
  interOpNumThreads: 1,
  graphOptimizationLevel: 'all',
  logSeverityLevel: 3,
};

/**
 * Serializes a model for ORT as one inline message, without changing it (external data is read into the bytes).
 * Weights over 2 GB cannot be inline: give createSession the Model (or a runtimeModel) instead.
 */
export function modelBytes(model: Model): Uint8Array {
  return runtimeModel(model, { splitAbove: Infinity }).bytes;
}

export async function createSession(source: string | Uint8Array | Model | RuntimeModel, opts: ort.InferenceSession.SessionOptions = {}): Promise<ort.InferenceSession> {
  // A Model goes through runtimeModel: its large initializers reach ORT as in-memory external data, not copied
  // into the protobuf message (faster, less memory, and models with over 2 GB of weights load).
  const rm = typeof source === 'string' || source instanceof Uint8Array ? undefined : 'externalData' in source ? source : runtimeModel(source);
  const src = rm ? rm.bytes : (source as string | Uint8Array);
  const o = { ...SESSION_OPTIONS, ...opts, ...(rm?.externalData.length ? { externalData: rm.externalData } : {}) };
  try {
    // ORT accepts a path or the bytes of a model (with in-memory external data).
    return typeof src === 'string'
      ? await ort.InferenceSession.create(src, o)
      : await ort.InferenceSession.create(src, o);
  } catch (e) {
    throw new UserError(`onnxruntime cannot load the model: ${ortErrorSummary(e)}`);
  }
}

/**
 * Checks that onnxruntime loads `model`: a session is created (with the default graph optimizations, as a user's
 * would be) and released, nothing is run. A UserError naming onnxruntime's reason when it does not load.
 */
export async function checkLoads(model: Model): Promise<void> {
  // With onnxruntime's default graph optimizations, as a user's session would load it: some models load with
  // optimizations off but fail their constant folding / shape propagation (declared dims that contradict a constant).
  const session = await createSession(model, { logSeverityLevel: 4, graphOptimizationLevel: 'all' });
  await session.release();
}

export interface RandomInputOptions {
  seed?: number;
  /** Value for symbolic dims, by dim name (default 1 for batch-like names, else `defaultDim`). */
  dims?: Record<string, number>;
  defaultDim?: number;
  /** Exclusive upper bound for integer inputs (token ids); default 2. */
  intHigh?: number;
  /** Per integer input: values in [low, high) instead of [0, intHigh). */
  intRanges?: Record<string, { low: number; high: number }>;
}

/**
 * Seeded random feeds for every real graph input: floats ~ N(0,1)-ish, ints in [0, intHigh) or their intRanges
 * range. One draw per element whatever the range, so a range changes no other input's values.
 */
export function randomInputs(model: Model, opts: RandomInputOptions = {}): Record<string, ort.Tensor> {
  const next = rng(opts.seed ?? 0);
  const feeds: Record<string, ort.Tensor> = {};
  const shapes = model.graph.realInputs.map((vi) => {
    const t = valueTypeOf(vi);
    if (!t) throw new UserError(`input '${vi.name}' is not a tensor; cannot make random inputs`);
    const dims = (t.shape ?? []).map((d) => (typeof d === 'number' ? d : (typeof d === 'string' && opts.dims?.[d]) || (opts.defaultDim ?? 1)));
    return { vi, t, name: vi.name ?? '', dims, dtype: t.dtype };
  });
  // Declared shapes are not trusted to allocate: a model declaring an input [1e9, 4] is refused here.
  checkGeneratedInputs(shapes, 'cannot make random inputs');
  for (const { vi, t, dims } of shapes) {
    const n = numel(dims);
    const type = ortTypeName(t.dtype);
    const range = opts.intRanges?.[vi.name ?? ''];
    const low = range?.low ?? 0;
    const span = range ? range.high - range.low : opts.intHigh ?? 2;
    let data: ort.Tensor.DataType;
    switch (t.dtype) {
      case DataType.FLOAT: case DataType.DOUBLE: {
        const a = t.dtype === DataType.FLOAT ? new Float32Array(n) : new Float64Array(n);
        for (let i = 0; i < n; i++) a[i] = (next() + next() + next() - 1.5) * 2;
        data = a;
        break;
      }
      case DataType.INT64: data = BigInt64Array.from({ length: n }, () => BigInt(low + Math.floor(next() * span))); break;
      case DataType.INT32: data = Int32Array.from({ length: n }, () => low + Math.floor(next() * span)); break;
      case DataType.BOOL: data = Uint8Array.from({ length: n }, () => (next() < 0.5 ? 1 : 0)); break;
      case DataType.UINT8: data = Uint8Array.from({ length: n }, () => Math.floor(next() * 256)); break;
      case DataType.FLOAT16: {
        // The same distribution as float32 inputs (zero-centred, sign included), rounded to half.
        const a = new Uint16Array(n);
        for (let i = 0; i < n; i++) a[i] = float32ToFloat16((next() + next() + next() - 1.5) * 2);
        data = a;
        break;
      }
      default: throw new UserError(`cannot make random data for input '${vi.name}' of type ${type}`);
    }
    feeds[vi.name ?? ''] = new ort.Tensor(type as 'float32', data as Float32Array, dims);
  }
  return feeds;
}

export async function run(session: ort.InferenceSession, feeds: Record<string, ort.Tensor>, outputs?: string[]): Promise<Record<string, ort.Tensor>> {
  return outputs ? session.run(feeds, outputs) : session.run(feeds);
}
