/**
 * Where every parameter went: a stored float tensor (≥ 2 elements) of the model is a member of a group, a weight
 * of a declined group's producers, or listed in `GroupAnalysis.unaccounted` with the ops that read it (RoPE tables
 * and a causal mask that no pruned axis reaches, a per-channel parameter of a declined stream, a weight read only by
 * shape computations…), so that `groups --json` accounts for every parameter.
 */
import { DataType } from '../ir/dtype';
import type { Model } from '../ir/model';
import type { GroupAnalysis, UnaccountedParam } from './types';
import { resolveWeight } from './weight-chain';

const FLOATS = new Set<number>([DataType.FLOAT, DataType.FLOAT16, DataType.BFLOAT16, DataType.DOUBLE]);

export function unaccountedParams(model: Model, a: GroupAnalysis): UnaccountedParam[] {
  const covered = new Set<string>();
  for (const g of a.groups) for (const m of g.members) if (m.kind === 'weight') covered.add(m.tensor);
  for (const d of a.declined) {
    for (const p of d.producers ?? []) {
      const n = model.graph.findNode(p);
      if (!n) continue;
      for (const i of n.inputs) {
        const w = i ? resolveWeight(n.graph, i) : undefined;
        if (w) covered.add(w.name);
      }
    }
  }
  const out: UnaccountedParam[] = [];
  for (const w of model.graph.weights(true)) {
    if (covered.has(w.name) || w.tensor.size < 2 || !FLOATS.has(w.tensor.dtype)) continue;
    const readers: UnaccountedParam['readers'] = [];
    for (const n of w.graph.consumers(w.name)) {
      if (readers.length >= 3) break;
      readers.push({ node: n.outputs[0], op: n.opType, input: n.inputs.indexOf(w.name) });
    }
    out.push({ tensor: w.name, params: w.tensor.size, readers });
  }
  return out;
}
