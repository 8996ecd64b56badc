/**
 * `--allocation search` (src/prune/search.ts) on a small classifier built here (three hidden groups, logits out):
 *  - the fitness the search reports for its result is the KL of the physically pruned (and reconstructed) model
 *    to the dense one on the calibration data, computed here independently: feeding a candidate's tensors to the
 *    search model computes what pruning to it does (ls: at the captured centre; none and bias: at any level);
 *  - the result is never worse than the search's start (the better of uniform and global within the budget);
 *  - the budget is within 0.5 % of the target; two runs with one seed give byte-identical models; a saved plan
 *    replays the searched model byte for byte without calibration data; verification passes.
 */
import * as fs from 'fs';
import * as path from 'path';
import { loadModel, prune, type PruneRunOptions } from '../src/index';
import { DataType } from '../src/ir/dtype';
import type { Model } from '../src/ir/model';
import { formatNpy } from '../src/ort/npy';
import { createSession, modelBytes as bytesOf, ort } from '../src/ort/session';
import { attr, floatTensor, graph, modelBytes, node, seededRng, uniform, valueInfo } from './helpers/builder';
import { mkTmp, rmTmp } from './helpers/cli';
import { checkSchema, type JsonSchema } from '../src/util/json-schema';
import reportSchema from '../schemas/report.schema.json';

let tmp: string;
beforeAll(() => { tmp = mkTmp('onnx-prune-search-'); });
afterAll(() => rmTmp(tmp));

const IN = 12, H = [24, 32, 16], OUT = 10, N = 256;

function inputs(n: number, seed: number): Float32Array {
  const r = seededRng(seed);
  const g = () => (r() + r() + r() - 1.5) * 2;
  const mix = uniform(seededRng(99), 4 * IN, 1);
  const x = new Float32Array(n * IN);
  for (let s = 0; s < n; s++) {
    const z = [g(), g(), g(), g()];
    for (let i = 0; i < IN; i++) x[s * IN + i] = z.reduce((a, v, k) => a + v * mix[k * IN + i], 0) + 0.2 * g();
  }
  return x;
}

/**
 * x → Gemm → Relu → MatMul(+Add) → Relu → Gemm → Relu → Gemm (logits): three hidden groups of different sizes.
 * `layerNorm`: the first hidden layer is normalized by a LayerNorm written as ReduceMean/Sub/Pow/Sqrt/Div/Mul/Add
 * (its group's statistics then run over the kept channels).
 */
function classifier(layerNorm = false): Uint8Array {
  const sizes = [IN, ...H, OUT];
  const nodes = [], inits = [];
  let prev = 'x';
  for (let l = 0; l < sizes.length - 1; l++) {
    const [a, b] = [sizes[l], sizes[l + 1]];
    // Layer-dependent scales so that the groups differ in how much they matter.
    const w = uniform(seededRng(10 + l), a * b, (l === 1 ? 0.9 : 0.5) / Math.sqrt(a / 8));
    const out = l === sizes.length - 2 ? 'y' : `h${l}`;
    if (l === 1) {
      nodes.push(node('MatMul', [prev, `W${l}`], [`m${l}`]), node('Add', [`m${l}`, `B${l}`], [out]));
      inits.push(floatTensor(`W${l}`, [a, b], w), floatTensor(`B${l}`, [b], uniform(seededRng(30 + l), b, 0.1)));
    } else {
      nodes.push(node('Gemm', [prev, `W${l}`, `B${l}`], [out], [attr.int('transB', 1)]));
      inits.push(floatTensor(`W${l}`, [b, a], w), floatTensor(`B${l}`, [b], uniform(seededRng(30 + l), b, 0.1)));
    }
    let act = out;
    if (layerNorm && l === 0) {
      nodes.push(
        node('ReduceMean', [out], ['mu'], [attr.ints('axes', [-1]), attr.int('keepdims', 1)]), node('Sub', [out, 'mu'], ['c']),
        node('Pow', ['c', 'two'], ['c2']), node('ReduceMean', ['c2'], ['var'], [attr.ints('axes', [-1]), attr.int('keepdims', 1)]),
        node('Add', ['var', 'eps'], ['ve']), node('Sqrt', ['ve'], ['sd']), node('Div', ['c', 'sd'], ['z']),
        node('Mul', ['z', 'lg'], ['zg']), node('Add', ['zg', 'lb'], ['n0']),
      );
      inits.push(floatTensor('two', [], [2]), floatTensor('eps', [], [1e-5]), floatTensor('lg', [b], uniform(seededRng(41), b, 1)),
        floatTensor('lb', [b], uniform(seededRng(42), b, 0.2)));
      act = 'n0';
    }
    if (out !== 'y') { nodes.push(node('Relu', [act], [`r${l}`])); prev = `r${l}`; }
  }
  return modelBytes(graph({ nodes, inputs: [valueInfo('x', DataType.FLOAT, ['N', IN])], outputs: [valueInfo('y', DataType.FLOAT, ['N', OUT])], initializers: inits }));
}

