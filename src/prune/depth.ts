/**
 * Depth pruning (`--depth-only`): whole residual branches ("blocks", src/analysis/blocks.ts) are removed.
 *
 * Score (BlockPruner-style): the mean KL divergence (normalized MSE for non-distribution outputs; the search's
 * fitness, src/prune/search-fitness.ts) of the model with that one block masked — its exit weight zeroed, which is
 * what removing it computes — from the dense model, on the calibration data. One onnxruntime session serves every
 * block: the exit weights are graph inputs, fed dense or zero.
 * Allocation: blocks in ascending score order (ties by graph order) are removed while the removed fraction of
 * params (or MACs) stays within the ratio (blocks are coarse: the achieved fraction may fall short, and is
 * reported); a block that would overshoot, or overlaps one already chosen (nested branches), is skipped.
 * Physical removal (`removeBlock`): the residual Add reads the branch's constant remainder (its bias, Gemm's
 * beta·C, a Conv bias reshaped to broadcast) instead of the branch, or becomes an Identity of the skip; dead nodes
 * and weights go.
 */
import { blockGroups } from '../analysis/blocks';
import type { Block, Group, GroupAnalysis } from '../analysis/types';
import type { Achieved, BudgetTarget } from '../allocate/types';
import { countMacs } from '../analysis/flops';
import { cloneModel } from '../ir/clone';
import { valueInfo } from '../ir/builder';
import { DataType } from '../ir/dtype';
import type { Graph } from '../ir/graph';
import { UserError } from '../ir/errors';
import type { Model } from '../ir/model';
import { makeTensorProto } from '../ir/tensor';
import type { CalibSet } from '../ort/calib';
import { ort } from '../ort/session';
import { combine, FitnessEvaluator } from './search-fitness';
import type { PlanGroups } from './plan';

export interface BlockScore { id: string; kind: Block['kind']; score: number; params: number; macs: number }

export interface DepthResult {
  removed: PlanGroups;
  achieved: Achieved;
  scores: BlockScore[];
}

/** The block behind a block group (see blockGroups). */
export function blockOf(g: Group): Block | undefined {
  return g.unit === 'block' ? (g.info?.block as Block | undefined) : undefined;
}

/** The analysis with its groups replaced by its blocks (one group of one unit each). */
export function depthAnalysis(model: Model, analysis: GroupAnalysis): GroupAnalysis {
  const groups = blockGroups(model.graph, analysis.blocks ?? []);
  return { ...analysis, groups, declined: [], summary: { ...analysis.summary, groups: groups.length, declined: 0, prunableParams: groups.reduce((a, g) => a + g.paramsPerUnit, 0) } };
}

/** KL (or normalized MSE) of the model with each block masked, from the dense model, on `calib`. */
export async function scoreBlocks(model: Model, groups: Group[], calib: CalibSet, batch = 16): Promise<number[]> {
  const work = cloneModel(model);
  const g = work.graph;
  const feeds: { name: string; dense: ort.Tensor; zero: ort.Tensor }[] = [];
  groups.forEach((grp, i) => {
    const b = blockOf(grp)!;
    const n = g.producer(b.exit.node)!;
    const t = model.graph.constant(b.exit.tensor)!;
    const name = g.uniqueName(`depth_w${i}`);
    n.inputs[b.exit.input] = name;
    g.inputs.push(valueInfo(name, DataType.FLOAT, t.dims));
    feeds.push({ name, dense: new ort.Tensor('float32', t.toFloat32(), t.dims), zero: new ort.Tensor('float32', new Float32Array(t.size), t.dims) });
  });
  g.invalidate();
  g.removeDeadNodes();
  const ev = await FitnessEvaluator.create(model, work, calib, Math.max(1, Math.min(batch, calib.samples)));
  try {
    const out: number[] = [];
    for (let i = 0; i < feeds.length; i++) {
      const w = Object.fromEntries(feeds.map((f, j) => [f.name, j === i ? f.zero : f.dense]));
      const losses = [];
      for (let bi = 0; bi < ev.batches.length; bi++) losses.push(await ev.batchLoss(w, bi));
      out.push(combine(losses));
    }
    return out;
  } finally {
    await ev.release();
  }
}

