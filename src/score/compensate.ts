/**
 * FLAP bias compensation: when input channels J of a linear consumer y = W x + b are removed, their expected
 * contribution Σ_{j∈J} W_{:,j} E[x_j] is folded into the bias, so the pruned layer's output keeps its mean.
 *
 * CONTRACT (prune pass, issue 4): call AFTER allocation and BEFORE the plan is applied or the masked reference
 * is built, on the dense model:
 *     compensateBias(model, analysis, removed, stats)
 * (= planCompensation, which only computes the bias changes, then applyCompensation, which makes them; a saved
 * plan carries the changes so `--plan` re-applies them without calibration).
 * `stats` must hold the input statistics of the consumers (the fluctuation pass stores them in
 * ctx.artifacts.activationStats). It edits the model in place (bias values; a new zero-initialized bias
 * where a Conv/Gemm had none; an Add node after a bias-less MatMul) and the analysis in place: a created bias
 * becomes a member of the group that prunes the consumer's outputs, so apply() slices it with them.
 * Shared or Constant-node biases are given a private initializer first (and members renamed to it).
 * Weights stored behind a Cast (float16 storage) are read as the values their op computes with; a Cast-stored
 * bias is rewritten in its stored type. Quantized consumers (weight behind a DequantizeLinear) are skipped.
 * Convolution borders (padding) are not modelled: E[x_j] is the mean over all positions.
 */
import { strides } from '../ir/dims';
import type { Group, GroupAnalysis, WeightMember } from '../analysis/types';
import { DataType, byteLength, dtypeName } from '../ir/dtype';
import { UserError } from '../ir/errors';
import type { Graph } from '../ir/graph';
import type { Model } from '../ir/model';
import type { Node } from '../ir/node';
import { specOf } from '../ir/ops';
import { FLOAT32_STORABLE, makeTensorProto } from '../ir/tensor';
import { channelMean, statKey, type ActivationStats } from '../ort/capture';
import { inputSite } from './sites';
import { memberUse, WeightCache, weightMembers } from './tensor-math';
import { type WeightChain, resolveWeight } from '../analysis/weight-chain';

/**
 * One consumer's bias change from bias compensation (src/score/compensate.ts): the consumer node (its id as in
 * group members), the input slot of its weight, and Δ per output channel (before Gemm's alpha/beta scaling).
 * Re-applying the same adjustments to the same model gives the same bytes.
 */
export interface BiasAdjustment {
  node: string;
  input: number;
  delta: number[];
}

export interface CompensationReport {
  /** Consumers whose bias was adjusted. */
  consumers: number;
  biasesAdded: number;
  skipped: { node: string; reason: string }[];
  /** Consumers (among `skipped`) whose compensated bias would overflow its element type; absent when none. */
  overflowed?: string[];
}

interface Plan {
  node: Node;
  nodeId: string;
  weightInput: number;
  /** Output-channel axis of the weight. */
  outAxis: number;
  outChannels: number;
  /** Element type the weight is used in (a created bias gets the same): its stored type, or its chain's output type. */
  dtype: number;
  rank: number;
  delta: Float64Array;
}

/** Δ[o] = Σ_{j∈J} mean_j · Σ_{other axes} W[o, j, …] for a weight with output axis `outAxis` and input axis `inAxis`. */
function contribution(data: Float32Array, dims: number[], outAxis: number, inAxis: number, removed: Set<number>, mean: Float64Array): Float64Array {
  const delta = new Float64Array(dims[outAxis]);
  const stride = strides(dims);
  const nIn = dims[inAxis], nOut = dims[outAxis], sIn = stride[inAxis], sOut = stride[outAxis];
  const gone = new Uint8Array(nIn);
  for (const j of removed) if (j >= 0 && j < nIn) gone[j] = 1;
  // The flat index's positions on both axes advance with counters (no division, no Set lookup per element);
  // terms are added in the same order as an element-by-element pass, so Δ is bit-identical to it.
  let j = 0, o = 0, cj = 0, co = 0;
  for (let i = 0; i < data.length; i++) {
    if (gone[j]) delta[o] += data[i] * mean[j];
    if (++cj === sIn) { cj = 0; if (++j === nIn) j = 0; }
    if (++co === sOut) { co = 0; if (++o === nOut) o = 0; }
  }
  return delta;
}

