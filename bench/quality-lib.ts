/**
 * Quality of pruned models on the shared data (used by bench/quality.ts and test/score-mnist.test.ts):
 * MNIST accuracy and byte-level LM perplexity, dense vs pruned with a given importance, allocation and ratio.
 * Calibration statistics are taken once on the dense model and reused by every variant.
 */
import * as fs from 'fs';
import * as path from 'path';
import type { GroupAnalysis } from '../src/analysis/types';
import { allocate, type AllocationMode, type Achieved } from '../src/allocate/allocate';
import type { Model } from '../src/ir/model';
import { applyPlan } from '../src/prune/apply';
import type { PlanGroups } from '../src/prune/plan';
import { cloneModel } from '../src/ir/clone';
import { calibFromArrays, loadCalibration, type CalibSet } from '../src/ort/calib';
import { captureStats, type ActivationStats } from '../src/ort/capture';
import { createSession, modelBytes, ort } from '../src/ort/session';
import { activationRequests, DATA_AWARE, scoreGroupsDetailed, type ScoreMethod, type ScoreResult } from '../src/score';
import { importanceMethod } from '../src/score/methods';
import { scoreGroups } from '../src/pipeline/stages';
import { compensateBias } from '../src/score/compensate';
import { applyReconstruction, planReconstruction, RECONSTRUCT_MODES, type ReconstructMode } from '../src/prune/reconstruct';
import { DataType } from '../src/ir/dtype';
import { searchAllocation } from '../src/prune/search';

/** ../shared/models beside the repo (from bench/ under ts-jest, or dist/bench/ when built); ONNX_PRUNE_SHARED overrides. */
export const SHARED = process.env.ONNX_PRUNE_SHARED ??
  [path.resolve(__dirname, '../../shared/models'), path.resolve(__dirname, '../../../shared/models')].find((p) => fs.existsSync(p)) ??
  path.resolve(__dirname, '../../shared/models');

export interface Labeled {
  x: Float32Array;
  y: Uint8Array;
  n: number;
}

export function loadDigits(xFile: string, yFile: string): Labeled {
  const xb = fs.readFileSync(xFile);
  const x = new Float32Array(xb.buffer.slice(xb.byteOffset, xb.byteOffset + xb.byteLength));
  const y = new Uint8Array(fs.readFileSync(yFile));
  return { x, y, n: y.length };
}

/** Top-1 accuracy of a [N,1,28,28] → [N,10] classifier. */
export async function accuracy(model: Model, data: Labeled, batch = 512): Promise<number> {
  const s = await createSession(modelBytes(model));
  const inName = s.inputNames[0];
  let correct = 0;
  try {
    for (let i = 0; i < data.n; i += batch) {
      const b = Math.min(batch, data.n - i);
      const x = new ort.Tensor('float32', data.x.subarray(i * 784, (i + b) * 784), [b, 1, 28, 28]);
      const out = (await s.run({ [inName]: x }))[s.outputNames[0]].data as Float32Array;
      for (let k = 0; k < b; k++) {
        let best = 0;
        for (let c = 1; c < 10; c++) if (out[k * 10 + c] > out[k * 10 + best]) best = c;
        if (best === data.y[i + k]) correct++;
      }
    }
  } finally {
    await s.release();
  }
  return correct / data.n;
}

export const ROW = 129;

export function loadTokens(file: string): BigInt64Array {
  const b = fs.readFileSync(file);
  return new BigInt64Array(b.buffer.slice(b.byteOffset, b.byteOffset + b.byteLength));
}

/** Inputs row[0:128] of rows [from, to) as a calibration set. */
export function tokenCalib(model: Model, tokens: BigInt64Array, from: number, to: number): CalibSet {
  const rows = to - from;
  const data = new BigInt64Array(rows * 128);
  for (let r = 0; r < rows; r++) data.set(tokens.subarray((from + r) * ROW, (from + r) * ROW + 128), r * 128);
  return calibFromArrays(model, [{ dtype: DataType.INT64, dims: [rows, 128], data }], `tokens rows ${from}-${to - 1}`);
}

