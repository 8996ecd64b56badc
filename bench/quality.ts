/**
 * Pruning quality table (not a timed test). Build, then run:
 *
 *   npm run build && node dist/bench/quality.js [--quick] [--models a,b] [--seeds N] [--json out.json] [--no-resources]
 *        [--search [--search-generations N]]
 *
 * Models (the shared trained ones, ../shared/models):
 *  - mnist_lenet_bn, mnist_resmlp: top-1 accuracy on the 2004 held-out digits (mnist_test_x/y.bin), pruned at
 *    30 / 50 / 70 % of params; calibration = the 512 training digits of mnist_calib_x.bin;
 *  - llama_py: perplexity on rows 0–127 of llama_py_eval_tokens.bin, pruned at 20 / 30 / 50 % of params;
 *    calibration = rows 128–255 of the same file.
 * Nothing is evaluated on calibration data.
 *
 * Table: one block of rows per model × allocation (uniform, global) × ratio, one row per reconstruction
 * (none, bias, ls), one column per importance method of the registry (IMPORTANCE_METHODS, in its order). The
 * `random` method is the baseline: mean ± sample sd over `--seeds` seeds (20; 3 with --quick), in every
 * reconstruction mode; every other method is deterministic and run once.
 * Reconstruction: none; bias = FLAP bias compensation (the removed inputs' calibration means folded into the
 * consumers' biases); ls = least-squares refit of the consumers' kept weights on the calibration set. Bias is run
 * for EVERY method, data-free ones included: it needs only the consumers' input means, and this bench captures
 * those once per model on the calibration set (the same statistics the data-aware methods score with), so the
 * bias column isolates the reconstruction from the importance. Groups come from the real analysis; statistics are
 * captured once on the dense model and shared by all cells (library path, bench/quality-lib.ts).
 *
 * Resources: per model, method and reconstruction, one prune() of the public API (the whole pipeline: load,
 * analysis, calibration capture, scoring, allocation, reconstruction, prune, verification, save to a temp dir) at
 * uniform allocation and the model's reference ratio (50 % MNIST, 30 % llama_py), each in a child process of its
 * own (bench/prune-child.ts), so that its peak RSS (the child's maxRSS) and wall time are that run's alone. `lib`
 * is the in-process time of score + allocate + reconstruct + apply in the table's cells (median over the model's
 * cells; random: over all seeds), without the shared statistics capture or evaluation.
 *
 * --search adds a `search` allocation block (src/prune/search.ts, `--search-generations`, default 20; the same
 * importance and reconstruction as the uniform/global rows; random over 3 seeds): opt-in, every cell is a search
 * (bench/search.ts compares the three allocations for one importance with the CLI's defaults).
 * Quality targets (uniform allocation) are checked after each model's table.
 * --quick: 3 seeds, the reference ratio only, no resource runs (--resources forces them).
 * After each model's table, a depth-only row (src/prune/depth.ts: whole residual blocks, scored by the KL of the
 * model with the block masked on the calibration data) at the same ratios. --no-prune-hidden analyses without the
 * normalized (hidden-size) groups, to compare the whole table with them on and off.
 *
 * Runtime (the script prints it last): a full run took 2863 s on 2 cores while another bench ran beside it —
 * mnist_lenet_bn 2327 s (its ls cells take ~5–9 s each: 6 rows × (20 random seeds + 7 methods)), mnist_resmlp
 * 146 s, llama_py 390 s. `--quick --models mnist_lenet_bn --resources` took 215 s.
 */
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { parseArgs as parseCliArgs } from 'util';
import type { GroupAnalysis } from '../src/analysis/types';
import type { AllocationMode } from '../src/allocate/allocate';
import { loadModel } from '../src/ir/io';
import type { Model } from '../src/ir/model';
import type { CalibSet } from '../src/ort/calib';
import type { ActivationStats } from '../src/ort/capture';
import { analyzeGroups } from '../src/pipeline/stages';
import { cloneModel } from '../src/ir/clone';
import { applyPlan } from '../src/prune/apply';
import { depthAllocation, depthAnalysis } from '../src/prune/depth';
import { IMPORTANCE_METHODS, type ScoreMethod } from '../src/score';
import { runPruneChild, type ChildResult } from './prune-child';
import { accuracy, denseStats, loadDigits, loadTokens, mnistCalib, perplexity, pruneVariantAsync, RECONS, ROW, SHARED, tokenCalib, type Recon } from './quality-lib';

