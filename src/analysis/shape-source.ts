/**
 * Concrete tensor shapes for group analysis. Analysis needs the size of every axis it maps labels through
 * (Reshape factorization, broadcasting, Slice ranges), for one concrete choice of the dynamic dims.
 *
 * Sources, in order: (1) static shape inference (`inferShapes` in src/ir/shapes) with concrete input shapes
 * (the model's own `graph.types` are restored afterwards), when it knows every needed shape; (2) otherwise
 * onnxruntime: the model is run once on seeded random inputs with every intermediate tensor added as an
 * output, and the measured shapes fill the gaps (`source: 'ort'` / `'mixed'` in the result).
 *
 * Probe sizes. Dynamic dims first get distinct small values (the first one 3, the others 5, 7, ...) so that a
 * dynamic dim is unlikely to coincide with a channel count when Reshape factorizations are matched. Many real
 * models do not run on such tiny inputs (a reflect Pad needs more samples than its padding, an STFT needs a
 * whole window, a U-Net needs sides divisible by 32). When onnxruntime cannot run the model on them, the probe
 * is retried — with the same session — on larger sizes, and static inference is redone for the sizes that
 * run, so that every shape in the table belongs to the same input sizes:
 *   1. the distinct small sizes (3, 5, 7, ...);
 *   2. the sizes the user gave for verification (`batch` / `seq`, from --verify-batch / --verify-seq), if any;
 *   3. the distinct sizes with every dim but the first × 32, then × 128 (still distinct; multiples of 32);
 *   4. uniform sizes like verification's (named first dims = batch 2, every other symbolic dim — unnamed ones
 *      included, so that unnamed batch dims of different inputs agree — = 64, 256, 1024).
 * Candidates whose inputs would exceed PROBE_MAX_ELEMENTS elements are skipped. When none runs, a UserError
 * says which sizes were tried and which option sets them.
 */
import { numel } from '../ir/dims';
import { DataType, ortTypeName } from '../ir/dtype';
import { UserError } from '../ir/errors';
import { valueTypeOf } from '../ir/graph';
import type { Model } from '../ir/model';
import { inferShapes } from '../ir/shapes';
import { createSession, ort, rng } from '../runtime/ort';
import { runtimeModel } from '../ir/io';
import { ortErrorSummary } from '../runtime/ort-errors';

export interface ShapeSourceOptions {
  /** Values for named symbolic input dims (e.g. { batch: 2, seq: 16 }). */
  dims?: Record<string, number>;
  /** 'static' never runs onnxruntime (unknown shapes stay unknown); 'ort' always measures. Default 'auto'. */
  mode?: 'auto' | 'static' | 'ort';
  /** Upper bound for random integer inputs (token ids). Default 2. */
  intHigh?: number;
  /** Batch size the user chose for verification (--verify-batch): tried when the small probe does not run. */
  batch?: number;
  /** Other symbolic dims the user chose for verification (--verify-seq): tried when the small probe does not run. */
  seq?: number;
}

export interface ShapeTable {
  shapes: Map<string, number[]>;
  source: 'static' | 'ort' | 'mixed';
  /** Concrete input shapes used. */
  inputShapes: Record<string, number[]>;
}

const FALLBACK_DIMS = [3, 5, 7, 11, 13];
/** Probe candidates with more input elements than this (all inputs together) are not tried. */
export const PROBE_MAX_ELEMENTS = 1 << 22;
const SCALES = [32, 128];
const UNIFORM_SIZES = [64, 256, 1024];

/** Concrete input shapes: named dims from opts, else 3 for the first symbolic dim, then 5, 7, ... (× `scale`). */
export function concreteInputShapes(model: Model, opts: ShapeSourceOptions = {}, scale = 1): Record<string, number[]> {
  const named = new Map<string, number>(Object.entries(opts.dims ?? {}));
  let next = 0;
  const out: Record<string, number[]> = {};
  for (const vi of model.graph.realInputs) {
    const t = valueTypeOf(vi);
    if (!t?.shape) throw new UserError(`input '${vi.name}' has no shape; cannot analyze groups`);
    out[vi.name ?? ''] = t.shape.map((d) => {
      if (typeof d === 'number') return d;
      const key = d ?? `?${next}`;
      if (!named.has(key)) {
        const k = Math.min(next++, FALLBACK_DIMS.length - 1);
        named.set(key, FALLBACK_DIMS[k] * (k === 0 ? 1 : scale));
      }
      return named.get(key)!;
    });
  }
  return out;
}