/** exp(mean next-token cross-entropy) over rows [from, to): input row[0:128], target row[1:129]. */
export async function perplexity(model: Model, tokens: BigInt64Array, from: number, to: number, batch = 16): Promise<number> {
  const s = await createSession(modelBytes(model));
  let nll = 0;
  let count = 0;
  try {
    for (let r = from; r < to; r += batch) {
      const b = Math.min(batch, to - r);
      const data = new BigInt64Array(b * 128);
      for (let k = 0; k < b; k++) data.set(tokens.subarray((r + k) * ROW, (r + k) * ROW + 128), k * 128);
      const out = (await s.run({ [s.inputNames[0]]: new ort.Tensor('int64', data, [b, 128]) }))[s.outputNames[0]];
      const logits = out.data as Float32Array;
      const V = out.dims[2];
      for (let k = 0; k < b; k++) {
        for (let t = 0; t < 128; t++) {
          const off = (k * 128 + t) * V;
          let mx = -Infinity;
          for (let v = 0; v < V; v++) mx = Math.max(mx, logits[off + v]);
          let z = 0;
          for (let v = 0; v < V; v++) z += Math.exp(logits[off + v] - mx);
          const target = Number(tokens[(r + k) * ROW + t + 1]);
          nll += Math.log(z) + mx - logits[off + target];
          count++;
        }
      }
    }
  } finally {
    await s.release();
  }
  return Math.exp(nll / count);
}

/**
 * Reconstruction after pruning: 'none'; 'bias' = FLAP bias compensation (src/score/compensate.ts: the removed
 * inputs' calibration means folded into the consumers' biases); 'ls' = least-squares refit of the consumers' kept
 * weights on calibration data (src/prune/reconstruct.ts).
 */
export type Recon = ReconstructMode;
export const RECONS: readonly Recon[] = RECONSTRUCT_MODES;

export interface Variant {
  method: ScoreMethod;
  /**
   * Bias compensation; as in the CLI, on by default for the data-aware methods (wanda, fluctuation). Ignored
   * when `recon` is given.
   */
  compensate?: boolean;
  mode?: AllocationMode;
  /** Reconstruction (default: 'bias' when `compensates`, else 'none'). */
  recon?: Recon;
  /** mode 'search': generations in all (default 20). */
  searchGenerations?: number;
}

/** Whether the variant folds removed inputs' means into biases (the CLI default for wanda / fluctuation). */
export function compensates(v: Variant): boolean {
  if (v.recon !== undefined) return v.recon === 'bias';
  return DATA_AWARE.includes(v.method) && v.compensate !== false;
}

/** The variant's reconstruction. */
export function reconOf(v: Variant): Recon {
  return v.recon ?? (compensates(v) ? 'bias' : 'none');
}

/** 'wanda', 'flap' (both with compensation, the default), 'wanda-nc' (--no-compensate), 'l2', …. */
export function variantName(v: Variant): string {
  const nc = DATA_AWARE.includes(v.method) && !compensates(v) ? '-nc' : '';
  return `${v.method === 'fluctuation' ? 'flap' : v.method}${nc}${v.mode === 'global' ? ' (global)' : ''}`;
}

export async function denseStats(model: Model, analysis: GroupAnalysis, calib: CalibSet): Promise<ActivationStats> {
  return captureStats(model, calib, activationRequests(model.graph, analysis), { batch: 64, quiet: true });
}

interface Scored {
  model: Model;
  analysis: GroupAnalysis;
  removed: PlanGroups;
  achieved: Achieved;
}

function scoreAndAllocate(dense: Model, analysis: GroupAnalysis, stats: ActivationStats, v: Variant, ratio: number, seed: number): Scored {
  const model = cloneModel(dense);
  const a = JSON.parse(JSON.stringify(analysis)) as GroupAnalysis;
  const { scores, info } = scoreGroupsDetailed(model, a, { method: v.method, stats, seed });
  const { removed, achieved } = allocate(a, scores, { ratio, mode: v.mode ?? 'uniform', model, normalized: info.normalized });
  return { model, analysis: a, removed, achieved };
}

/** Scores per dense model and (method, seed): they depend on neither the ratio, the allocation nor the reconstruction. */
const scoreCache = new WeakMap<Model, Map<string, { scores: ScoreResult['scores']; normalized: boolean }>>();

/**
 * scoreAndAllocate for any method: one that needs Gram statistics (obs) gets them captured on `calib` by the
 * scoring stage, as the CLI does; scores are computed once per (dense model, method, seed).
 */
