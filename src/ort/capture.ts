/**
 * Activation capture through onnxruntime with streaming per-channel statistics.
 *
 * The requested intermediate tensors are added as graph outputs of a COPY of the model; calibration batches
 * are run one at a time and each output is folded into running statistics along a channel axis:
 *   count (elements per channel), sum, sum of squares (→ mean, variance, RMS / L2 norm), and optionally the
 *   channel Gram matrix XᵀX for tensors with at most `gramMaxChannels` channels.
 * Only one batch of activations is alive at a time.
 */
import { float16ToFloat32 } from '../ir/dtype';
import { UserError } from '../ir/errors';
import { cloneModel } from '../ir/clone';
import type { Model } from '../ir/model';
import { onnx } from '../ir/proto';
import { batchCount, calibBatches, type CalibSet } from './calib';
import { createSession, ort } from './session';
import { ortErrorSummary } from './errors';
import { progressBar } from './progress';

export interface CaptureRequest {
  tensor: string;
  /** Channel axis; negative counts from the end (resolved against the tensor's rank at run time). */
  axis: number;
  /** Also accumulate XᵀX over channels (only when channels ≤ gramMaxChannels). */
  gram?: boolean;
}

export interface ChannelStats {
  tensor: string;
  axis: number;
  channels: number;
  /** Elements seen per channel (batch × every non-channel position). */
  count: number;
  sum: Float64Array;
  sumSq: Float64Array;
  /** Row-major channels × channels, Σ x xᵀ over positions (when requested and small enough). */
  gram?: Float64Array;
}

/** Statistics by statKey(tensor, axis). */
export type ActivationStats = Map<string, ChannelStats>;

export function statKey(tensor: string, axis: number): string {
  return `${tensor}@${axis}`;
}

export function channelMean(s: ChannelStats): Float64Array {
  return s.sum.map((v) => v / Math.max(1, s.count));
}

/** Population variance per channel. */
export function channelVariance(s: ChannelStats): Float64Array {
  const n = Math.max(1, s.count);
  return s.sumSq.map((q, c) => Math.max(0, q / n - (s.sum[c] / n) ** 2));
}

/** Root mean square per channel (the L2 norm divided by √count, so it does not grow with the sample count). */
export function channelRms(s: ChannelStats): Float64Array {
  const n = Math.max(1, s.count);
  return s.sumSq.map((q) => Math.sqrt(q / n));
}

export interface CaptureOptions {
  /** Samples per onnxruntime run (default 16). */
  batch?: number;
  gramMaxChannels?: number;
  quiet?: boolean;
}

function toFloat(t: ort.Tensor): ArrayLike<number> {
  const d = t.data;
  if (t.type === 'float16' && d instanceof Uint16Array) return Float32Array.from(d, (h) => float16ToFloat32(h));
  if (d instanceof BigInt64Array || d instanceof BigUint64Array) return Float64Array.from(d, (x) => Number(x));
  return d as ArrayLike<number>;
}

/** Folds one tensor into its statistics. */
export function accumulate(stats: ChannelStats, data: ArrayLike<number>, dims: readonly number[], gramMax: number): void {
  const rank = dims.length;
  const axis = stats.axis < 0 ? stats.axis + rank : stats.axis;
  const c = dims[axis];
  if (c !== stats.channels) throw new Error(`capture: '${stats.tensor}' has ${c} channels on axis ${axis}, expected ${stats.channels}`);
  let inner = 1;
  for (let k = axis + 1; k < rank; k++) inner *= dims[k];
  let outer = 1;
  for (let k = 0; k < axis; k++) outer *= dims[k];
  const { sum, sumSq } = stats;
  for (let o = 0; o < outer; o++) {
    const base = o * c * inner;
    for (let ch = 0; ch < c; ch++) {
      let s = 0, q = 0;
      const off = base + ch * inner;
      for (let i = 0; i < inner; i++) {
        const v = data[off + i];
        s += v;
        q += v * v;
      }
      sum[ch] += s;
      sumSq[ch] += q;
    }
  }
  stats.count += outer * inner;
  if (stats.gram && c <= gramMax) {
    const g = stats.gram;
    const vec = new Float64Array(c);
    for (let o = 0; o < outer; o++) {
      for (let i = 0; i < inner; i++) {
        for (let ch = 0; ch < c; ch++) vec[ch] = data[o * c * inner + ch * inner + i];
        for (let a = 0; a < c; a++) {
          const va = vec[a];
          if (va === 0) continue;
          const row = a * c;
          for (let b = a; b < c; b++) g[row + b] += va * vec[b];
        }
      }
    }
  }
}

/** Mirrors the upper triangle of an accumulated Gram matrix into the lower one. */
function symmetrize(g: Float64Array, c: number): void {
  for (let a = 0; a < c; a++) for (let b = a + 1; b < c; b++) g[b * c + a] = g[a * c + b];
}