/**
 * Input shapes with every symbolic dim set the way verification sets it: a named dim first seen on axis 0 →
 * `batch`, other named dims → `seq`, unnamed dims → `seq` (so that unnamed batch dims of several inputs agree).
 * Named dims in `dims` keep their value.
 */
export function uniformInputShapes(model: Model, batch: number, seq: number, dims: Record<string, number> = {}): Record<string, number[]> {
  const named = new Map<string, number>(Object.entries(dims));
  const out: Record<string, number[]> = {};
  for (const vi of model.graph.realInputs) {
    const t = valueTypeOf(vi);
    if (!t?.shape) throw new UserError(`input '${vi.name}' has no shape`);
    out[vi.name ?? ''] = t.shape.map((d, axis) => {
      if (typeof d === 'number') return d;
      if (typeof d !== 'string' || d === '') return seq;
      if (!named.has(d)) named.set(d, axis === 0 ? batch : seq);
      return named.get(d)!;
    });
  }
  return out;
}

/** `name[a,b], name2[c]` for messages. */
export function formatInputShapes(shapes: Record<string, number[]>): string {
  return Object.entries(shapes).map(([k, v]) => `${k}[${v.join(',')}]`).join(' ');
}

function elements(shapes: Record<string, number[]>): number {
  return Object.values(shapes).reduce((acc, s) => acc + numel(s), 0);
}

/** The probe sizes to try, in order, without duplicates or oversized ones (the first is always kept). */
export function probeCandidates(model: Model, opts: ShapeSourceOptions = {}): Record<string, number[]>[] {
  const list = [concreteInputShapes(model, opts)];
  if (opts.batch !== undefined || opts.seq !== undefined) list.push(uniformInputShapes(model, opts.batch ?? 2, opts.seq ?? 8, opts.dims));
  for (const k of SCALES) list.push(concreteInputShapes(model, opts, k));
  for (const v of UNIFORM_SIZES) list.push(uniformInputShapes(model, opts.batch ?? 2, v, opts.dims));
  const seen = new Set<string>();
  return list.filter((c, i) => {
    const key = JSON.stringify(c);
    if (seen.has(key)) return false;
    seen.add(key);
    return i === 0 || elements(c) <= PROBE_MAX_ELEMENTS;
  });
}

/** Fully numeric shapes known after static inference, of the main graph and of every subgraph (names are unique model-wide). */
function knownShapes(model: Model): Map<string, number[]> {
  const out = new Map<string, number[]>();
  for (const g of model.graph.allGraphs()) {
    for (const [name, vt] of g.types) {
      if (out.has(name)) continue;
      if (vt.shape && vt.shape.every((d) => typeof d === 'number')) out.set(name, vt.shape as number[]);
    }
  }
  return out;
}

/** Names whose shapes analysis may ask for: every node output and input of the main graph. */
function wantedNames(model: Model): string[] {
  const g = model.graph;
  const names = new Set<string>();
  for (const n of g.nodes) {
    for (const i of n.inputs) if (i) names.add(i);
    for (const o of n.outputs) if (o) names.add(o);
  }
  return [...names];
}

/** Static inference for `inputShapes`, leaving the model's own graph.types as they were. */
function staticShapes(model: Model, inputShapes: Record<string, number[]>): Map<string, number[]> {
  // Static inference rewrites graph.types with the concrete shapes: keep a snapshot and restore it.
  const graphs = model.graph.allGraphs();
  const saved = graphs.map((g) => new Map(g.types));
  try {
    inferShapes(model, { inputShapes });
    return knownShapes(model);
  } catch {
    return new Map(); // whatever static inference could not do is measured
  } finally {
    graphs.forEach((g, i) => {
      g.types.clear();
      for (const [k, v] of saved[i]) g.types.set(k, v);
    });
  }
}

