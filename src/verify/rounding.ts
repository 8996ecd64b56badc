/**
 * Rounding budget of half-precision (float16 / bfloat16) computation, for verification.
 *
 * Verification compares the pruned model with the masked dense model. In float32 the two differ only by the
 * summation order of the same non-zero terms, which `rtol` (1e-4 of the output's scale) covers. A model that
 * computes in float16 rounds every intermediate result to float16 (onnxruntime's CPU kernels accumulate in
 * float32, or run the node in float32 between Casts, and round the result). Two nearly equal float32 results
 * can straddle a float16 rounding boundary, and then land on neighbouring float16 values: one spacing apart.
 * The spacing of float16 values around v is at most ε·|v| with ε = 2⁻¹⁰ (machine epsilon: 10 mantissa bits;
 * bfloat16: 2⁻⁷), so at most ε · max|tensor| — ε times the tensor's scale. A 1-ulp difference of a float16
 * output is ~1e-3 of its scale, ten times the float32 tolerance, so fp16 models would fail verification by
 * pure rounding (measured: 6e-4 of the scale on a 3-conv float16 network with a feature-map output).
 *
 * Budget: every half-precision rounding stage on a path from the pruned computation to an output can add one
 * spacing, ε times the scale of the tensor it rounds; the budget assumes, as the float32 tolerance does, that
 * layers carry a difference relative to their scale with a gain of about 1 (normalized networks do). So an
 * output's tolerance is max(rtol, Σ ε over the rounding stages on its longest such path), relative to its scale:
 *  - stages start at the first node the plan touches (a member of a pruned group, or a node downstream of one):
 *    before it, both models compute bit-identical values;
 *  - a stage is a node whose output is float16/bfloat16 and that computes new values (arithmetic, including a
 *    Cast that narrows to half); nodes that only move or select values (Reshape, Transpose, Slice, Concat, Relu,
 *    MaxPool, a widening Cast, ...) round nothing;
 *  - a node with subgraphs (If/Loop/Scan) counts every rounding node inside them (an upper bound of its chain).
 * A float32 model has no half stages: its tolerance stays rtol.
 */
import { DataType } from '../ir/dtype';
import type { Graph } from '../ir/graph';
import type { Model } from '../ir/model';
import type { Node } from '../ir/node';

/** Spacing of half-precision floats relative to the value (machine epsilon), by element type. */
export const HALF_EPSILON: Partial<Record<number, number>> = {
  [DataType.FLOAT16]: 2 ** -10,
  [DataType.BFLOAT16]: 2 ** -7,
};

/**
 * Ops whose outputs are input values moved, selected or signed unchanged (or computed exactly, like max(0, x)):
 * they introduce no rounding of their own.
 */
const EXACT_OPS = new Set([
  'Identity', 'Reshape', 'Flatten', 'Squeeze', 'Unsqueeze', 'Transpose', 'Concat', 'Split', 'Slice', 'Gather',
  'GatherElements', 'GatherND', 'ScatterND', 'ScatterElements', 'Expand', 'Tile', 'Pad', 'DepthToSpace', 'SpaceToDepth',
  'Relu', 'MaxPool', 'GlobalMaxPool', 'ReduceMax', 'ReduceMin', 'Max', 'Min', 'Abs', 'Neg', 'Where', 'Clip',
  'Dropout', 'Shape', 'Size', 'Constant', 'ConstantOfShape', 'Sign', 'TopK', 'ArgMax', 'ArgMin', 'Compress',
  'ReverseSequence', 'Trilu', 'SequenceAt', 'SplitToSequence', 'ConcatFromSequence',
]);

/** Ops whose (first) output is never a float, whatever their inputs are. */
const NON_FLOAT_OPS = new Set([
  'Shape', 'Size', 'NonZero', 'ArgMax', 'ArgMin', 'Equal', 'Less', 'LessOrEqual', 'Greater', 'GreaterOrEqual',
  'Not', 'And', 'Or', 'Xor', 'IsNaN', 'IsInf', 'QuantizeLinear', 'DynamicQuantizeLinear',
]);

