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
import { UserError } from '../ir/errors';
import { valueTypeOf } from '../ir/graph';
import { formatInputShapes, uniformInputShapes } from '../ir/input-shapes';
import type { Model } from '../ir/model';
import { inferShapes } from '../ir/shapes';

/**
 * Measures the shape of every main-graph tensor for given input shapes (by running the model); `run` throws an
 * Error whose message says why the model did not run. src/ort/shape-probe.ts implements it with onnxruntime;
 * analysis itself never runs a model.
 */
export interface ShapeProbe {
  run(inputShapes: Record<string, number[]>, intHigh: number): Promise<Map<string, number[]>>;
  release(): Promise<void>;
}

/** Opens a ShapeProbe for a model (e.g. `OrtShapeProbe.open`). */
export type ShapeProbeFactory = (model: Model) => Promise<ShapeProbe>;

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
  /**
   * Measures shapes static inference leaves unknown (mode 'auto' / 'ort'). Without one, such shapes stay
   * unknown in mode 'auto' (as in 'static') and mode 'ort' is an error.
   */
  probe?: ShapeProbeFactory;
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
  let probe: ShapeProbe | undefined;
  const failures: string[] = [];
  try {
    for (const inputShapes of candidates) {
      let shapes = new Map<string, number[]>();
      if (mode !== 'ort') shapes = staticShapes(model, inputShapes);
      for (const [name, t] of model.graph.initializers) shapes.set(name, t.dims);
      for (const [name, s] of Object.entries(inputShapes)) shapes.set(name, s);
      const missing = wantedNames(model).filter((n) => !shapes.has(n) && !model.graph.constant(n));
      if (mode === 'static' || (mode === 'auto' && (missing.length === 0 || !opts.probe))) return { shapes, source: 'static', inputShapes };
      if (!opts.probe) throw new UserError('shapes cannot be measured: no shape probe was given (analysis is static; pass one, e.g. OrtShapeProbe.open)');
      probe ??= await opts.probe(model);
      let measured: Map<string, number[]>;
      try {
        measured = await probe.run(inputShapes, opts.intHigh ?? 2);
      } catch (e) {
        failures.push(`${formatInputShapes(inputShapes)}: ${(e as Error).message}`);
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


