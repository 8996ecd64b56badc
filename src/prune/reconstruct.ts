/**
 * Least-squares reconstruction (`--reconstruct ls`): after allocation chose the units to remove, every consumer of
 * a removed channel (src/score/consumers.ts) is refit in closed form from calibration statistics of its input:
 * with J its removed input columns and K the kept ones,
 *   [W_K, b] ← argmin ‖X·Wᵀ + b − (X_K·W_Kᵀ + b')‖² + δ‖W_K − W_K,dense‖²      (src/score/refit.ts refitAffine)
 * i.e. W_K ← W_K + W_J·H_JK·H_KK⁻¹ in the affine form (a constant-1 input appended to H = XᵀX, so the bias is refit
 * together; a consumer without a bias gets one), δ = 1 % of H's mean diagonal, dead columns (H_jj = 0) zeroed.
 * A consumer whose op takes no bias is refit without it (refitKept). The Grams are computed in onnxruntime
 * (src/ort/gram.ts); a Gram too large to hold is block-diagonal, and then only the bias is refit (a block-diagonal
 * H has no couplings between a removed channel and the kept ones: the kept weights would not change) — listed in
 * the report.
 *
 * Sequential (default; Týr's error propagation): consumers are visited in stages — a consumer's stage is the
 * number of consumers on the longest path above it — and each stage's statistics are captured from the model with
 * every earlier stage already refit and its removed inputs masked (zero), so that later layers repair the error
 * of earlier ones. `sequential: false` captures everything once from the dense model (one pass over the data).
 *
 * planReconstruction computes the changes without touching the model; applyReconstruction makes them on the dense
 * model (before the plan is applied, as bias compensation does): the refit weight values (the removed columns keep
 * their dense values; pruning slices them away and the masked reference zeroes them), then the bias changes
 * through applyCompensation. The same call replays a saved reconstruction (`--plan` with its sidecar file).
 */
import type { GroupAnalysis } from '../analysis/types';
import { resolveWeight, usedValues } from '../analysis/weight-chain';
import { cloneModel } from '../ir/clone';
import { UserError } from '../ir/errors';
import type { Graph } from '../ir/graph';
import type { Model } from '../ir/model';
import type { Node } from '../ir/node';
import type { CalibSet } from '../ort/calib';
import { captureGrams, type GramStats } from '../ort/gram';
import { maskPlan } from './mask';
import type { PlanGroups } from './plan';
import { applyCompensation, compensable, privateInitializer, type BiasAdjustment } from '../score/compensate';
import { channelColumns, findConsumers, removedChannels, unwritable, type Consumer, type DeclinedConsumer } from '../score/consumers';
import { refitAffine, refitKept } from '../score/refit';
import { memberUse, weightMembers } from '../score/tensor-math';

export type ReconstructMode = 'none' | 'bias' | 'ls';
export const RECONSTRUCT_MODES: readonly ReconstructMode[] = ['none', 'bias', 'ls'];

export interface ReconstructOptions {
  /** Capture each stage from the model with the earlier stages refit and masked (default true). */
  sequential?: boolean;
  /** Relative damping λ (default 0.01). */
  lambda?: number;
  /** Largest full Gram in bytes (default: src/ort/gram.ts). */
  maxGramBytes?: number;
  /** Samples per onnxruntime run (default automatic). */
  batch?: number;
  quiet?: boolean;
  log?: (message: string) => void;
  /** Sees each consumer's statistics as they are captured (the search keeps them to refit other removals). */
  onGram?: (consumer: Consumer, stats: GramStats) => void;
  /**
   * Also capture (for onGram) the consumers of `captureGroups` that lose nothing in `removed`, each from the model
   * its stage sees; they are not refit.
   */
  captureGroups?: string[];
}

/** New values of one consumer weight: the whole tensor as its op uses it (float32), written in its stored type. */
export interface WeightRefit {
  /** The consumer node (its first output, as plans name nodes) and the weight's input slot. */
  node: string;
  input: number;
  dims: number[];
  values: Float32Array;
}