/** Chooses the blocks to remove for `ratio` of `target` (see the file comment). `analysis` holds block groups. */
export async function depthAllocation(model: Model, analysis: GroupAnalysis, calib: CalibSet, opts: { ratio: number; target?: BudgetTarget }): Promise<DepthResult> {
  const target = opts.target ?? 'params';
  const groups = analysis.groups.filter((g) => blockOf(g));
  if (!groups.length) throw new UserError('--depth-only: the model has no removable residual block (x + f(x) ending in a MatMul/Gemm/Conv with a stored weight; list them with `onnx-prune groups MODEL`)');
  const totalParams = analysis.summary.totalParams;
  const flops = countMacs(cloneModel(model));
  const macsOf = new Map(flops.perNode.map((p) => [p.node, p.macs]));
  if (target === 'flops' && flops.macs === undefined) throw new UserError('--depth-only --target flops: the model\'s MACs are unknown (symbolic shapes)');
  const totalMacs = flops.macs ?? 0;
  const raw = await scoreBlocks(model, groups, calib);
  const scores: BlockScore[] = groups.map((g, i) => {
    const b = blockOf(g)!;
    return { id: g.id, kind: b.kind, score: raw[i], params: b.params, macs: b.nodes.reduce((a, n) => a + (macsOf.get(n) ?? 0), 0) };
  });
  const amount = (s: BlockScore) => (target === 'flops' ? s.macs : s.params);
  const total = target === 'flops' ? totalMacs : totalParams;
  const order = scores.map((_, i) => i).sort((a, b) => scores[a].score - scores[b].score || a - b);
  const removed: PlanGroups = {};
  const taken = new Set<string>();
  let got = 0;
  const budget = opts.ratio * total;
  for (const i of order) {
    const b = blockOf(groups[i])!;
    // Blocks are coarse: one that would overshoot the budget is skipped (a later, smaller one may fit).
    if (got + amount(scores[i]) > budget * (1 + 1e-9) || b.nodes.some((n) => taken.has(n))) continue;
    for (const n of b.nodes) taken.add(n);
    removed[groups[i].id] = [0];
    got += amount(scores[i]);
  }
  if (opts.ratio > 0 && !Object.keys(removed).length) {
    const smallest = Math.min(...scores.map(amount).filter((x) => x > 0));
    throw new UserError(`--depth-only: no block fits within ${(100 * opts.ratio).toFixed(1)} % of ${target}` +
      (Number.isFinite(smallest) ? ` (the smallest removes ${(100 * smallest / (total || 1)).toFixed(1)} %)` : ' (no block removes any)'));
  }
  const params = scores.filter((s) => removed[s.id]).reduce((a, s) => a + s.params, 0);
  const macs = scores.filter((s) => removed[s.id]).reduce((a, s) => a + s.macs, 0);
  const maxAchievable = scores.reduce((a, s) => a + amount(s), 0) / (total || 1);
  const achieved: Achieved = {
    target, mode: 'uniform', requested: opts.ratio, achieved: got / (total || 1), maxAchievable,
    params: { before: totalParams, after: totalParams - params, removedRatio: params / (totalParams || 1) },
    ...(flops.macs !== undefined ? { flops: { before: totalMacs, after: totalMacs - macs, removedRatio: macs / (totalMacs || 1) } } : {}),
    groupsPruned: Object.keys(removed).length, unitsRemoved: Object.keys(removed).length, protected: [],
  };
  return { removed, achieved, scores };
}

/**
 * Removes a block from `graph` in place: the Add reads the branch's constant remainder, or becomes an Identity of
 * the skip. Dead nodes are left for the caller to drop (graph.removeDeadNodes()).
 */
export function removeBlock(graph: Graph, b: Block): void {
  const add = graph.producer(b.id);
  if (!add || add.opType !== 'Add') throw new Error(`block '${b.id}': its residual Add is not in the graph`);
  const r = b.remainder;
  if (!r) {
    add.proto.opType = 'Identity';
    add.inputs.splice(0, add.inputs.length, add.inputs[b.skip]);
    graph.invalidate();
    return;
  }
  const t = graph.constant(r.tensor);
  if (!t) throw new Error(`block '${b.id}': its remainder '${r.tensor}' is not a constant`);
  let data = t.toFloat32();
  let dims = t.dims.slice();
  if (r.scale !== undefined && r.scale !== 1) data = Float32Array.from(data, (v) => Math.fround(v * r.scale!));
  // A Conv bias [M] broadcasts over the channel axis: [M, 1, …, 1].
  if (r.rank !== undefined) dims = [dims[0], ...Array.from({ length: r.rank - 1 }, () => 1)];
  const name = graph.uniqueName(`${b.id}_remainder`);
  graph.setInitializer(makeTensorProto(name, DataType.FLOAT, dims, data));
  add.inputs[1 - b.skip] = name;
  graph.invalidate();
}