// Arguments -------------------------------------------------------------------------------------------------

interface Args {
  quick: boolean;
  models: string[];
  seeds: number;
  json?: string;
  resources: boolean;
  search?: boolean;
  searchGenerations?: number;
  /** --no-prune-hidden: analyses without normalized (hidden-size) groups, to compare the table on / off. */
  hidden: boolean;
}

const MODEL_NAMES = ['mnist_lenet_bn', 'mnist_resmlp', 'llama_py'];

function parseArgs(argv: string[]): Args {
  const { values: v } = parseCliArgs({
    args: argv,
    options: {
      quick: { type: 'boolean' }, models: { type: 'string' }, seeds: { type: 'string' }, json: { type: 'string' },
      resources: { type: 'boolean' }, 'no-resources': { type: 'boolean' },
      search: { type: 'boolean' }, 'search-generations': { type: 'string' }, 'no-prune-hidden': { type: 'boolean' },
    },
  });
  const quick = !!v.quick;
  const a: Args = { quick, models: MODEL_NAMES, seeds: quick ? 3 : 20, resources: !quick, hidden: !v['no-prune-hidden'] };
  if (v.models !== undefined) a.models = v.models.split(',').map((s) => s.trim()).filter(Boolean);
  if (v.seeds !== undefined) a.seeds = Number(v.seeds);
  if (v.json !== undefined) a.json = v.json;
  if (v.resources) a.resources = true;
  if (v['no-resources']) a.resources = false;
  if (v.search) a.search = true;
  if (v['search-generations'] !== undefined) a.searchGenerations = Number(v['search-generations']);
  for (const m of a.models) if (!MODEL_NAMES.includes(m)) throw new Error(`unknown model '${m}' (${MODEL_NAMES.join(', ')})`);
  if (!(Number.isInteger(a.seeds) && a.seeds >= 2)) throw new Error('--seeds must be an integer ≥ 2');
  return a;
}

// Models ----------------------------------------------------------------------------------------------------

interface Loaded {
  dense: Model;
  analysis: GroupAnalysis;
  stats: ActivationStats;
  calib: CalibSet;
  evaluate: (m: Model) => Promise<number>;
  /** prune() calibration options for the child runs. */
  childCalib: Record<string, unknown>;
  describe: string;
}

interface ModelSpec {
  name: string;
  metric: 'accuracy' | 'perplexity';
  higherBetter: boolean;
  ratios: number[];
  refRatio: number;
  targets: { ratio: number; bound: number }[];
  load(tmp: string, hidden: boolean): Promise<Loaded>;
}

async function loadMnist(name: string, hidden: boolean): Promise<Loaded> {
  const file = path.join(SHARED, `${name}.onnx`);
  const dense = loadModel(file);
  const digits = loadDigits(path.join(SHARED, 'mnist_test_x.bin'), path.join(SHARED, 'mnist_test_y.bin'));
  const analysis = await analyzeGroups(dense, { normStatistics: hidden });
  const calib = mnistCalib(dense);
  const stats = await denseStats(dense, analysis, calib);
  return {
    dense, analysis, stats, calib,
    evaluate: (m) => accuracy(m, digits),
    childCalib: { calib: path.join(SHARED, 'mnist_calib_x.bin'), calibShape: [512, 1, 28, 28], calibDtype: 'float32' },
    describe: `held-out top-1 accuracy on ${digits.n} digits (higher is better); calibration: ${calib.samples} digits of mnist_calib_x.bin`,
  };
}

async function loadLlama(tmp: string, hidden: boolean): Promise<Loaded> {
  const dense = loadModel(path.join(SHARED, 'llama_py.onnx'));
  const tokens = loadTokens(path.join(SHARED, 'llama_py_eval_tokens.bin'));
  const analysis = await analyzeGroups(dense, { normStatistics: hidden });
  const calib = tokenCalib(dense, tokens, 128, 256);
  const stats = await denseStats(dense, analysis, calib);
  // The same rows as a raw int64 [128, 128] file for the child runs.
  const rows = new BigInt64Array(128 * 128);
  for (let r = 0; r < 128; r++) rows.set(tokens.subarray((128 + r) * ROW, (128 + r) * ROW + 128), r * 128);
  const calibFile = path.join(tmp, 'llama_calib_rows128-255.bin');
  fs.writeFileSync(calibFile, Buffer.from(rows.buffer));
  return {
    dense, analysis, stats, calib,
    evaluate: (m) => perplexity(m, tokens, 0, 128),
    childCalib: { calib: calibFile, calibShape: [128, 128], calibDtype: 'int64' },
    describe: `perplexity on token rows 0-127 (lower is better); calibration: rows 128-255; groups: ${analysis.groups.map((g) => `${g.unit}×${g.size}`).join(', ')}`,
  };
}