export interface ReconstructReport {
  mode: 'ls';
  sequential: boolean;
  /** Consumers of removed channels found. */
  consumers: number;
  /** Consumers whose weights (and bias) were refit. */
  refit: number;
  /** Consumers whose Gram was block-diagonal: only their bias was refit. */
  biasOnly: { node: string; reason: string }[];
  /** Consumers left as they were, with the reason. */
  skipped: DeclinedConsumer[];
  /** Stages (calibration passes of Gram capture) and calibration samples. */
  stages: number;
  samples: number;
  /** Σ over refit consumers of the output error on the calibration data, relative to the dense output energy: removed columns zeroed vs refit. */
  errorZeroed: number;
  errorRefit: number;
  /** Consumers whose damping had to be raised (numerically singular H), with the λ used. */
  dampingRaised: { node: string; lambda: number }[];
  /** Dead input columns (zero on all calibration data) whose weights were zeroed. */
  deadColumns: number;
  /** Bias changes made (filled in by applyReconstruction). */
  biases?: { consumers: number; added: number; skipped: number };
}

export interface ReconstructionPlan {
  weights: WeightRefit[];
  biases: BiasAdjustment[];
  report: ReconstructReport;
}

/**
 * Stage of each node in `nodes`: the largest number of `nodes` on a path from the graph inputs to its inputs.
 * Nodes of one stage do not feed each other, so one calibration pass captures all their inputs.
 */
function stagesOf(graph: Graph, nodes: Set<Node>): Map<Node, number> {
  const level = new Map<string, number>();
  const stage = new Map<Node, number>();
  for (const n of graph.topoSort()) {
    let lin = 0;
    for (const i of n.inputs) if (i) lin = Math.max(lin, level.get(i) ?? 0);
    const mine = nodes.has(n);
    if (mine) stage.set(n, lin);
    for (const o of n.outputs) if (o) level.set(o, mine ? lin + 1 : lin);
  }
  return stage;
}

const memberKey = (m: { node: string; input: number }) => `${m.node}#${m.input}`;

/**
 * The model a stage's statistics are captured from: the dense model with the reconstruction so far applied and
 * the removed inputs of the consumers of earlier stages zeroed ('in' members listed in `done`; their producers
 * still compute the removed channels for the consumers not yet visited).
 */
function stageModel(dense: Model, analysis: GroupAnalysis, removed: PlanGroups, sofar: ReconstructionPlan, done: Set<string>): Model {
  const work = cloneModel(dense);
  const a = JSON.parse(JSON.stringify(analysis)) as GroupAnalysis;
  // Which members to mask is decided before the bias changes (which may rename a MatMul's output in `a`).
  const keep = new Set<object>();
  for (const g of a.groups) {
    if (!(removed[g.id] ?? []).length) continue;
    for (const m of weightMembers(g)) if (m.role === 'in' && done.has(memberKey(m))) keep.add(m);
  }
  applyReconstruction(work, a, sofar, 'reconstruction', { quiet: true });
  const groups = a.groups
    .map((g) => ({ ...g, members: g.members.filter((m) => keep.has(m)) }))
    .filter((g) => g.members.length > 0);
  const plan: PlanGroups = {};
  for (const g of groups) plan[g.id] = removed[g.id];
  maskPlan(work, { ...a, groups }, plan);
  return work;
}

/**
 * Computes the least-squares reconstruction of the consumers of `removed` (group id → unit indices), from
 * calibration data. The model and analysis are not modified.
 */