/** A copy of `model` whose graph also outputs `tensors` (those that are graph inputs are read from the feeds). */
export function withExtraOutputs(model: Model, tensors: string[]): Model {
  const copy = cloneModel(model);
  const g = copy.graph;
  const present = new Set(g.outputs.map((o) => o.name ?? ''));
  for (const t of tensors) {
    if (present.has(t) || g.isGraphInput(t)) continue;
    if (!g.producer(t)) throw new UserError(`cannot capture '${t}': no node produces it`);
    g.proto.output.push(onnx.ValueInfoProto.create({ name: t }));
    present.add(t);
  }
  return copy;
}

export interface CalibrationRunOptions {
  /** Samples per onnxruntime run. */
  batch: number;
  /** Progress-bar label. */
  label?: string;
  quiet?: boolean;
  /** Number of passes the caller makes in all (the bar counts batches over every pass), and which this is (0-based). */
  passes?: number;
  pass?: number;
}

/**
 * Runs `session` on every calibration batch in order, fetching `fetch` (tensors that are graph inputs are read
 * from the feeds by the caller), and hands each batch's outputs and feeds to `onBatch`; the outputs are
 * disposed after it returns. A run that fails is one UserError line (the inputs come from the user's data).
 */
export async function forEachCalibrationBatch(
  session: ort.InferenceSession,
  calib: CalibSet,
  fetch: string[],
  opts: CalibrationRunOptions,
  onBatch: (outs: Record<string, ort.Tensor>, feeds: Record<string, ort.Tensor>) => void,
): Promise<void> {
  const perPass = batchCount(calib, opts.batch);
  const passes = opts.passes ?? 1;
  const bar = progressBar(opts.label ?? 'calibrating', perPass * passes, { quiet: opts.quiet });
  try {
    let k = perPass * (opts.pass ?? 0);
    for (const feeds of calibBatches(calib, opts.batch)) {
      let outs: Record<string, ort.Tensor> = {};
      try {
        if (fetch.length) outs = await session.run(feeds, fetch, { logSeverityLevel: 4 });
      } catch (e) {
        // Input sizes come from the user's data (or the random defaults): a model that rejects them is a user error.
        const shapes = Object.entries(feeds).map(([name, t]) => `${name}[${t.dims.join(',')}]`).join(' ');
        throw new UserError(`calibration: onnxruntime cannot run the model on the ${calib.random ? 'random ' : ''}calibration inputs ${shapes} (${ortErrorSummary(e)}); give --calib data of sizes the model accepts`);
      }
      try {
        onBatch(outs, feeds);
      } finally {
        for (const name of fetch) outs[name]?.dispose?.();
      }
      bar.tick(++k);
    }
  } finally {
    bar.done();
  }
}

/** Runs the calibration set and returns streaming statistics for every request. */
export async function captureStats(model: Model, calib: CalibSet, requests: CaptureRequest[], opts: CaptureOptions = {}): Promise<ActivationStats> {
  const stats: ActivationStats = new Map();
  if (requests.length === 0) return stats;
  const gramMax = opts.gramMaxChannels ?? 256;
  const batch = opts.batch ?? 16;
  const uniqueTensors = [...new Set(requests.map((r) => r.tensor))];
  const copy = withExtraOutputs(model, uniqueTensors);
  // ORT's error log is silenced (fatal only): a run that fails is reported as one UserError line below.
  const session = await createSession(copy, { logSeverityLevel: 4 });
  const fetch = uniqueTensors.filter((t) => !copy.graph.isGraphInput(t));
  try {
    await forEachCalibrationBatch(session, calib, fetch, { batch, quiet: opts.quiet }, (outs, feeds) => {
      for (const r of requests) {
        const t = outs[r.tensor] ?? feeds[r.tensor];
        if (!t) throw new Error(`capture: no value for '${r.tensor}'`);
        const key = statKey(r.tensor, r.axis);
        let s = stats.get(key);
        if (!s) {
          const rank = t.dims.length;
          const axis = r.axis < 0 ? r.axis + rank : r.axis;
          if (axis < 0 || axis >= rank) throw new Error(`capture: axis ${r.axis} is out of range for '${r.tensor}' of rank ${rank}`);
          const c = t.dims[axis];
          s = { tensor: r.tensor, axis: r.axis, channels: c, count: 0, sum: new Float64Array(c), sumSq: new Float64Array(c) };
          if (r.gram && c <= gramMax) s.gram = new Float64Array(c * c);
          stats.set(key, s);
        }
        accumulate(s, toFloat(t), t.dims, gramMax);
      }
    });
  } finally {
    await session.release();
  }
  for (const s of stats.values()) if (s.gram) symmetrize(s.gram, s.channels);
  return stats;
}
