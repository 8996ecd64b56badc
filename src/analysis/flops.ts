/**
 * MAC (multiply-accumulate) counting per node from inferred shapes.
 *
 * What counts: only matmul/conv-like ops, one MAC per multiply-add of the naive algorithm:
 * - Conv / ConvInteger / QLinearConv: prod(output shape) × prod(W.shape[1:])  (= N·Cout·spatial_out·Cin/g·k…)
 * - ConvTranspose: prod(input shape) × prod(W.shape[1:])  (= N·Cin·spatial_in·Cout/g·k…)
 * - Gemm: M·K·N;  MatMul / MatMulInteger / QLinearMatMul: prod(output shape) × K (batched, numpy broadcasting)
 * - Einsum: for n ≥ 2 operands, (n−1) × the product of the sizes of all letters (ellipsis dims included);
 *   a 1-operand Einsum (transpose/trace/sum) costs 0
 * - LSTM / GRU / RNN: seq · batch · directions · gates · hidden · (input + hidden), gates = 4 / 3 / 1
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
import { numel } from '../ir/dims';
import type { Graph } from '../ir/graph';
import type { Model } from '../ir/model';
import type { Node } from '../ir/node';
import { type ShapeInferenceOptions, evalShape, inferShapes, knownBranch } from '../ir/shapes';
import { einsumDims, parseEinsum } from '../ir/shapes/ops-math';
import type { Shape } from '../ir/shapes';

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

type Lookup = (name: string) => number[] | undefined;

/** MACs of one node, `undefined` when its shapes are unknown, `null` when the op is not counted. */
function nodeMacs(n: Node, shape: Lookup): number | undefined | null {
  const inp = (i: number) => (n.inputs[i] ? shape(n.inputs[i]) : undefined);
  const out = (k: number) => (n.outputs[k] ? shape(n.outputs[k]) : undefined);
  switch (n.opType) {
    case 'Conv': case 'ConvInteger': case 'QLinearConv': {
      const w = inp(n.opType === 'QLinearConv' ? 3 : 1);
      const y = out(0);
      return w && y ? numel(y) * numel(w.slice(1)) : undefined;
    }
    case 'ConvTranspose': {
      const x = inp(0);
      const w = inp(1);
      return x && w ? numel(x) * numel(w.slice(1)) : undefined;
    }
    case 'Gemm': {
      const a = inp(0);
      const b = inp(1);
      if (!a || !b || a.length !== 2 || b.length !== 2) return undefined;
      const [m, k] = n.attrInt('transA', 0) ? [a[1], a[0]] : [a[0], a[1]];
      const nn = n.attrInt('transB', 0) ? b[0] : b[1];
      return m * k * nn;
    }
    case 'MatMul': case 'MatMulInteger': case 'QLinearMatMul': {
      const a = inp(0);
      const y = out(0);
      if (!a || !y || a.length === 0) return undefined;
      return numel(y) * a[a.length - 1];
    }
    case 'Einsum': {
      const parsed = parseEinsum(n.attrString('equation', ''));
      const shapes: Shape[] = [];
      for (let i = 0; i < n.inputs.length; i++) {
        const s = inp(i);
        if (!s) return undefined;
        shapes.push(s);
      }
      if (!parsed || parsed.inputs.length !== shapes.length) return undefined;
      if (shapes.length < 2) return 0;
      const d = einsumDims(parsed.inputs, shapes);
      if (!d) return undefined;
      let p = 1;
      for (const v of [...d.letter.values(), ...d.ellipsis]) {
        if (typeof v !== 'number') return undefined;
        p *= v;
      }
      return (shapes.length - 1) * p;
    }
    case 'LSTM': case 'GRU': case 'RNN': {
      const x = inp(0);
      const w = inp(1);
      if (!x || !w || x.length !== 3 || w.length !== 3) return undefined;
      const gates = n.opType === 'LSTM' ? 4 : n.opType === 'GRU' ? 3 : 1;
      const hidden = w[1] / gates;
      const [seq, batch] = n.attrInt('layout', 0) === 0 ? [x[0], x[1]] : [x[1], x[0]];
      return seq * batch * w[0] * gates * hidden * (x[2] + hidden);
    }
    default:
      return null;
  }
}

/** Whether a subgraph (recursively) holds an op that costs MACs. */
function hasCountedOps(g: Graph): boolean {
  for (const sg of g.allGraphs()) {
    for (const n of sg.nodes) {
      if (n.domain !== '' && n.domain !== 'ai.onnx') continue;
      if (nodeMacs(n, () => undefined) !== null) return true;
    }
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
  const frames: { chain: Graph[]; next: number; shape: Lookup }[] = [];
  const push = (chain: Graph[]) => {
    const cache = new Map<string, number[] | undefined>();
    const shape: Lookup = (name) => {
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
