/**
 * Shapes measured by onnxruntime, for what static inference cannot tell (and to check it in tests).
 *
 * `inferShapesWithOrt(model, opts)` runs static inference, then runs the model once in onnxruntime with dummy
 * (seeded random) inputs — or the given feeds — with the wanted intermediate tensors added as graph outputs of a
 * *copy* of the model (re-decoded from the encoded bytes), and records their shapes. The caller's model is not
 * changed except `graph.types`: tensors whose static shape was not fully known get the measured shape, keeping
 * the static dims (e.g. symbolic 'batch') where they were known. Measured dims are concrete: they hold for the
 * dims of the inputs used (`dims`, default 1 for every symbol).
 *
 * With `subgraphs: true`, tensors inside If branches can be measured too: the copy's main-graph If nodes are
 * replaced by the branch that onnxruntime takes on these inputs (conditions measured in a run, repeatedly for
 * nested Ifs; see ./inline-if), so the taken branches' tensors become main-graph tensors. Tensors of branches not
 * taken, and of Loop/Scan bodies, get no measurement.
 */
import { DataType } from '../../src/ir/dtype';
import { loadModel } from '../../src/ir/io';
import type { Model } from '../../src/ir/model';
import { createSession, ort, randomInputs } from '../../src/ort/session';
import type { Graph } from '../../src/ir/graph';
import { decodeModelProto, encodeModelProto, onnx } from '../../src/ir/proto';
import { type ShapeInferenceOptions, inferShapes } from '../../src/ir/shapes/index';
import { conditionValue, inlineIfs, type IfChoice } from '../../src/verify/inline-if';
import { isFullyKnown } from '../../src/ir/shapes/sym';

export interface OrtShapeOptions extends ShapeInferenceOptions {
  /** Inputs to run with; default seeded random inputs (see randomInputs) with `dims`, `seed`, `intHigh`. */
  feeds?: Record<string, ort.Tensor>;
  seed?: number;
  /** Exclusive upper bound for random integer inputs (e.g. the vocabulary size); default 2. */
  intHigh?: number;
  /**
   * Which tensors to measure: node outputs not fully known statically (default), all node outputs, or names.
   * Node outputs of subgraphs are included when `subgraphs` is set. Requested tensors that no run computes (in a
   * branch not taken, in a Loop/Scan body, graph inputs, initializers, unknown names) are absent from the result.
   */
  tensors?: 'unknown' | 'all' | string[];
  /** Also measure tensors of the If branches that run (default false: main-graph tensors only). */
  subgraphs?: boolean;
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

/** Nesting limit for inlining If branches (each level costs one onnxruntime run). */
const MAX_IF_DEPTH = 32;

export async function inferShapesWithOrt(model: Model, opts: OrtShapeOptions = {}): Promise<OrtShapeResult> {
  const g = model.graph;
  inferShapes(model, { inputShapes: opts.inputShapes, inputValues: opts.inputValues });
  const graphs = opts.subgraphs ? g.allGraphs() : [g];
  const owner = new Map<string, Graph>();
  for (const sg of graphs) for (const n of sg.nodes) for (const o of n.outputs) if (o && !owner.has(o)) owner.set(o, sg);
  const nodeOutputs = [...owner.keys()];
  const staticKnown = (name: string) => isFullyKnown(owner.get(name)?.types.get(name)?.shape ?? g.types.get(name)?.shape);
  let names: string[];
  if (Array.isArray(opts.tensors)) names = opts.tensors;
  else if (opts.tensors === 'all') names = nodeOutputs;
  else names = nodeOutputs.filter((n) => !staticKnown(n));
  const result: OrtShapeResult = { shapes: new Map(), dtypes: new Map(), filled: [] };
  if (names.length === 0) return result;

  const feeds = opts.feeds ?? randomInputs(model, { dims: opts.dims, seed: opts.seed, intHigh: opts.intHigh });
  let proto = decodeCopy(model);
  if (opts.subgraphs) proto = await inlineTakenBranches(model, proto, feeds);
  const present = new Set<string>();
  for (const n of proto.graph?.node ?? []) for (const o of n.output ?? []) if (o) present.add(o);
  const wanted = names.filter((n) => present.has(n));
  if (wanted.length === 0) return result;
  const copy = loadModel(encodeModelProto(proto), { baseDir: model.baseDir });
  const existing = new Set(copy.graph.outputs.map((o) => o.name ?? ''));
  for (const name of wanted) if (!existing.has(name)) copy.graph.proto.output.push(onnx.ValueInfoProto.create({ name }));
  const session = await createSession(copy, { graphOptimizationLevel: 'disabled' });
  try {
    const out = await session.run(feeds, wanted);
    for (const name of wanted) {
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
      const types = (owner.get(name) ?? g).types;
      const cur = types.get(name);
      if (isFullyKnown(cur?.shape)) continue;
      const s = cur?.shape && cur.shape.length === dims.length ? cur.shape.map((d, i) => d ?? dims[i]) : dims.slice();
      types.set(name, { dtype: cur?.dtype || result.dtypes.get(name) || 0, shape: s });
      result.filled.push(name);
    }
  }
  return result;
}

/** An independent copy of the model's proto (external data resolved relative to the model's folder later). */
function decodeCopy(model: Model): onnx.ModelProto {
  return decodeModelProto(encodeModelProto(model.toProto()));
}

/**
 * Replaces main-graph If nodes by the branches onnxruntime takes on `feeds`, level by level (the product's
 * inliner, src/verify/inline-if.ts; an If nested in an inlined branch becomes a main-graph If for the next level).
 */
async function inlineTakenBranches(model: Model, proto: onnx.ModelProto, feeds: Record<string, ort.Tensor>): Promise<onnx.ModelProto> {
  let cur = loadModel(encodeModelProto(proto), { baseDir: model.baseDir });
  for (let depth = 0; depth < MAX_IF_DEPTH; depth++) {
    const ifs = cur.graph.nodes.filter((n) => n.opType === 'If' && n.domain === '');
    if (ifs.length === 0) break;
    const conds = [...new Set(ifs.map((n) => n.inputs[0]))];
    const toRun = conds.filter((c) => !feeds[c] && !cur.graph.resolveConstant(c));
    let run: Record<string, ort.Tensor> = {};
    if (toRun.length) {
      const m = loadModel(encodeModelProto(cur.toProto()), { baseDir: model.baseDir });
      const outs = new Set(m.graph.outputs.map((o) => o.name ?? ''));
      for (const c of toRun) if (!outs.has(c)) m.graph.proto.output.push(onnx.ValueInfoProto.create({ name: c }));
      const session = await createSession(m, { graphOptimizationLevel: 'disabled' });
      try {
        run = await session.run(feeds, toRun);
      } finally {
        await session.release();
      }
    }
    const choices: IfChoice[] = [];
    for (const n of ifs) {
      const then = conditionValue(cur, n.inputs[0], run, feeds);
      if (then !== undefined) choices.push({ ifOutput: n.outputs[0], then });
    }
    const next = choices.length ? inlineIfs(cur, choices) : undefined;
    if (!next) break;
    cur = next;
  }
  return decodeCopy(cur);
}

