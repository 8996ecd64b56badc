/**
 * `allocate`: turns ctx.artifacts.scores into ctx.artifacts.removed (group id → unit indices to remove) under the
 * budget in ctx.options (ratio, target, allocation, maxRatio, roundTo, protect, protectDefaults, excludeOp), and
 * puts what it achieved in ctx.report.allocation. See src/allocate/types.ts for the contract.
 */
import type { GroupAnalysis } from '../src/analysis/types';
import { allocate, type AllocationMode, type BudgetTarget } from '../src/allocate/allocate';
import type { Pass } from '../src/pipeline/pass';
import type { GroupScores, ScoreInfo } from '../src/score/types';

export function allocatePass(): Pass {
  return {
    name: 'allocate',
    description: 'choose the units to remove under the budget',
    reads: ['model', 'artifacts.groups', 'artifacts.scores'],
    writes: ['artifacts.removed'],
    run(ctx) {
      const analysis = ctx.artifacts.groups as GroupAnalysis;
      const scores = ctx.artifacts.scores as GroupScores;
      const info = ctx.artifacts.scoreInfo as ScoreInfo | undefined;
      const o = ctx.options;
      const { removed, achieved } = allocate(analysis, scores, {
        ratio: Number(o.ratio ?? 0),
        target: o.target as BudgetTarget | undefined,
        mode: (o.allocation as AllocationMode | undefined) ?? 'uniform',
        maxRatio: o.maxRatio as number | undefined,
        roundTo: o.roundTo as number | undefined,
        protect: o.protect as string[] | undefined,
        protectDefaults: o.protectDefaults as boolean | undefined,
        excludeOp: o.excludeOp as string[] | undefined,
        normalized: info?.normalized,
        model: ctx.model,
      });
      ctx.artifacts.removed = removed;
      ctx.report.allocation = achieved;
      ctx.log(`allocate: ${achieved.groupsPruned} group(s), ${achieved.unitsRemoved} unit(s); ${achieved.target} removed ${(achieved.achieved * 100).toFixed(1)} % (asked ${(achieved.requested * 100).toFixed(1)} %)`);
    },
  };
}
