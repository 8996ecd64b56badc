/**
 * Rounding tolerance of half-precision (float16 / bfloat16) computation, for verification.
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
 * Stage bound (roundingBudgets): every half-precision rounding stage on a path from the pruned computation to a
 * tensor can add one spacing, so Σ ε over the stages on its longest such path bounds the difference when layers
 * carry a difference relative to their scale with a gain of about 1:
 *  - stages start at the first node the plan touches (a member of a pruned group, or a node downstream of one):
 *    before it, both models compute bit-identical values;
 *  - a stage is a node whose output is float16/bfloat16 and that computes new values (arithmetic, including a
 *    Cast that narrows to half); nodes that only move or select values (Reshape, Transpose, Slice, Concat, Relu,
 *    MaxPool, a widening Cast, ...) round nothing;
 *  - a node with subgraphs (If/Loop/Scan) counts every rounding node inside them (an upper bound of its chain).
 * That bound grows linearly with depth (2–6 % of the scale on float16 versions of real networks, tens of percent
 * for a deep LLM): wide enough to hide a wrong prune. It is only the ceiling.
 *
 * Measured noise floor (noiseModel, halfTolerance): the tolerance used is what rounding noise of this model
 * actually amounts to, measured on the verification inputs. A copy of the masked model has every weight of the
 * pruned groups moved by one unit in the last place (float16/bfloat16), or by 2⁻¹¹ of its value (float32), in a
 * seeded random direction that does not depend on the inputs; zeros (the masked units) stay zero. Each perturbed
 * sum then lands on a neighbouring rounding step about as often as the pruned model's reordered sums do at the
 * touched nodes — more often, since every weight moves, while reordering perturbs a float32 sum by ~1e-7 — and
 * the difference propagates through the rest of the network with the same half-precision roundings as the real
 * difference does. Chosen over a second, re-ordered masked model because it needs no knowledge of how the
 * kernels order their sums, and over a fixed cap alone because a deep network's real noise is well below the
 * stage bound (it adds up like a random walk, not linearly), so a fixed cap would either fail deep models or be
 * loose on shallow ones. The noise floor max|noisy − masked| / scale is measured per compared tensor; the
 * tolerance is NOISE_SAFETY times that, at least one rounding step (ε: one step can always straddle), at most
 * the stage bound and HALF_RTOL_CAP (1 % of the scale, about ten float16 steps). A model whose own rounding
 * noise exceeds the cap fails verification with the measured floor in the message (--tolerance raises rtol).
 * A float32 model has no half stages: its tolerance stays rtol and no perturbed model is run.
 */
import type { GroupAnalysis } from '../analysis/types';
import { cloneModel } from '../ir/clone';
import { DataType } from '../ir/dtype';
import type { Graph } from '../ir/graph';
import type { Model } from '../ir/model';
import type { Node } from '../ir/node';
import type { ConstTensor } from '../ir/tensor';
import { groupScope } from '../prune/apply';
import type { PlanGroups } from '../prune/plan';
import { rng } from '../util/rng';
import type { HalfRounding } from './compare';

/** The largest tolerance half-precision rounding may claim, relative to the scale (about ten float16 steps). */
export const HALF_RTOL_CAP = 1e-2;
/**
 * The tolerance is this many times the measured noise floor. Measured on float16 versions of ../shared/models
 * llama_s and gpt2_s pruned at ratios 0.3 and 0.6, seeds 0–5: the pruned model's real difference was at most
 * 0.5 × the floor (floors 4–9e-4 of the scale); resnet50_b's was 0 (floor 1–2e-3). 4 leaves a margin of 8.
 */
export const NOISE_SAFETY = 4;
/** Seed of the perturbation's directions: fixed, so that the floor depends on the model and inputs only. */
const NOISE_SEED = 0x6e6f6973;

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

/** Σ ε over every rounding node inside `n`'s subgraphs (nested ones too), and the largest single ε. */
function subgraphEpsilon(n: Node): { sum: number; max: number } {
  let sum = 0;
  let max = 0;
  const stack: Graph[] = [...n.subgraphs];
  while (stack.length) {
    const g = stack.pop()!;
    const dtypes = new Map<string, number>();
    for (const m of g.topoSort()) {
      const out = outputDtype(g, m, dtypes);
      for (const o of m.outputs) if (o) dtypes.set(o, out);
      const e = stageEpsilon(m, out, dtypes.get(m.inputs[0] ?? '') ?? g.types.get(m.inputs[0] ?? '')?.dtype ?? 0);
      sum += e;
      max = Math.max(max, e);
      stack.push(...m.subgraphs);
    }
  }
  return { sum, max };
}

