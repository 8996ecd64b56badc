/**
 * Phase 1 of group analysis: one pass over the graph in topological order applying the op rule table, which
 * creates producer spaces, carries label fields through every op, couples labels (union-find) and records
 * the facts (members, shape uses, declines) that phase 2 resolves.
 */
import { implicitInputs, type Graph } from '../ir/graph';
import { DECLINE } from './decline';
import { ruleFor } from './op-rules';
import { declineInputs } from './rule-kit';
import type { Plumbing } from './shape-plumbing';
import { State } from './state';

export interface PropagateOptions {
  /** Query-head mode (gqa-query-heads.ts): a repeating Expand labels its copies afresh. */
  repeatSpaces?: boolean;
  /** Normalization statistics over a pruned axis run over the kept positions (default) instead of declining. */
  normStats?: boolean;
}

export function propagate(graph: Graph, shapes: Map<string, number[]>, plumb: Plumbing, opset: number, opts: PropagateOptions = {}): State {
  const st = new State(graph, shapes, plumb, opset);
  st.repeatSpaces = !!opts.repeatSpaces;
  st.normStats = opts.normStats !== false;
  for (const n of graph.topoSort()) {
    const labeled = n.inputs.some((i) => st.field(i));
    if (n.subgraphs.length) {
      const outer = implicitInputs(n).filter((i) => st.field(i));
      for (const i of outer) st.declineField(st.field(i), DECLINE.controlFlow, n, i);
      if (labeled) declineInputs(st, n, DECLINE.controlFlow);
      continue;
    }
    const rule = ruleFor(n);
    if (!rule) {
      if (labeled) declineInputs(st, n, `${DECLINE.unknownOp}: ${n.domain ? `${n.domain}.` : ''}${n.opType}`);
      continue;
    }
    if (!labeled && !rule.produces) continue;
    rule.apply(st, n);
  }
  for (const o of graph.outputs) {
    const name = o.name ?? '';
    st.declineField(st.field(name), DECLINE.graphOutput, undefined, name);
  }
  return st;
}
