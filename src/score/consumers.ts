/**
 * The consumers of pruned channels as matrices: for every weighted op that reads a group's channels (a member with
 * role 'in', found through Cast / DequantizeLinear weight chains), its weight as a d_out × d_in matrix, how a
 * channel maps to matrix columns, and the Gram request of its input activation (src/ort/gram.ts). Reconstruction
 * (src/prune/reconstruct.ts) and the data-aware OBS importance read consumers through this module.
 *
 * Matrix form (the column order is the Gram's, see src/ort/gram.ts):
 *   Conv (group 1)  W[O, C, k…]      out-in, d_in = C·k (channel c = columns c·k … c·k+k−1, k = kh·kw…)
 *   Gemm            B[K, N] / Bᵀ[N, K]  in-out / out-in
 *   MatMul          W[K, N] right     in-out;  W[M, K] left: out-in
 * A consumer is one (node, weight input) pair (a weight read by several ops is one consumer per op: a refit gives
 * each its own copy); a quantized weight, a consumer inside a control-flow subgraph, a batched or grouped weight
 * have no matrix form here: they are listed as declined, with the reason.
 */
import type { GroupAnalysis, WeightMember } from '../analysis/types';
import { resolveWeight, type WeightChain } from '../analysis/weight-chain';
import { dtypeName } from '../ir/dtype';
import { FLOAT32_STORABLE } from '../ir/tensor';
import type { Graph } from '../ir/graph';
import type { Model } from '../ir/model';
import type { Node } from '../ir/node';
import { specOf } from '../ir/ops';
import { gramRequestFor, type GramRequest } from '../ort/gram';
import { inputSite } from './sites';
import { memberUse, weightMembers } from './tensor-math';

export type WeightLayout = 'out-in' | 'in-out';


export interface Consumer {
  /** `${nodeId}#${input}`. */
  key: string;
  /** The op that uses the weight (after its Cast chain, if any). */
  node: Node;
  /** The node's first output (how plans name nodes). */
  nodeId: string;
  /** Input slot of the weight at `node`. */
  input: number;
  /** The weight as stored, and the chain from it to `node`. */
  chain: WeightChain;
  /** Stored dims. */
  dims: number[];
  inAxis: number;
  layout: WeightLayout;
  dOut: number;
  dIn: number;
  /** Matrix columns per input channel (conv: kh·kw…; else 1). */
  columnsPerChannel: number;
  request: GramRequest;
  /** The 'in' members that name this consumer, with their group ids. */
  members: { group: string; member: WeightMember }[];
}

export interface DeclinedConsumer {
  node: string;
  reason: string;
}

/** The matrix form of a weight of rank `rank` read along `inAxis`, or why there is none. */
function matrixForm(n: Node, dims: number[], inAxis: number): { layout: WeightLayout; dOut: number; dIn: number; cols: number } | { reason: string } {
  const rank = dims.length;
  if (n.opType === 'Conv') {
    if (rank < 3 || inAxis !== 1) return { reason: `Conv weight of rank ${rank} read along axis ${inAxis}` };
    const k = dims.slice(2).reduce((a, b) => a * b, 1);
    return { layout: 'out-in', dOut: dims[0], dIn: dims[1] * k, cols: k };
  }
  if (rank !== 2) return { reason: `${n.opType} weight of rank ${rank}: no matrix form` };
  return inAxis === 0 ? { layout: 'in-out', dOut: dims[1], dIn: dims[0], cols: 1 } : { layout: 'out-in', dOut: dims[0], dIn: dims[1], cols: 1 };
}

/** Why the weight behind `chain` cannot be rewritten with refit values, if so. */
export function unwritable(chain: WeightChain): string | undefined {
  if (chain.ops.some((o) => o.opType === 'DequantizeLinear' || o.opType === 'QuantizeLinear')) return 'quantized weight (DequantizeLinear): kept as it is';
  if (!FLOAT32_STORABLE.has(chain.tensor.dtype)) return `weight stored as ${dtypeName(chain.tensor.dtype)}: not rewritten`;
  return undefined;
}

