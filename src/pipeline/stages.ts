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
import type { Group } from '../analysis/types';
import { prepareCalibration, type CalibOptions, type CalibSet } from '../ort/calib';
import { captureStats, type ActivationStats } from '../ort/capture';
import { captureGrams, gramDim, type GramRequest, type GramStats } from '../ort/gram';
import { OrtShapeProbe } from '../ort/shape-probe';
import { logFallbacks, scoreGroupsDetailed } from '../score/index';
import { importanceMethod } from '../score/methods';
import { gramKey } from '../score/obs';
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
   * Calibration for data-aware methods (wanda, fluctuation, obs): a file (.npy/.npz/.bin) and how to read it, or
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
  /**
   * For methods with Gram requests (obs): float64 bytes of Gram statistics held at once (default 512 MiB). Groups
   * are scored in chunks whose Grams fit; each chunk costs one pass over the calibration data and its Grams are
   * released once its groups are scored.
   */
  maxGramBytes?: number;
}

export interface ScoreStageResult extends ScoreResult {
  /** The calibration statistics a data-aware method used (bias compensation reuses them). */
  stats?: ActivationStats;
  /** The calibration set a data-aware method ran (reconstruction reuses it). */
  calibSet?: CalibSet;
  /** Where the calibration data came from, for data-aware methods. */
  calibration?: { samples: number; source: string; seq?: number; ms: number; activations: number; grams?: number };
}

export const DEFAULT_SCORE_GRAM_BYTES = 512 * 2 ** 20;

/** Consecutive groups whose distinct Gram requests fit `cap` bytes (a group over it alone is a chunk by itself). */
function gramChunks(groups: { group: Group; requests: GramRequest[] }[], cap: number): { groups: Group[]; requests: GramRequest[] }[] {
  const out: { groups: Group[]; requests: Map<string, GramRequest>; bytes: number }[] = [];
  for (const g of groups) {
    let cur = out[out.length - 1];
    const fresh = (c: typeof cur) => g.requests.filter((r) => !c?.requests.has(gramKey(r)));
    const bytesOf = (rs: GramRequest[]) => rs.reduce((t, r) => t + gramDim(r) ** 2 * 8, 0);
    if (!cur || (cur.groups.length && cur.bytes + bytesOf(fresh(cur)) > cap)) out.push((cur = { groups: [], requests: new Map(), bytes: 0 }));
    const add = fresh(cur);
    for (const r of add) cur.requests.set(gramKey(r), r);
    cur.bytes += bytesOf(add);
    cur.groups.push(g.group);
  }
  return out.map((c) => ({ groups: c.groups, requests: [...c.requests.values()] }));
}

/**
 * Importance of every unit of every group (higher = more important); the method's registry entry
 * (src/score/methods.ts) says whether it needs calibration activations, which are then captured in onnxruntime.
 */
export async function scoreGroups(model: Model, analysis: GroupAnalysis, opts: ScoreStageOptions): Promise<ScoreStageResult> {
  const method = importanceMethod(opts.method);
  let stats = opts.stats;
  let calibration: ScoreStageResult['calibration'];
  let calib: CalibSet | undefined = opts.calibSet;
  const getCalib = async () => (calib ??= await prepareCalibration(model, { ...opts.calib, seed: opts.calib?.seed ?? opts.seed ?? 0 }));
  if (method?.dataAware && !stats) {
    const c = await getCalib();
    const t0 = Date.now();
    stats = await captureStats(model, c, activationRequests(model.graph, analysis), { batch: opts.calibBatch ?? 16, quiet: !!opts.quiet });
    calibration = { samples: c.samples, source: c.source, seq: c.seq, ms: Date.now() - t0, activations: stats.size };
  }
  const gramRequests = method?.gramRequests;
  if (!gramRequests || opts.grams) {
    const result = scoreGroupsDetailed(model, analysis, { ...opts, stats });
    return { ...result, stats: method?.dataAware ? stats : undefined, calibration, calibSet: calib };
  }
  // Gram statistics, a chunk of groups at a time (captured, used, released).
  const c = await getCalib();
  const t0 = Date.now();
  const chunks = gramChunks(analysis.groups.map((group) => ({ group, requests: gramRequests(model.graph, group) })), opts.maxGramBytes ?? DEFAULT_SCORE_GRAM_BYTES);
  let result: ScoreResult | undefined;
  let captured = 0;
  for (const chunk of chunks) {
    const grams = new Map<string, GramStats>();
    if (chunk.requests.length) {
      const got = await captureGrams(model, c, chunk.requests, { quiet: !!opts.quiet });
      chunk.requests.forEach((r, i) => grams.set(gramKey(r), got[i]));
      captured += got.length;
    }
    const r = scoreGroupsDetailed(model, { ...analysis, groups: chunk.groups }, { ...opts, stats, grams, log: undefined });
    if (!result) result = r;
    else {
      Object.assign(result.scores, r.scores);
      result.info.fallbacks.push(...r.info.fallbacks);
    }
  }
  result ??= scoreGroupsDetailed(model, analysis, { ...opts, stats, grams: new Map(), log: undefined });
  logFallbacks(result.info, opts.log);
  const ms = Date.now() - t0;
  calibration = calibration
    ? { ...calibration, ms: calibration.ms + ms, grams: captured }
    : { samples: c.samples, source: c.source, seq: c.seq, ms, activations: 0, grams: captured };
  return { ...result, stats: method?.dataAware ? stats : undefined, calibration, calibSet: calib };
}
