/**
 * Groups that allocation must leave whole.
 *
 * Defaults, in graph terms (a "weighted layer" is a node whose op spec is `weighted` — Conv, ConvTranspose, Gemm,
 * MatMul, Einsum — with a constant of rank ≥ 2 at one of its weight inputs):
 *  - first conv: a convolution (`weighted.unit: 'conv'`) weighted layer with no other weighted layer on any path from a graph input
 *    to it (the stem). Its output-channel group (a group with an 'out' member on it) is protected: the stem is
 *    narrow and everything downstream depends on it. Not when the group is a normalized stream (it has
 *    statistics members: a ViT's patch embedding writes the hidden size every block reads and writes, which is
 *    the model's width rather than a stem; Torch-Pruning and Minitron prune it).
 *  - classifier: a weighted layer from which some graph output is reached without passing another weighted
 *    layer (the final Linear/Gemm/MatMul, e.g. an LM head). Its output-channel group (an 'out' member on it:
 *    the classes / vocabulary) is protected; analysis usually declines it already because it reaches a graph
 *    output, but not when, e.g., an exporter leaves a Softmax or Reshape in between that analysis can see
 *    through. The features the classifier reads stay prunable: protecting them (the whole last stage or the
 *    residual stream) was measured to cost accuracy — on mnist_lenet_bn at 50 % params, FLAP+bias drops from
 *    0.94 to 0.90 and every method is forced onto the few remaining groups.
 * User protection: a name matches a group id or label, a member's node (first output) or tensor, or a node
 * name. Excluded op types: a group with any member on a node of that type is protected.
 */
import type { Group, GroupAnalysis } from '../analysis/types';
import type { Graph } from '../ir/graph';
import { UserError } from '../ir/errors';
import type { Model } from '../ir/model';
import type { Node } from '../ir/node';
import { specOf } from '../ir/ops';
import { normalizedStream } from '../analysis/groups';
import { resolveWeight, weightUse } from '../analysis/weight-chain';

export function isWeightedLayer(graph: Graph, n: Node): boolean {
  const w = specOf(n)?.weighted;
  if (!w) return false;
  return n.inputs.some((i, k) => {
    if (!i || (w.weights && !w.weights.includes(k))) return false;
    const c = resolveWeight(graph, i)?.tensor;
    return !!c && c.dims.length >= 2;
  });
}

/** Node ids (first outputs) of the first convolutions and of the classifiers. */
export function defaultProtectedNodes(model: Model): { firstConv: string[]; classifier: string[] } {
  const firstConv: string[] = [];
  const classifier: string[] = [];
  // Forward: tensors downstream of a weighted layer. Subgraphs (If branches, Loop bodies) come after their
  // enclosing graph (allGraphs is breadth first), so a value they read from outer scope is already marked.
  const afterWeighted = new Set<string>();
  for (const graph of model.graph.allGraphs()) {
    const order = graph.topoSort();
    const weighted = new Set(order.filter((n) => isWeightedLayer(graph, n)));
    for (const n of order) {
      const anc = n.inputs.some((i) => i && afterWeighted.has(i));
      if (weighted.has(n) && !anc && specOf(n)?.weighted?.unit === 'conv') firstConv.push(n.outputs[0]);
      if (anc || weighted.has(n)) for (const o of n.outputs) if (o) afterWeighted.add(o);
    }
    // Backward: tensors from which a graph output (a subgraph's own output) is reached through non-weighted nodes only.
    const reachesOutput = new Set<string>(graph.outputs.map((o) => o.name ?? ''));
    const own: string[] = [];
    for (let k = order.length - 1; k >= 0; k--) {
      const n = order[k];
      const hits = n.outputs.some((o) => o && reachesOutput.has(o));
      if (!hits) continue;
      if (weighted.has(n)) own.push(n.outputs[0]);
      else for (const i of n.inputs) if (i) reachesOutput.add(i);
    }
    classifier.push(...own.reverse());
  }
  return { firstConv, classifier };
}

export interface ProtectOptions {
  protect?: string[];
  protectDefaults?: boolean;
  excludeOp?: string[];
}

/** Group id → why it is protected. */
export function protectedGroups(analysis: GroupAnalysis, model: Model | undefined, opts: ProtectOptions): Map<string, string> {
  const out = new Map<string, string>();
  const mark = (g: Group, why: string) => {
    if (!out.has(g.id)) out.set(g.id, why);
  };
  const graph = model?.graph;
  if (model && opts.protectDefaults !== false) {
    const { firstConv, classifier } = defaultProtectedNodes(model);
    const fc = new Set(firstConv), cl = new Set(classifier);
    for (const g of analysis.groups) {
      const normalized = normalizedStream(g);
      for (const m of g.members) {
        if (m.kind !== 'weight' || m.role !== 'out') continue;
        // A weight stored behind a Cast / DequantizeLinear chain is named by the chain's first op: use its reader.
        const id = weightUse(model.graph, m.node, m.input)?.node.outputs[0] ?? m.node;
        if (fc.has(id) && !normalized) mark(g, `first conv '${id}'`);
        if (cl.has(id)) mark(g, `classifier '${id}'`);
      }
    }
  }
  const nameToId = new Map<string, string>();
  if (graph) for (const n of graph.nodes) if (n.name) nameToId.set(n.name, n.outputs[0]);
  // Then node names of control-flow subgraphs (groups inside If branches / Loop bodies), where not taken.
  if (graph) for (const sg of graph.allGraphs().slice(1)) for (const n of sg.nodes) if (n.name && !nameToId.has(n.name)) nameToId.set(n.name, n.outputs[0]);
  for (const name of opts.protect ?? []) {
    const nodeId = nameToId.get(name) ?? name;
    let hit = false;
    for (const g of analysis.groups) {
      const match = g.id === name || g.label === name ||
        g.members.some((m) => m.node === nodeId || ((m.kind === 'weight' || m.kind === 'shape') && m.tensor === name) ||
          (m.kind === 'weight' && !!graph && weightUse(graph, m.node, m.input)?.node.outputs[0] === nodeId));
      if (match) {
        mark(g, `--protect ${name}`);
        hit = true;
      }
    }
    if (!hit) throw new UserError(`--protect '${name}' matches no group, node or weight of the prunable groups`);
  }
  const ops = new Set(opts.excludeOp ?? []);
  if (ops.size && !graph) throw new Error('allocate: --exclude-op needs the model');
  if (ops.size && graph) {
    for (const g of analysis.groups) {
      for (const m of g.members) {
        const n = m.kind === 'weight' ? weightUse(graph, m.node, m.input)?.node : graph.memberNode(m.node);
        if (n && ops.has(n.opType)) {
          mark(g, `--exclude-op ${n.opType}`);
          break;
        }
      }
    }
  }
  return out;
}