const SPECS: ModelSpec[] = [
  { name: 'mnist_lenet_bn', metric: 'accuracy', higherBetter: true, ratios: [0.3, 0.5, 0.7], refRatio: 0.5, targets: [{ ratio: 0.5, bound: 0.967 }, { ratio: 0.7, bound: 0.95 }], load: (_t, h) => loadMnist('mnist_lenet_bn', h) },
  { name: 'mnist_resmlp', metric: 'accuracy', higherBetter: true, ratios: [0.3, 0.5, 0.7], refRatio: 0.5, targets: [{ ratio: 0.5, bound: 0.94 }], load: (_t, h) => loadMnist('mnist_resmlp', h) },
  { name: 'llama_py', metric: 'perplexity', higherBetter: false, ratios: [0.2, 0.3, 0.5], refRatio: 0.3, targets: [{ ratio: 0.3, bound: 5.9 }], load: loadLlama },
];

// Cells -----------------------------------------------------------------------------------------------------

interface Cell {
  model: string;
  allocation: AllocationMode;
  ratio: number;
  recon: Recon;
  method: ScoreMethod;
  metric: 'accuracy' | 'perplexity';
  /** The method's value, or the mean over seeds for random. */
  value?: number;
  sd?: number;
  values?: number[];
  /** Params removed, as allocation achieved it (mean over seeds for random). */
  achieved?: number;
  /** Score + allocate + reconstruct + apply, ms (mean over seeds for random). */
  pruneMs?: number;
  error?: string;
}

/** A depth-only run: the metric, the fraction of params removed and the blocks removed. */
interface DepthCell { model: string; ratio: number; value: number; achieved: number; removed: string[] }

interface Resource {
  model: string;
  method: ScoreMethod;
  recon: Recon;
  ratio: number;
  wallS?: number;
  pruneS?: number;
  peakRssMiB?: number;
  passes?: { name: string; ms: number; peakRssKb?: number }[];
  error?: string;
}

const fmtValue = (metric: Cell['metric'], v: number) => v.toFixed(3);
const pct = (r: number) => `${Math.round(r * 100)}%`;

function pad(cells: string[], widths: number[]): string {
  return cells.map((c, i) => c.padEnd(widths[i])).join(' ').trimEnd();
}

function cellText(c: Cell): string {
  if (c.error !== undefined) return 'n/a';
  if (c.sd !== undefined) return `${fmtValue(c.metric, c.value!)}±${c.sd.toFixed(3)}`;
  return fmtValue(c.metric, c.value!);
}

async function runCell(spec: ModelSpec, L: Loaded, allocation: AllocationMode, ratio: number, recon: Recon, method: ScoreMethod, seeds: number, searchGenerations?: number): Promise<Cell> {
  const cell: Cell = { model: spec.name, allocation, ratio, recon, method, metric: spec.metric };
  try {
    const runs = method === 'random' ? seeds : 1;
    const values: number[] = [];
    let ms = 0;
    let achieved = 0;
    for (let seed = 0; seed < runs; seed++) {
      const r = await pruneVariantAsync(L.dense, L.analysis, L.stats, L.calib, { method, mode: allocation, recon, searchGenerations }, ratio, seed);
      ms += r.ms;
      achieved += r.achieved.achieved;
      values.push(await L.evaluate(r.model));
    }
    const mean = values.reduce((a, b) => a + b, 0) / runs;
    cell.value = mean;
    cell.pruneMs = ms / runs;
    cell.achieved = achieved / runs;
    if (method === 'random') {
      cell.sd = Math.sqrt(values.reduce((a, v) => a + (v - mean) ** 2, 0) / (runs - 1));
      cell.values = values;
    }
  } catch (e) {
    cell.error = (e as Error).message;
  }
  return cell;
}

