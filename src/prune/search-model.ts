/**
 * The search model: the dense model with every weight that a searched group's removal changes turned into a graph
 * input, so that a candidate allocation is evaluated by feeding its tensors to one onnxruntime session (no
 * re-analysis, no session rebuild per candidate).
 *
 * For every 'in' member of a slot's group (a layer that reads the group's channels) the reading op's weight input
 * becomes an input `search_w<i>` (float32, the weight as the op uses it). A consumer the least-squares refit
 * rewrites (src/score/consumers.ts) may also get a new bias: its output is followed by an Add of an input
 * `search_b<i>` (zeros = no change). A candidate's value of each input is the dense weight with the removed units'
 * positions zeroed — exactly what the masked reference of verification zeroes — and, with reconstruction, the
 * refit of the consumer's kept columns from its calibration Gram (src/prune/reconstruct.ts refitConsumer), so
 * that feeding a candidate computes the same function as physically pruning (and reconstructing) to it.
 */
import type { GroupAnalysis, StatMember, WeightMember } from '../analysis/types';
import { resolveWeight, usedValues } from '../analysis/weight-chain';
import { valueInfo } from '../ir/builder';
import { cloneModel } from '../ir/clone';
import { DataType } from '../ir/dtype';
import type { Graph } from '../ir/graph';
import type { Model } from '../ir/model';
import type { Slot } from '../allocate/allocate';
import { compensable } from '../score/compensate';
import { findConsumers, type Consumer } from '../score/consumers';
import { memberUse, weightMembers } from '../score/tensor-math';
import { statisticsThrough } from './mask';

/** One weight input of the search model. */
export interface WeightFeed {
  name: string;
  dims: number[];
  /** The weight as its op uses it in the dense model (float32). */
  dense: Float32Array;
  /** The op computes in float16: the weight and bias are fed as float16. */
  half: boolean;
  /** Positions to zero per removed unit: slot index, axis and the member's per-unit positions. */
  masks: { slot: number; axis: number; indices: number[][] }[];
  /** The consumer the refit rewrites (a matrix-form reader), with the slots whose units it reads. */
  consumer?: Consumer;
  /** Name of the bias input added after the consumer (refit with a bias), and its dims. */
  bias?: { name: string; dims: number[] };
  /** Slot indices this feed's value depends on (ascending). */
  slots: number[];
}

/**
 * A normalization whose statistics run over the kept channels (StatMember): its kept positions (int64 [kept]) and,
 * when its output is scattered back, the scatter positions (int64 [size]) are inputs fed per candidate.
 */
export interface StatFeed {
  kept: string;
  map?: string;
  size: number;
  /** The slots whose units sit on the node's axis, with their per-unit positions. */
  members: { slot: number; indices: number[][] }[];
}

export interface SearchModel {
  model: Model;
  feeds: WeightFeed[];
  stats: StatFeed[];
  /** Slots that cannot be searched (their weights cannot be fed), with the reason: they stay at the base level. */
  fixed: Map<number, string>;
}

/** The readers of the slots' channels, by op and input slot, and the slots whose weights cannot be fed (with why). */
export function feedSites(graph: Graph, slots: Slot[]): { sites: Map<string, Site>; fixed: Map<number, string> } {
  const fixed = new Map<number, string>();
  // Every reader of a slot's channels, keyed by the op and input slot that read it.
  const sites = new Map<string, Site>();
  slots.forEach((s, si) => {
    for (const m of s.group.members) {
      if (m.kind === 'stat' && !graph.producer(m.node)) fixed.set(si, `a normalization over its channels (${m.node}) is inside a control-flow subgraph`);
    }
    for (const m of weightMembers(s.group)) {
      if (m.role !== 'in') continue;
      const use = memberUse(graph, m);
      if (!use || use.node.graph !== graph) {
        fixed.set(si, `a layer reading its channels (${m.node}) is inside a control-flow subgraph`);
        continue;
      }
      const w = resolveWeight(graph, use.node.inputs[use.input] ?? '');
      if (!w || (w.dtype !== DataType.FLOAT && w.dtype !== DataType.FLOAT16)) {
        fixed.set(si, `the weight read by '${use.node.outputs[0]}' is not float32 or float16 (the search feeds those)`);
        continue;
      }
      const key = `${use.node.outputs[0]}#${use.input}`;
      let site = sites.get(key);
      if (!site) sites.set(key, (site = { node: use.node.outputs[0], input: use.input, members: [] }));
      site.members.push({ slot: si, m });
    }
  });
  return { sites, fixed };
}