export interface RoundingBudget {
  /** The stage bound: Σ ε over the half-precision stages, relative to the tensor's scale. */
  rtol: number;
  /** Number of half-precision rounding stages on the longest path from the pruned computation. */
  stages: number;
  /** The largest ε among those stages (one rounding step). */
  epsilon: number;
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
    const stage = stageEpsilon(n, out, inputDtype);
    const inner = subgraphEpsilon(n);
    const own = stage + inner.sum;
    const b: RoundingBudget = {
      rtol: (from?.rtol ?? 0) + own,
      stages: (from?.stages ?? 0) + (own > 0 ? 1 : 0),
      epsilon: Math.max(from?.epsilon ?? 0, stage, inner.max),
    };
    for (const o of n.outputs) if (o) reach.set(o, b);
  }
  for (const [k, b] of reach) if (b.stages === 0) reach.delete(k);
  return reach;
}

/**
 * The tolerance of a tensor with stage bound `b` and measured noise floor `noiseFloor` (undefined when it could
 * not be measured: the ceiling is used): NOISE_SAFETY × floor, at least ε, at most min(Σ ε, HALF_RTOL_CAP).
 */
export function halfTolerance(b: RoundingBudget, noiseFloor: number | undefined): HalfRounding {
  const ceiling = Math.min(b.rtol, HALF_RTOL_CAP);
  // An infinite floor (a masked scale of 0 with a noisy difference) asks for more than any ceiling: not reported.
  const measured = noiseFloor !== undefined && Number.isFinite(noiseFloor);
  const wanted = noiseFloor === undefined ? Infinity : Math.max(b.epsilon, NOISE_SAFETY * noiseFloor);
  const base = { stages: b.stages, bound: b.rtol, ...(measured ? { noiseFloor } : {}) };
  if (wanted <= ceiling) return { ...base, rtol: wanted, limitedBy: NOISE_SAFETY * (noiseFloor ?? 0) >= b.epsilon ? 'noise' : 'epsilon' };
  return { ...base, rtol: ceiling, limitedBy: b.rtol <= HALF_RTOL_CAP ? 'stages' : 'cap' };
}

/** Bits of a float16 (exponent 5 bits at 10) or bfloat16 (8 bits at 7) value one step away from zero or towards it. */
function stepBits(bits: number, mantissaBits: number, up: boolean): number {
  const mag = bits & 0x7fff;
  const maxExp = mantissaBits === 10 ? 0x1f : 0xff;
  if (mag === 0 || mag >> mantissaBits === maxExp) return bits; // zero (a masked unit) and inf/NaN stay
  const next = up ? mag + 1 : mag - 1;
  if (next >> mantissaBits === maxExp) return bits; // would overflow to infinity
  return (bits & 0x8000) | next;
}

/** Moves every non-zero element of `t` one rounding step (or 2⁻¹¹ of it for float32/64) in a direction from `next`. */
function perturb(t: ConstTensor, next: () => number): void {
  const d = t.data();
  const eps = 2 ** -11;
  if (t.dtype === DataType.FLOAT16 || t.dtype === DataType.BFLOAT16) {
    const m = t.dtype === DataType.FLOAT16 ? 10 : 7;
    const h = d as Uint16Array;
    for (let i = 0; i < h.length; i++) h[i] = stepBits(h[i], m, next() < 0.5);
  } else if (t.dtype === DataType.FLOAT || t.dtype === DataType.DOUBLE) {
    const f = d as Float32Array | Float64Array;
    for (let i = 0; i < f.length; i++) if (f[i] !== 0) f[i] *= next() < 0.5 ? 1 + eps : 1 - eps;
  } else {
    return; // integer codes (quantized weights): not perturbed
  }
  t.setData(d);
}

/**
 * A copy of the masked model `masked` in which every float weight of the groups `planGroups` removes units from is
 * perturbed by one rounding step in a seeded direction (see the header): running it next to `masked` measures the
 * model's rounding noise floor. Each tensor once, in group and member order; `masked` is not modified.
 */
export function noiseModel(masked: Model, analysis: GroupAnalysis, planGroups: PlanGroups): Model {
  const copy = cloneModel(masked);
  const next = rng(NOISE_SEED);
  const done = new Set<ConstTensor>();
  for (const group of analysis.groups) {
    if (!planGroups[group.id]?.length) continue;
    const scope = groupScope(copy.graph, group);
    for (const m of group.members) {
      if (m.kind !== 'weight') continue;
      // The tensor the member's node reads now (masking may have given it a private copy), else the member's.
      const read = copy.graph.memberNode(m.node)?.inputs[m.input];
      const t = (read ? scope.constant(scope.resolveIdentity(read)) : undefined) ?? scope.constant(scope.resolveIdentity(m.tensor));
      if (!t || done.has(t)) continue;
      done.add(t);
      perturb(t, next);
    }
  }
  return copy;
}