/** Element type of `n`'s first output: declared/inferred when known, else from the op and its inputs. */
function outputDtype(graph: Graph, n: Node, dtypes: Map<string, number>): number {
  const known = graph.types.get(n.outputs[0] ?? '')?.dtype;
  if (known) return known;
  if (NON_FLOAT_OPS.has(n.opType)) return DataType.INT64;
  if (n.opType === 'Cast') return n.attrInt('to', 0) ?? 0;
  if (n.opType === 'CastLike') return dtypes.get(n.inputs[1] ?? '') ?? 0;
  if (n.opType === 'Constant') return n.attr('value')?.t?.dataType ?? 0;
  const ins = n.inputs.filter((i) => i).map((i) => dtypes.get(i) ?? graph.types.get(i)?.dtype ?? 0);
  return ins.find((d) => HALF_EPSILON[d] !== undefined || d === DataType.FLOAT || d === DataType.DOUBLE) ?? ins.find((d) => d) ?? 0;
}

/** The rounding one node adds: ε of its half-precision output type, 0 for exact ops and wider types. */
function stageEpsilon(n: Node, out: number, inputDtype: number): number {
  const eps = HALF_EPSILON[out];
  if (eps === undefined) return 0;
  if (n.opType === 'Cast' || n.opType === 'CastLike') {
    // Exact when the input is no finer than the output (float16 → float16, bfloat16 → float16); a narrowing
    // Cast (float32 → float16, float16 → bfloat16) rounds.
    const inEps = HALF_EPSILON[inputDtype];
    return inEps !== undefined && inEps >= eps ? 0 : eps;
  }
  return EXACT_OPS.has(n.opType) ? 0 : eps;
}

/** Σ ε over every rounding node inside `n`'s subgraphs (nested ones too). */
function subgraphEpsilon(n: Node): number {
  let total = 0;
  const stack: Graph[] = [...n.subgraphs];
  while (stack.length) {
    const g = stack.pop()!;
    const dtypes = new Map<string, number>();
    for (const m of g.topoSort()) {
      const out = outputDtype(g, m, dtypes);
      for (const o of m.outputs) if (o) dtypes.set(o, out);
      total += stageEpsilon(m, out, dtypes.get(m.inputs[0] ?? '') ?? g.types.get(m.inputs[0] ?? '')?.dtype ?? 0);
      stack.push(...m.subgraphs);
    }
  }
  return total;
}

export interface RoundingBudget {
  /** The tolerance the half-precision stages allow, relative to the tensor's scale (Σ ε). */
  rtol: number;
  /** Number of half-precision rounding stages on the longest path from the pruned computation. */
  stages: number;
}

/**
 * The rounding budget of every tensor of `model`'s main graph downstream of a `touched` node (nodes named by
 * their first output or their name: the members of the pruned groups). Tensors with no half-precision stage
 * on such a path are absent.
 */
export function roundingBudgets(model: Model, touched: Set<string>): Map<string, RoundingBudget> {
  const graph = model.graph;
  const dtypes = new Map<string, number>();
  const reach = new Map<string, RoundingBudget>();
  for (const n of graph.topoSort()) {
    const out = outputDtype(graph, n, dtypes);
    for (const o of n.outputs) if (o) dtypes.set(o, out);
    let from: RoundingBudget | undefined;
    for (const i of n.inputs) {
      const b = i ? reach.get(i) : undefined;
      if (b && (!from || b.rtol > from.rtol)) from = b;
    }
    if (!from && !touched.has(n.outputs[0] ?? '') && !(n.name && touched.has(n.name))) continue;
    const inputDtype = dtypes.get(n.inputs[0] ?? '') ?? graph.types.get(n.inputs[0] ?? '')?.dtype ?? 0;
    const own = stageEpsilon(n, out, inputDtype) + subgraphEpsilon(n);
    const b: RoundingBudget = { rtol: (from?.rtol ?? 0) + own, stages: (from?.stages ?? 0) + (own > 0 ? 1 : 0) };
    for (const o of n.outputs) if (o) reach.set(o, b);
  }
  for (const [k, b] of reach) if (b.stages === 0) reach.delete(k);
  return reach;
}