async function scoreAndAllocateAsync(dense: Model, analysis: GroupAnalysis, stats: ActivationStats, calib: CalibSet, v: Variant, ratio: number, seed: number): Promise<Scored> {
  if (!importanceMethod(v.method)?.gramRequests && v.mode !== 'search') return scoreAndAllocate(dense, analysis, stats, v, ratio, seed);
  const model = cloneModel(dense);
  const a = JSON.parse(JSON.stringify(analysis)) as GroupAnalysis;
  let byKey = scoreCache.get(dense);
  if (!byKey) scoreCache.set(dense, (byKey = new Map()));
  const key = `${v.method}#${seed}`;
  let cached = byKey.get(key);
  if (!cached) {
    const r = importanceMethod(v.method)?.gramRequests
      ? await scoreGroups(model, a, { method: v.method, stats, seed, calibSet: calib, quiet: true })
      : scoreGroupsDetailed(model, a, { method: v.method, stats, seed });
    cached = { scores: r.scores, normalized: r.info.normalized };
    byKey.set(key, cached);
  }
  const opts = { ratio, model, normalized: cached.normalized };
  if (v.mode === 'search') {
    // The same search the CLI runs (src/prune/search.ts), with the variant's reconstruction for its candidates.
    const r = await searchAllocation(model, a, cached.scores, calib, opts, { seed, reconstruct: reconOf(v), generations: v.searchGenerations ?? 20 });
    return { model, analysis: a, removed: r.removed, achieved: r.achieved };
  }
  const { removed, achieved } = allocate(a, cached.scores, { ...opts, mode: v.mode ?? 'uniform' });
  return { model, analysis: a, removed, achieved };
}

/**
 * A pruned copy of `dense` (dense and analysis are left untouched), with 'none' or 'bias' reconstruction (bias
 * compensation needs only the consumers' input means, which `stats` holds whatever the method: see denseStats).
 */
export function pruneVariant(dense: Model, analysis: GroupAnalysis, stats: ActivationStats, v: Variant, ratio: number, seed = 0): { model: Model; achieved: Achieved } {
  if (reconOf(v) === 'ls' || importanceMethod(v.method)?.gramRequests) throw new Error(`pruneVariant: ${reconOf(v) === 'ls' ? 'ls reconstruction' : `${v.method} scoring (Gram statistics)`} is asynchronous, use pruneVariantAsync`);
  const { model, analysis: a, removed, achieved } = scoreAndAllocate(dense, analysis, stats, v, ratio, seed);
  if (compensates(v)) compensateBias(model, a, removed, stats);
  applyPlan(model, a, removed);
  return { model, achieved };
}

/** Least-squares reconstruction (sequential, the default) of the consumers of `removed` on `calib`, in place on the dense `model`. */
async function reconstructLs(model: Model, analysis: GroupAnalysis, removed: PlanGroups, calib: CalibSet): Promise<void> {
  const r = await planReconstruction(model, analysis, removed, calib, { quiet: true });
  applyReconstruction(model, analysis, r, 'reconstruction', { quiet: true });
}

/**
 * pruneVariant with any reconstruction ('ls' refits on `calib`, which must be the set `stats` came from), timed:
 * `ms` is scoring + allocation + reconstruction + apply (not the shared statistics capture).
 */
export async function pruneVariantAsync(dense: Model, analysis: GroupAnalysis, stats: ActivationStats, calib: CalibSet, v: Variant, ratio: number, seed = 0): Promise<{ model: Model; achieved: Achieved; ms: number }> {
  const t0 = process.hrtime.bigint();
  const { model, analysis: a, removed, achieved } = await scoreAndAllocateAsync(dense, analysis, stats, calib, v, ratio, seed);
  const recon = reconOf(v);
  if (recon === 'bias') compensateBias(model, a, removed, stats);
  else if (recon === 'ls') await reconstructLs(model, a, removed, calib);
  applyPlan(model, a, removed);
  return { model, achieved, ms: Number(process.hrtime.bigint() - t0) / 1e6 };
}

export interface SeedStats {
  mean: number;
  sd: number;
  values: number[];
}

/** Mean and sample standard deviation of `measure(seed)` over seeds 0 … n−1 (for the random baseline). */
export async function overSeeds(n: number, measure: (seed: number) => Promise<number>): Promise<SeedStats> {
  const values: number[] = [];
  for (let seed = 0; seed < n; seed++) values.push(await measure(seed));
  const mean = values.reduce((a, b) => a + b, 0) / n;
  const sd = n > 1 ? Math.sqrt(values.reduce((a, v) => a + (v - mean) ** 2, 0) / (n - 1)) : 0;
  return { mean, sd, values };
}

export function mnistCalib(model: Model): CalibSet {
  return loadCalibration(model, { file: path.join(SHARED, 'mnist_calib_x.bin') });
}
