/**
 * Verification tolerance for outputs of saturating activations.
 *
 * The pruned model sums fewer terms than the masked one, in another order, so its float32 results differ by
 * rounding: relative to the scale of the tensor where the sums happen. An output y = f(x) of an elementwise
 * activation can be far smaller than x's scale — a Sigmoid of logits around −15 gives y ≈ 3e-7 — and there a
 * tolerance relative to max|y| is meaningless both ways: it fails on harmless rounding of x, and when f
 * saturates (y ≡ 0) it cannot see a wrong x at all.
 *
 * So for every graph output produced by such an activation (ACTIVATION_GAIN) — directly, or through layout and
 * mean/max/min ops (PASS_THROUGH) — verification also fetches the activation's input x from both models and:
 *   - checks x itself at the usual strict tolerance: max|Δx| ≤ rtol · max|x_masked|;
 *   - checks y against the scale rounding of x can reach: max|Δy| ≤ rtol · max(max|y_masked|, L · max|x_masked|),
 *     where L is f's Lipschitz constant in the max norm (Sigmoid 1/4, Tanh 1, Softmax 1/2, LogSoftmax 2,
 *     HardSigmoid |alpha|, Relu and Clip 1): a change of x within rtol of its scale moves y by at most that.
 * Other outputs keep max|Δy| ≤ rtol · max|y_masked|.
 * When the search from an output reaches a main-graph If whose branches end in such an activation (ifTapSites),
 * onnxruntime cannot fetch x inside the branch: verification then inlines the branch each run takes into copies
 * of both models (inline-if.ts) and takes the tap there.
 *
 * The same search runs from the tensors verification compares in front of selection ops (selection.ts), so that a
 * saturating score read by NonMaxSuppression is judged like a saturating output.
 *
 * Half-precision computation: a tensor computed in float16/bfloat16 after the pruned nodes may differ by its
 * half-precision rounding tolerance (src/verify/rounding.ts: the measured noise floor, bounded) instead of rtol,
 * relative to the same scale (widenToRoundingBudget).
 */
import type { Graph } from '../ir/graph';
import type { Model } from '../ir/model';
import type { Node } from '../ir/node';
import type { HalfRounding, OutputComparison } from './compare';

export const ACTIVATION_GAIN: Record<string, (n: Node) => number> = {
  Sigmoid: () => 0.25,
  Tanh: () => 1,
  Softmax: () => 0.5,
  LogSoftmax: () => 2,
  HardSigmoid: (n) => Math.abs(n.attrFloat('alpha', 0.2)),
  Relu: () => 1,
  Clip: () => 1,
};

export interface ActivationTap {
  /** The graph output. */
  output: string;
  /** The activation's input, fetched as an extra output. */
  input: string;
  op: string;
  /** Lipschitz constant of the activation (max norm). */
  gain: number;
}

/**
 * Ops between an activation and a graph output that keep the rule valid: their output is a 1-Lipschitz function
 * of their first input in the max norm and no larger than it (layout, selection, mean / max / min), so
 * max|Δout| ≤ max|Δy| ≤ L · max|Δx| still holds (e.g. Silero VAD: Sigmoid → Squeeze → ReduceMean → Unsqueeze).
 */
const PASS_THROUGH = new Set([
  'Identity', 'Squeeze', 'Unsqueeze', 'Reshape', 'Flatten', 'Transpose', 'ReduceMean', 'ReduceMax', 'ReduceMin',
  'Slice', 'Gather', 'Expand', 'Tile',
]);

/**
 * The node `name` comes from in `g`, looking back through PASS_THROUGH ops (first input only, at most 8), and
 * the tensor of that node the walk arrived at.
 */
function tapSource(g: Graph, name: string): { node: Node; tensor: string } | undefined {
  let tensor = name;
  let p = g.producer(tensor);
  for (let hops = 0; p && p.domain === '' && PASS_THROUGH.has(p.opType) && hops < 8; hops++) {
    tensor = p.inputs[0];
    p = tensor ? g.producer(tensor) : undefined;
  }
  return p ? { node: p, tensor } : undefined;
}

