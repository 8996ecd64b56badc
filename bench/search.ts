/**
 * Search bench: `--allocation search` against uniform and global with the same importance and reconstruction, on the
 * shared trained models, through the public prune() API (as a user runs it).
 *
 *   node dist/bench/search.js [--model llama8_py|llama_py|lenet|resmlp] [--ratios 0.3,0.5] [--importance wanda,obs]
 *        [--reconstruct none,bias,ls] [--allocations uniform,global,search] [--search-time 150] [--search-generations 60] [--seed 0] [--exhaustive]
 *
 * --exhaustive (small models: llama_py): ground truth for the evolution. The first iteration's search space (the
 * coarse levels around its centre, each combination moved onto the budget as the search's repair does) is
 * enumerated: every distinct allocation is scored on a fixed eighth of the calibration batches, the best 64 on all
 * of them, under the centre's statistics (as the evolution scores them). Prints the optimum next to the best the
 * evolution found in that iteration (search-iterations 1, same seed) and their ratio.
 *
 * LMs calibrate on token rows 128–255 and are evaluated (perplexity) on rows 0–127; the MNIST models calibrate on
 * mnist_calib_x.bin and are evaluated (accuracy) on the held-out digits. Prints one row per allocation with the
 * quality, the achieved budget, the search's fitness (KL on the calibration data; uniform and global measured in the
 * same run) and the wall time of the prune.
 */
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { parseArgs } from 'util';
import { DataType } from '../src/ir/dtype';
import { loadModel } from '../src/ir/io';
import { formatNpy } from '../src/ort/npy';
import { prune } from '../src/index';
import { allocate, allocationSlots } from '../src/allocate/allocate';
import { analyzeGroups, scoreGroups } from '../src/pipeline/stages';
import { openSearch, repair, snapper, unitCosts, type Config, type Space } from '../src/prune/search';
import { loadCalibration } from '../src/ort/calib';
import { accuracy, loadDigits, loadTokens, perplexity, ROW, SHARED } from './quality-lib';

const { values } = parseArgs({
  options: {
    model: { type: 'string', default: 'llama8_py' },
    ratios: { type: 'string', default: '0.3,0.5' },
    importance: { type: 'string', default: 'wanda' },
    reconstruct: { type: 'string', default: 'ls' },
    allocations: { type: 'string', default: 'uniform,global,search' },
    'search-time': { type: 'string' },
    'search-generations': { type: 'string' },
    'search-offspring': { type: 'string' },
    'search-iterations': { type: 'string' },
    seed: { type: 'string', default: '0' },
    exhaustive: { type: 'boolean', default: false },
  },
});

async function main(): Promise<void> {
  const name = values.model!;
  const lm = name.startsWith('llama');
  const file = path.join(SHARED, lm ? `${name}.onnx` : name === 'lenet' ? 'mnist_lenet_bn.onnx' : 'mnist_resmlp.onnx');
  const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'search-bench-'));
  let calib: string;
  let tokens: BigInt64Array | undefined;
  if (lm) {
    tokens = loadTokens(path.join(SHARED, `${name}_eval_tokens.bin`));
    const data = new BigInt64Array(128 * 128);
    for (let r = 0; r < 128; r++) data.set(tokens.subarray((128 + r) * ROW, (128 + r) * ROW + 128), r * 128);
    calib = path.join(tmp, 'calib.npy');
    fs.writeFileSync(calib, formatNpy({ dtype: DataType.INT64, dims: [128, 128], data }));
  } else {
    calib = path.join(SHARED, 'mnist_calib_x.bin');
  }
  const digits = lm ? undefined : loadDigits(path.join(SHARED, 'mnist_test_x.bin'), path.join(SHARED, 'mnist_test_y.bin'));
  const dense = loadModel(file);
  const quality = async (m: typeof dense) => (lm ? perplexity(m, tokens!, 0, 128) : accuracy(m, digits!));
  const q0 = await quality(dense);
  console.log(`== ${name}: ${lm ? 'perplexity on rows 0-127 (lower is better)' : 'held-out accuracy'}; dense ${q0.toFixed(4)}; seed ${values.seed}`);
  console.log('fitness = KL(dense ‖ pruned) on the calibration data, exact (own reconstruction); uniform and global measured inside the search run');
  console.log('importance  recon ratio alloc    quality  removed  fitness   (uniform  global)  evals  prune_s');
  const extra: Record<string, unknown> = {};
  if (values['search-time']) extra.searchTime = Number(values['search-time']);
  if (values['search-generations']) extra.searchGenerations = Number(values['search-generations']);
  if (values['search-offspring']) extra.searchOffspring = Number(values['search-offspring']);
  if (values['search-iterations']) extra.searchIterations = Number(values['search-iterations']);
  for (const importance of values.importance!.split(','))
  for (const reconstruct of values.reconstruct!.split(','))
  for (const ratio of values.ratios!.split(',').map(Number)) {
    for (const allocation of values.allocations!.split(',')) {
      const t = Date.now();
      const r = await prune(file, {
        ratio, importance: importance as 'wanda', reconstruct: reconstruct as 'ls', allocation: allocation as 'search', calib,
        seed: Number(values.seed), verify: false, quiet: true, ...extra,
      });
      const s = (Date.now() - t) / 1000;
      const q = await quality(r.model);
      const se = r.report.search;
      const f = (v: number | undefined) => (v === undefined ? '-' : v.toPrecision(4));
      const fit = se ? `${f(se.result)} (${f(se.baselines.uniform)} ${f(se.baselines.global)})` : '-';
      console.log(`${importance.padEnd(11)} ${reconstruct.padEnd(5)} ${(ratio * 100).toFixed(0).padStart(4)}% ${allocation.padEnd(8)} ${q.toFixed(4).padStart(7)}  ${(100 * r.report.allocation!.achieved).toFixed(2).padStart(6)}%  ${fit.padEnd(28)} ${String(se?.evaluations ?? '-').padStart(5)}  ${s.toFixed(1)}`);
      if (se) console.log(`      kept: ${JSON.stringify(se.kept)}; stopped by ${se.stoppedBy}; ${se.iterations.map((i) => `it: ${f(i.centre)}→${f(i.winner)} exact ${f(i.exact)} (${i.generations} gens)`).join('; ')}; ${se.seconds.toFixed(0)} s searching`);
    }
  }
  if (values.exhaustive) await exhaustive(file, calib, Number(values.ratios!.split(',')[0]), values.importance!.split(',')[0], values.reconstruct!.split(',')[0]);
  fs.rmSync(tmp, { recursive: true, force: true });
}

