/**
 * Why a prune run removed nothing, in one line (the report's `groups.note`, and the CLI's warning).
 *
 * Nothing prunable is a normal outcome for some models, not an error: the output is the input model unchanged
 * (allocation throws a UserError instead when options — protection, --max-ratio — are what stops it). Causes:
 *  - no group of two units or more: every group was declined (the most frequent reasons), or the analysis
 *    found none in the main graph, or only single-unit groups — with the share of the parameters that only
 *    If/Loop/Scan bodies use (their groups are analyzed and listed like the main graph's);
 *  - a plan that removes nothing; groups that could lose units, but a ratio too small to remove one.
 */
import type { GroupAnalysis } from '../analysis/types';
import type { Model } from '../ir/model';

export interface NothingPrunedContext {
  ratio: number;
  planFile?: string;
}

function pct(a: number, b: number): string {
  return b > 0 ? `${((100 * a) / b).toFixed(1)} %` : '0 %';
}

/**
 * Parameters only control-flow subgraphs use: weights stored inside If/Loop/Scan bodies (at any depth), and
 * main-graph weights that no main-graph node reads directly (only bodies read them, from outer scope).
 */
function subgraphParams(model: Model): { params: number; ops: string[] } {
  const g = model.graph;
  let params = 0;
  const ops = new Set<string>();
  for (const n of g.nodes) {
    for (const sg of n.subgraphs) {
      const w = sg.weights(true).reduce((acc, r) => acc + r.tensor.size, 0);
      if (w > 0) ops.add(n.opType);
      params += w;
    }
  }
  for (const w of g.weights(false)) {
    // consumers() lists direct readers and nodes whose bodies read the weight from outer scope.
    const users = g.consumers(w.name);
    if (users.length && users.every((c) => !c.inputs.includes(w.name))) {
      params += w.tensor.size;
      for (const c of users) ops.add(c.opType);
    }
  }
  return { params, ops: [...ops].sort() };
}

function declinedSummary(analysis: GroupAnalysis): string {
  const counts = new Map<string, number>();
  for (const d of analysis.declined) counts.set(d.reason, (counts.get(d.reason) ?? 0) + 1);
  const top = [...counts.entries()].sort((a, b) => b[1] - a[1] || (a[0] < b[0] ? -1 : 1)).slice(0, 3);
  return top.map(([r, k]) => (k > 1 ? `${r} ×${k}` : r)).join('; ');
}

export function nothingPrunedNote(model: Model, analysis: GroupAnalysis, c: NothingPrunedContext): string {
  if (c.planFile) return 'nothing to prune: the plan removes no units';
  if (analysis.groups.some((g) => g.size >= 2)) return `nothing to prune: at ratio ${c.ratio} no group loses a unit (groups too small)`;
  const total = analysis.summary.totalParams;
  const sub = subgraphParams(model);
  const parts: string[] = [];
  if (analysis.groups.length) parts.push(`the ${analysis.groups.length} group(s) found have a single unit`);
  if (analysis.declined.length) parts.push(`${analysis.groups.length ? 'the other groups were' : 'every group was'} declined (${declinedSummary(analysis)})`);
  if (!parts.length) parts.push(`the analysis found no channel groups${sub.params > 0 ? ' (in the main graph or its subgraphs)' : ''}`);
  if (sub.params > 0) parts.push(`${sub.params} of ${total} params (${pct(sub.params, total)}) are only used inside ${sub.ops.join('/')} branches`);
  return `nothing to prune: ${parts.join('; ')}`;
}