let file: string, calibFile: string, dense: Model;
beforeAll(() => {
  file = path.join(tmp, 'classifier.onnx');
  fs.writeFileSync(file, classifier());
  calibFile = path.join(tmp, 'calib.npy');
  fs.writeFileSync(calibFile, formatNpy({ dtype: DataType.FLOAT, dims: [N, IN], data: inputs(N, 7) }));
  dense = loadModel(file);
});

/** y of `m` on x (float32 [rows, …dims]). */
async function runY(m: Model, x: Float32Array, dims: number[]): Promise<Float32Array> {
  const s = await createSession(bytesOf(m));
  try { return (await s.run({ x: new ort.Tensor('float32', x, dims) })).y.data as Float32Array; } finally { await s.release(); }
}

/**
 * Mean over rows of KL(softmax(p) ‖ softmax(q)) over `classes` logits per row, written here independently of the
 * product; with `topK`, over the K largest of p only, both renormalized there.
 */
function meanKl(p: Float32Array, q: Float32Array, classes: number, topK?: number): number {
  const rows = p.length / classes;
  const lse = (v: number[]) => { const m = Math.max(...v); return m + Math.log(v.reduce((t, z) => t + Math.exp(z - m), 0)); };
  let kl = 0;
  for (let r = 0; r < rows; r++) {
    const a = Array.from(p.subarray(r * classes, (r + 1) * classes)), b = Array.from(q.subarray(r * classes, (r + 1) * classes));
    const ks = topK ? a.map((_, k) => k).sort((u, w) => a[w] - a[u] || u - w).slice(0, topK) : a.map((_, k) => k);
    const la = lse(ks.map((k) => a[k])), lb = lse(ks.map((k) => b[k]));
    for (const k of ks) kl += Math.exp(a[k] - la) * ((a[k] - la) - (b[k] - lb));
  }
  return kl / rows;
}

/** Mean over calibration rows of KL(softmax(dense) ‖ softmax(pruned)). */
async function klOnCalib(pruned: Model): Promise<number> {
  const x = inputs(N, 7);
  return meanKl(await runY(dense, x, [N, IN]), await runY(pruned, x, [N, IN]), OUT);
}

const searchRun = (extra: Partial<PruneRunOptions> = {}): PruneRunOptions => ({
  ratio: 0.4, importance: 'l2', allocation: 'search', calib: calibFile, quiet: true,
  searchGenerations: 8, searchOffspring: 6, searchIterations: 2, ...extra,
});

test.each(['ls', 'bias', 'none'] as const)('the reported fitness (--reconstruct %s) is the KL of the physically pruned model; never worse than the start', async (reconstruct) => {
  const r = await prune(file, searchRun({ reconstruct }));
  const s = r.report.search!;
  expect(s).toBeDefined();
  expect(s.fitness).toEqual([{ output: 'y', kind: 'kl' }]);
  expect(r.report.verify?.passed).toBe(true);
  const kl = await klOnCalib(r.model);
  expect(Math.abs(kl - s.result)).toBeLessThanOrEqual(1e-4 * Math.max(kl, 1e-3));
  expect(s.result).toBeLessThanOrEqual(s.startFitness!);
  // The budget: within 0.5 % of the target.
  expect(s.toleranceWidened).toBeUndefined();
  expect(Math.abs(r.report.allocation!.achieved - 0.4)).toBeLessThanOrEqual(0.005 * 0.4 + 1e-12);
  expect(r.report.allocation!.mode).toBe('search');
  expect(s.trace.length).toBeGreaterThan(0);
  expect(s.evaluations).toBeGreaterThan(0);
  expect(Object.keys(s.kept).length).toBe(s.slots);
  expect(checkSchema(JSON.parse(JSON.stringify(r.report)), reportSchema as JsonSchema, 'report')).toBeUndefined();
});

test('the search beats uniform and global here, with widths that differ from uniform', async () => {
  const r = await prune(file, searchRun({ searchGenerations: 16 }));
  const s = r.report.search!;
  expect(s.result).toBeLessThan(s.baselines.uniform);
  if (s.baselines.global !== undefined) expect(s.result).toBeLessThan(s.baselines.global);
  const u = await prune(file, searchRun({ allocation: 'uniform' }));
  const counts = (x: typeof r) => Object.keys(s.kept).map((g) => x.plan!.groups[g]?.length ?? 0);
  expect(counts(r)).not.toEqual(counts(u));
});

