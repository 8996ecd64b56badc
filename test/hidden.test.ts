/**
 * Channels a normalization reduces over (a transformer's hidden size; an MLP with LayerNorm) are a group whose
 * norms, pruned, run over the kept channels (StatMember; the masked reference of verification does the same):
 *  - an MLP built the openWakeWord way (Gemm → LayerNorm written as ReduceMean/Sub/Pow/ReduceMean/Add/Sqrt/Div →
 *    Mul/Add → Gemm) and the same with the LayerNormalization op: the group is found, prunes, verifies, and the
 *    pruned output equals a LayerNorm over the kept channels computed here in JS (so the reference is not just
 *    agreeing with itself);
 *  - `pruneHidden: false` declines those channels ("normalization over the pruned axis");
 *  - shared transformer exports (GPT-2, LLaMA, GQA, ViT, Swin) list hidden groups and prune at ratio 0.5 verified
 *    (Swin's attention computes head_dim = C // heads from the hidden size: that input is pinned to its value).
 */
import * as fs from 'fs';
import * as path from 'path';
import * as ort from 'onnxruntime-node';
import { loadModel, prune } from '../src/index';
import { DataType } from '../src/ir/dtype';
import { analyzeGroups } from '../src/pipeline/stages';
import { attr, floatTensor, graph, int64Tensor, modelBytes, node, seededRng, uniform, valueInfo } from './helpers/builder';
import { mkTmp, rmTmp } from './helpers/cli';
import { runOnce } from './helpers/ort-run';

let tmp: string;
beforeAll(() => { tmp = mkTmp('onnx-prune-hidden-'); });
afterAll(() => rmTmp(tmp));

const I = 8, D = 12, O = 5, N = 4, EPS = 1e-5;
const r = (s: number, n: number, k: number) => uniform(seededRng(s), n, k);
const W1 = r(1, D * I, 0.5), B1 = r(2, D, 0.3), G = r(3, D, 1), BETA = r(4, D, 0.2), W2 = r(5, O * D, 0.5);

function mlp(kind: 'decomposed' | 'op', opset = kind === 'op' ? 17 : 13): Uint8Array {
  const norm = kind === 'op'
    ? [node('LayerNormalization', ['h', 'g', 'beta'], ['n'], [attr.int('axis', -1), attr.float('epsilon', EPS)])]
    : [
      node('ReduceMean', ['h'], ['mu'], [attr.ints('axes', [-1]), attr.int('keepdims', 1)]),
      node('Sub', ['h', 'mu'], ['c']),
      node('Pow', ['c', 'two'], ['c2']),
      node('ReduceMean', ['c2'], ['var'], [attr.ints('axes', [-1]), attr.int('keepdims', 1)]),
      node('Add', ['var', 'eps'], ['ve']),
      node('Sqrt', ['ve'], ['sd']),
      node('Div', ['c', 'sd'], ['z']),
      node('Mul', ['z', 'g'], ['zg']),
      node('Add', ['zg', 'beta'], ['n']),
    ];
  const nodes = [
    node('Gemm', ['x', 'W1', 'B1'], ['h'], [attr.int('transB', 1)]),
    ...norm,
    node('Relu', ['n'], ['a']),
    node('Gemm', ['a', 'W2'], ['out'], [attr.int('transB', 1)]),
  ];
  const inits = [
    floatTensor('W1', [D, I], W1), floatTensor('B1', [D], B1), floatTensor('g', [D], G), floatTensor('beta', [D], BETA),
    floatTensor('W2', [O, D], W2), floatTensor('two', [], [2]), floatTensor('eps', [], [EPS]),
  ];
  return modelBytes(graph({
    nodes, initializers: inits, inputs: [valueInfo('x', DataType.FLOAT, ['N', I])], outputs: [valueInfo('out', DataType.FLOAT, ['N', O])],
  }), { opset });
}

/** The MLP with the LayerNorm over the kept hidden channels only, in plain JS (float64). */
function reference(x: Float32Array, kept: number[]): Float64Array {
  const out = new Float64Array(N * O);
  for (let b = 0; b < N; b++) {
    const h = kept.map((j) => { let s = B1[j]; for (let i = 0; i < I; i++) s += W1[j * I + i] * x[b * I + i]; return s; });
    const mu = h.reduce((a, v) => a + v, 0) / h.length;
    const v = h.reduce((a, t) => a + (t - mu) ** 2, 0) / h.length;
    const a = h.map((t, k) => Math.max(0, ((t - mu) / Math.sqrt(v + EPS)) * G[kept[k]] + BETA[kept[k]]));
    for (let o = 0; o < O; o++) { let s = 0; kept.forEach((j, k) => { s += W2[o * D + j] * a[k]; }); out[b * O + o] = s; }
  }
  return out;
}

