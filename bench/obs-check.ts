/**
 * `obs` importance vs wanda vs random on the trained MNIST models (not a timed test):
 *   npm run build && node dist/bench/obs-check.js [--seeds N] [--ratios 0.3,0.5,0.7]
 * Held-out accuracy (2004 digits) of mnist_lenet_bn and mnist_resmlp at each ratio of params, uniform and global
 * allocation, calibrated on mnist_calib_x.bin: obs and wanda without any compensation (-nc) and with the bias
 * compensation the CLI applies by default; random = mean ± sd over N seeds (default 10), no compensation.
 * No weight reconstruction (refit) anywhere. obs scores do not depend on the ratio: they are computed once per model.
 */
import * as path from 'path';
import type { GroupAnalysis } from '../src/analysis/types';
import { allocate, type AllocationMode } from '../src/allocate/allocate';
import { cloneModel } from '../src/ir/clone';
import { loadModel } from '../src/ir/io';
import type { Model } from '../src/ir/model';
import type { ActivationStats } from '../src/ort/capture';
import { captureGrams, type GramStats } from '../src/ort/gram';
import { analyzeGroups } from '../src/pipeline/stages';
import { applyPlan } from '../src/prune/apply';
import { scoreGroupsDetailed, type ScoreResult } from '../src/score';
import { compensateBias } from '../src/score/compensate';
import { gramKey, obsGramRequests } from '../src/score/obs';
import { accuracy, denseStats, loadDigits, mnistCalib, overSeeds, SHARED, type Labeled } from './quality-lib';

function arg(name: string): string | undefined {
  const i = process.argv.indexOf(name);
  return i >= 0 ? process.argv[i + 1] : undefined;
}
const SEEDS = Number(arg('--seeds') ?? 10);
const RATIOS = (arg('--ratios') ?? '0.3,0.5,0.7').split(',').map(Number);

async function prunedAccuracy(dense: Model, analysis: GroupAnalysis, r: ScoreResult, mode: AllocationMode, ratio: number,
  digits: Labeled, stats?: ActivationStats): Promise<number> {
  const model = cloneModel(dense);
  const a = JSON.parse(JSON.stringify(analysis)) as GroupAnalysis;
  const { removed } = allocate(a, r.scores, { ratio, mode, model, normalized: r.info.normalized });
  if (stats) compensateBias(model, a, removed, stats);
  applyPlan(model, a, removed);
  return accuracy(model, digits);
}

const pct = (v: number) => (100 * v).toFixed(1);

async function main(): Promise<void> {
  const digits = loadDigits(path.join(SHARED, 'mnist_test_x.bin'), path.join(SHARED, 'mnist_test_y.bin'));
  console.log(`held-out accuracy % (2004 digits); random = mean ± sd over ${SEEDS} seeds; -nc = no compensation, +b = bias compensation`);
  const head = ['model', 'alloc', 'ratio', 'dense', 'random', 'wanda-nc', 'obs-nc', 'wanda+b', 'obs+b'];
  const widths = [16, 8, 6, 6, 12, 9, 8, 8, 8];
  const line = (cells: (string | number)[]) => console.log(cells.map((c, i) => String(c).padEnd(widths[i])).join(' '));
  line(head);
  for (const name of ['mnist_lenet_bn', 'mnist_resmlp']) {
    const dense = loadModel(path.join(SHARED, `${name}.onnx`));
    const analysis = await analyzeGroups(dense);
    const calib = mnistCalib(dense);
    const stats = await denseStats(dense, analysis, calib);
    const t0 = Date.now();
    const reqs = analysis.groups.flatMap((g) => obsGramRequests(dense.graph, g));
    const got = await captureGrams(dense, calib, reqs, { quiet: true });
    const grams = new Map<string, GramStats>(reqs.map((r, i) => [gramKey(r), got[i]]));
    const t1 = Date.now();
    const obs = scoreGroupsDetailed(dense, analysis, { method: 'obs', grams });
    console.error(`${name}: Grams ${t1 - t0} ms, obs paths ${Date.now() - t1} ms; fallbacks ${JSON.stringify(obs.info.fallbacks)}`);
    const wanda = scoreGroupsDetailed(dense, analysis, { method: 'wanda', stats });
    const denseAcc = await accuracy(dense, digits);
    for (const mode of ['uniform', 'global'] as const) {
      for (const ratio of RATIOS) {
        const rnd = await overSeeds(SEEDS, (seed) => prunedAccuracy(dense, analysis, scoreGroupsDetailed(dense, analysis, { method: 'random', seed }), mode, ratio, digits));
        line([name, mode, ratio, pct(denseAcc), `${pct(rnd.mean)} ± ${pct(rnd.sd)}`,
          pct(await prunedAccuracy(dense, analysis, wanda, mode, ratio, digits)),
          pct(await prunedAccuracy(dense, analysis, obs, mode, ratio, digits)),
          pct(await prunedAccuracy(dense, analysis, wanda, mode, ratio, digits, stats)),
          pct(await prunedAccuracy(dense, analysis, obs, mode, ratio, digits, stats))]);
      }
    }
  }
}

main().catch((e) => {
  console.error(e);
  process.exit(1);
});
