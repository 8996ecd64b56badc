/**
 * `prune`: removes the planned units from the model (src/prune/apply.ts) and reports what changed
 * (params and FLOPs before/after, per layer). With ratio 0 and no plan file it is a lossless no-op that does
 * not touch the model. When verification follows, the dense model is kept in ctx.artifacts.dense. When nothing is
 * pruned and the model is to be written, it is loaded in onnxruntime first (a model it rejects is a UserError).
 */
import type { GroupAnalysis } from '../src/analysis/types';
import { cloneModel } from '../src/ir/clone';
import { analysisOf, modelOf, planOf } from '../src/pipeline/artifacts';
import type { PruneOptions } from '../src/pipeline/options';
import type { Pass } from '../src/pipeline/pass';
import { compareCost, measureModel } from '../src/prune/accounting';
import { applyPlan } from '../src/prune/apply';
import { nothingPrunedNote } from '../src/prune/explain';
import { checkLoads } from '../src/ort/session';

/** Declined reasons with their counts, most frequent first. */
/** How many items give each reason, most frequent first (declined groups, consumers left as they were). */
export function reasonCounts(items: readonly { reason: string }[]): Record<string, number> {
  const counts = new Map<string, number>();
  for (const d of items) counts.set(d.reason, (counts.get(d.reason) ?? 0) + 1);
  return Object.fromEntries([...counts.entries()].sort((a, b) => b[1] - a[1] || (a[0] < b[0] ? -1 : 1)));
}

export function prunePass(options: PruneOptions): Pass {
  const ratio = options.ratio ?? 0;
  const active = ratio !== 0 || !!options.plan;
  return {
    name: 'prune',
    description: 'remove the planned units (no-op at ratio 0)',
    reads: active ? ['model', 'artifacts.groups', 'artifacts.plan'] : ['model'],
    writes: active ? ['model', 'artifacts.dense', 'artifacts.loadedInOrt'] : ['model'],
    async run(ctx) {
      if (!active) {
        ctx.report.prune = { ratio, groupsPruned: 0 };
        return;
      }
      const dense = modelOf(ctx, 'prune');
      const analysis = analysisOf(ctx, 'prune');
      const plan = planOf(ctx, 'prune');
      const groups = {
        total: analysis.groups.length,
        pruned: 0,
        declined: analysis.declined.length,
        unitsRemoved: 0,
        declinedReasons: reasonCounts(analysis.declined),
        note: undefined as string | undefined,
      };
      const before = measureModel(dense);
      // Keep the dense model for verification; prune a copy.
      const keepDense = options.verify !== false || !!options.measureLatency;
      const pruned = keepDense ? cloneModel(dense) : dense;
      const summary = applyPlan(pruned, analysis, plan.groups);
      const after = summary.groupsPruned ? measureModel(pruned) : before;
      const cost = compareCost(before, after);
      groups.pruned = summary.groupsPruned;
      groups.unitsRemoved = summary.unitsRemoved;
      if (groups.pruned === 0) {
        // The input model will be written unchanged, unverified: a model onnxruntime rejects is an error, said
        // before the warning that it is written (save loads it again, after any pass that follows).
        if (ctx.outputPath !== undefined) {
          await checkLoads(dense);
          // `pruned` is an unchanged copy of what was just loaded: save need not load it a second time.
          ctx.artifacts.loadedInOrt = pruned;
        }
        groups.note = nothingPrunedNote(dense, analysis, { ratio, planFile: options.plan });
        ctx.warn(`${groups.note}; the output is the input model unchanged`);
      }
      if (!groups.note) delete (groups as { note?: string }).note;
      // A depth plan replayed (--depth-only --plan): the allocation that reports the blocks did not run.
      if (options.depthOnly && !ctx.report.depth) ctx.report.depth = { blocks: [], removed: Object.keys(plan.groups).filter((id) => plan.groups[id].length) };
      ctx.model = pruned;
      if (keepDense) ctx.artifacts.dense = dense;
      ctx.report.prune = {
        ratio,
        plan: options.plan,
        copies: summary.copies,
        attributes: summary.attrs,
        replaced: summary.replaced,
      };
      ctx.report.params = cost.params;
      ctx.report.flops = cost.flops;
      ctx.report.groups = { ...ctx.report.groups, ...groups }; // keeps the analyze pass's summary
      ctx.report.layers = cost.layers;
      ctx.log(`prune: ${groups.pruned} groups, ${groups.unitsRemoved} units; params ${cost.params.before} → ${cost.params.after}`);
    },
  };
}