test('one seed gives byte-identical models; a saved plan replays the searched model without calibration', async () => {
  const planFile = path.join(tmp, 'search.plan.json');
  const a = await prune(file, searchRun({ savePlan: planFile }));
  const b = await prune(file, searchRun());
  const bytes = (m: Model) => Buffer.from(bytesOf(m));
  expect(bytes(a.model).equals(bytes(b.model))).toBe(true);
  const replay = await prune(file, { plan: planFile, quiet: true });
  expect(bytes(replay.model).equals(bytes(a.model))).toBe(true);
  expect(replay.report.search).toBeUndefined();
});

/** x[N,2,8,8] → Conv(8, 3×3, pads 1) → Relu → Conv(6, 3×3, no bias) → Relu → Flatten → Gemm(10): im2col Grams, a new bias. */
function convnet(): Uint8Array {
  const nodes = [
    node('Conv', ['x', 'C1', 'c1b'], ['c1'], [attr.ints('kernel_shape', [3, 3]), attr.ints('pads', [1, 1, 1, 1])]),
    node('Relu', ['c1'], ['a1']),
    node('Conv', ['a1', 'C2'], ['c2'], [attr.ints('kernel_shape', [3, 3])]),
    node('Relu', ['c2'], ['a2']),
    node('Flatten', ['a2'], ['f'], [attr.int('axis', 1)]),
    node('Gemm', ['f', 'F', 'Fb'], ['y'], [attr.int('transB', 1)]),
  ];
  const inits = [
    floatTensor('C1', [8, 2, 3, 3], uniform(seededRng(41), 8 * 18, 0.5)), floatTensor('c1b', [8], uniform(seededRng(42), 8, 0.1)),
    floatTensor('C2', [6, 8, 3, 3], uniform(seededRng(43), 6 * 72, 0.3)),
    floatTensor('F', [10, 6 * 36], uniform(seededRng(44), 10 * 216, 0.2)), floatTensor('Fb', [10], uniform(seededRng(45), 10, 0.1)),
  ];
  return modelBytes(graph({ nodes, inputs: [valueInfo('x', DataType.FLOAT, ['N', 2, 8, 8])], outputs: [valueInfo('y', DataType.FLOAT, ['N', 10])], initializers: inits }));
}

test('convolutions: im2col refit and a bias added to a conv without one — the reported fitness is the pruned model\'s KL', async () => {
  const f = path.join(tmp, 'convnet.onnx');
  fs.writeFileSync(f, convnet());
  const x = uniform(seededRng(5), 128 * 128, 1);
  const cf = path.join(tmp, 'conv-calib.npy');
  fs.writeFileSync(cf, formatNpy({ dtype: DataType.FLOAT, dims: [128, 2, 8, 8], data: x }));
  const r = await prune(f, { ratio: 0.3, importance: 'l1', allocation: 'search', calib: cf, quiet: true, protectDefaults: false, searchGenerations: 6, searchOffspring: 6, searchIterations: 2 });
  const s = r.report.search!;
  expect(r.report.verify?.passed).toBe(true);
  expect(s.slots).toBe(2);
  const kl = meanKl(await runY(loadModel(f), x, [128, 2, 8, 8]), await runY(r.model, x, [128, 2, 8, 8]), 10);
  expect(Math.abs(kl - s.result)).toBeLessThanOrEqual(1e-4 * Math.max(kl, 1e-3));
  expect(s.result).toBeLessThanOrEqual(s.startFitness!);
});

test('a model without a float output is refused with one line', async () => {
  const nodes = [node('Gemm', ['x', 'W0', 'B0'], ['h'], [attr.int('transB', 1)]), node('Relu', ['h'], ['r']), node('Gemm', ['r', 'W1'], ['z'], [attr.int('transB', 1)]), node('ArgMax', ['z'], ['y'], [attr.int('axis', 1)])];
  const inits = [floatTensor('W0', [16, IN], uniform(seededRng(1), 16 * IN, 0.5)), floatTensor('B0', [16], uniform(seededRng(2), 16, 0.1)), floatTensor('W1', [4, 16], uniform(seededRng(3), 64, 0.5))];
  const f = path.join(tmp, 'argmax.onnx');
  fs.writeFileSync(f, modelBytes(graph({ nodes, inputs: [valueInfo('x', DataType.FLOAT, ['N', IN])], outputs: [valueInfo('y', DataType.INT64, ['N', 1])], initializers: inits })));
  await expect(prune(f, searchRun({ protectDefaults: false, ratio: 0.3 }))).rejects.toThrow(/no float output/);
});