/**
 * Graph outputs (and the tensors `also`, compared like outputs) produced by an activation of ACTIVATION_GAIN whose
 * input is computed by a node, directly or through PASS_THROUGH ops (first input only, at most 8 of them).
 */
export function activationTaps(model: Model, also: string[] = []): ActivationTap[] {
  const g = model.graph;
  const outputs = new Set(g.outputs.map((o) => o.name ?? ''));
  const taps: ActivationTap[] = [];
  for (const name of new Set([...outputs, ...also])) {
    const p = tapSource(g, name)?.node;
    if (!p || p.domain !== '' || !ACTIVATION_GAIN[p.opType]) continue;
    const x = p.inputs[0];
    if (!x || !g.producer(x) || outputs.has(x)) continue;
    taps.push({ output: name, input: x, op: p.opType, gain: ACTIVATION_GAIN[p.opType](p) });
  }
  return taps;
}

/**
 * Main-graph If nodes where the tap search of a graph output ends (directly or through PASS_THROUGH ops) and
 * whose matching output, in either branch, comes from an activation of ACTIVATION_GAIN (the same search inside
 * the branch): onnxruntime cannot fetch the activation's input there, so verification inlines the branch each
 * run takes (inline-if.ts) and taps the inlined copy. In graph order, each once.
 */
export function ifTapSites(model: Model): Node[] {
  const g = model.graph;
  const sites = new Set<Node>();
  for (const o of g.outputs) {
    const src = tapSource(g, o.name ?? '');
    if (!src || src.node.domain !== '' || src.node.opType !== 'If') continue;
    const index = src.node.outputs.indexOf(src.tensor);
    const activated = src.node.subgraphs.some((b) => {
      const out = b.outputs[index]?.name;
      const a = out ? tapSource(b, out)?.node : undefined;
      return !!a && a.domain === '' && !!ACTIVATION_GAIN[a.opType];
    });
    if (activated) sites.add(src.node);
  }
  return g.nodes.filter((n) => sites.has(n));
}

/** Graph outputs whose tap search (through PASS_THROUGH ops) ends at the node `n`. */
export function tapOutputsOf(model: Model, n: Node): string[] {
  return model.graph.outputs.map((o) => o.name ?? '').filter((name) => tapSource(model.graph, name)?.node === n);
}

/** Re-expresses `c.maxRelDiff` relative to max(c.scale, gain · scale of the activation's input). */
export function widenToActivationInput(c: OutputComparison, tap: ActivationTap, input: OutputComparison): OutputComparison {
  const toleranceScale = Math.max(c.scale, tap.gain * input.scale);
  if (!(toleranceScale > c.scale)) return c;
  return { ...c, toleranceScale, maxRelDiff: relativeTo(c.maxAbsDiff, toleranceScale) };
}

/**
 * Re-expresses `c.maxRelDiff` so that `≤ rtol` means `max|Δ| ≤ max(rtol, half.rtol) · scale` (scale: the
 * tolerance scale so far): the tolerance scale grows by half.rtol / rtol when the half tolerance is the larger
 * (then `rounding` records it); `c` unchanged otherwise.
 */
export function widenToRoundingBudget(c: OutputComparison, half: HalfRounding | undefined, rtol: number): OutputComparison {
  if (!half || c.mismatch || !(half.rtol > rtol)) return c;
  const base = c.toleranceScale ?? c.scale;
  const toleranceScale = base * (half.rtol / rtol);
  return { ...c, toleranceScale, maxRelDiff: relativeTo(c.maxAbsDiff, toleranceScale), rounding: half };
}

/** maxAbsDiff relative to `scale` (0 / 0 = 0, x / 0 = Infinity). */
export function relativeTo(maxAbsDiff: number, scale: number): number {
  return scale > 0 ? maxAbsDiff / scale : maxAbsDiff === 0 ? 0 : Infinity;
}