/**
 * The output-channel axis of the weight at `input` (rank `rank`) when the op spec says compensation can fold its
 * removed inputs into a per-output-channel bias (src/ir/ops `weighted.compensation`), else undefined.
 */
function outAxisOf(n: Node, input: number, rank: number): number | undefined {
  const w = specOf(n)?.weighted;
  const c = w?.compensation;
  if (!c || c.input !== input || (c.rank !== undefined && c.rank !== rank)) return undefined;
  return w.outAxis?.(n, input, rank);
}

/**
 * Whether a bias change of the consumer `n` (weight at `input`, of rank `rank`) can be made: the op spec folds
 * it into a per-output-channel bias (existing and writable, or one can be added) with a numeric scale.
 */
export function compensable(graph: Graph, n: Node, input: number, rank: number): boolean {
  if (outAxisOf(n, input, rank) === undefined) return false;
  const w = specOf(n)?.weighted;
  if (typeof (w?.compensation?.biasScale?.(n) ?? 1) !== 'number') return false;
  if (w?.bias !== undefined && n.inputs[w.bias]) {
    const wb = writableBias(graph, n.inputs[w.bias]);
    if ('reason' in wb) return false;
    const size = wb.chain.tensor.size;
    const out = outAxisOf(n, input, rank)!;
    const dims = resolveWeight(graph, n.inputs[input] ?? '')?.tensor.dims;
    if (size !== 1 && (!dims || size !== dims[out])) return false;
  }
  return true;
}

function addMemberForNewBias(graph: Graph, analysis: GroupAnalysis, p: Plan, tensor: string, node: string, input: number, role: 'out' | 'param'): void {
  const usedBy = (m: WeightMember) => {
    if (m.node === p.nodeId && m.input === p.weightInput) return true;
    const use = memberUse(graph, m);
    return !!use && use.node === p.node && use.input === p.weightInput;
  };
  for (const g of analysis.groups) {
    const src = weightMembers(g).find((m) => m.role === 'out' && (m.axis < 0 ? m.axis + p.rank : m.axis) === p.outAxis && usedBy(m));
    if (!src) continue;
    const member: WeightMember = { kind: 'weight', tensor, node, input, axis: 0, role, indices: src.indices.map((x) => x.slice()) };
    g.members.push(member);
    g.paramsPerUnit += src.indices[0]?.length ?? 0;
  }
}

/** Largest finite value by element type, where float32 arithmetic can exceed it (float16: 65504). */
const MAX_FINITE: Partial<Record<number, number>> = { [DataType.FLOAT16]: 65504 };

/**
 * Why `values` (computed in float32) cannot be stored as `dtype`, if so: a value past float16's range, or one that
 * is not finite (past float32's range, or a NaN delta), would be written as ±inf or NaN.
 */
function unrepresentable(dtype: number, values: ArrayLike<number>): string | undefined {
  const max = MAX_FINITE[dtype] ?? Infinity;
  for (let i = 0; i < values.length; i++) {
    if (Number.isNaN(values[i])) return `compensated bias of channel ${i} is NaN`;
    if (!Number.isFinite(values[i])) return `compensated bias of channel ${i} overflows ${dtypeName(dtype)}`;
    if (Math.abs(values[i]) > max) return `compensated bias ${values[i].toPrecision(3)} overflows ${dtypeName(dtype)}`;
  }
  return undefined;
}

/** A new initializer of element type `dtype` (float16/double converted from float32). */
function newInitializer(graph: Graph, name: string, dtype: number, dims: number[], values: Float32Array): void {
  const t = graph.setInitializer(makeTensorProto(name, dtype, dims, new Uint8Array(byteLength(dtype, values.length))));
  t.setData(values);
}

/**
 * A bias that compensation can rewrite: a constant, or a float constant behind a Cast chain (float16 storage:
 * the new values are stored in the stored type); the reason when it cannot.
 */