test('over 4096 classes the fitness is KL on the dense top-512 classes (renormalized), and it is the pruned model\'s', async () => {
  const V = 5000, Hd = 24, n = 64;
  const nodes = [node('Gemm', ['x', 'W0', 'B0'], ['h'], [attr.int('transB', 1)]), node('Relu', ['h'], ['r']), node('Gemm', ['r', 'W1', 'B1'], ['y'], [attr.int('transB', 1)])];
  const inits = [
    floatTensor('W0', [Hd, IN], uniform(seededRng(1), Hd * IN, 0.6)), floatTensor('B0', [Hd], uniform(seededRng(2), Hd, 0.1)),
    floatTensor('W1', [V, Hd], uniform(seededRng(3), V * Hd, 0.8)), floatTensor('B1', [V], uniform(seededRng(4), V, 0.5)),
  ];
  const f = path.join(tmp, 'vocab.onnx');
  fs.writeFileSync(f, modelBytes(graph({ nodes, inputs: [valueInfo('x', DataType.FLOAT, ['N', IN])], outputs: [valueInfo('y', DataType.FLOAT, ['N', V])], initializers: inits })));
  const x = inputs(n, 3);
  const cf = path.join(tmp, 'vocab-calib.npy');
  fs.writeFileSync(cf, formatNpy({ dtype: DataType.FLOAT, dims: [n, IN], data: x }));
  const r = await prune(f, { ratio: 0.2, importance: 'l2', allocation: 'search', calib: cf, quiet: true, protectDefaults: false, searchGenerations: 2, searchOffspring: 2, searchIterations: 1 });
  const s = r.report.search!;
  expect(s.fitness).toEqual([{ output: 'y', kind: 'kl-top-k' }]);
  const kl = meanKl(await runY(loadModel(f), x, [n, IN]), await runY(r.model, x, [n, IN]), V, 512);
  expect(kl).toBeGreaterThan(0);
  expect(Math.abs(kl - s.result)).toBeLessThanOrEqual(1e-3 * kl);
});

test('--target flops and --round-to: the search keeps the FLOPs budget and multiples of round-to', async () => {
  const r = await prune(file, searchRun({ target: 'flops', roundTo: 2, ratio: 0.35 }));
  const s = r.report.search!;
  expect(r.report.verify?.passed).toBe(true);
  expect(r.report.allocation!.target).toBe('flops');
  expect(s.toleranceWidened).toBeUndefined();
  expect(Math.abs(r.report.allocation!.flops!.removedRatio - 0.35)).toBeLessThanOrEqual(0.005 * 0.35 + 1e-12);
  for (const k of Object.values(s.kept)) expect(k % 2).toBe(0);
  // Coarser than the budget allows (steps of 8 units in groups of 16–32): the tolerance widens to what the baselines
  // reach, and says so; the result stays within it.
  const w = await prune(file, searchRun({ target: 'flops', roundTo: 8, ratio: 0.35 }));
  const sw = w.report.search!;
  expect(sw.toleranceWidened).toBe(true);
  expect(Math.abs(w.report.allocation!.flops!.removedRatio - 0.35)).toBeLessThanOrEqual(sw.tolerance + 1e-12);
  for (const k of Object.values(sw.kept)) expect(k % 8).toBe(0);
});

test.each(['ls', 'bias', 'none'] as const)('a group a LayerNorm reduces over is searched (--reconstruct %s): the reported fitness is the pruned model\'s KL', async (reconstruct) => {
  const f = path.join(tmp, 'classifier-ln.onnx');
  fs.writeFileSync(f, classifier(true));
  const r = await prune(f, searchRun({ reconstruct }));
  const s = r.report.search!;
  expect(s.fixed).toEqual([]);
  expect(r.report.verify?.passed).toBe(true);
  const x = inputs(N, 7);
  const kl = meanKl(await runY(loadModel(f), x, [N, IN]), await runY(r.model, x, [N, IN]), OUT);
  expect(Math.abs(kl - s.result)).toBeLessThanOrEqual(1e-4 * Math.max(kl, 1e-3));
  // The normalized layer lost channels (its LayerNorm runs over fewer).
  expect(r.model.graph.constant('lg')!.dims[0]).toBeLessThan(H[0]);
  expect(r.model.graph.constant('lg')!.dims[0]).toBe(r.report.search!.kept[Object.keys(s.kept).find((k) => k.startsWith('h0'))!]);
});