export async function planReconstruction(model: Model, analysis: GroupAnalysis, removed: PlanGroups, calib: CalibSet, opts: ReconstructOptions = {}): Promise<ReconstructionPlan> {
  const sequential = opts.sequential !== false;
  const lambda = opts.lambda ?? 0.01;
  const active = Object.keys(removed).filter((g) => removed[g].length > 0);
  const { consumers: all, declined } = findConsumers(model, analysis, active);
  const consumers = all.filter((c) => removedChannels(c, removed).length > 0);
  // Consumers captured for onGram only (nothing of theirs removed), staged like the others.
  const extra = opts.captureGroups && opts.onGram
    ? findConsumers(model, analysis, opts.captureGroups).consumers.filter((c) => !consumers.some((k) => k.key === c.key))
    : [];
  const report: ReconstructReport = {
    mode: 'ls', sequential, consumers: consumers.length + declined.length, refit: 0, biasOnly: [], skipped: declined.slice(),
    stages: 0, samples: calib.samples, errorZeroed: 0, errorRefit: 0, dampingRaised: [], deadColumns: 0,
  };
  const plan: ReconstructionPlan = { weights: [], biases: [], report };
  if (!consumers.length && !extra.length) return plan;
  // Every 'in' member of a removed group, declined consumers included, is staged by the op that reads it: later
  // stages see it masked.
  const graph = model.graph;
  const inMembers: { key: string; node: Node }[] = [];
  for (const g of analysis.groups) {
    if (!(removed[g.id] ?? []).length) continue;
    for (const m of weightMembers(g)) {
      if (m.role !== 'in') continue;
      const use = memberUse(graph, m);
      if (use && use.node.graph === graph) inMembers.push({ key: memberKey(m), node: use.node });
    }
  }
  const stage = stagesOf(graph, new Set([...inMembers.map((m) => m.node), ...extra.map((c) => c.node)]));
  const captured = [...consumers, ...extra];
  const levels = sequential ? [...new Set(captured.map((c) => stage.get(c.node) ?? 0))].sort((a, b) => a - b) : [0];
  const done = new Set<string>();
  let zeroEnergy = 0, refitEnergy = 0, reference = 0;
  for (const level of levels) {
    const batch = sequential ? captured.filter((c) => (stage.get(c.node) ?? 0) === level) : captured;
    if (sequential) for (const m of inMembers) if ((stage.get(m.node) ?? 0) < level) done.add(m.key);
    const source = sequential && done.size ? stageModel(model, analysis, removed, plan, done) : model;
    const grams: (GramStats | undefined)[] = await captureGrams(source, calib, batch.map((c) => c.request), { batch: opts.batch, quiet: opts.quiet, maxGramBytes: opts.maxGramBytes });
    report.stages++;
    for (let i = 0; i < batch.length; i++) {
      opts.onGram?.(batch[i], grams[i]!);
      if (extra.includes(batch[i])) { grams[i] = undefined; continue; }
      const r = refitConsumer(model, batch[i], grams[i]!, removed, lambda);
      grams[i] = undefined; // released as we go
      if ('skip' in r) {
        report.skipped.push({ node: batch[i].key, reason: r.skip });
        continue;
      }
      if (r.weight) plan.weights.push(r.weight);
      if (r.bias) plan.biases.push(r.bias);
      if (r.biasOnly) report.biasOnly.push({ node: batch[i].key, reason: r.biasOnly });
      else report.refit++;
      if (r.lambda > lambda) report.dampingRaised.push({ node: batch[i].key, lambda: r.lambda });
      report.deadColumns += r.dead;
      zeroEnergy += r.errorZeroed;
      refitEnergy += r.errorRefit;
      reference += r.reference;
    }
    opts.log?.(`reconstruct: stage ${report.stages}/${levels.length}: ${batch.length} consumer(s)`);
  }
  report.errorZeroed = reference > 0 ? zeroEnergy / reference : 0;
  report.errorRefit = reference > 0 ? refitEnergy / reference : 0;
  return plan;
}

export interface ConsumerRefit {
  /** Absent when the weights stay as they are (bias only). */
  weight?: WeightRefit;
  bias?: BiasAdjustment;
  biasOnly?: string;
  lambda: number;
  dead: number;
  errorZeroed: number;
  errorRefit: number;
  reference: number;
}

