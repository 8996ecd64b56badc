/**
 * Inlining the taken branch of main-graph If nodes, on a ModelProto (used to measure subgraph tensors in
 * onnxruntime, which can only return main-graph tensors).
 *
 * `inlineIfs(model, cond)` replaces every main-graph If node whose condition `cond(name)` can tell (true/false)
 * by the nodes of the taken branch, followed by one Identity per If output (branch output → If output), and
 * moves the branch's initializers into the main graph. Tensor names are kept, so a tensor of the branch has the
 * same name in the result. Nested Ifs of an inlined branch become main-graph Ifs: call again to inline them.
 * Tensor names must be unique across the graph and its subgraphs (as ONNX requires); a clash throws. Node names
 * that clash are made unique.
 */
import { onnx } from '../../src/ir/proto';

const isIf = (n: onnx.INodeProto) => n.opType === 'If' && (!n.domain || n.domain === 'ai.onnx');

/** Names of the conditions of the main graph's If nodes. */
export function mainIfConditions(model: onnx.IModelProto): string[] {
  const out = new Set<string>();
  for (const n of model.graph?.node ?? []) if (isIf(n) && n.input?.[0]) out.add(n.input[0]);
  return [...out];
}

function definedNames(g: onnx.IGraphProto): Set<string> {
  const s = new Set<string>();
  for (const i of g.input ?? []) if (i.name) s.add(i.name);
  for (const t of g.initializer ?? []) if (t.name) s.add(t.name);
  for (const n of g.node ?? []) for (const o of n.output ?? []) if (o) s.add(o);
  return s;
}

/** Inlines the If nodes whose condition is known; returns how many were inlined. Edits `model` in place. */
export function inlineIfs(model: onnx.IModelProto, cond: (name: string) => boolean | undefined): number {
  const g = model.graph;
  if (!g) return 0;
  const defined = definedNames(g);
  // Node names are a namespace of their own; inlined nodes whose name is taken get a fresh one.
  const nodeNames = new Set((g.node ?? []).map((n) => n.name ?? '').filter((x) => x));
  let fresh = 0;
  const uniqueNodeName = (base: string) => {
    if (base && !nodeNames.has(base)) {
      nodeNames.add(base);
      return base;
    }
    let name: string;
    do name = `${base || 'inline_if'}__${fresh++}`;
    while (nodeNames.has(name));
    nodeNames.add(name);
    return name;
  };
  let inlined = 0;
  const nodes: onnx.INodeProto[] = [];
  for (const n of g.node ?? []) {
    const c = isIf(n) ? cond(n.input?.[0] ?? '') : undefined;
    if (c === undefined) {
      nodes.push(n);
      continue;
    }
    const branch = (n.attribute ?? []).find((a) => a.name === (c ? 'then_branch' : 'else_branch'))?.g;
    if (!branch) throw new Error(`If node '${n.name ?? n.output?.[0]}' has no ${c ? 'then' : 'else'}_branch`);
    for (const t of branch.initializer ?? []) {
      if (t.name && defined.has(t.name)) throw new Error(`cannot inline If '${n.name}': initializer name '${t.name}' is used outside the branch`);
      if (t.name) defined.add(t.name);
      (g.initializer ??= []).push(t);
    }
    for (const t of branch.sparseInitializer ?? []) (g.sparseInitializer ??= []).push(t);
    for (const b of branch.node ?? []) {
      for (const o of b.output ?? []) {
        if (!o) continue;
        if (defined.has(o)) throw new Error(`cannot inline If '${n.name}': tensor name '${o}' is used outside the branch`);
        defined.add(o);
      }
      if (b.name) b.name = uniqueNodeName(b.name);
      nodes.push(b);
    }
    (n.output ?? []).forEach((o, k) => {
      const src = branch.output?.[k]?.name;
      if (!o || !src) return;
      nodes.push(onnx.NodeProto.create({ opType: 'Identity', name: uniqueNodeName(''), input: [src], output: [o] }));
    });
    inlined++;
  }
  g.node = nodes;
  return inlined;
}
