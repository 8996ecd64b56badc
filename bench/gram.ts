/**
 * Time to capture calibration Gram statistics (src/ort/gram.ts). Build first (`npm run build`), then:
 *
 *   node dist/bench/gram.js [--runs 3] [--batch N]   (default: captureGrams' automatic batch size)
 *
 *  - mnist_lenet_bn: every consumer (3 Conv im2col Grams + 2 Gemm inputs) over the 512 calibration digits, in
 *    one call, then one call per consumer (as the sequential refit calls it);
 *  - llama_py: every o_proj and down_proj input over rows 128–255 of llama_py_eval_tokens.bin (128 × 128 tokens),
 *    in one call, then one call per consumer.
 * Median of `runs` after one warm-up. One intra-op thread, as everywhere in onnx-prune.
 */
import * as path from 'path';
import { loadModel } from '../src/ir/io';
import type { Model } from '../src/ir/model';
import { loadCalibration, type CalibSet } from '../src/ort/calib';
import { captureGrams, gramRequestFor, type GramRequest } from '../src/ort/gram';
import { SHARED, loadTokens, tokenCalib } from './quality-lib';

function requestsFor(model: Model, filter: (name: string) => boolean): { name: string; request: GramRequest }[] {
  const out: { name: string; request: GramRequest }[] = [];
  for (const n of model.graph.nodes) {
    if (!['Conv', 'Gemm', 'MatMul'].includes(n.opType) || !filter(n.name)) continue;
    const w = model.graph.initializers.get(n.inputs[1]);
    if (!w) continue;
    const made = gramRequestFor(n, 1, w.dims);
    if ('request' in made) out.push({ name: n.name, request: made.request });
  }
  return out;
}

async function median(runs: number, f: () => Promise<void>): Promise<number> {
  await f();
  const t: number[] = [];
  for (let i = 0; i < runs; i++) {
    const t0 = process.hrtime.bigint();
    await f();
    t.push(Number(process.hrtime.bigint() - t0) / 1e6);
  }
  t.sort((a, b) => a - b);
  return t[Math.floor(t.length / 2)];
}

async function bench(label: string, model: Model, calib: CalibSet, reqs: { name: string; request: GramRequest }[], runs: number, batch: number | undefined): Promise<void> {
  const dims = reqs.map((r) => (r.request.kind === 'conv' ? r.request.channels * r.request.kernel.reduce((a, b) => a * b, 1) : r.request.channels));
  const all = await median(runs, async () => { await captureGrams(model, calib, reqs.map((r) => r.request), { quiet: true, batch }); });
  console.log(`${label}: ${reqs.length} consumers (D = ${dims.join(', ')}), ${calib.samples} samples, batch ${batch ?? 'auto'}: all in one call ${all.toFixed(0)} ms`);
  let sum = 0;
  for (const r of reqs) {
    const t = await median(runs, async () => { await captureGrams(model, calib, [r.request], { quiet: true, batch }); });
    sum += t;
    console.log(`  one call for ${r.name} (${r.request.kind}, D = ${dims[reqs.indexOf(r)]}): ${t.toFixed(0)} ms`);
  }
  console.log(`  one call per consumer, total: ${sum.toFixed(0)} ms`);
}

async function main(): Promise<void> {
  const argv = process.argv.slice(2);
  const arg = (k: string, d: number) => (argv.includes(k) ? Number(argv[argv.indexOf(k) + 1]) : d);
  const runs = arg('--runs', 3);
  const batch = argv.includes('--batch') ? arg('--batch', 32) : undefined;
  const mnist = loadModel(path.join(SHARED, 'mnist_lenet_bn.onnx'));
  const mcal = loadCalibration(mnist, { file: path.join(SHARED, 'mnist_calib_x.bin') });
  await bench('mnist_lenet_bn', mnist, mcal, requestsFor(mnist, () => true), runs, batch);
  const llama = loadModel(path.join(SHARED, 'llama_py.onnx'));
  const lcal = tokenCalib(llama, loadTokens(path.join(SHARED, 'llama_py_eval_tokens.bin')), 128, 256);
  await bench('llama_py', llama, lcal, requestsFor(llama, (n) => /o_proj|down_proj/.test(n)), runs, batch);
}

main().catch((e) => {
  console.error(e);
  process.exit(1);
});
