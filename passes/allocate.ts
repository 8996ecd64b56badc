/**
 * `allocate`: turns ctx.artifacts.scores into ctx.artifacts.removed (group id → unit indices to remove) under the
 * budget in ctx.options (ratio, target, allocation, maxRatio, roundTo, protect, protectDefaults, excludeOp), and
 * puts what it achieved in ctx.report.allocation. See src/allocate/types.ts for the contract.
 * `--allocation search` runs the evolutionary search (src/prune/search.ts) on the calibration data, with the
 * run's reconstruction, and puts its trace in ctx.report.search.
 */
import { allocate, type AllocateOptions } from '../src/allocate/allocate';
import { analysisOf, modelOf } from '../src/pipeline/artifacts';
import { reconstructMode, type PruneOptions } from '../src/pipeline/options';
import type { Pass } from '../src/pipeline/pass';
import { depthAllocation } from '../src/prune/depth';
import { searchAllocation } from '../src/prune/search';
import { importanceMethod } from '../src/score/methods';
import { calibrationSet } from './calibration';

export function allocatePass(options: PruneOptions = {}): Pass {
  return {
    name: 'allocate',
    description: 'choose the units to remove under the budget',
    // --depth-only scores the blocks itself (src/prune/depth.ts).
    reads: options.depthOnly ? ['model', 'artifacts.groups'] : ['model', 'artifacts.groups', 'artifacts.scores'],
    writes: ['artifacts.removed'],
    async run(ctx) {
      const analysis = analysisOf(ctx, 'allocate');
      if (ctx.options.depthOnly) {
        const calib = await calibrationSet(ctx, 'allocate');
        if (calib.random) ctx.warn('depth: no --calib: blocks were scored on random inputs');
        const r = await depthAllocation(modelOf(ctx, 'allocate'), analysis, calib, { ratio: ctx.options.ratio ?? 0, target: ctx.options.target });
        ctx.artifacts.removed = r.removed;
        ctx.report.allocation = r.achieved;
        ctx.report.depth = { blocks: r.scores, removed: Object.keys(r.removed) };
        ctx.log(`depth: ${Object.keys(r.removed).length} of ${r.scores.length} block(s) removed; ${r.achieved.target} removed ${(r.achieved.achieved * 100).toFixed(1)} % (asked ${(r.achieved.requested * 100).toFixed(1)} %)`);
        return;
      }
      const scores = ctx.artifacts.scores;
      if (!scores) throw new Error("pass 'allocate' needs unit scores (ctx.artifacts.scores): run an importance pass before it");
      const o = ctx.options;
      const opts: AllocateOptions = {
        ratio: o.ratio ?? 0,
        target: o.target,
        mode: o.allocation === 'search' ? 'uniform' : o.allocation ?? 'uniform',
        maxRatio: o.maxRatio,
        roundTo: o.roundTo,
        protect: o.protect,
        protectDefaults: o.protectDefaults,
        excludeOp: o.excludeOp,
        normalized: scores.info.normalized,
        model: ctx.model,
      };
      if (o.allocation === 'search' && (o.ratio ?? 0) > 0) {
        const model = modelOf(ctx, 'allocate');
        const calib = await calibrationSet(ctx, 'allocate');
        const method = scores.info.method;
        const recon = reconstructMode(o, method ? importanceMethod(method) : undefined);
        const tty = !o.quiet && !o.json && !!process.stderr.isTTY;
        const r = await searchAllocation(model, analysis, scores.scores, calib, opts, {
          seed: o.seed ?? 0, time: o.searchTime, generations: o.searchGenerations, offspring: o.searchOffspring, iterations: o.searchIterations,
          reconstruct: recon, sequential: o.sequential !== false, log: ctx.log,
          progress: tty ? (p) => process.stderr.write(`\rsearch: iteration ${p.iteration}/${p.iterations}, generation ${p.generation}/${p.generations}, ` +
            `best ${p.best.toPrecision(4)}, ${opts.target ?? 'params'} removed ${(100 * p.budget).toFixed(1)} %, ${p.elapsed.toFixed(0)} s, ETA ${p.eta.toFixed(0)} s   `) : undefined,
        });
        if (tty) process.stderr.write('\n');
        ctx.artifacts.removed = r.removed;
        ctx.report.allocation = r.achieved;
        if (r.skipped) ctx.warn(r.skipped);
        if (r.report) {
          ctx.report.search = r.report;
          const s = r.report;
          ctx.log(`search: fitness ${s.result.toPrecision(4)} (uniform ${s.baselines.uniform.toPrecision(4)}${s.baselines.global !== undefined ? `, global ${s.baselines.global.toPrecision(4)}` : ''}), ` +
            `${s.evaluations} evaluations in ${s.seconds.toFixed(1)} s, stopped by ${s.stoppedBy}`);
          if (s.fixed.length) ctx.warn(`search: ${s.fixed.length} group(s) kept at the start allocation's width and left out of the fitness (${s.fixed[0].group}: ${s.fixed[0].reason})`);
          if (s.unrefit) ctx.warn(`search: ${s.unrefit} consumer(s) over the Gram memory cap were searched without reconstruction`);
          if (calib.random) ctx.warn('search: no --calib: the search ranked allocations on random inputs');
          if (s.toleranceWidened) ctx.warn(`search: no allocation in reach removes within 0.5 % of the target (group sizes, --round-to, --max-ratio): the budget tolerance is ${(100 * s.tolerance).toFixed(2)} points, what the baselines reach`);
          if (s.stoppedBy === 'time') ctx.warn(`search: stopped by --search-time after ${s.trace.length} generation(s): the result depends on this machine's speed (--search-generations alone makes a run reproducible)`);
        }
      } else {
        const { removed, achieved } = allocate(analysis, scores.scores, opts);
        ctx.artifacts.removed = removed;
        ctx.report.allocation = achieved;
      }
      const achieved = ctx.report.allocation!;
      ctx.log(`allocate: ${achieved.groupsPruned} group(s), ${achieved.unitsRemoved} unit(s); ${achieved.target} removed ${(achieved.achieved * 100).toFixed(1)} % (asked ${(achieved.requested * 100).toFixed(1)} %)`);
    },
  };
}