export async function concreteShapes(model: Model, opts: ShapeSourceOptions = {}): Promise<ShapeTable> {
  const mode = opts.mode ?? 'auto';
  const candidates = probeCandidates(model, opts);
  let probe: OrtProbe | undefined;
  const failures: string[] = [];
  try {
    for (const inputShapes of candidates) {
      let shapes = new Map<string, number[]>();
      if (mode !== 'ort') shapes = staticShapes(model, inputShapes);
      for (const [name, t] of model.graph.initializers) shapes.set(name, t.dims);
      for (const [name, s] of Object.entries(inputShapes)) shapes.set(name, s);
      const missing = wantedNames(model).filter((n) => !shapes.has(n) && !model.graph.constant(n));
      if (mode === 'static' || (mode === 'auto' && missing.length === 0)) return { shapes, source: 'static', inputShapes };
      probe ??= await OrtProbe.open(model);
      let measured: Map<string, number[]>;
      try {
        measured = await probe.run(inputShapes, opts.intHigh ?? 2);
      } catch (e) {
        failures.push(`${formatInputShapes(inputShapes)}: ${ortErrorSummary(e)}`);
        continue;
      }
      for (const [name, s] of measured) if (!shapes.has(name)) shapes.set(name, s);
      return { shapes, source: mode === 'ort' ? 'ort' : 'mixed', inputShapes };
    }
  } finally {
    await probe?.release();
  }
  const last = failures[failures.length - 1] ?? '';
  throw new UserError(
    `onnxruntime cannot run the model to measure shapes on any of ${failures.length} probe input sizes (largest tried: ${last}); ` +
    'give sizes the model accepts with --verify-seq N / --verify-batch N (prune) or --dim NAME=N (groups)',
  );
}


/** Seeded random feeds of the given shapes (floats in [-1, 1), ints in [0, intHigh)). */
function probeFeeds(model: Model, inputShapes: Record<string, number[]>, intHigh: number): Record<string, ort.Tensor> {
  const next = rng(1);
  const feeds: Record<string, ort.Tensor> = {};
  for (const vi of model.graph.realInputs) {
    const t = valueTypeOf(vi)!;
    const dims = inputShapes[vi.name ?? ''];
    const n = numel(dims);
    let data: ort.Tensor.DataType;
    switch (t.dtype) {
      case DataType.FLOAT: data = Float32Array.from({ length: n }, () => next() * 2 - 1); break;
      case DataType.DOUBLE: data = Float64Array.from({ length: n }, () => next() * 2 - 1); break;
      case DataType.INT64: data = BigInt64Array.from({ length: n }, () => BigInt(Math.floor(next() * intHigh))); break;
      case DataType.INT32: data = Int32Array.from({ length: n }, () => Math.floor(next() * intHigh)); break;
      case DataType.BOOL: data = Uint8Array.from({ length: n }, () => (next() < 0.5 ? 1 : 0)); break;
      case DataType.FLOAT16: data = new Uint16Array(n).fill(0x3c00); break;
      default: throw new UserError(`cannot make an input of type ${ortTypeName(t.dtype)} for '${vi.name}'`);
    }
    feeds[vi.name ?? ''] = new ort.Tensor(ortTypeName(t.dtype) as 'float32', data as Float32Array, dims);
  }
  return feeds;
}

/** One ORT session of the model with every main-graph tensor as an output, run on as many probe sizes as needed. */
class OrtProbe {
  private constructor(private readonly model: Model, private readonly session: ort.InferenceSession) {}

  static async open(model: Model): Promise<OrtProbe> {
    const outputs = new Set(model.graph.outputs.map((o) => o.name ?? ''));
    const extra: string[] = [];
    for (const n of model.graph.nodes) {
      for (const o of n.outputs) {
        if (!o || outputs.has(o)) continue;
        outputs.add(o);
        extra.push(o);
      }
    }
    // ORT's own error log is silenced (fatal only): a failed probe is retried or reported in one line.
    return new OrtProbe(model, await createSession(runtimeModel(model, { extraOutputs: extra }), { logSeverityLevel: 4 }));
  }

  /** Measured shapes of every main-graph tensor for these input shapes; throws ORT's error when the run fails. */
  async run(inputShapes: Record<string, number[]>, intHigh: number): Promise<Map<string, number[]>> {
    const result = await this.session.run(probeFeeds(this.model, inputShapes, intHigh), { logSeverityLevel: 4 });
    const out = new Map<string, number[]>();
    for (const [name, t] of Object.entries(result)) {
      out.set(name, t.dims.map(Number));
      t.dispose?.();
    }
    return out;
  }

  release(): Promise<void> {
    return this.session.release();
  }
}

/** Runs the model once with every main-graph tensor as an output and returns the measured shapes. */
export async function measureShapesWithOrt(model: Model, inputShapes: Record<string, number[]>, intHigh = 2): Promise<Map<string, number[]>> {
  const probe = await OrtProbe.open(model);
  try {
    return await probe.run(inputShapes, intHigh);
  } catch (e) {
    throw new UserError(`onnxruntime cannot run the model to measure shapes on ${formatInputShapes(inputShapes)}: ${ortErrorSummary(e)}`);
  } finally {
    await probe.release();
  }
}
