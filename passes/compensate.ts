/**
 * `compensate`: FLAP bias compensation (src/score/compensate.ts) between `plan` and `prune`. Runs when
 * options.importance is 'fluctuation' and options.compensate is not false, or when options.compensate is true
 * with another data-aware importance (wanda); otherwise does nothing.
 * It keeps the uncompensated model in ctx.artifacts.original (fidelity must be measured against it: the
 * compensated dense model is only the reference for masked equivalence), then edits ctx.model and
 * ctx.artifacts.groups in place with the removed units of ctx.artifacts.plan.
 */
import type { GroupAnalysis } from '../src/analysis/types';
import { UserError } from '../src/ir/errors';
import type { Pass } from '../src/pipeline/pass';
import { cloneModel } from '../src/prune/clone';
import type { PrunePlan } from '../src/prune/plan';
import type { ActivationStats } from '../src/runtime/capture';
import { compensateBias } from '../src/score/compensate';

export function compensatePass(options: Record<string, unknown>): Pass {
  const dataAware = options.importance === 'fluctuation' || options.importance === 'wanda';
  if (options.compensate === true && !dataAware) {
    throw new UserError(`--compensate needs calibration statistics: use --importance fluctuation or wanda (got ${String(options.importance ?? 'l2')})`);
  }
  const active = dataAware && (options.compensate === true || (options.importance === 'fluctuation' && options.compensate !== false));
  return {
    name: 'compensate',
    description: 'fold the mean contribution of removed inputs into the consumers\' biases (fluctuation)',
    reads: active ? ['model', 'artifacts.groups', 'artifacts.plan', 'artifacts.activationStats'] : [],
    writes: active ? ['model', 'artifacts.original'] : [],
    run(ctx) {
      if (!active || !ctx.model) return;
      const plan = ctx.artifacts.plan as PrunePlan;
      const stats = ctx.artifacts.activationStats as ActivationStats;
      ctx.artifacts.original = cloneModel(ctx.model);
      const r = compensateBias(ctx.model, ctx.artifacts.groups as GroupAnalysis, plan.groups, stats);
      ctx.report.compensation = { consumers: r.consumers, biasesAdded: r.biasesAdded, skipped: r.skipped.length };
      ctx.log(`compensate: ${r.consumers} consumer bias(es) adjusted, ${r.biasesAdded} added, ${r.skipped.length} skipped`);
    },
  };
}
