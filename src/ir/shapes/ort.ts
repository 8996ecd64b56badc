/**
 * Shapes measured by onnxruntime, for what static inference cannot tell (and to check it in tests).
 *
 * `inferShapesWithOrt(model, opts)` runs static inference, then runs the model once in onnxruntime with dummy
 * (seeded random) inputs — or the given feeds — with the wanted intermediate tensors added as graph outputs of a
 * *copy* of the model (re-decoded from the encoded bytes), and records their shapes. The caller's model is not
 * changed except `graph.types`: tensors whose static shape was not fully known get the measured shape, keeping
 * the static dims (e.g. symbolic 'batch') where they were known. Measured dims are concrete: they hold for the
 * dims of the inputs used (`dims`, default 1 for every symbol).
 */
import { DataType } from '../dtype';
import { loadModel } from '../io';
import type { Model } from '../model';
import { onnx } from '../proto';
import { encodeModelProto } from '../proto';
import { createSession, ort, randomInputs } from '../../runtime/ort';
import { type ShapeInferenceOptions, inferShapes } from './index';
import { isFullyKnown } from './sym';

export interface OrtShapeOptions extends ShapeInferenceOptions {
  /** Inputs to run with; default seeded random inputs (see randomInputs) with `dims`, `seed`, `intHigh`. */
  feeds?: Record<string, ort.Tensor>;
  seed?: number;
  /** Exclusive upper bound for random integer inputs (e.g. the vocabulary size); default 2. */
  intHigh?: number;
  /** Which tensors to measure: node outputs not fully known statically (default), all node outputs, or names. */
  tensors?: 'unknown' | 'all' | string[];
  /** Write measured shapes into graph.types for tensors not fully known statically (default true). */
  fill?: boolean;
}

export interface OrtShapeResult {
  /** Measured shape of every requested tensor. */
  shapes: Map<string, number[]>;
  /** Measured element type of every requested tensor. */
  dtypes: Map<string, number>;
  /** Tensors whose entry in graph.types was filled from the measurement. */
  filled: string[];
}

const ORT_TYPES: Record<string, number> = {
  float32: DataType.FLOAT, float16: DataType.FLOAT16, float64: DataType.DOUBLE, int8: DataType.INT8,
  uint8: DataType.UINT8, int16: DataType.INT16, uint16: DataType.UINT16, int32: DataType.INT32,
  uint32: DataType.UINT32, int64: DataType.INT64, uint64: DataType.UINT64, bool: DataType.BOOL, string: DataType.STRING,
};

export async function inferShapesWithOrt(model: Model, opts: OrtShapeOptions = {}): Promise<OrtShapeResult> {
  const g = model.graph;
  inferShapes(model, { inputShapes: opts.inputShapes });
  const nodeOutputs = g.nodes.flatMap((n) => n.outputs.filter((o) => o));
  const staticKnown = (name: string) => isFullyKnown(g.types.get(name)?.shape);
  let names: string[];
  if (Array.isArray(opts.tensors)) names = opts.tensors;
  else if (opts.tensors === 'all') names = nodeOutputs;
  else names = nodeOutputs.filter((n) => !staticKnown(n));
  const result: OrtShapeResult = { shapes: new Map(), dtypes: new Map(), filled: [] };
  if (names.length === 0) return result;

  const copy = loadModel(encodeModelProto(model.toProto()), { baseDir: model.baseDir });
  const existing = new Set(copy.graph.outputs.map((o) => o.name ?? ''));
  for (const name of names) if (!existing.has(name)) copy.graph.proto.output.push(onnx.ValueInfoProto.create({ name }));
  const session = await createSession(copy, { graphOptimizationLevel: 'disabled' });
  try {
    const feeds = opts.feeds ?? randomInputs(model, { dims: opts.dims, seed: opts.seed, intHigh: opts.intHigh });
    const out = await session.run(feeds, names);
    for (const name of names) {
      const t = out[name];
      if (!t) continue;
      result.shapes.set(name, t.dims.slice());
      result.dtypes.set(name, ORT_TYPES[t.type] ?? 0);
    }
  } finally {
    await session.release();
  }

  if (opts.fill !== false) {
    for (const [name, dims] of result.shapes) {
      const cur = g.types.get(name);
      if (isFullyKnown(cur?.shape)) continue;
      const s = cur?.shape && cur.shape.length === dims.length ? cur.shape.map((d, i) => d ?? dims[i]) : dims.slice();
      g.types.set(name, { dtype: cur?.dtype || result.dtypes.get(name) || 0, shape: s });
      result.filled.push(name);
    }
  }
  return result;
}
