/**
 * `plan`: decides which units go and writes ctx.artifacts.plan (a PrunePlan, schemas/plan.schema.json).
 *  - options.plan: read and validate a saved plan (same model, known groups, indices in range);
 *  - else ctx.artifacts.removed (from an allocation pass), when present;
 *  - else a uniform ratio (options.ratio) over ctx.artifacts.scores: the lowest-scoring units of each group.
 * options.savePlan writes the plan as JSON (staged in ctx.outputs: written only when the whole run succeeds).
 */
import { UserError } from '../src/ir/errors';
import { analysisOf, modelOf } from '../src/pipeline/artifacts';
import type { Pass } from '../src/pipeline/pass';
import type { PruneOptions } from '../src/pipeline/options';
import { checkPlanGroups, makePlan, readPlanFile, validatePlan, writePlanFile, type PlanGroups, type PrunePlan } from '../src/prune/plan';
import { selectUniform } from '../src/prune/select';

export function planPass(options: PruneOptions): Pass {
  return {
    name: 'plan',
    description: 'choose the units to remove (uniform ratio over scores, or a saved plan)',
    reads: ['model', 'artifacts.groups'],
    writes: ['artifacts.plan'],
    run(ctx) {
      const model = modelOf(ctx, 'plan');
      const analysis = analysisOf(ctx, 'plan');
      let plan: PrunePlan;
      if (options.plan) {
        plan = validatePlan(readPlanFile(options.plan), model, analysis, `plan '${options.plan}'`);
      } else {
        const ratio = options.ratio ?? 0;
        const removed = ctx.artifacts.removed;
        const scores = ctx.artifacts.scores;
        let groups: PlanGroups;
        if (removed) {
          groups = checkPlanGroups(removed, analysis, 'allocation');
        } else {
          if (!scores) throw new UserError("pass 'plan' needs unit scores: run an importance pass (e.g. importance-l2) before it, or give --plan");
          groups = selectUniform(analysis.groups, scores.scores, ratio);
        }
        const meta: Record<string, unknown> = { ratio };
        if (scores) meta.importance = scores.info.method;
        plan = makePlan(model, groups, meta);
      }
      ctx.artifacts.plan = plan;
      if (options.savePlan) writePlanFile(options.savePlan, plan, ctx.outputs);
      ctx.log(`plan: ${Object.keys(plan.groups).length} of ${analysis.groups.length} groups lose units`);
    },
  };
}