function printTargets(spec: ModelSpec, cells: Cell[]): void {
  const better = (a: number, b: number) => (spec.higherBetter ? a > b : a < b);
  const meets = (v: number, bound: number) => (spec.higherBetter ? v >= bound : v <= bound);
  for (const t of spec.targets) {
    const at = cells.filter((c) => c.allocation === 'uniform' && Math.abs(c.ratio - t.ratio) < 1e-9 && c.error === undefined && c.method !== 'random');
    if (!at.length) continue;
    const parts: string[] = [];
    for (const recon of RECONS) {
      const best = at.filter((c) => c.recon === recon).reduce<Cell | undefined>((b, c) => (!b || better(c.value!, b.value!) ? c : b), undefined);
      if (best) parts.push(`${recon}: ${best.method} ${fmtValue(spec.metric, best.value!)}${meets(best.value!, t.bound) ? ' (met)' : ''}`);
    }
    console.log(`target uniform ${pct(t.ratio)} ${spec.metric} ${spec.higherBetter ? '≥' : '≤'} ${t.bound}: best per reconstruction — ${parts.join('; ')}`);
  }
}

function median(xs: number[]): number | undefined {
  if (!xs.length) return undefined;
  const s = [...xs].sort((a, b) => a - b);
  return s.length % 2 ? s[(s.length - 1) / 2] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2;
}

async function runResources(spec: ModelSpec, L: Loaded, tmp: string, cells: Cell[]): Promise<Resource[]> {
  const out: Resource[] = [];
  const input = path.join(SHARED, `${spec.name}.onnx`);
  const methods = IMPORTANCE_METHODS.map((m) => m.name as ScoreMethod);
  for (const method of methods) {
    for (const recon of RECONS) {
      const res: Resource = { model: spec.name, method, recon, ratio: spec.refRatio };
      const output = path.join(tmp, `${spec.name}-${method}-${recon}.onnx`);
      const r: ChildResult = await runPruneChild(input, { ratio: spec.refRatio, importance: method, allocation: 'uniform', ...L.childCalib, reconstruct: recon, output });
      fs.rmSync(output, { force: true });
      res.wallS = r.wallMs / 1000;
      res.pruneS = r.pruneMs !== undefined ? r.pruneMs / 1000 : undefined;
      res.peakRssMiB = r.peakRssKb !== undefined ? r.peakRssKb / 1024 : undefined;
      res.passes = r.passes;
      if (r.error) res.error = r.error;
      out.push(res);
    }
  }
  const lib = (method: ScoreMethod, recon: Recon) => median(cells.filter((c) => c.method === method && c.recon === recon && c.pruneMs !== undefined).map((c) => c.pruneMs!));
  console.log(`\nresources (${spec.name}, uniform ${pct(spec.refRatio)}): one prune() per cell in its own child process: wall s (pipeline s) / peak RSS MiB; lib = median in-process score+allocate+reconstruct+apply ms over the table's cells`);
  const widths = [12, ...RECONS.map(() => 30)];
  console.log(pad(['method', ...RECONS], widths));
  for (const method of methods) {
    const cellsOf = RECONS.map((recon) => {
      const r = out.find((x) => x.method === method && x.recon === recon)!;
      const l = lib(method, recon);
      const libText = l !== undefined ? ` lib ${l < 100 ? l.toFixed(1) : l.toFixed(0)}` : '';
      if (r.error !== undefined) return `n/a${libText}`;
      return `${r.wallS!.toFixed(1)} (${r.pruneS!.toFixed(1)}) / ${r.peakRssMiB!.toFixed(0)}${libText}`;
    });
    console.log(pad([method, ...cellsOf], widths));
  }
  const errors = new Map<string, string[]>();
  for (const r of out) if (r.error !== undefined) errors.set(r.error, [...(errors.get(r.error) ?? []), `${r.method}/${r.recon}`]);
  for (const [e, where] of errors) console.log(`  n/a ${where.join(', ')}: ${e.split('\n')[0].slice(0, 200)}`);
  return out;
}