function writableBias(graph: Graph, name: string): { chain: WeightChain } | { reason: string } {
  const chain = resolveWeight(graph, name);
  if (!chain) return { reason: 'bias is not a constant' };
  if (chain.ops.some((o) => o.opType === 'DequantizeLinear')) return { reason: 'bias is quantized (DequantizeLinear): not compensated' };
  if (chain.ops.length && !FLOAT32_STORABLE.has(chain.tensor.dtype)) return { reason: `bias stored as ${dtypeName(chain.tensor.dtype)} behind a Cast: not compensated` };
  return { chain };
}

/**
 * A private, writable initializer for the constant at `n.inputs[slot]` (a bias, or a weight that reconstruction
 * rewrites), renaming members that pointed at the old one: the constant itself when it is a private initializer,
 * else a copy named `<name>_<suffix>`. For a constant behind a Cast chain, the stored tensor read by the chain's
 * first op is made private.
 */
export function privateInitializer(graph: Graph, analysis: GroupAnalysis, n: Node, nodeId: string, slot: number, chain: WeightChain, suffix: string): string {
  const reader = chain.ops.length ? chain.ops[0] : n;
  const readerId = chain.ops.length ? reader.outputs[0] : nodeId;
  const readerSlot = chain.ops.length ? 0 : slot;
  const src = chain.name;
  const t = chain.tensor;
  if (graph.initializers.get(src) === t && !graph.isSharedWeight(src)) return src;
  const name = graph.uniqueName(`${src}_${suffix}`);
  newInitializer(graph, name, t.dtype, t.dims, t.toFloat32());
  reader.inputs[readerSlot] = name;
  graph.invalidate();
  for (const g of analysis.groups) for (const m of weightMembers(g)) if (m.node === readerId && m.input === readerSlot) m.tensor = name;
  return name;
}

function applyToBias(graph: Graph, analysis: GroupAnalysis, p: Plan, report: CompensationReport, overflow: (p: Plan, reason: string) => void): void {
  const n = p.node;
  const w = specOf(n)?.weighted;
  const s = w?.compensation?.biasScale?.(n) ?? 1;
  if (typeof s !== 'number') {
    report.skipped.push({ node: p.nodeId, reason: s.skip });
    return;
  }
  const scale = s;
  if (w?.bias !== undefined) {
    const slot = w.bias;
    if (!n.inputs[slot]) {
      const values = Float32Array.from(p.delta, (d) => d * scale);
      const bad = unrepresentable(p.dtype, values);
      if (bad) {
        overflow(p, bad);
        return;
      }
      const name = graph.uniqueName(`${p.nodeId}_bias`);
      newInitializer(graph, name, p.dtype, [p.outChannels], values);
      while (n.inputs.length < slot) n.inputs.push('');
      n.inputs[slot] = name;
      graph.invalidate();
      addMemberForNewBias(graph, analysis, p, name, p.nodeId, slot, 'out');
      report.biasesAdded++;
      report.consumers++;
      return;
    }
    const wb = writableBias(graph, n.inputs[slot]);
    if ('reason' in wb) {
      report.skipped.push({ node: p.nodeId, reason: wb.reason });
      return;
    }
    const t0 = wb.chain.tensor;
    const size = t0.size;
    if (size !== p.outChannels && size !== 1) {
      report.skipped.push({ node: p.nodeId, reason: `bias of shape [${t0.dims.join(',')}] is not per output channel` });
      return;
    }
    const prev = t0.toFloat32();
    const next = Float32Array.from(p.delta, (d, o) => prev[size === 1 ? 0 : o] + d * scale);
    const bad = unrepresentable(t0.dtype, next);
    if (bad) {
      overflow(p, bad);
      return;
    }
    const name = privateInitializer(graph, analysis, n, p.nodeId, slot, wb.chain, 'compensated');
    const t = graph.initializers.get(name)!;
    if (size === 1 && p.outChannels !== 1) {
      // A broadcast scalar bias becomes a per-channel one; it now belongs to the output group too.
      t.setData(next, [p.outChannels]);
      graph.types.set(name, { dtype: t.dtype, shape: [p.outChannels] });
      const reader = wb.chain.ops.length ? { id: wb.chain.ops[0].outputs[0], slot: 0 } : { id: p.nodeId, slot };
      addMemberForNewBias(graph, analysis, p, name, reader.id, reader.slot, 'out');
    } else {
      t.setData(next);
    }
    report.consumers++;
    return;
  }
  // No bias input (MatMul): fold into a following Add of a per-channel constant, else insert one.
  const out = n.outputs[0];
  const users = graph.consumers(out);
  if (users.length === 1 && users[0].opType === 'Add' && !graph.isGraphOutput(out)) {
    const add = users[0];
    const slot = add.inputs[0] === out ? 1 : 0;
    const wb = writableBias(graph, add.inputs[slot]);
    const c = 'chain' in wb ? wb.chain.tensor : undefined;
    if ('chain' in wb && c && c.size === p.outChannels && c.dims[c.dims.length - 1] === p.outChannels) {
      const next = Float32Array.from(c.toFloat32(), (v, o) => v + p.delta[o]);
      const bad = unrepresentable(c.dtype, next);
      if (bad) {
        overflow(p, bad);
        return;
      }
      const name = privateInitializer(graph, analysis, add, add.outputs[0], slot, wb.chain, 'compensated');
      graph.initializers.get(name)!.setData(next);
      report.consumers++;
      return;
    }
  }
  // The MatMul now writes a new tensor and the Add takes over its output name, so consumers and graph outputs
  // stay as they are; members that named the MatMul by its old first output follow it.
  const values = Float32Array.from(p.delta);
  const bad = unrepresentable(p.dtype, values);
  if (bad) {
    overflow(p, bad);
    return;
  }
  const mmOut = graph.uniqueName(`${out}_matmul`);
  const biasName = graph.uniqueName(`${out}_bias`);
  newInitializer(graph, biasName, p.dtype, [p.outChannels], values);
  n.outputs[0] = mmOut;
  graph.addNode({ opType: 'Add', name: graph.uniqueName(`${n.name || out}_compensation`), input: [mmOut, biasName], output: [out] });
  graph.sortNodes();
  graph.invalidate();
  for (const g of analysis.groups) for (const m of g.members) if (m.node === p.nodeId) m.node = mmOut;
  p.nodeId = mmOut;
  addMemberForNewBias(graph, analysis, p, biasName, out, 1, 'param');
  report.biasesAdded++;
  report.consumers++;
}

