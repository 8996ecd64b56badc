/**
 * MAC (multiply-accumulate) counting per node from inferred shapes.
 *
 * What counts: the ops whose spec (src/ir/ops) has `macs` — matmul/conv-like ops and recurrent layers, one MAC
 * per multiply-add of the naive algorithm (formulas in src/ir/ops/macs.ts).
 * Everything else (BatchNormalization, LayerNormalization, elementwise, pooling, softmax, ...) counts 0 and
 * is not listed. FLOPs are conventionally 2 × MACs.
 *
 * Symbolic dims are substituted: 1 for every symbol unless `dims` gives a value (e.g. {batch: 8, seq: 128}).
 * `macs` is undefined only when some counted node's shapes are unknown (those nodes are listed in `unknown`),
 * or when a control-flow node (If/Loop/Scan) holds counted ops in its subgraphs (branch and trip count are
 * data-dependent; the control-flow node is listed). An If whose branch shape inference could decide (its
 * condition's value was known, see `knownBranch`) counts the ops of that branch instead; they are listed in
 * `perNode` by their first output like main-graph nodes.
 * Nodes are identified by their first output name (stable across pruning).
 */
import type { Graph } from '../ir/graph';
import type { Model } from '../ir/model';
import type { Node } from '../ir/node';
import { type ShapeInferenceOptions, evalShape, inferShapes, knownBranch } from '../ir/shapes';
import { type ShapeLookup, specOf } from '../ir/ops';

export interface FlopsReport {
  /** Total multiply-accumulates for one run with the shapes inferred, or undefined when shapes are unknown. */
  macs?: number;
  /** Every counted (matmul/conv-like) node with known shapes; `node` is its first output name. */
  perNode: { node: string; opType: string; macs: number }[];
  /** Nodes whose cost could not be computed (unknown shapes), by first output name. */
  unknown: string[];
}

export interface CountMacsOptions {
  /** Values for symbolic dims (default 1 for every symbol). */
  dims?: Record<string, number>;
  /** Run `inferShapes(model, shapes)` first (default true); false uses `graph.types` as they are. */
  infer?: boolean;
  /** Options of that shape inference run (e.g. concrete `inputShapes`, or `inputValues` that decide Ifs). */
  shapes?: ShapeInferenceOptions;
}

/** MACs of one node, `undefined` when its shapes are unknown, `null` when the op is not counted. */
function nodeMacs(n: Node, shape: ShapeLookup): number | undefined | null {
  const macs = specOf(n)?.macs;
  return macs ? macs(n, shape) : null;
}

/** Whether a subgraph (recursively) holds an op that costs MACs. */
function hasCountedOps(g: Graph): boolean {
  for (const sg of g.allGraphs()) {
    for (const n of sg.nodes) if (specOf(n)?.macs) return true;
  }
  return false;
}

export function countMacs(model: Model, opts: CountMacsOptions = {}): FlopsReport {
  if (opts.infer !== false) inferShapes(model, opts.shapes);
  const dims = opts.dims ?? {};
  const report: FlopsReport = { perNode: [], unknown: [] };
  let total = 0;
  // Frames of an iterative walk: a graph chain (a branch's tensors are looked up in it, then in the enclosing
  // graphs) and the next node to visit; an If with a known branch pushes a frame for that branch.
  const frames: { chain: Graph[]; next: number; shape: ShapeLookup }[] = [];
  const push = (chain: Graph[]) => {
    const cache = new Map<string, number[] | undefined>();
    const shape: ShapeLookup = (name) => {
      if (!cache.has(name)) {
        let t;
        for (let i = chain.length - 1; i >= 0 && !t; i--) t = chain[i].types.get(name);
        cache.set(name, evalShape(t?.shape, dims));
      }
      return cache.get(name);
    };
    frames.push({ chain, next: 0, shape });
  };
  push([model.graph]);
  while (frames.length) {
    const f = frames[frames.length - 1];
    const g = f.chain[f.chain.length - 1];
    if (f.next >= g.nodes.length) {
      frames.pop();
      continue;
    }
    const n = g.nodes[f.next++];
    const id = n.outputs[0] ?? n.name;
    const isDefault = n.domain === '' || n.domain === 'ai.onnx';
    if (n.subgraphs.length) {
      const branch = isDefault && n.opType === 'If' ? knownBranch(n) : undefined;
      if (branch) push([...f.chain, branch]);
      else if (n.subgraphs.some(hasCountedOps)) report.unknown.push(id);
      continue;
    }
    if (!isDefault) continue;
    const m = nodeMacs(n, f.shape);
    if (m === null) continue;
    if (m === undefined || !Number.isFinite(m)) {
      report.unknown.push(id);
      continue;
    }
    report.perNode.push({ node: id, opType: n.opType, macs: m });
    total += m;
  }
  if (report.unknown.length === 0) report.macs = total;
  return report;
}