function write(name: string, bytes: Uint8Array): string {
  const f = path.join(tmp, name);
  fs.writeFileSync(f, bytes);
  return f;
}

test.each(['decomposed', 'op'] as const)('an MLP with a %s LayerNorm: the normalized channels are one group that prunes and verifies', async (kind) => {
  const f = write(`mlp-${kind}.onnx`, mlp(kind));
  const a = await analyzeGroups(loadModel(f));
  expect(a.declined).toEqual([expect.objectContaining({ reason: 'reaches a graph output' })]);
  const g = a.groups.find((x) => x.size === D)!;
  expect(g).toBeDefined();
  const stats = g.members.filter((m) => m.kind === 'stat');
  expect(stats.map((m) => m.node).sort()).toEqual(kind === 'op' ? ['n'] : ['mu', 'var']);
  const res = await prune(f, { ratio: 0.3, quiet: true, protectDefaults: false });
  expect(res.report.verify?.passed).toBe(true);
  expect(res.report.verify?.weakened ?? []).toEqual([]);
  const w1 = res.model.graph.constant('W1')!;
  const kept = w1.dims[0];
  expect(kept).toBeLessThan(D);
  // Which rows survived: match the pruned W1 rows against the dense ones.
  const pw = w1.toFloat32();
  const keptRows: number[] = [];
  for (let k = 0; k < kept; k++) {
    for (let j = 0; j < D; j++) if (W1.slice(j * I, j * I + I).every((v, i) => v === pw[k * I + i])) { keptRows.push(j); break; }
  }
  expect(keptRows.length).toBe(kept);
  const x = r(9, N * I, 1);
  const got = (await runOnce(res.model, { x: new ort.Tensor('float32', x, [N, I]) })).out.data as Float32Array;
  const want = reference(x, keptRows);
  for (let i = 0; i < want.length; i++) expect(Math.abs(got[i] - want[i])).toBeLessThan(1e-4 * (1 + Math.abs(want[i])));
  // Not the dense function (the statistics changed with the channels).
  const dense = reference(x, Array.from({ length: D }, (_, j) => j));
  expect(want.some((v, i) => Math.abs(v - dense[i]) > 1e-3)).toBe(true);
});

test('pruneHidden: false declines channels a normalization reduces over', async () => {
  const f = write('mlp-off.onnx', mlp('decomposed'));
  const a = await analyzeGroups(loadModel(f), { normStatistics: false });
  expect(a.groups).toEqual([]);
  expect(a.declined.map((d) => d.reason)).toContain('reduction over the pruned axis');
});

const SHARED = path.join(__dirname, '..', '..', 'shared', 'models');
const shared = (m: string) => path.join(SHARED, `${m}.onnx`);
const have = fs.existsSync(shared('gpt2_s'));

(have ? test.each(['gpt2_s', 'llama_s', 'llama_gqa_s', 'vit_s', 'llama_py', 'swin_s'])
  : test.skip.each(['gpt2_s']))('%s: a hidden-dimension group (norm statistics over kept), pruned at ratio 0.5 and verified', async (m) => {
  const a = await analyzeGroups(loadModel(shared(m)), { rewriteComputedShapes: true });
  const hidden = a.groups.filter((g) => g.members.some((x) => x.kind === 'stat'));
  // One stream; Swin: one per stage (patch merging's reduction Linear starts the next).
  expect(hidden.length).toBe(m === 'swin_s' ? 4 : 1);
  expect(a.declined.every((d) => !/normalization|reduction/.test(d.reason))).toBe(true);
  // Uniform keeps the hidden size whole while the budget allows (vit_s at 50 % needs it); global ranks it.
  const res = await prune(shared(m), { ratio: 0.5, quiet: true });
  expect(res.report.verify?.passed).toBe(true);
  expect(res.report.allocation?.achieved ?? 0).toBeGreaterThan(0.45);
  const held = res.report.allocation!.protected.filter((p) => /normalized stream/.test(p.reason)).map((p) => p.group);
  if (m === 'vit_s') expect(res.plan?.groups[hidden[0].id]?.length ?? 0).toBeGreaterThan(0);
  else expect(held.sort()).toEqual(hidden.map((g) => g.id).sort());
  const glob = await prune(shared(m), { ratio: 0.5, allocation: 'global', quiet: true });
  expect(glob.report.verify?.passed).toBe(true);
  expect(hidden.some((g) => (glob.plan?.groups[g.id]?.length ?? 0) > 0)).toBe(true);
}, 180000);