/** A consumer's matrix form, without its members (see Consumer). */
export type ConsumerForm = Omit<Consumer, 'key' | 'members'>;

/**
 * The consumer that an 'in' member names, as a matrix with its Gram request (found through the weight chain; the
 * member must slice the op's input axis), or why it has none. Whether its weight can be rewritten is not checked
 * here (scores read quantized weights; reconstruction cannot rewrite them).
 */
export function memberConsumer(graph: Graph, m: WeightMember): ConsumerForm | { reason: string } {
  const use = memberUse(graph, m);
  if (!use) return { reason: 'the member names no node' };
  const n = use.node;
  if (n.graph !== graph) return { reason: 'inside a control-flow subgraph' };
  const chain = resolveWeight(graph, n.inputs[use.input] ?? '');
  if (!chain) return { reason: 'weight is not a constant' };
  const dims = chain.tensor.dims;
  const site = inputSite(graph, m, dims.length);
  const inAxis = specOf(n)?.weighted?.inAxis?.(n, use.input, dims.length);
  if (!site || inAxis === undefined) return { reason: `${n.opType} input ${use.input}: no input activation site` };
  const form = matrixForm(n, dims, inAxis);
  if ('reason' in form) return form;
  const req = gramRequestFor(n, use.input, dims);
  if ('decline' in req) return { reason: req.decline };
  return {
    node: n, nodeId: n.outputs[0], input: use.input, chain, dims, inAxis,
    layout: form.layout, dOut: form.dOut, dIn: form.dIn, columnsPerChannel: form.cols, request: req.request,
  };
}

/**
 * The consumers of the groups in `groupIds` (default: every group), keyed by (node, weight input), in the graph's
 * topological order; and the consumers that have no matrix form or Gram, or whose weight cannot be rewritten, with
 * the reason.
 */
export function findConsumers(model: Model, analysis: GroupAnalysis, groupIds?: Iterable<string>): { consumers: Consumer[]; declined: DeclinedConsumer[] } {
  const graph = model.graph;
  const wanted = groupIds ? new Set(groupIds) : undefined;
  const found = new Map<string, Consumer>();
  const declined = new Map<string, string>();
  for (const g of analysis.groups) {
    if (wanted && !wanted.has(g.id)) continue;
    for (const m of weightMembers(g)) {
      if (m.role !== 'in') continue;
      const use = memberUse(graph, m);
      if (!use) continue;
      const key = `${use.node.outputs[0]}#${use.input}`;
      const known = found.get(key);
      if (known) {
        known.members.push({ group: g.id, member: m });
        continue;
      }
      if (declined.has(key)) continue;
      const form = memberConsumer(graph, m);
      const bad = 'reason' in form ? form.reason : unwritable(form.chain);
      if (bad) { declined.set(key, bad); continue; }
      found.set(key, { ...(form as ConsumerForm), key, members: [{ group: g.id, member: m }] });
    }
  }
  // Topological order of the consumers' nodes (the order sequential reconstruction visits them).
  const order = new Map<Node, number>();
  graph.topoSort().forEach((n, i) => order.set(n, i));
  const consumers = [...found.values()].sort((a, b) => (order.get(a.node) ?? 0) - (order.get(b.node) ?? 0) || a.input - b.input);
  return { consumers, declined: [...declined].map(([node, reason]) => ({ node, reason })) };
}

/** The matrix columns of input channels `channels` of a consumer, ascending. */
export function channelColumns(c: Pick<Consumer, 'columnsPerChannel'>, channels: Iterable<number>): number[] {
  const k = c.columnsPerChannel;
  const out: number[] = [];
  for (const ch of channels) for (let t = 0; t < k; t++) out.push(ch * k + t);
  return out.sort((a, b) => a - b);
}

/** The input channels of `c` that the removed units `removed` (group id → unit indices) take away, ascending. */
export function removedChannels(c: Consumer, removed: Record<string, number[]>): number[] {
  const set = new Set<number>();
  for (const { group, member } of c.members) for (const u of removed[group] ?? []) for (const j of member.indices[u] ?? []) set.add(j);
  return [...set].sort((a, b) => a - b);
}
