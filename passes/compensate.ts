/**
 * `compensate`: FLAP bias compensation (src/score/compensate.ts) between `plan` and `prune`.
 *  - When the run's reconstruction is `bias` (src/pipeline/options.ts reconstructMode: by default after a
 *    data-aware importance method (wanda, fluctuation, obs) without --calib; or --reconstruct bias / --compensate after any method), it
 *    reuses the importance pass's calibration statistics (ctx.artifacts.activationStats) or captures them: it computes the bias changes,
 *    makes them, and stores them in the plan (ctx.artifacts.plan.compensation; the staged --save-plan file is replaced
 *    by one with them).
 *  - With a saved plan that carries compensation (--plan), it re-applies those changes (no calibration needed).
 *  - --no-compensate / --reconstruct none turn both off.
 * What it does follows the scores it finds (the method that produced them), not an option string, so a
 * programmatic pipeline with `importance-wanda` compensates as the CLI does.
 * It keeps the uncompensated model in ctx.artifacts.original (fidelity must be measured against it: the
 * compensated dense model is only the reference for masked equivalence), then edits ctx.model and
 * ctx.artifacts.groups in place with the removed units of ctx.artifacts.plan.
 */
import { cloneModel } from '../src/ir/clone';
import { analysisOf, modelOf } from '../src/pipeline/artifacts';
import { reconstructMode, type PruneOptions } from '../src/pipeline/options';
import { captureStats } from '../src/ort/capture';
import { activationRequests } from '../src/score/sites';
import { calibrationSet } from './calibration';
import type { Pass, PassContext } from '../src/pipeline/pass';
import { writePlanFile } from '../src/prune/plan';
import { applyCompensation, planCompensation, type CompensationReport } from '../src/score/compensate';
import { importanceMethod } from '../src/score/methods';

export function compensatePass(options: PruneOptions): Pass {
  const planFile = options.plan;
  const record = (ctx: PassContext, r: CompensationReport, from: 'calibration' | 'plan') => {
    ctx.report.compensation = { consumers: r.consumers, biasesAdded: r.biasesAdded, skipped: r.skipped.length, from };
    ctx.log(`compensate: ${r.consumers} consumer bias(es) adjusted, ${r.biasesAdded} added, ${r.skipped.length} skipped (${from})`);
  };
  return {
    name: 'compensate',
    description: 'fold the mean contribution of removed inputs into the consumers\' biases (after a data-aware importance, or from a plan that carries it)',
    reads: ['model', 'artifacts.groups', 'artifacts.plan'],
    writes: ['model', 'artifacts.original', 'artifacts.activationStats', 'artifacts.calibration'],
    async run(ctx) {
      const plan = ctx.artifacts.plan;
      const model = modelOf(ctx, 'compensate');
      if (!plan) return;
      const analysis = analysisOf(ctx, 'compensate');
      if (planFile) {
        if (!plan.compensation?.length) return;
        if (options.compensate === false || options.reconstruct === 'none' || options.reconstruct === 'ls') {
          ctx.log(`compensate: ${options.compensate === false ? '--no-compensate' : `--reconstruct ${options.reconstruct}`}: the plan's bias compensation (${plan.compensation.length} consumers) is not applied`);
          return;
        }
        ctx.artifacts.original = cloneModel(model);
        // The plan's deltas are user input: one that is not finite or would overflow its bias is a UserError.
        record(ctx, applyCompensation(model, analysis, plan.compensation, `plan '${planFile}'`, { strict: true }), 'plan');
        return;
      }
      const method = ctx.artifacts.scores?.info.method;
      if (reconstructMode(options, method ? importanceMethod(method) : undefined) !== 'bias') return;
      // After a data-free importance (--reconstruct bias / --compensate), the input means are captured here.
      let stats = ctx.artifacts.activationStats;
      if (!stats) {
        const calib = await calibrationSet(ctx, 'compensate');
        stats = await captureStats(model, calib, activationRequests(model.graph, analysis), { batch: options.calibBatch ?? 16, quiet: !!options.quiet || !!options.json });
        ctx.artifacts.activationStats = stats;
      }
      ctx.artifacts.original = cloneModel(model);
      const { adjustments, skipped } = planCompensation(model, analysis, plan.groups, stats);
      const r = applyCompensation(model, analysis, adjustments);
      record(ctx, { ...r, skipped: [...skipped, ...r.skipped] }, 'calibration');
      // The plan carries the changes made: a bias that would have overflowed was left as it was.
      const made = adjustments.filter((a) => !r.overflowed?.includes(a.node));
      if (made.length) {
        plan.compensation = made;
        if (options.savePlan) writePlanFile(options.savePlan, plan, ctx.outputs);
      }
    },
  };
}