async function exhaustive(file: string, calibFile: string, ratio: number, importance: string, reconstruct: string): Promise<void> {
  const seed = Number(values.seed);
  const t = Date.now();
  const r = await prune(file, {
    ratio, importance: importance as 'wanda', reconstruct: reconstruct as 'ls', allocation: 'search', calib: calibFile, seed,
    verify: false, quiet: true, searchIterations: 1, searchGenerations: Number(values['search-generations'] ?? 40), searchTime: 1e6,
  });
  const evoSeconds = (Date.now() - t) / 1000;
  const it = r.report.search!.iterations[0];
  const model = loadModel(file);
  const calib = loadCalibration(model, { file: calibFile });
  const analysis = await analyzeGroups(model);
  const sc = await scoreGroups(model, analysis, { method: importance as 'wanda', calibSet: calib, seed, quiet: true });
  const alloc = { ratio, model, normalized: sc.info.normalized };
  const S = allocationSlots(analysis, sc.scores, alloc);
  const ss = await openSearch(model, analysis, S, calib, { reconstruct: reconstruct as 'ls' });
  try {
    const slots = S.slots;
    const centre: Config = slots.map((x) => it.kept[x.group.id]);
    const centreFit = await ss.exact(centre);
    const uniformC = ss.configOf(allocate(analysis, sc.scores, { ...alloc, mode: 'uniform' }).removed);
    const snap = snapper(S);
    const unitCost = unitCosts(S, uniformC, ss.measure);
    const step = slots.map((x) => it.step[x.group.id]);
    const sp: Space = {
      step, lo: slots.map((x, si) => Math.max(x.minKept, snap(si, centre[si] - 4 * step[si]))), hi: slots.map((x, si) => Math.min(x.group.size, centre[si] + 4 * step[si])),
      searchable: slots.map(() => true), snap, ratio, tolerance: r.report.search!.tolerance, measure: ss.measure, unitCost,
    };
    const ladders = slots.map((x, si) => {
      const set = new Set<number>();
      for (let e = -4; e <= 4; e++) set.add(Math.min(sp.hi[si], Math.max(sp.lo[si], snap(si, centre[si] + e * step[si]))));
      return [...set].sort((a, b) => a - b);
    });
    // Every combination of coarse levels, moved onto the budget; distinct allocations only.
    const configs = new Map<string, Config>();
    const idx = new Array(slots.length).fill(0);
    let combos = 0;
    for (;;) {
      combos++;
      const c = idx.map((i, si) => ladders[si][i]);
      const fixed = repair(c.slice(), sp, []);
      if (fixed) configs.set(fixed.join(','), fixed);
      let k = 0;
      while (k < idx.length && ++idx[k] === ladders[k].length) idx[k++] = 0;
      if (k === idx.length) break;
    }
    const sub = [0];
    const all = ss.allBatches;
    const stage1: { c: Config; f: number }[] = [];
    for (const c of configs.values()) stage1.push({ c, f: await ss.fitness(c, sub) });
    stage1.sort((a, b) => a.f - b.f);
    let best = Infinity;
    for (const x of stage1.slice(0, 64)) best = Math.min(best, await ss.fitness(x.c, all));
    console.log(`\n== exhaustive ground truth (${path.basename(file)}, ${(ratio * 100).toFixed(0)} %, first iteration's levels around its centre, centre's statistics)`);
    console.log(`${combos} level combinations → ${configs.size} distinct allocations on the budget (±${(100 * sp.tolerance).toFixed(2)} %), scored on batch 0, best 64 on all ${all.length}`);
    console.log(`centre ${centreFit.toFixed(5)}; exhaustive optimum ${best.toFixed(5)}; evolution (iteration 1, ${it.generations} generations, ${evoSeconds.toFixed(0)} s) ${it.winner.toFixed(5)}; ratio ${(it.winner / best).toFixed(3)}`);
    console.log(`exhaustive: ${ss.evaluations()} evaluations, ${((Date.now() - t) / 1000 - evoSeconds).toFixed(0)} s`);
  } finally {
    await ss.release();
  }
}

main().catch((e) => {
  console.error(e instanceof Error ? e.stack : e);
  process.exit(1);
});