async function runModel(spec: ModelSpec, a: Args, tmp: string, results: { cells: Cell[]; resources: Resource[]; dense: Record<string, number>; depth: DepthCell[] }): Promise<void> {
  const t0 = Date.now();
  const L = await spec.load(tmp, a.hidden);
  const denseValue = await L.evaluate(L.dense);
  results.dense[spec.name] = denseValue;
  console.log(`\n== ${spec.name}: ${L.describe}`);
  console.log(`dense ${fmtValue(spec.metric, denseValue)}; random = mean±sd over ${a.seeds} seeds; n/a = failed (reason below)`);
  const methods = IMPORTANCE_METHODS.map((m) => m.name as ScoreMethod);
  const widths = [8, 5, 5, ...methods.map((m) => (m === 'random' ? 12 : Math.max(6, m.length)))];
  console.log(pad(['alloc', 'ratio', 'recon', ...methods.map((m) => (m === 'random' ? `random(${a.seeds})` : m))], widths));
  const ratios = a.quick ? [spec.refRatio] : spec.ratios;
  const cells: Cell[] = [];
  for (const allocation of a.search ? ['uniform', 'global', 'search'] as const : ['uniform', 'global'] as const) {
    for (const ratio of ratios) {
      for (const recon of RECONS) {
        const row: Cell[] = [];
        // Search rows: the random baseline over 3 seeds (each is a whole search).
        for (const method of methods) row.push(await runCell(spec, L, allocation, ratio, recon, method, allocation === 'search' ? Math.min(3, a.seeds) : a.seeds, a.searchGenerations));
        cells.push(...row);
        const first = recon === RECONS[0];
        console.log(pad([first ? allocation : '', first ? pct(ratio) : '', recon, ...row.map(cellText)], widths));
      }
    }
  }
  const errors = new Map<string, string[]>();
  for (const c of cells) if (c.error !== undefined) errors.set(c.error, [...(errors.get(c.error) ?? []), `${c.allocation} ${pct(c.ratio)} ${c.recon} ${c.method}`]);
  for (const [e, where] of errors) console.log(`  n/a (${where.length} cells, e.g. ${where.slice(0, 3).join('; ')}): ${e.split('\n')[0].slice(0, 200)}`);
  printTargets(spec, cells);
  results.cells.push(...cells);
  // Depth: whole residual blocks instead of width (--depth-only), beside the width rows above.
  const depthRow: string[] = [];
  const dA = depthAnalysis(L.dense, L.analysis);
  for (const ratio of ratios) {
    try {
      const r = await depthAllocation(L.dense, dA, L.calib, { ratio });
      const m = cloneModel(L.dense);
      applyPlan(m, dA, r.removed);
      const v = await L.evaluate(m);
      results.depth.push({ model: spec.name, ratio, value: v, achieved: r.achieved.achieved, removed: Object.keys(r.removed) });
      depthRow.push(`${pct(ratio)}: ${fmtValue(spec.metric, v)} (removed ${(100 * r.achieved.achieved).toFixed(1)} %, ${Object.keys(r.removed).length}/${r.scores.length} blocks)`);
    } catch (e) {
      depthRow.push(`${pct(ratio)}: n/a (${(e as Error).message.split('\n')[0].slice(0, 120)})`);
    }
  }
  console.log(`depth-only (blocks by masked KL on the calibration data): ${depthRow.join('; ')}`);
  if (a.resources) results.resources.push(...(await runResources(spec, L, tmp, cells)));
  console.log(`(${spec.name}: ${((Date.now() - t0) / 1000).toFixed(0)} s)`);
}

async function main(): Promise<void> {
  const a = parseArgs(process.argv.slice(2));
  const t0 = Date.now();
  const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'onnx-prune-quality-'));
  const results = { cells: [] as Cell[], resources: [] as Resource[], dense: {} as Record<string, number>, depth: [] as DepthCell[] };
  const meta = { node: process.version, cores: os.cpus().length, quick: a.quick, seeds: a.seeds, models: a.models, methods: IMPORTANCE_METHODS.map((m) => m.name), recons: RECONS };
  console.log(`quality bench: node ${process.version}, ${os.cpus().length} cores; models ${a.models.join(', ')}; methods ${meta.methods.join(', ')}; reconstruction ${RECONS.join(', ')}`);
  const save = () => {
    if (a.json) fs.writeFileSync(a.json, `${JSON.stringify({ meta, runtimeS: (Date.now() - t0) / 1000, ...results }, null, 1)}\n`);
  };
  try {
    for (const spec of SPECS.filter((s) => a.models.includes(s.name))) {
      await runModel(spec, a, tmp, results);
      save();
    }
  } finally {
    fs.rmSync(tmp, { recursive: true, force: true });
  }
  console.log(`\ntotal runtime ${((Date.now() - t0) / 1000).toFixed(0)} s`);
}

main().catch((e) => {
  console.error(e);
  process.exit(1);
});
