/**
 * `importance-<method>`: one pass per importance method of the registry (src/score/methods.ts). Scores
 * ctx.artifacts.groups and writes ctx.artifacts.scores (the scores with the method that produced them, see
 * src/score/types.ts); a data-aware method first captures calibration statistics in onnxruntime and also writes
 * ctx.artifacts.activationStats (bias compensation reuses them).
 *
 * Options: seed, reduce, calib, calibShape, calibDtype, calibBatch, calibSamples, quiet, verifySeq / verifyBatch
 * (sizes of random calibration inputs).
 */
import { analysisOf, modelOf } from '../src/pipeline/artifacts';
import { calibOptions } from './calibration';
import type { Pass, PassContext, PassFactory } from '../src/pipeline/pass';
import { scoreGroups } from '../src/pipeline/stages';
import type { ImportanceMethod } from '../src/score/methods';
import type { ScoreMethod } from '../src/score/types';

/** A warning: in the report and, unless quiet, on stderr (kept for passes written against the old helper). */
export function warn(ctx: PassContext, message: string): void {
  ctx.warn(message);
}

export async function runImportance(ctx: PassContext, method: ScoreMethod): Promise<void> {
  const pass = `importance-${method}`;
  const model = modelOf(ctx, pass);
  const analysis = analysisOf(ctx, pass);
  const o = ctx.options;
  const r = await scoreGroups(model, analysis, {
    method,
    reduce: o.reduce,
    seed: o.seed ?? 0,
    log: ctx.log,
    calib: calibOptions(ctx),
    calibBatch: o.calibBatch,
    quiet: !!o.quiet || !!o.json,
  });
  if (r.stats) ctx.artifacts.activationStats = r.stats;
  if (r.calibSet) ctx.artifacts.calibration = r.calibSet;
  if (r.calibration) {
    const c = r.calibration;
    ctx.log(`calibration: ${c.samples} samples from ${c.source}${c.seq !== undefined ? ` (symbolic dims = ${c.seq})` : ''}, ${c.activations} activations in ${c.ms} ms`);
  }
  // A fallback is a different method than the one asked for: say so (e.g. bn on a model whose BatchNormalization
  // nodes were all folded into convolutions is plain L2).
  const byReason = new Map<string, number>();
  for (const f of r.info.fallbacks) byReason.set(f.reason, (byReason.get(f.reason) ?? 0) + 1);
  const total = Object.keys(r.scores).length;
  for (const [reason, n] of byReason) ctx.warn(`importance ${method}: ${n === total ? `no group was scored by ${method}` : `${n} of ${total} groups were not scored by ${method}`}: ${reason}`);
  ctx.artifacts.scores = { scores: r.scores, info: r.info };
  ctx.report.importance = { method, groups: Object.keys(r.scores).length, fallbacks: r.info.fallbacks.length };
}

/** The pass factory of one importance method. */
export function importancePass(m: ImportanceMethod): PassFactory {
  return (): Pass => ({
    name: `importance-${m.name}`,
    description: m.description,
    reads: ['model', 'artifacts.groups'],
    writes: m.dataAware ? ['artifacts.scores', 'artifacts.activationStats', 'artifacts.calibration'] : ['artifacts.scores'],
    run: (ctx) => runImportance(ctx, m.name as ScoreMethod),
  });
}