/** The bias changes that removing `removed` calls for, from the consumers' input means in `stats` (the model is not touched). */
export function planCompensation(model: Model, analysis: GroupAnalysis, removed: Record<string, number[]>, stats: ActivationStats): { adjustments: BiasAdjustment[]; skipped: CompensationReport['skipped'] } {
  const graph = model.graph;
  const weights = new WeightCache(model);
  const skipped: CompensationReport['skipped'] = [];
  const deltas = new Map<string, { node: string; input: number; delta: Float64Array }>();
  const byId = new Map<string, Group>(analysis.groups.map((g) => [g.id, g]));
  for (const [gid, units] of Object.entries(removed)) {
    const g = byId.get(gid);
    if (!g || units.length === 0) continue;
    for (const m of weightMembers(g)) {
      if (m.role !== 'in') continue;
      const w = weights.get(m.tensor);
      // The op that uses the weight (after its Cast / DequantizeLinear chain, if any) and its input slot.
      const use = memberUse(graph, m);
      if (!w || !use) continue;
      const n = use.node;
      const nodeId = n.outputs[0];
      if (n.graph !== graph) {
        skipped.push({ node: nodeId, reason: 'inside a control-flow subgraph: bias not compensated' });
        continue;
      }
      const site = inputSite(graph, m, w.dims.length);
      const st = site && stats.get(statKey(site.tensor, site.axis));
      const inAxis = m.axis < 0 ? m.axis + w.dims.length : m.axis;
      const outAxis = outAxisOf(n, use.input, w.dims.length);
      if (!st || outAxis === undefined || st.channels !== w.dims[inAxis]) {
        skipped.push({ node: nodeId, reason: !st ? 'no input statistics' : `${n.opType} input ${use.input} is not compensated` });
        continue;
      }
      // A quantized consumer (its weight behind a DequantizeLinear) keeps its quantized form: a float bias added
      // to it would have to be re-quantized, and would break onnxruntime's QDQ fusion into integer kernels.
      if (resolveWeight(graph, n.inputs[use.input] ?? '')?.ops.some((o) => o.opType === 'DequantizeLinear')) {
        skipped.push({ node: nodeId, reason: 'quantized weight (DequantizeLinear): bias not compensated' });
        continue;
      }
      const J = new Set<number>();
      for (const u of units) for (const j of m.indices[u]) J.add(j);
      const delta = contribution(w.data, w.dims, outAxis, inAxis, J, channelMean(st));
      const key = `${nodeId}#${use.input}`;
      const prev = deltas.get(key);
      if (prev) for (let o = 0; o < delta.length; o++) prev.delta[o] += delta[o];
      else deltas.set(key, { node: nodeId, input: use.input, delta });
    }
  }
  // A consumer whose removed inputs all have mean 0 (e.g. units that never fire on the calibration data) needs no change.
  const adjustments = [...deltas.values()].filter((d) => d.delta.some((x) => x !== 0));
  return { adjustments: adjustments.map((d) => ({ node: d.node, input: d.input, delta: Array.from(d.delta) })), skipped };
}

