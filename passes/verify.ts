/**
 * `verify`: runs the pruned model and the masked dense model in onnxruntime on seeded inputs and checks that
 * they agree (src/verify/verify.ts); reports fidelity to the dense model as well. Every check that was reduced or
 * skipped (`verify.weakened`, src/verify/weakened.ts) is also a warning: a vacuous verification first, at most
 * eight lines. On failure it finds the
 * groups that break equivalence and throws a VerificationError, unless options.keepInvalid (then the report
 * says passed: false and the pipeline goes on). When the plan removes nothing, the output is the input model
 * unchanged and verification is skipped (`verify.skipped` says so).
 */
import { analysisOf, modelOf, planOf } from '../src/pipeline/artifacts';
import type { PruneOptions } from '../src/pipeline/options';
import type { Pass } from '../src/pipeline/pass';
import { DEFAULT_RTOL, VerificationError, findFailingGroups, verifyPruned, type VerifyOptions } from '../src/verify/verify';
import { weakenedWarnings } from '../src/verify/weakened';

export function verifyPass(options: PruneOptions): Pass {
  return {
    name: 'verify',
    description: 'check the pruned model against the masked dense model in onnxruntime',
    reads: ['model', 'artifacts.dense', 'artifacts.groups', 'artifacts.plan'],
    writes: ['artifacts.verify', 'artifacts.loadedInOrt'],
    async run(ctx) {
      const pruned = modelOf(ctx, 'verify');
      const dense = ctx.artifacts.dense;
      if (!dense) throw new Error("pass 'verify' needs the dense model (ctx.artifacts.dense), kept by the 'prune' pass");
      const analysis = analysisOf(ctx, 'verify');
      const plan = planOf(ctx, 'verify');
      const opts: VerifyOptions = {
        seed: options.seed ?? 0,
        rtol: options.tolerance ?? DEFAULT_RTOL,
        batch: options.verifyBatch,
        seq: options.verifySeq,
        // A pass that edited the dense model on purpose (bias compensation) keeps the untouched one here.
        original: ctx.artifacts.original,
      };
      if (!Object.values(plan.groups).some((units) => units.length > 0)) {
        // Nothing was removed: the output is the input model, unchanged; there is nothing to compare.
        // The numbers hold by construction (the pruned model is the dense one); `outputs` is empty: none was run.
        ctx.report.verify = {
          passed: true, skipped: 'nothing was pruned: the output is the input model unchanged',
          rtol: opts.rtol ?? DEFAULT_RTOL, maxAbsDiff: 0, maxRelDiff: 0, cosine: 1, outputs: [], weakened: [],
        };
        ctx.log('verify: skipped (nothing was pruned)');
        return;
      }
      const r = await verifyPruned(dense, pruned, analysis, plan.groups, opts);
      ctx.artifacts.verify = r;
      const report: NonNullable<typeof ctx.report.verify> = { ...r.verify };
      ctx.report.verify = report;
      if (r.fidelity) ctx.report.fidelity = r.fidelity;
      for (const line of weakenedWarnings(r.verify.weakened)) ctx.warn(line);
      if (r.verify.passed) {
        ctx.artifacts.loadedInOrt = pruned;
        ctx.log(`verify: passed (max rel diff ${r.verify.maxRelDiff.toExponential(2)}); fidelity cosine ${r.fidelity?.cosine.toFixed(4)}`);
        return;
      }
      const failures = await findFailingGroups(dense, analysis, plan.groups, { ...opts, feeds: r.feeds });
      report.failingGroups = failures;
      const failing = failures.length ? `; failing groups: ${failures.map((f) => `${f.group} (${f.label})`).join(', ')}` : '';
      const msg = `verification failed: ${r.verify.error}${failing}`;
      if (!options.keepInvalid) throw new VerificationError(msg, r.verify);
      ctx.log(`${msg} (kept: --keep-invalid)`);
    },
  };
}
