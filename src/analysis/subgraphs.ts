/**
 * Groups that live entirely inside control-flow subgraphs (If branches, Loop / Scan bodies, at any depth).
 *
 * Each subgraph is analyzed as a graph of its own with the same machinery as the main graph (plumbing,
 * propagation, groups): its outputs are pinned like graph outputs, and what it reads from enclosing scopes
 * (the branch's `input`, a Loop's carried values...) carries no labels, like a graph input — a channel that
 * would have to shrink such a value blocks its group (traced back to no stored constant: "pinned"). A channel
 * that leaves the subgraph, or enters a nested one, is declined by the rule of the scope it is in, as in the
 * main graph ("used inside a subgraph"). So every unit removed is created and consumed inside one subgraph, and
 * masked equivalence holds there exactly as in the main graph: whenever the subgraph runs, it computes the
 * masked function.
 *
 * Constants read from an enclosing scope (main-graph initializers read only inside a branch, as older
 * exporters write them) may be members too, when nothing outside the subgraph reads them: apply then moves them
 * into the subgraph before editing (src/prune/apply.ts). A constant another scope reads declines its group
 * ("weight read outside its control-flow subgraph").
 *
 * Shapes come from the same table as the main graph's (src/analysis/shape-source.ts: static inference fills the
 * subgraphs' tensors too; onnxruntime only measures main-graph tensors): a tensor without a concrete shape
 * declines what reaches it. Member and group ids are tensor names, which ONNX requires to be unique across the
 * whole model; a model that reuses a name in several scopes gets no subgraph groups (one declined entry says
 * so).
 */
import type { Graph } from '../ir/graph';
import type { Model } from '../ir/model';
import { DECLINE } from './decline';
import { type BuildOptions, type MemberCheck, buildGroups } from './groups';
import { propagate } from './propagate';
import { Plumbing } from './shape-plumbing';
import type { DeclinedGroup, Group, GroupAnalysis, Member } from './types';

/** Every subgraph below the main graph (breadth first, in node order: deterministic). */
export function subgraphsOf(model: Model): Graph[] {
  return model.graph.allGraphs().slice(1);
}

/** A tensor name defined in two scopes (initializer, node output or formal input), if any. */
export function scopeNameClash(model: Model): string | undefined {
  const owner = new Map<string, Graph>();
  for (const g of model.graph.allGraphs()) {
    for (const name of g.definedNames()) {
      const prev = owner.get(name);
      if (prev && prev !== g) return name;
      owner.set(name, g);
    }
  }
  return undefined;
}

/** The graphs whose own nodes read each name directly, and the names some graph lists as an output. */
class Readers {
  private readonly by = new Map<string, Set<Graph>>();
  readonly outputs = new Set<string>();

  constructor(model: Model) {
    for (const g of model.graph.allGraphs()) {
      for (const n of g.nodes) {
        for (const i of n.inputs) {
          if (!i) continue;
          let s = this.by.get(i);
          if (!s) this.by.set(i, (s = new Set()));
          s.add(g);
        }
      }
      for (const o of g.proto.output) if (o.name) this.outputs.add(o.name);
    }
  }

  of(name: string): Graph[] {
    return [...(this.by.get(name) ?? [])];
  }
}

/**
 * The check of a subgraph's group members: a constant the subgraph does not define itself must be defined by
 * an enclosing scope as a plain constant (not an overridable graph input), be no graph output, and be read by
 * nodes of this subgraph (or of subgraphs nested in it) only.
 */
function scopeCheck(model: Model, sub: Graph, readers: Readers): MemberCheck {
  return (members: Member[]) => {
    for (const m of members) {
      if (m.kind === 'attr' || m.kind === 'stat') continue;
      const t = m.tensor;
      if (sub.initializers.has(t) || sub.producer(t)) continue;
      const owner = model.graph.ownerOf(t);
      const fail = { reason: DECLINE.outerScope, node: m.node, tensor: t };
      if (!owner || owner.proto.input.some((i) => i.name === t) || readers.outputs.has(t)) return fail;
      if (!sub.isWithin(owner)) return fail;
      if (readers.of(t).some((g) => !g.isWithin(sub))) return fail;
    }
    return undefined;
  };
}

/**
 * Groups of every subgraph of `model`, merged into `main` (the main graph's analysis) in place: groups and
 * declined entries are appended, the summary counts updated. A model without subgraphs is left untouched.
 */
export function addSubgraphGroups(model: Model, shapes: Map<string, number[]>, opset: number, opts: BuildOptions, main: GroupAnalysis): void {
  const subs = subgraphsOf(model);
  if (!subs.length) return;
  const clash = scopeNameClash(model);
  const groups: Group[] = [];
  const declined: DeclinedGroup[] = [];
  let prunable = 0;
  if (clash) {
    declined.push({ reason: DECLINE.scopeNames, reasons: [DECLINE.scopeNames], tensor: clash });
  } else {
    const readers = new Readers(model);
    for (const sub of subs) {
      const plumb = new Plumbing(sub, shapes, sub.topoSort());
      const st = propagate(sub, shapes, plumb, opset, { normStats: opts.normStatistics });
      const r = buildGroups(st, plumb, opts, scopeCheck(model, sub, readers));
      groups.push(...r.groups);
      declined.push(...r.declined);
      prunable += r.summary.prunableParams;
    }
  }
  main.groups.push(...groups);
  main.declined.push(...declined);
  main.summary.groups = main.groups.length;
  main.summary.declined = main.declined.length;
  main.summary.prunableParams += prunable;
}
