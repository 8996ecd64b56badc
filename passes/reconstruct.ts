/**
 * `reconstruct`: least-squares reconstruction (src/prune/reconstruct.ts) between `compensate` and `prune`.
 *  - When the run's reconstruction is `ls` (src/pipeline/options.ts reconstructMode: by default with --calib, or
 *    --reconstruct ls), every consumer of a removed channel is refit from calibration statistics (sequentially,
 *    unless --no-sequential), the dense model is edited (weights, biases; the analysis follows new biases), and
 *    --save-plan also writes the refit weights to the plan's sidecar `.npz`.
 *  - With a saved plan that carries a reconstruction (--plan), it re-applies it from the sidecar (no calibration);
 *    --reconstruct none leaves it out; --reconstruct ls with --calib computes a new one from the data instead.
 * It keeps the model before the edits in ctx.artifacts.original (fidelity is measured against it; the refit
 * dense model is the reference for masked equivalence, which verification proves).
 */
import { cloneModel } from '../src/ir/clone';
import { analysisOf, modelOf } from '../src/pipeline/artifacts';
import { reconstructMode, type PruneOptions } from '../src/pipeline/options';
import type { Pass, PassContext } from '../src/pipeline/pass';
import { readReconstructionWeights, writePlanWithReconstruction } from '../src/prune/plan';
import { importanceMethod } from '../src/score/methods';
import { applyReconstruction, planReconstruction, type ReconstructReport } from '../src/prune/reconstruct';
import { calibrationSet } from './calibration';
import { reasonCounts } from './prune';

function describe(r: ReconstructReport): string {
  const err = r.errorZeroed > 0 ? `; output error on the calibration data ${(100 * r.errorZeroed).toFixed(2)} % → ${(100 * r.errorRefit).toFixed(2)} % of the dense layers' output energy` : '';
  return `reconstruct: ${r.refit} consumer(s) refit by least squares${r.biasOnly.length ? `, ${r.biasOnly.length} bias only` : ''}, ${r.skipped.length} left as they were, ` +
    `${r.stages} calibration pass(es) over ${r.samples} samples (${r.sequential ? 'sequential' : 'one-shot'})${err}`;
}

export function reconstructPass(options: PruneOptions): Pass {
  const planFile = options.plan;
  return {
    name: 'reconstruct',
    description: 'refit the layers that read removed channels by least squares on calibration data (--reconstruct ls), or re-apply a plan\'s reconstruction',
    reads: ['model', 'artifacts.groups', 'artifacts.plan'],
    writes: ['model', 'artifacts.original', 'artifacts.reconstruction', 'artifacts.calibration'],
    async run(ctx: PassContext) {
      const plan = ctx.artifacts.plan;
      if (!plan) return;
      const model = modelOf(ctx, 'reconstruct');
      const analysis = analysisOf(ctx, 'reconstruct');
      // A plan replays the reconstruction it carries; `--reconstruct ls` with `--calib` computes one from the data
      // instead (e.g. for a plan made without calibration).
      const recompute = options.reconstruct === 'ls' && options.calib !== undefined;
      if (planFile && !recompute) {
        const rec = plan.reconstruction;
        if (!rec) return;
        if (options.reconstruct === 'none') {
          ctx.log(`reconstruct: --reconstruct none: the plan's reconstruction (${rec.weights.length} consumers) is not applied`);
          return;
        }
        const weights = readReconstructionWeights(planFile, rec);
        ctx.artifacts.original ??= cloneModel(model);
        const b = applyReconstruction(model, analysis, { weights, biases: rec.biases }, `plan '${planFile}'`, { strict: true });
        ctx.report.reconstruction = { mode: 'ls', from: 'plan', consumers: weights.length, biases: b };
        ctx.log(`reconstruct: ${weights.length} consumer weight(s) and ${b.consumers} bias(es) from the plan`);
        return;
      }
      const method = ctx.artifacts.scores?.info.method;
      if (!recompute && reconstructMode(options, method ? importanceMethod(method) : undefined) !== 'ls') return;
      if (!Object.values(plan.groups).some((u) => u.length)) return;
      const calib = await calibrationSet(ctx, 'reconstruct');
      const quiet = !!options.quiet || !!options.json;
      const r = await planReconstruction(model, analysis, plan.groups, calib, { sequential: options.sequential !== false, quiet, log: ctx.log });
      ctx.artifacts.original ??= cloneModel(model);
      applyReconstruction(model, analysis, r);
      ctx.artifacts.reconstruction = r;
      const rep = r.report;
      ctx.report.reconstruction = { ...rep, from: 'calibration', calibration: calib.source, skipped: rep.skipped.length, skippedReasons: reasonCounts(rep.skipped), biasOnly: rep.biasOnly.length, dampingRaised: rep.dampingRaised.length };
      ctx.log(describe(rep));
      if (rep.biasOnly.length) {
        ctx.warn(`reconstruct: ${rep.biasOnly.length} consumer(s) had only a block-diagonal Gram (${rep.biasOnly[0].reason}): their weights were not refit, only their bias`);
      }
      if (rep.skipped.length) {
        const why = Object.entries(reasonCounts(rep.skipped)).map(([k, n]) => `${n}× ${k}`).join('; ');
        ctx.warn(`reconstruct: ${rep.skipped.length} of ${rep.consumers} consumer(s) not refit: ${why}`);
      }
      if (options.savePlan) writePlanWithReconstruction(options.savePlan, plan, { mode: 'ls', sequential: rep.sequential, weights: r.weights, biases: r.biases }, ctx.outputs);
    },
  };
}
