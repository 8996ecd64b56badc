/**
 * The pipeline's stages as functions, wired to onnxruntime where a stage needs it. These are the stage
 * functions of the public API (src/index.ts); the built-in passes call them.
 *
 *   const analysis = await analyzeGroups(model);
 *   const { scores, info } = await scoreGroups(model, analysis, { method: 'l2' });
 *   const { removed } = allocate(analysis, scores, { ratio: 0.3, model, normalized: info.normalized });
 *   const pruned = cloneModel(model);
 *   applyPlan(pruned, analysis, removed);
 *   const { verify } = await verifyPruned(model, pruned, analysis, removed);
 */
import { analyzeGroups as analyzeStatic, type GroupAnalysisOptions } from '../analysis/analyze';
import type { GroupAnalysis } from '../analysis/types';
import type { Model } from '../ir/model';
import { prepareCalibration, type CalibOptions, type CalibSet } from '../ort/calib';
import { captureStats, type ActivationStats } from '../ort/capture';
import { OrtShapeProbe } from '../ort/shape-probe';
import { scoreGroupsDetailed } from '../score/index';
import { importanceMethod } from '../score/methods';
import { activationRequests } from '../score/sites';
import type { ScoreOptions, ScoreResult } from '../score/types';

export { allocate } from '../allocate/allocate';
export { applyPlan } from '../prune/apply';
export { verifyPruned } from '../verify/verify';

/**
 * Coupled-group analysis (src/analysis). Shapes come from static inference; tensors it cannot size are measured
 * once in onnxruntime (unless `mode: 'static'`, or another `probe` is given).
 */
export function analyzeGroups(model: Model, opts: GroupAnalysisOptions = {}): Promise<GroupAnalysis> {
  return analyzeStatic(model, { probe: OrtShapeProbe.open, ...opts });
}

export interface ScoreStageOptions extends Omit<ScoreOptions, 'stats'> {
  /**
   * Calibration for data-aware methods (wanda, fluctuation): a file (.npy/.npz/.bin) and how to read it, or
   * seeded random inputs when no file is given (with a warning through `calib.warn`).
   */
  calib?: CalibOptions & { batch?: number };
  /** A calibration set already loaded (instead of `calib`). */
  calibSet?: CalibSet;
  /** Samples per onnxruntime run while capturing statistics (default 16). */
  calibBatch?: number;
  /** No progress bar on stderr. */
  quiet?: boolean;
  /** Statistics captured before (skips calibration). */
  stats?: ActivationStats;
}

export interface ScoreStageResult extends ScoreResult {
  /** The calibration statistics a data-aware method used (bias compensation reuses them). */
  stats?: ActivationStats;
  /** The calibration set a data-aware method ran (reconstruction reuses it). */
  calibSet?: CalibSet;
  /** Where the calibration data came from, for data-aware methods. */
  calibration?: { samples: number; source: string; seq?: number; ms: number; activations: number };
}

/**
 * Importance of every unit of every group (higher = more important); the method's registry entry
 * (src/score/methods.ts) says whether it needs calibration activations, which are then captured in onnxruntime.
 */
export async function scoreGroups(model: Model, analysis: GroupAnalysis, opts: ScoreStageOptions): Promise<ScoreStageResult> {
  const method = importanceMethod(opts.method);
  let stats = opts.stats;
  let calibration: ScoreStageResult['calibration'];
  let calibSet: CalibSet | undefined;
  if (method?.dataAware && !stats) {
    const calib = calibSet = opts.calibSet ?? await prepareCalibration(model, { ...opts.calib, seed: opts.calib?.seed ?? opts.seed ?? 0 });
    const t0 = Date.now();
    stats = await captureStats(model, calib, activationRequests(model.graph, analysis), { batch: opts.calibBatch ?? 16, quiet: !!opts.quiet });
    calibration = { samples: calib.samples, source: calib.source, seq: calib.seq, ms: Date.now() - t0, activations: stats.size };
  }
  const result = scoreGroupsDetailed(model, analysis, { ...opts, stats });
  return { ...result, stats: method?.dataAware ? stats : undefined, calibration, calibSet };
}
