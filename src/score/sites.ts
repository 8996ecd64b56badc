/**
 * Where a consumer weight meets its input activation. For an 'in' member (a weight that consumes the group's
 * channels), the activation site is the node's data input and the axis of that tensor that runs along the
 * member's axis. The op spec (src/ir/ops, `weighted.inAxis` / `weighted.site`) tells, e.g.:
 *   Conv (group 1)           W[O, I, k…] axis 1   ↔ X[N, I, …]      axis 1
 *   ConvTranspose (group 1)  W[I, O, k…] axis 0   ↔ X[N, I, …]      axis 1
 *   Gemm                     B[K, N] / Bᵀ[N, K]   ↔ A[M, K] (Aᵀ[K, M] when transA)
 *   MatMul, weight right     W[…, K, N] axis −2   ↔ X[…, K]         axis −1
 *   MatMul, weight left      W[M, K] axis 1       ↔ X[…, K, N]      axis −2
 * Grouped convolutions and other ops have no site (data-aware scores fall back to the weights there). A weight
 * behind a Cast / DequantizeLinear chain meets the activation at the op after the chain (memberUse).
 */
import type { GroupAnalysis, WeightMember } from '../analysis/types';
import type { Graph } from '../ir/graph';
import { specOf } from '../ir/ops';
import type { CaptureRequest } from '../ort/capture';
import { memberUse } from './tensor-math';

export interface ActivationSite {
  tensor: string;
  axis: number;
}

export function inputSite(graph: Graph, m: WeightMember, weightRank: number): ActivationSite | undefined {
  if (m.role !== 'in') return undefined;
  const use = memberUse(graph, m);
  // A consumer inside a control-flow subgraph: its input cannot be captured (main-graph tensors only).
  if (!use || use.node.graph !== graph) return undefined;
  const n = use.node;
  const w = specOf(n)?.weighted;
  const ax = m.axis < 0 ? m.axis + weightRank : m.axis;
  if (!w?.inAxis || !w.site || w.inAxis(n, use.input, weightRank) !== ax) return undefined;
  const site = w.site(n, use.input, weightRank);
  return site && { tensor: n.inputs[site.input], axis: site.axis };
}

/** Capture requests for every 'in' member's input activation (deduplicated). */
export function activationRequests(graph: Graph, analysis: GroupAnalysis, opts: { gram?: boolean } = {}): CaptureRequest[] {
  const seen = new Map<string, CaptureRequest>();
  for (const g of analysis.groups) {
    for (const m of g.members) {
      if (m.kind !== 'weight' || m.role !== 'in') continue;
      const w = graph.findConstant(m.tensor);
      if (!w) continue;
      const site = inputSite(graph, m, w.dims.length);
      if (!site) continue;
      const key = `${site.tensor}@${site.axis}`;
      if (!seen.has(key)) seen.set(key, { tensor: site.tensor, axis: site.axis, gram: opts.gram });
    }
  }
  return [...seen.values()];
}
