/**
 * Weight access and per-axis reductions used by every importance method.
 *
 * A weight member (src/analysis/types.ts) slices one tensor along one axis; unit u owns the axis positions
 * `indices[u]`. Most scores reduce the tensor over every other axis into one value per axis position (a
 * "profile"), then sum that profile over each unit's positions.
 */
import type { Group, Member, WeightMember } from '../analysis/types';
import type { Graph } from '../ir/graph';
import type { Model } from '../ir/model';
import type { Node } from '../ir/node';
import { usedValues, weightUse } from '../analysis/weight-chain';

export interface DenseWeight {
  name: string;
  data: Float32Array;
  dims: number[];
}

/**
 * Decodes weights once per scoring run, as float32 values *as used*: a weight stored in float16 behind a Cast,
 * or quantized behind a DequantizeLinear, gives the values its op computes with ((q − zero_point) · scale),
 * not its stored codes (see src/analysis/weight-chain.ts).
 */
export class WeightCache {
  private cache = new Map<string, DenseWeight | null>();
  constructor(public readonly model: Model) {}

  get(name: string): DenseWeight | undefined {
    if (!this.cache.has(name)) {
      // Weights of groups inside control-flow subgraphs are found in the graph that stores them.
      const t = this.model.graph.findConstant(name);
      const data = t && usedValues(this.model.graph, name);
      this.cache.set(name, t && data ? { name, data, dims: t.dims } : null);
    }
    return this.cache.get(name) ?? undefined;
  }

  /** Forgets a decoded weight (decoded again if asked for later). */
  release(name: string): void {
    this.cache.delete(name);
  }
}

/**
 * True when the group lives inside a control-flow subgraph of `graph` (an If branch, a Loop body): its nodes'
 * activations cannot be captured (onnxruntime only returns main-graph tensors) and its consumers get no bias
 * compensation.
 */
export function inSubgraph(graph: Graph, group: Group): boolean {
  return group.members.some((m) => !graph.producer(m.node) && graph.findNode(m.node) !== undefined);
}

/**
 * The op that uses a weight member's values and its input slot: the member's own (node, input), or, for a weight
 * stored behind a Cast / DequantizeLinear chain (the member names the chain's first op), the op after the chain.
 */
export function memberUse(graph: Graph, m: { node: string; input: number }): { node: Node; input: number } | undefined {
  return weightUse(graph, m.node, m.input);
}

export type ProfileKind = 'l1' | 'l2sq' | 'sum';

/** One value per position along `axis`: Σ|w|, Σw² or Σw over every other axis. */
export function axisProfile(w: DenseWeight, axis: number, kind: ProfileKind): Float64Array {
  const dims = w.dims;
  const n = dims[axis];
  let inner = 1;
  for (let i = axis + 1; i < dims.length; i++) inner *= dims[i];
  const out = new Float64Array(n);
  const d = w.data;
  const block = n * inner;
  if (block === 0) return out;
  // Each position's terms are added in increasing flat index, as an element-by-element pass would (so the sums
  // are bit-identical to it), without a division per element.
  if (inner === 1) {
    let pos = 0;
    if (kind === 'l1') for (let i = 0; i < d.length; i++) { out[pos] += Math.abs(d[i]); if (++pos === n) pos = 0; }
    else if (kind === 'l2sq') for (let i = 0; i < d.length; i++) { const v = d[i]; out[pos] += v * v; if (++pos === n) pos = 0; }
    else for (let i = 0; i < d.length; i++) { out[pos] += d[i]; if (++pos === n) pos = 0; }
    return out;
  }
  for (let base = 0; base < d.length; base += block) {
    for (let pos = 0; pos < n; pos++) {
      let acc = out[pos];
      const start = base + pos * inner;
      const end = start + inner;
      if (kind === 'l1') for (let i = start; i < end; i++) acc += Math.abs(d[i]);
      else if (kind === 'l2sq') for (let i = start; i < end; i++) acc += d[i] * d[i];
      else for (let i = start; i < end; i++) acc += d[i];
      out[pos] = acc;
    }
  }
  return out;
}

/** Sums a per-position profile over each unit's positions. */
export function unitSums(profile: ArrayLike<number>, indices: number[][]): Float64Array {
  const out = new Float64Array(indices.length);
  for (let u = 0; u < indices.length; u++) {
    let s = 0;
    for (const j of indices[u]) s += profile[j];
    out[u] = s;
  }
  return out;
}

export function weightMembers(group: Group): WeightMember[] {
  return group.members.filter((m: Member): m is WeightMember => m.kind === 'weight');
}

const NORM_OPS = new Set(['BatchNormalization', 'InstanceNormalization', 'LayerNormalization', 'GroupNormalization',
  'SimplifiedLayerNormalization', 'RMSNormalization']);

/**
 * The members that hold learned per-unit weights, which magnitude-style scores read:
 * - 'out'/'in' members of rank ≥ 2 (Conv/Gemm/MatMul kernels; 1-D biases are left out);
 * - 'param' members that scale the channel: the scale input (slot 1) of a normalization op, a Mul constant
 *   (RMSNorm weight, layer scale), a PRelu slope. Additive constants and BN running statistics are left out.
 * When nothing qualifies, every weight member is used.
 */
export function learnedMembers(graph: Graph, group: Group, weights: WeightCache): WeightMember[] {
  const all = weightMembers(group);
  const chosen = all.filter((m) => {
    const w = weights.get(m.tensor);
    if (!w) return false;
    if (m.role !== 'param') return w.dims.length >= 2;
    const use = memberUse(graph, m);
    if (!use) return false;
    if (NORM_OPS.has(use.node.opType)) return use.input === 1;
    return use.node.opType === 'Mul' || use.node.opType === 'PRelu';
  });
  return chosen.length ? chosen : all.filter((m) => weights.get(m.tensor));
}

/** Combines per-member unit vectors into one vector per unit. */
export function reduceMembers(vectors: Float64Array[], size: number, how: 'mean' | 'sum' | 'max'): Float64Array {
  const out = new Float64Array(size);
  if (vectors.length === 0) return out;
  if (how === 'max') out.fill(-Infinity);
  for (const v of vectors) {
    for (let u = 0; u < size; u++) out[u] = how === 'max' ? Math.max(out[u], v[u]) : out[u] + v[u];
  }
  if (how === 'mean') for (let u = 0; u < size; u++) out[u] /= vectors.length;
  return out;
}