/** The refit of one consumer from its Gram (dense weights read from `model`). */
export function refitConsumer(model: Model, c: Consumer, s: GramStats, removed: PlanGroups, lambda: number, opts: { errors?: boolean; weights?: Float32Array } = {}): ConsumerRefit | { skip: string } {
  const W = opts.weights ?? usedValues(model.graph, c.chain.name);
  if (!W || W.length !== c.dOut * c.dIn) return { skip: 'weight values cannot be read' };
  if (s.dim !== c.dIn) return { skip: `Gram of ${s.dim} columns for a weight of ${c.dIn} inputs` };
  const J = channelColumns(c, removedChannels(c, removed));
  const affine = compensable(model.graph, c.node, c.input, c.dims.length);
  if (s.blockDiagonal) {
    // No couplings between removed and kept columns are known: the kept weights stay; the bias takes the mean.
    if (!affine) return { skip: `Gram block-diagonal (${s.reason}) and ${c.node.opType} takes no bias: nothing to refit` };
    // FLAP's compensation b += W_J·μ_J (the affine refit with the kept weights fixed) needs only Σx and N: no D×D
    // matrix, which is what a block-diagonal Gram avoids. The weights are left as they are.
    const delta = meanBiasDelta(c, W, s, J);
    return {
      bias: delta.some((d) => d !== 0) ? { node: c.nodeId, input: c.input, delta: Array.from(delta) } : undefined,
      biasOnly: `Gram block-diagonal: ${s.reason}`, lambda, dead: 0, errorZeroed: 0, errorRefit: 0, reference: 0,
    };
  }
  const r = affine
    ? refitAffine(W, undefined, c.dOut, c.dIn, s.gram, s.sum, s.count, J, { layout: c.layout, lambda })
    : refitKept(W, c.dOut, c.dIn, s.gram, J, { layout: c.layout, lambda });
  const bias = 'biasDelta' in r ? (r as { biasDelta: Float64Array }).biasDelta : undefined;
  // Error of zeroing the removed columns (plain pruning) vs the refit, on the calibration inputs.
  const err = opts.errors === false ? { errorZeroed: 0, errorRefit: 0, reference: 0 } : outputErrors(c, W, r.W, bias, s.gram, s.sum, s.count, J);
  return {
    weight: writeBack(c, W, r.W, J),
    bias: bias && bias.some((d) => d !== 0) ? { node: c.nodeId, input: c.input, delta: Array.from(bias) } : undefined,
    lambda: r.lambda, dead: r.deadColumns.length, ...err,
  };
}

/** FLAP's compensation of removing input columns J of consumer `c` (weights W as used): W_J·μ_J, μ = Σx / N. */
export function meanBiasDelta(c: Consumer, W: ArrayLike<number>, s: Pick<GramStats, 'sum' | 'count'>, J: Iterable<number>): Float64Array {
  const delta = new Float64Array(c.dOut);
  for (const j of J) {
    const mu = s.sum[j] / s.count;
    if (mu === 0) continue;
    for (let o = 0; o < c.dOut; o++) delta[o] += (c.layout === 'out-in' ? W[o * c.dIn + j] : W[j * c.dOut + o]) * mu;
  }
  return delta;
}

/** Multiply-adds spent on the error figures per consumer: above it, they are estimated on evenly spaced outputs. */
const ERROR_BUDGET = 1e7;

/**
 * Σ over calibration rows of the squared output error of plain pruning (removed columns zeroed) and of the refit
 * (bias change included), and the dense output energy ‖X·Wᵀ‖² — each ΔᵀHΔ per output row. A wide consumer
 * (d_out·d_in² over ERROR_BUDGET) is measured on evenly spaced output rows: the ratios are then estimates.
 */
