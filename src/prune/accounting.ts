/**
 * Accounting: parameters and MACs before/after pruning, per layer and in total.
 *
 * - `params` counts every element of every initializer and Constant-node value in all graphs (the same
 *   definition as `onnx-prune inspect`).
 * - A layer is a node that reads float weights or costs MACs; its params are the float weights it reads
 *   (a shared weight counts for each reader). Layers are matched before/after by their first output name,
 *   which pruning keeps.
 * - MACs come from `countMacs` (shapes inferred with symbolic dims taken as 1); when they cannot be computed the
 *   totals are `null` and the report says why.
 */
import { countMacs } from '../analysis/flops';
import { isFloat } from '../ir/dtype';
import type { Model } from '../ir/model';

export interface LayerCost {
  node: string;
  opType: string;
  params: number;
  macs?: number;
}

export interface ModelCost {
  params: number;
  macs?: number;
  /** Nodes whose MACs could not be computed (unknown shapes). */
  macsUnknown: string[];
  layers: Map<string, LayerCost>;
}

export function measureModel(model: Model): ModelCost {
  const g = model.graph;
  let params = 0;
  for (const sg of g.allGraphs()) for (const w of sg.weights()) params += w.tensor.size;
  const layers = new Map<string, LayerCost>();
  for (const n of g.nodes) {
    if (n.opType === 'Constant' || n.opType === 'Identity') continue;
    let p = 0;
    for (const i of n.inputs) {
      if (!i) continue;
      const t = g.resolveConstant(i);
      if (t && isFloat(t.dtype)) p += t.size;
    }
    if (p > 0) layers.set(n.outputs[0], { node: n.outputs[0], opType: n.opType, params: p });
  }
  let macs: number | undefined;
  let macsUnknown: string[] = [];
  try {
    const f = countMacs(model);
    macs = f.macs;
    macsUnknown = f.unknown;
    const byName = new Map(g.nodes.map((n) => [n.name, n] as const));
    for (const pn of f.perNode) {
      if (!(pn.macs > 0)) continue;
      // countMacs names a node by its first output (or its name when that is how it reports it).
      const node = g.producer(pn.node) ?? byName.get(pn.node);
      const key = node ? node.outputs[0] : pn.node;
      const l = layers.get(key) ?? { node: key, opType: pn.opType, params: 0 };
      l.macs = (l.macs ?? 0) + pn.macs;
      layers.set(key, l);
    }
  } catch (e) {
    macs = undefined;
    macsUnknown = [`countMacs failed: ${(e as Error).message}`];
  }
  return { params, macs, macsUnknown, layers };
}

export interface LayerDelta {
  node: string;
  opType: string;
  paramsBefore: number;
  paramsAfter: number;
  macsBefore?: number;
  macsAfter?: number;
}

export interface CostReport {
  /** `removedRatio` = removed / before (every ratio in the report is a fraction removed, like --ratio). */
  params: { before: number; after: number; removed: number; removedRatio: number };
  /** FLOPs = 2 × MACs; null when MACs are unknown. */
  flops: { before: number | null; after: number | null; removedRatio: number | null; macsBefore: number | null; macsAfter: number | null; note?: string };
  /** Layers whose params or MACs changed (all layers when `allLayers`). */
  layers: LayerDelta[];
}

export function compareCost(before: ModelCost, after: ModelCost, allLayers = false): CostReport {
  const macsBefore = before.macs ?? null;
  const macsAfter = after.macs ?? null;
  const known = macsBefore !== null && macsAfter !== null;
  const flops: CostReport['flops'] = {
    before: macsBefore === null ? null : 2 * macsBefore,
    after: macsAfter === null ? null : 2 * macsAfter,
    removedRatio: known && macsBefore! > 0 ? (macsBefore! - macsAfter!) / macsBefore! : null,
    macsBefore,
    macsAfter,
  };
  if (!known) {
    const why = [...before.macsUnknown, ...after.macsUnknown].slice(0, 3).join(', ');
    flops.note = `MACs unknown (shapes could not be inferred${why ? `: ${why}` : ''})`;
  }
  const layers: LayerDelta[] = [];
  for (const [key, b] of before.layers) {
    const a = after.layers.get(key);
    const d: LayerDelta = { node: key, opType: b.opType, paramsBefore: b.params, paramsAfter: a?.params ?? 0 };
    if (b.macs !== undefined || a?.macs !== undefined) {
      d.macsBefore = b.macs ?? 0;
      d.macsAfter = a?.macs ?? 0;
    }
    if (allLayers || d.paramsBefore !== d.paramsAfter || d.macsBefore !== d.macsAfter) layers.push(d);
  }
  for (const [key, a] of after.layers) {
    if (!before.layers.has(key)) layers.push({ node: key, opType: a.opType, paramsBefore: 0, paramsAfter: a.params, macsBefore: 0, macsAfter: a.macs });
  }
  return {
    params: { before: before.params, after: after.params, removed: before.params - after.params, removedRatio: before.params > 0 ? (before.params - after.params) / before.params : 0 },
    flops,
    layers,
  };
}
