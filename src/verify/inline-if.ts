/**
 * Inlining of main-graph If nodes, for verification only (never in a saved model).
 *
 * onnxruntime cannot fetch a tensor computed inside an If branch, so an activation tap (tolerance.ts) behind an
 * If cannot be taken on the model as it is. Given the branch a run takes (from the value of the If's condition
 * on that run's inputs), a copy of the model in which the If is replaced by that branch's nodes computes the same
 * outputs and exposes the branch tensors as main-graph tensors. The branch's initializers move to the main graph,
 * its Constant nodes move with the other nodes, and each branch output is wired to the If's output name by an
 * Identity node.
 *
 * Tensor names are unique model-wide in practice; when a name the branch defines is defined elsewhere in the model
 * too (anywhere outside the If), moving it up could change what it means, and the If is not inlined.
 */
import type { Graph } from '../ir/graph';
import type { Model } from '../ir/model';
import type { Node } from '../ir/node';
import { cloneModel } from '../ir/clone';
import type { ort } from '../ort/session';

/** Which branch of the main-graph If whose first output is `ifOutput` a run takes. */
export interface IfChoice {
  ifOutput: string;
  then: boolean;
}

/** The branch subgraph of `n` for `then` (then_branch / else_branch), if present. */
function branchOf(n: Node, then: boolean): Graph | undefined {
  const a = n.attr(then ? 'then_branch' : 'else_branch');
  return a?.g ? n.subgraphs.find((s) => s.proto === a.g) : undefined;
}

/** Names defined (inputs, initializers, node outputs) in `graphs`. */
function definedNames(graphs: Graph[]): Set<string> {
  const out = new Set<string>();
  for (const g of graphs) for (const name of g.definedNames()) out.add(name);
  return out;
}

/** Replaces the main-graph If `n` by `branch` in place; false (nothing changed) on a name clash. */
function inlineOne(model: Model, n: Node, branch: Graph): boolean {
  const g = model.graph;
  const inside = new Set(n.subgraphs.flatMap((s) => s.allGraphs()));
  const elsewhere = definedNames(g.allGraphs().filter((x) => !inside.has(x)));
  for (const o of n.outputs) elsewhere.delete(o);
  const mine = definedNames([branch]);
  for (const name of mine) if (elsewhere.has(name)) return false;
  // If outputs are defined by the If only: a branch defining one of them would clash with the Identity below.
  for (const o of n.outputs) if (o && mine.has(o)) return false;
  if (branch.outputs.length < n.outputs.length) return false;
  branch.toProto();
  g.removeNode(n);
  for (const t of branch.initializers.values()) g.setInitializer(t.proto);
  for (const bn of branch.nodes) g.addNode(bn.proto);
  n.outputs.forEach((o, i) => {
    if (o) g.addNode({ opType: 'Identity', input: [branch.outputs[i].name ?? ''], output: [o], name: `inline_if_${o}` });
  });
  g.sortNodes();
  return true;
}

/**
 * A copy of `model` in which each chosen main-graph If is replaced by the branch the run takes; undefined when
 * one of them is missing or cannot be inlined (name clash). `model` is not modified.
 */
export function inlineIfs(model: Model, choices: IfChoice[]): Model | undefined {
  const copy = cloneModel(model);
  for (const c of choices) {
    const n = copy.graph.producer(c.ifOutput);
    if (!n || n.opType !== 'If' || n.domain !== '') return undefined;
    const branch = branchOf(n, c.then);
    if (!branch || !inlineOne(copy, n, branch)) return undefined;
  }
  return copy;
}

/**
 * The value of the If condition `cond` on one run: the run's fetched tensors, its feeds, or a constant of
 * `model`; undefined when unknown.
 */
export function conditionValue(model: Model, cond: string, run: Record<string, ort.Tensor>, feeds: Record<string, ort.Tensor>): boolean | undefined {
  const t = run[cond] ?? feeds[cond];
  if (t) {
    const data = t.data as ArrayLike<number | bigint | boolean>;
    return data.length > 0 ? Number(data[0]) !== 0 : undefined;
  }
  const k = model.graph.resolveConstant(cond);
  return k && k.size > 0 ? k.toNumbers()[0] !== 0 : undefined;
}