test('candidates away from the centre: the shared factorization (NestedRefit) gives the fitness a refit per level gives', async () => {
  const { analyzeGroups, scoreGroups } = await import('../src/pipeline/stages');
  const { allocationSlots } = await import('../src/allocate/allocate');
  const { openSearch } = await import('../src/prune/search');
  const { loadCalibration } = await import('../src/ort/calib');
  const model = loadModel(file);
  const calib = loadCalibration(model, { file: calibFile });
  const analysis = await analyzeGroups(model);
  const sc = await scoreGroups(model, analysis, { method: 'l2' });
  const S = allocationSlots(analysis, sc.scores, { ratio: 0.4, model, protectDefaults: true });
  const a = await openSearch(model, analysis, S, calib, { reconstruct: 'ls' });
  const b = await openSearch(model, analysis, S, calib, { reconstruct: 'ls', nested: false });
  try {
    const centre = S.slots.map((s) => Math.ceil(s.group.size * 0.6));
    expect(await a.exact(centre)).toBeCloseTo(await b.exact(centre), 10);
    for (const shift of [[-4, 4, 0], [2, -6, 3], [0, 5, -5]]) {
      const c = centre.map((k, i) => Math.min(S.slots[i].group.size, Math.max(1, k + (shift[i] ?? 0))));
      const fa = await a.fitness(c, a.allBatches), fb = await b.fitness(c, b.allBatches);
      expect(Math.abs(fa - fb)).toBeLessThanOrEqual(1e-6 * fb);
      expect(fa).not.toBeCloseTo(await a.fitness(centre, a.allBatches), 6);
    }
  } finally {
    await a.release();
    await b.release();
  }
});

test('the CLI summary line names the searched allocation and its baselines', async () => {
  const { summaryLine } = await import('../src/cli/prune-command');
  const r = await prune(file, searchRun({ searchGenerations: 2 }));
  expect(summaryLine(r.report)).toMatch(/searched allocation: KL [0-9.e-]+ \(uniform [0-9.e-]+, global [0-9.e-]+; \d+ evaluations, \d+ s\)/);
});

test('a float16 model is searched with float16 feeds; the reported fitness is the pruned model\'s KL (to float16 rounding)', async () => {
  const { float32ToFloat16 } = await import('../src/ir/dtype');
  const half = (name: string, dims: number[], v: Float32Array) => ({
    ...floatTensor(name, dims, new Float32Array(0)), dataType: DataType.FLOAT16, floatData: [],
    rawData: new Uint8Array(Uint16Array.from(v, (x) => float32ToFloat16(x)).buffer),
  }) as never;
  const sizes = [IN, 24, 16, OUT];
  const nodes = [node('Cast', ['x'], ['x16'], [attr.int('to', DataType.FLOAT16)])];
  const inits: never[] = [];
  let prev = 'x16';
  for (let l = 0; l < 3; l++) {
    const [a, b] = [sizes[l], sizes[l + 1]];
    const out = l === 2 ? 'y16' : `h${l}`;
    nodes.push(node('Gemm', [prev, `W${l}`, `B${l}`], [out], [attr.int('transB', 1)]));
    inits.push(half(`W${l}`, [b, a], uniform(seededRng(50 + l), a * b, 0.6 / Math.sqrt(a / 8))), half(`B${l}`, [b], uniform(seededRng(60 + l), b, 0.1)));
    if (l < 2) { nodes.push(node('Relu', [out], [`r${l}`])); prev = `r${l}`; }
  }
  nodes.push(node('Cast', ['y16'], ['y'], [attr.int('to', DataType.FLOAT)]));
  const f = path.join(tmp, 'fp16.onnx');
  fs.writeFileSync(f, modelBytes(graph({ nodes, inputs: [valueInfo('x', DataType.FLOAT, ['N', IN])], outputs: [valueInfo('y', DataType.FLOAT, ['N', OUT])], initializers: inits })));
  const r = await prune(f, searchRun({ protectDefaults: false, ratio: 0.3 }));
  const s = r.report.search!;
  expect(s.fixed).toEqual([]);
  expect(r.report.verify?.passed).toBe(true);
  const x = inputs(N, 7);
  const kl = meanKl(await runY(loadModel(f), x, [N, IN]), await runY(r.model, x, [N, IN]), OUT);
  expect(kl).toBeGreaterThan(0);
  expect(s.fitness).toEqual([{ output: 'y', kind: 'kl' }]);
  expect(Math.abs(kl - s.result)).toBeLessThanOrEqual(1e-3 * kl);
  expect(s.result).toBeLessThanOrEqual(s.startFitness!);
});
