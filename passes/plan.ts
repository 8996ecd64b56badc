/**
 * `plan`: decides which units go and writes ctx.artifacts.plan (a PrunePlan, schemas/plan.schema.json).
 *  - options.planFile: read and validate a saved plan (same model, known groups, indices in range);
 *  - else ctx.artifacts.removed (from an allocation pass), when present;
 *  - else a uniform ratio (options.ratio) over ctx.artifacts.scores: the lowest-scoring units of each group.
 * options.savePlan writes the plan as JSON.
 */
import { UserError } from '../src/ir/errors';
import { analysisOf, modelOf, type ScoreMap } from '../src/pipeline/artifacts';
import { checkPlanGroups, makePlan, readPlanFile, validatePlan, writePlanFile, type PlanGroups, type PrunePlan } from '../src/prune/plan';
import { selectUniform } from '../src/prune/select';
import type { Pass } from '../src/pipeline/pass';

export function planPass(options: Record<string, unknown>): Pass {
  return {
    name: 'plan',
    description: 'choose the units to remove (uniform ratio over scores, or a saved plan)',
    reads: ['model', 'artifacts.groups'],
    writes: ['artifacts.plan'],
    run(ctx) {
      const model = modelOf(ctx, 'plan');
      const analysis = analysisOf(ctx, 'plan');
      const planFile = options.planFile as string | undefined;
      let plan: PrunePlan;
      if (planFile) {
        plan = validatePlan(readPlanFile(planFile), model, analysis, `plan '${planFile}'`);
      } else {
        const ratio = Number(options.ratio ?? 0);
        const removed = ctx.artifacts.removed as PlanGroups | undefined;
        let groups: PlanGroups;
        if (removed) {
          groups = checkPlanGroups(removed, analysis, 'allocation');
        } else {
          const scores = ctx.artifacts.scores as ScoreMap | undefined;
          if (!scores) throw new UserError("pass 'plan' needs unit scores: run an importance pass (e.g. importance-l2) before it, or give --plan");
          groups = selectUniform(analysis.groups, scores, ratio);
        }
        const meta: Record<string, unknown> = { ratio };
        if (options.importance !== undefined) meta.importance = options.importance;
        plan = makePlan(model, groups, meta);
      }
      ctx.artifacts.plan = plan;
      if (options.savePlan) writePlanFile(String(options.savePlan), plan);
      ctx.log(`plan: ${Object.keys(plan.groups).length} of ${analysis.groups.length} groups lose units`);
    },
  };
}