interface Site { node: string; input: number; members: { slot: number; m: WeightMember }[] }

/** Builds the search model for `slots` (groups of `analysis`, made on `dense`). `dense` is not modified. */
export function buildSearchModel(dense: Model, analysis: GroupAnalysis, slots: Slot[], opts: { bias: boolean }): SearchModel {
  const graph = dense.graph;
  const { sites, fixed } = feedSites(graph, slots);
  // A site shared with a fixed slot is fed too (the fixed slot's members simply never mask).
  const { consumers } = findConsumers(dense, analysis, slots.map((s) => s.group.id));
  const byKey = new Map(consumers.map((c) => [`${c.nodeId}#${c.input}`, c]));

  const model = cloneModel(dense);
  const g = model.graph;
  const feeds: WeightFeed[] = [];
  let k = 0;
  for (const [key, site] of sites) {
    const members = site.members.filter((x) => !fixed.has(x.slot));
    if (!members.length) continue;
    const n = g.producer(site.node)!;
    const w = resolveWeight(g, n.inputs[site.input])!;
    const values = usedValues(g, w.name);
    if (!values) {
      for (const x of members) fixed.set(x.slot, `the weight read by '${site.node}' cannot be read`);
      continue;
    }
    const dims = w.tensor.dims.slice();
    const name = g.uniqueName(`search_w${k++}`);
    n.inputs[site.input] = name;
    // The type the op computes in (a float16 model is fed float16 weights and biases).
    const half = w.dtype === DataType.FLOAT16;
    g.inputs.push(valueInfo(name, half ? DataType.FLOAT16 : DataType.FLOAT, dims));
    const consumer = byKey.get(key);
    const feed: WeightFeed = {
      name, dims, dense: values, half,
      masks: members.map((x) => ({ slot: x.slot, axis: x.m.axis < 0 ? x.m.axis + dims.length : x.m.axis, indices: x.m.indices })),
      consumer,
      slots: [...new Set(members.map((x) => x.slot))].sort((a, b) => a - b),
    };
    if (consumer && opts.bias && compensable(graph, consumer.node, consumer.input, consumer.dims.length)) {
      // The output gets `+ bias`, shaped to broadcast over the output channel axis (a Conv's axis 1).
      const bdims = n.opType === 'Conv' ? [consumer.dOut, ...dims.slice(2).map(() => 1)] : [consumer.dOut];
      const bname = g.uniqueName(`search_b${k - 1}`);
      const out = n.outputs[0];
      const inner = g.uniqueName(`${out}_search`);
      n.outputs[0] = inner;
      g.addNode({ opType: 'Add', name: g.uniqueName(`${n.name || out}_search_bias`), input: [inner, bname], output: [out] });
      g.inputs.push(valueInfo(bname, half ? DataType.FLOAT16 : DataType.FLOAT, bdims));
      feed.bias = { name: bname, dims: bdims };
    }
    feeds.push(feed);
  }
  // Normalizations over searched channels: their statistics run over the kept positions the candidate feeds.
  const statNodes = new Map<string, { m: StatMember; members: StatFeed['members'] }>();
  slots.forEach((s, si) => {
    if (fixed.has(si)) return;
    for (const m of s.group.members) {
      if (m.kind !== 'stat') continue;
      let e = statNodes.get(m.node);
      if (!e) statNodes.set(m.node, (e = { m, members: [] }));
      e.members.push({ slot: si, indices: m.indices });
    }
  });
  const stats: StatFeed[] = [];
  let j = 0;
  for (const { m, members } of statNodes.values()) {
    const kept = g.uniqueName(`search_kept${j}`);
    g.inputs.push(valueInfo(kept, DataType.INT64, [`search_kept${j}_len`]));
    const feed: StatFeed = { kept, size: m.size, members };
    if (m.scatter.length) {
      feed.map = g.uniqueName(`search_map${j}`);
      g.inputs.push(valueInfo(feed.map, DataType.INT64, [m.size]));
    }
    j++;
    statisticsThrough(g, m, kept, feed.map ?? '');
    stats.push(feed);
  }
  // Weights (and their Cast chains) that the inputs replaced are dropped when nothing else reads them.
  g.sortNodes();
  g.invalidate();
  g.removeDeadNodes();
  return { model, feeds, stats, fixed };
}