/**
 * Applies bias adjustments (from planCompensation or a saved plan) to the dense model and its analysis, in
 * place. A saved adjustment that does not fit the model (unknown node, no compensable weight, wrong length)
 * is a UserError naming `source`. A bias that would overflow its element type (or a delta that is not finite) is
 * skipped (listed in `skipped` and `overflowed`), or, with `strict` (adjustments read from a file), a UserError.
 */
export function applyCompensation(model: Model, analysis: GroupAnalysis, adjustments: BiasAdjustment[], source = 'compensation', opts: { strict?: boolean } = {}): CompensationReport {
  const graph = model.graph;
  const report: CompensationReport = { consumers: 0, biasesAdded: 0, skipped: [] };
  const overflow = (p: Plan, reason: string) => {
    if (opts.strict) throw new UserError(`${source}: node '${p.nodeId}': ${reason}`);
    report.skipped.push({ node: p.nodeId, reason });
    (report.overflowed ??= []).push(p.nodeId);
  };
  const plans: Plan[] = adjustments.map((a) => {
    const found = graph.memberNode(a.node);
    // Consumers inside control-flow subgraphs are never compensated (planCompensation skips them).
    const n = found?.graph === graph ? found : undefined;
    // A weight behind a Cast / DequantizeLinear chain: the op computes in the chain's output type.
    const w = n && resolveWeight(graph, n.inputs[a.input] ?? '');
    const t = w?.tensor;
    const outAxis = n && t ? outAxisOf(n, a.input, t.dims.length) : undefined;
    if (!n || !w || !t || outAxis === undefined) throw new UserError(`${source}: node '${a.node}' has no compensable weight at input ${a.input}`);
    if (a.delta.length !== t.dims[outAxis]) throw new UserError(`${source}: node '${a.node}': ${a.delta.length} bias deltas for ${t.dims[outAxis]} output channels`);
    const bad = opts.strict ? a.delta.findIndex((d) => !Number.isFinite(d)) : -1;
    if (bad >= 0) throw new UserError(`${source}: node '${a.node}': bias delta ${a.delta[bad]} (channel ${bad}) is not a finite number`);
    return { node: n, nodeId: a.node, weightInput: a.input, outAxis, outChannels: t.dims[outAxis], dtype: w.dtype, rank: t.dims.length, delta: Float64Array.from(a.delta) };
  });
  for (const p of plans) applyToBias(graph, analysis, p, report, overflow);
  return report;
}

export function compensateBias(model: Model, analysis: GroupAnalysis, removed: Record<string, number[]>, stats: ActivationStats): CompensationReport & { adjustments: BiasAdjustment[] } {
  const { adjustments, skipped } = planCompensation(model, analysis, removed, stats);
  const report = applyCompensation(model, analysis, adjustments);
  return { ...report, skipped: [...skipped, ...report.skipped], adjustments };
}
