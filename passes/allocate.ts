/**
 * `allocate`: turns ctx.artifacts.scores into ctx.artifacts.removed (group id → unit indices to remove) under the
 * budget in ctx.options (ratio, target, allocation, maxRatio, roundTo, protect, protectDefaults, excludeOp), and
 * puts what it achieved in ctx.report.allocation. See src/allocate/types.ts for the contract.
 */
import { allocate } from '../src/allocate/allocate';
import { analysisOf } from '../src/pipeline/artifacts';
import type { Pass } from '../src/pipeline/pass';

export function allocatePass(): Pass {
  return {
    name: 'allocate',
    description: 'choose the units to remove under the budget',
    reads: ['model', 'artifacts.groups', 'artifacts.scores'],
    writes: ['artifacts.removed'],
    run(ctx) {
      const analysis = analysisOf(ctx, 'allocate');
      const scores = ctx.artifacts.scores;
      if (!scores) throw new Error("pass 'allocate' needs unit scores (ctx.artifacts.scores): run an importance pass before it");
      const o = ctx.options;
      const { removed, achieved } = allocate(analysis, scores.scores, {
        ratio: o.ratio ?? 0,
        target: o.target,
        mode: o.allocation ?? 'uniform',
        maxRatio: o.maxRatio,
        roundTo: o.roundTo,
        protect: o.protect,
        protectDefaults: o.protectDefaults,
        excludeOp: o.excludeOp,
        normalized: scores.info.normalized,
        model: ctx.model,
      });
      ctx.artifacts.removed = removed;
      ctx.report.allocation = achieved;
      ctx.log(`allocate: ${achieved.groupsPruned} group(s), ${achieved.unitsRemoved} unit(s); ${achieved.target} removed ${(achieved.achieved * 100).toFixed(1)} % (asked ${(achieved.requested * 100).toFixed(1)} %)`);
    },
  };
}
