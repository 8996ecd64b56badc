/**
 * Pruning quality table (not a timed test): `npm run build && node dist/bench/quality.js [--quick]`.
 *  - mnist_lenet_bn, mnist_resmlp: accuracy on the 2004 held-out digits, dense vs pruned at 30 % / 50 % params,
 *    for random (mean ± sd over 20 seeds; 3 with --quick), L2, Wanda without compensation (wanda-nc, i.e.
 *    `--no-compensate`), and Wanda and FLAP as the CLI runs them (with bias compensation), uniform and global
 *    allocation; calibrated on mnist_calib_x.bin.
 *  - llama_py: perplexity on rows 0–127 of llama_py_eval_tokens.bin (calibrated on rows 128–255), dense vs
 *    pruned at 20 % / 40 % params, uniform vs global, for random (mean of 3 seeds), L2, wanda-nc, Wanda and
 *    FLAP.
 * Groups come from the real analysis (analyzeGroups).
 */
import * as path from 'path';
import { analyzeGroups } from '../src/pipeline/stages';
import { loadModel } from '../src/ir/io';
import { accuracy, denseStats, loadDigits, loadTokens, mnistCalib, overSeeds, perplexity, pruneVariant, SHARED, tokenCalib, variantName, type Variant } from './quality-lib';

const quick = process.argv.includes('--quick');
const MNIST_SEEDS = quick ? 3 : 20;
const LLAMA_SEEDS = 3;

function row(cells: (string | number)[], widths: number[]): string {
  return cells.map((c, i) => String(c).padEnd(widths[i])).join(' ');
}

const methods = (mode: 'uniform' | 'global'): Variant[] => [
  { method: 'l2', mode },
  { method: 'wanda', compensate: false, mode },
  { method: 'wanda', mode },
  { method: 'fluctuation', mode },
];

async function mnist(): Promise<void> {
  const digits = loadDigits(path.join(SHARED, 'mnist_test_x.bin'), path.join(SHARED, 'mnist_test_y.bin'));
  const widths = [16, 8, 6, 6, 13, 6, 6, 11, 10];
  console.log(`held-out accuracy (2004 digits); random = mean ± sd over ${MNIST_SEEDS} seeds`);
  console.log(row(['model', 'alloc', 'ratio', 'dense', 'random', 'l2', 'wanda-nc', 'wanda', 'flap'], widths));
  for (const name of ['mnist_lenet_bn', 'mnist_resmlp']) {
    const dense = loadModel(path.join(SHARED, `${name}.onnx`));
    const analysis = await analyzeGroups(dense);
    const stats = await denseStats(dense, analysis, mnistCalib(dense));
    const denseAcc = await accuracy(dense, digits);
    for (const mode of ['uniform', 'global'] as const) {
      for (const ratio of [0.3, 0.5]) {
        const rnd = await overSeeds(MNIST_SEEDS, (seed) => accuracy(pruneVariant(dense, analysis, stats, { method: 'random', mode }, ratio, seed).model, digits));
        const cells: (string | number)[] = [name, mode, `${ratio * 100}%`, denseAcc.toFixed(3), `${rnd.mean.toFixed(3)}±${rnd.sd.toFixed(3)}`];
        for (const v of methods(mode)) cells.push((await accuracy(pruneVariant(dense, analysis, stats, v, ratio).model, digits)).toFixed(3));
        console.log(row(cells, widths));
      }
    }
  }
}

async function llama(): Promise<void> {
  const dense = loadModel(path.join(SHARED, 'llama_py.onnx'));
  const tokens = loadTokens(path.join(SHARED, 'llama_py_eval_tokens.bin'));
  const analysis = await analyzeGroups(dense);
  const stats = await denseStats(dense, analysis, tokenCalib(dense, tokens, 128, 256));
  const denseP = await perplexity(dense, tokens, 0, 128);
  console.log(`\nllama_py perplexity (rows 0-127), dense ${denseP.toFixed(3)}; groups: ${analysis.groups.map((g) => `${g.unit}×${g.size}`).join(', ')}`);
  console.log(`random = mean of ${LLAMA_SEEDS} seeds`);
  const widths = [8, 6, 8, 7, 7, 11, 10];
  console.log(row(['alloc', 'ratio', 'random', 'l2', 'wanda-nc', 'wanda', 'flap'], widths));
  for (const mode of ['uniform', 'global'] as const) {
    for (const ratio of [0.2, 0.4]) {
      const cells: (string | number)[] = [mode, `${ratio * 100}%`];
      const variants: (Variant | 'random')[] = ['random', ...methods(mode)];
      for (const v of variants) {
        try {
          if (v === 'random') {
            const r = await overSeeds(LLAMA_SEEDS, (seed) => perplexity(pruneVariant(dense, analysis, stats, { method: 'random', mode }, ratio, seed).model, tokens, 0, 128));
            cells.push(r.mean.toFixed(3));
          } else {
            cells.push((await perplexity(pruneVariant(dense, analysis, stats, v, ratio).model, tokens, 0, 128)).toFixed(3));
          }
        } catch (e) {
          const label = v === 'random' ? 'random' : variantName(v);
          cells.push(`error: ${(e as Error).message.slice(0, 60)}`);
          console.error(`${label} ${mode} ${ratio}: ${(e as Error).message}`);
        }
      }
      console.log(row(cells, widths));
    }
  }
}

(async () => {
  await mnist();
  await llama();
})().catch((e) => {
  console.error(e);
  process.exit(1);
});
