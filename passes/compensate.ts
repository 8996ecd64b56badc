/**
 * `compensate`: FLAP bias compensation (src/score/compensate.ts) between `plan` and `prune`.
 *  - With a data-aware importance (wanda, fluctuation), which has the calibration statistics it needs, it runs
 *    by default: it computes the bias changes, makes them, and stores them in the plan (ctx.artifacts.plan
 *    .compensation; the --save-plan file is rewritten with them).
 *  - With a saved plan that carries compensation (--plan), it re-applies those changes (no calibration needed).
 *  - options.compensate === false turns both off; with a data-free importance it does nothing.
 * It keeps the uncompensated model in ctx.artifacts.original (fidelity must be measured against it: the
 * compensated dense model is only the reference for masked equivalence), then edits ctx.model and
 * ctx.artifacts.groups in place with the removed units of ctx.artifacts.plan.
 */
import type { GroupAnalysis } from '../src/analysis/types';
import { UserError } from '../src/ir/errors';
import type { Pass, PassContext } from '../src/pipeline/pass';
import { cloneModel } from '../src/ir/clone';
import { writePlanFile, type PrunePlan } from '../src/prune/plan';
import type { ActivationStats } from '../src/ort/capture';
import { applyCompensation, planCompensation, type CompensationReport } from '../src/score/compensate';

export function compensatePass(options: Record<string, unknown>): Pass {
  const planFile = options.planFile as string | undefined;
  const dataAware = options.importance === 'fluctuation' || options.importance === 'wanda';
  if (options.compensate === true && !dataAware && !planFile) {
    throw new UserError(`--compensate needs calibration statistics: use --importance fluctuation or wanda (got ${String(options.importance ?? 'l2')})`);
  }
  const compute = dataAware && !planFile && options.compensate !== false;
  const record = (ctx: PassContext, r: CompensationReport, from: string) => {
    ctx.report.compensation = { consumers: r.consumers, biasesAdded: r.biasesAdded, skipped: r.skipped.length, from };
    ctx.log(`compensate: ${r.consumers} consumer bias(es) adjusted, ${r.biasesAdded} added, ${r.skipped.length} skipped (${from})`);
  };
  return {
    name: 'compensate',
    description: 'fold the mean contribution of removed inputs into the consumers\' biases (wanda, fluctuation, or a plan that carries it)',
    reads: compute ? ['model', 'artifacts.groups', 'artifacts.plan', 'artifacts.activationStats'] : planFile ? ['model', 'artifacts.groups', 'artifacts.plan'] : [],
    writes: compute || planFile ? ['model', 'artifacts.original'] : [],
    run(ctx) {
      const plan = ctx.artifacts.plan as PrunePlan | undefined;
      if (!ctx.model || !plan) return;
      const analysis = ctx.artifacts.groups as GroupAnalysis;
      if (planFile) {
        if (!plan.compensation?.length) return;
        if (options.compensate === false) {
          ctx.log(`compensate: --no-compensate: the plan's bias compensation (${plan.compensation.length} consumers) is not applied`);
          return;
        }
        ctx.artifacts.original = cloneModel(ctx.model);
        record(ctx, applyCompensation(ctx.model, analysis, plan.compensation, `plan '${planFile}'`), 'plan');
        return;
      }
      if (!compute) return;
      const stats = ctx.artifacts.activationStats as ActivationStats;
      ctx.artifacts.original = cloneModel(ctx.model);
      const { adjustments, skipped } = planCompensation(ctx.model, analysis, plan.groups, stats);
      const r = applyCompensation(ctx.model, analysis, adjustments);
      record(ctx, { ...r, skipped: [...skipped, ...r.skipped] }, 'calibration');
      if (adjustments.length) {
        plan.compensation = adjustments;
        if (options.savePlan) writePlanFile(String(options.savePlan), plan);
      }
    },
  };
}
