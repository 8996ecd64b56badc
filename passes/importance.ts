/**
 * The importance pass shared by passes/importance-*.ts: scores ctx.artifacts.groups (a GroupAnalysis) and
 * writes ctx.artifacts.scores (GroupScores) and ctx.artifacts.scoreInfo (ScoreInfo). Data-aware methods first
 * capture calibration statistics through onnxruntime and also write ctx.artifacts.activationStats (which the
 * prune pass hands to compensateBias for fluctuation).
 *
 * Options read from ctx.options (see src/pipeline/config.ts): seed, reduce, calib, calibShape, calibDtype,
 * calibBatch, calibSamples, quiet, verifySeq / verifyBatch (sizes of random calibration inputs).
 */
import type { GroupAnalysis } from '../src/analysis/types';
import type { Pass, PassContext } from '../src/pipeline/pass';
import { captureStats } from '../src/ort/capture';
import { prepareCalibration } from '../src/ort/calib';
import { activationRequests } from '../src/score/sites';
import { scoreGroupsDetailed } from '../src/score/index';
import { DATA_AWARE, type MemberReduce, type ScoreMethod } from '../src/score/types';

/** Warnings go to the report and, unless quiet, to stderr (they matter even without --verbose). */
export function warn(ctx: PassContext, message: string): void {
  const list = (ctx.report.warnings ??= []) as string[];
  list.push(message);
  if (!ctx.options.quiet) process.stderr.write(`onnx-prune: warning: ${message}\n`);
}

export async function runImportance(ctx: PassContext, method: ScoreMethod): Promise<void> {
  const model = ctx.model;
  const analysis = ctx.artifacts.groups as GroupAnalysis | undefined;
  if (!model || !analysis) throw new Error(`importance-${method}: needs the model and ctx.artifacts.groups`);
  const o = ctx.options;
  let stats;
  if (DATA_AWARE.includes(method)) {
    const calib = await prepareCalibration(model, {
      file: o.calib as string | undefined,
      // Random inputs use the verification sizes: --verify-seq / --verify-batch, else the first size that runs.
      seq: o.verifySeq !== undefined ? Number(o.verifySeq) : undefined,
      batch: o.verifyBatch !== undefined ? Number(o.verifyBatch) : undefined,
      shape: o.calibShape as number[] | undefined,
      dtype: o.calibDtype as string | undefined,
      seed: (o.seed as number | undefined) ?? 0,
      randomSamples: o.calibSamples as number | undefined,
      warn: (m) => warn(ctx, m),
    });
    const t0 = Date.now();
    stats = await captureStats(model, calib, activationRequests(model.graph, analysis), {
      batch: (o.calibBatch as number | undefined) ?? 16,
      quiet: !!o.quiet || !!o.json,
    });
    ctx.artifacts.activationStats = stats;
    ctx.log(`calibration: ${calib.samples} samples from ${calib.source}${calib.seq !== undefined ? ` (symbolic dims = ${calib.seq})` : ''}, ${stats.size} activations in ${Date.now() - t0} ms`);
  }
  const { scores, info } = scoreGroupsDetailed(model, analysis, {
    method,
    reduce: o.reduce as MemberReduce | undefined,
    seed: (o.seed as number | undefined) ?? 0,
    stats,
    log: ctx.log,
  });
  ctx.artifacts.scores = scores;
  ctx.artifacts.scoreInfo = info;
  ctx.report.importance = { method, groups: Object.keys(scores).length, fallbacks: info.fallbacks.length };
}

export function importancePass(method: ScoreMethod, description: string): () => Pass {
  return () => ({
    name: `importance-${method}`,
    description,
    reads: ['model', 'artifacts.groups'],
    writes: DATA_AWARE.includes(method) ? ['artifacts.scores', 'artifacts.scoreInfo', 'artifacts.activationStats'] : ['artifacts.scores', 'artifacts.scoreInfo'],
    run: (ctx) => runImportance(ctx, method),
  });
}
