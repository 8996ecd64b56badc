/**
 * Concrete tensor shapes for group analysis. Analysis needs the size of every axis it maps labels through
 * (Reshape factorization, broadcasting, Slice ranges), for one concrete choice of the dynamic dims.
 *
 * Sources, in order: (1) static shape inference (`inferShapes` in src/ir/shapes) with concrete input shapes
 * (the model's own `graph.types` are restored afterwards), when it knows every needed shape; (2) otherwise
 * onnxruntime: the model is run once on seeded random inputs with every intermediate tensor added as an
 * output, and the measured shapes fill the gaps (`source: 'ort'` / `'mixed'` in the result).
 *
 * Dynamic dims get distinct small values (batch-like first dim 3, the others 5, 7, ...) so that a dynamic
 * dim is unlikely to coincide with a channel count when Reshape factorizations are matched.
 */
import { DataType, ortTypeName } from '../ir/dtype';
import { UserError } from '../ir/errors';
import { valueTypeOf } from '../ir/graph';
import type { Model } from '../ir/model';
import { encodeModelProto, onnx } from '../ir/proto';
import { inferShapes } from '../ir/shapes';
import { createSession, modelBytes, ort, rng } from '../runtime/ort';

export interface ShapeSourceOptions {
  /** Values for named symbolic input dims (e.g. { batch: 2, seq: 16 }). */
  dims?: Record<string, number>;
  /** 'static' never runs onnxruntime (unknown shapes stay unknown); 'ort' always measures. Default 'auto'. */
  mode?: 'auto' | 'static' | 'ort';
  /** Upper bound for random integer inputs (token ids). Default 2. */
  intHigh?: number;
}

export interface ShapeTable {
  shapes: Map<string, number[]>;
  source: 'static' | 'ort' | 'mixed';
  /** Concrete input shapes used. */
  inputShapes: Record<string, number[]>;
}

const FALLBACK_DIMS = [3, 5, 7, 11, 13];

/** Concrete input shapes: named dims from opts, else 3 for the first symbolic dim, then 5, 7, ... */
export function concreteInputShapes(model: Model, opts: ShapeSourceOptions = {}): Record<string, number[]> {
  const named = new Map<string, number>(Object.entries(opts.dims ?? {}));
  let next = 0;
  const out: Record<string, number[]> = {};
  for (const vi of model.graph.realInputs) {
    const t = valueTypeOf(vi);
    if (!t?.shape) throw new UserError(`input '${vi.name}' has no shape; cannot analyze groups`);
    out[vi.name ?? ''] = t.shape.map((d) => {
      if (typeof d === 'number') return d;
      const key = d ?? `?${next}`;
      if (!named.has(key)) named.set(key, FALLBACK_DIMS[Math.min(next++, FALLBACK_DIMS.length - 1)]);
      return named.get(key)!;
    });
  }
  return out;
}

function knownShapes(model: Model): Map<string, number[]> {
  const out = new Map<string, number[]>();
  for (const [name, vt] of model.graph.types) {
    if (vt.shape && vt.shape.every((d) => typeof d === 'number')) out.set(name, vt.shape as number[]);
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

export async function concreteShapes(model: Model, opts: ShapeSourceOptions = {}): Promise<ShapeTable> {
  const inputShapes = concreteInputShapes(model, opts);
  const mode = opts.mode ?? 'auto';
  let shapes = new Map<string, number[]>();
  if (mode !== 'ort') {
    // Static inference rewrites graph.types with the concrete shapes: keep a snapshot and restore it.
    const graphs = model.graph.allGraphs();
    const saved = graphs.map((g) => new Map(g.types));
    try {
      inferShapes(model, { inputShapes });
      shapes = knownShapes(model);
    } catch {
      // whatever static inference could not do is measured below
    } finally {
      graphs.forEach((g, i) => {
        g.types.clear();
        for (const [k, v] of saved[i]) g.types.set(k, v);
      });
    }
  }
  for (const [name, t] of model.graph.initializers) shapes.set(name, t.dims);
  for (const [name, s] of Object.entries(inputShapes)) shapes.set(name, s);
  const missing = wantedNames(model).filter((n) => !shapes.has(n) && !model.graph.constant(n));
  if (mode === 'static' || (mode === 'auto' && missing.length === 0)) return { shapes, source: 'static', inputShapes };
  const measured = await measureShapesWithOrt(model, inputShapes, opts.intHigh ?? 2);
  for (const [name, s] of measured) if (!shapes.has(name)) shapes.set(name, s);
  return { shapes, source: mode === 'ort' ? 'ort' : 'mixed', inputShapes };
}

/** Runs the model once with every main-graph tensor as an output and returns the measured shapes. */
export async function measureShapesWithOrt(model: Model, inputShapes: Record<string, number[]>, intHigh = 2): Promise<Map<string, number[]>> {
  const proto = onnx.ModelProto.decode(modelBytes(model));
  const g = proto.graph!;
  const outputs = new Set(g.output.map((o) => o.name ?? ''));
  const names: string[] = [];
  for (const n of g.node) {
    for (const o of n.output) {
      if (!o || outputs.has(o)) continue;
      outputs.add(o);
      names.push(o);
      g.output.push(onnx.ValueInfoProto.create({ name: o }));
    }
  }
  for (const o of g.output) if (o.name && !names.includes(o.name)) names.push(o.name);
  const session = await createSession(encodeModelProto(proto));
  const next = rng(1);
  const feeds: Record<string, ort.Tensor> = {};
  for (const vi of model.graph.realInputs) {
    const t = valueTypeOf(vi)!;
    const dims = inputShapes[vi.name ?? ''];
    const n = dims.reduce((a, b) => a * b, 1);
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
  let result: Record<string, ort.Tensor>;
  try {
    result = await session.run(feeds);
  } catch (e) {
    throw new UserError(`onnxruntime cannot run the model to measure shapes: ${(e as Error).message.split('\n')[0]}`);
  } finally {
    await session.release();
  }
  const out = new Map<string, number[]>();
  for (const [name, t] of Object.entries(result)) out.set(name, t.dims.map(Number));
  return out;
}