function outputErrors(c: Consumer, W: Float32Array, Wr: Float64Array, bias: Float64Array | undefined, H: Float64Array, sum: Float64Array, N: number, J: number[]): { errorZeroed: number; errorRefit: number; reference: number } {
  const { dIn, dOut } = c;
  const rows = Math.max(1, Math.min(dOut, Math.floor(ERROR_BUDGET / (dIn * dIn))));
  const at = (m: ArrayLike<number>, o: number, j: number) => (c.layout === 'out-in' ? m[o * dIn + j] : m[j * dOut + o]);
  const removed = new Uint8Array(dIn);
  for (const j of J) removed[j] = 1;
  const quad = (v: Float64Array) => {
    let t = 0;
    for (let i = 0; i < dIn; i++) {
      if (v[i] === 0) continue;
      let r = 0;
      const off = i * dIn;
      for (let k = 0; k < dIn; k++) r += H[off + k] * v[k];
      t += v[i] * r;
    }
    return t;
  };
  let e0 = 0, e1 = 0, ref = 0;
  const w = new Float64Array(dIn), d0 = new Float64Array(dIn), d1 = new Float64Array(dIn);
  for (let r = 0; r < rows; r++) {
    const o = Math.floor((r * dOut) / rows);
    let dotSum = 0;
    for (let j = 0; j < dIn; j++) {
      w[j] = at(W, o, j);
      d0[j] = removed[j] ? w[j] : 0;
      d1[j] = w[j] - at(Wr, o, j);
      dotSum += d1[j] * sum[j];
    }
    ref += quad(w);
    e0 += quad(d0);
    const db = bias ? -bias[o] : 0;
    e1 += quad(d1) + 2 * db * dotSum + N * db * db;
  }
  return { errorZeroed: Math.max(0, e0), errorRefit: Math.max(0, e1), reference: ref };
}

/** The whole weight as used: refit values in the kept columns, the dense values in the removed ones. */
function writeBack(c: Consumer, dense: Float32Array, refit: Float64Array, J: number[]): WeightRefit {
  const values = Float32Array.from(refit);
  for (const j of J) {
    if (c.layout === 'out-in') for (let o = 0; o < c.dOut; o++) values[o * c.dIn + j] = dense[o * c.dIn + j];
    else for (let o = 0; o < c.dOut; o++) values[j * c.dOut + o] = dense[j * c.dOut + o];
  }
  return { node: c.nodeId, input: c.input, dims: c.dims.slice(), values };
}

/**
 * Writes one refit weight into the model: the stored tensor behind the node's input (through a Cast chain) gets
 * the values in its stored type; a tensor that is not a private initializer is copied first (members renamed).
 */
function writeWeight(model: Model, analysis: GroupAnalysis, w: WeightRefit, source: string): void {
  const graph = model.graph;
  const n = graph.producer(w.node);
  const where = `${source}: node '${w.node}' input ${w.input}`;
  if (!n || n.graph !== graph) throw new UserError(`${where}: no such node in the model`);
  const chain = resolveWeight(graph, n.inputs[w.input] ?? '');
  if (!chain) throw new UserError(`${where}: the weight is not a constant`);
  const t0 = chain.tensor;
  if (t0.dims.length !== w.dims.length || t0.dims.some((d, i) => d !== w.dims[i]) || w.values.length !== t0.size) {
    throw new UserError(`${where}: weight is [${t0.dims.join(',')}], the refit values are [${w.dims.join(',')}]`);
  }
  const bad = unwritable(chain);
  if (bad) throw new UserError(`${where}: ${bad}`);
  for (let i = 0; i < w.values.length; i++) if (!Number.isFinite(w.values[i])) throw new UserError(`${where}: refit value ${i} is not finite`);
  // A Constant-node or shared weight gets a private initializer for this consumer (members follow the new name).
  const name = privateInitializer(graph, analysis, n, w.node, w.input, chain, 'refit');
  graph.initializers.get(name)!.setData(w.values);
}

/**
 * Makes a reconstruction on the dense model and its analysis, in place: the weights, then the bias changes
 * (applyCompensation: new biases where a consumer had none). `source` names where the plan came from in errors
 * (a saved plan's values are user input: a value that does not fit the model is a UserError).
 */
export function applyReconstruction(model: Model, analysis: GroupAnalysis, r: Pick<ReconstructionPlan, 'weights' | 'biases'> & { report?: ReconstructReport }, source = 'reconstruction', opts: { quiet?: boolean; strict?: boolean } = {}): { consumers: number; added: number; skipped: number } {
  for (const w of r.weights) writeWeight(model, analysis, w, source);
  const c = applyCompensation(model, analysis, r.biases, source, { strict: opts.strict });
  const summary = { consumers: c.consumers, added: c.biasesAdded, skipped: c.skipped.length };
  if (r.report && !opts.quiet) r.report.biases = summary;
  return summary;
}
