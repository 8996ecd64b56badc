/**
 * Depth (src/analysis/blocks.ts, src/prune/depth.ts): residual branches x + f(x) ending in a weighted layer are
 * blocks; `--depth-only` removes whole blocks.
 *  - built here: a residual MLP whose branches end in MatMul + bias Add, in a Gemm with C and beta ≠ 1, and in a
 *    Conv with a bias: every block is found; removing one makes the Add read the remainder (bias, beta·C, the conv
 *    bias broadcast), its nodes and weights are gone, and the pruned model equals the dense one with the exit
 *    weight zeroed (computed here by editing the weight, independently of the masked reference);
 *  - llama_py lists 6 blocks (3 attention + 3 MLP); `--depth-only --ratio 0.3` removes at least one, verified.
 */
import * as fs from 'fs';
import * as path from 'path';
import { loadModel, prune } from '../src/index';
import { DataType } from '../src/ir/dtype';
import type { Model } from '../src/ir/model';
import { makeTensorProto } from '../src/ir/tensor';
import { analyzeGroups } from '../src/pipeline/stages';
import { ort } from '../src/ort/session';
import { attr, floatTensor, graph, int64Tensor, modelBytes, node, seededRng, uniform, valueInfo } from './helpers/builder';
import { mkTmp, rmTmp } from './helpers/cli';
import { runOnce } from './helpers/ort-run';

let tmp: string;
beforeAll(() => { tmp = mkTmp('onnx-prune-depth-'); });
afterAll(() => rmTmp(tmp));

const D = 8, H = 16, N = 3;
const r = (s: number, n: number, k: number) => uniform(seededRng(s), n, k);

/** x → [+ MatMul/Relu/MatMul+b] → [+ Gemm/Relu/Gemm(C, beta 0.5)] → Reshape → [+ Conv/Relu/Conv(B)] → Flatten → MatMul. */
function residualNet(): Uint8Array {
  const nodes = [
    node('MatMul', ['x', 'A1'], ['a1']), node('Relu', ['a1'], ['a1r']), node('MatMul', ['a1r', 'A2'], ['a2']), node('Add', ['a2', 'Ab'], ['a3']),
    node('Add', ['x', 'a3'], ['s1']),
    node('Gemm', ['s1', 'G1'], ['g1'], [attr.int('transB', 1)]), node('Relu', ['g1'], ['g1r']),
    node('Gemm', ['g1r', 'G2', 'Gc'], ['g2'], [attr.int('transB', 1), attr.float('beta', 0.5)]),
    node('Add', ['g2', 's1'], ['s2']),
    node('Reshape', ['s2', 'img'], ['m']),
    node('Conv', ['m', 'C1'], ['c1'], [attr.ints('pads', [1, 1, 1, 1])]), node('Relu', ['c1'], ['c1r']),
    node('Conv', ['c1r', 'C2', 'Cb'], ['c2'], [attr.ints('pads', [1, 1, 1, 1])]),
    node('Add', ['m', 'c2'], ['s3']),
    node('Flatten', ['s3'], ['f']), node('MatMul', ['f', 'O'], ['y']),
  ];
  const inits = [
    floatTensor('A1', [D, H], r(1, D * H, 0.5)), floatTensor('A2', [H, D], r(2, H * D, 0.5)), floatTensor('Ab', [D], r(3, D, 0.3)),
    floatTensor('G1', [H, D], r(4, H * D, 0.5)), floatTensor('G2', [D, H], r(5, D * H, 0.5)), floatTensor('Gc', [D], r(6, D, 0.3)),
    int64Tensor('img', [4], [-1, 2, 2, 2]),
    floatTensor('C1', [4, 2, 3, 3], r(7, 72, 0.4)), floatTensor('C2', [2, 4, 3, 3], r(8, 72, 0.4)), floatTensor('Cb', [2], r(9, 2, 0.3)),
    floatTensor('O', [D, 3], r(10, D * 3, 0.5)),
  ];
  return modelBytes(graph({ nodes, initializers: inits, inputs: [valueInfo('x', DataType.FLOAT, ['N', D])], outputs: [valueInfo('y', DataType.FLOAT, ['N', 3])] }));
}

/** `m` with the stored weight `w` replaced by zeros. */
function zeroed(m: Model, w: string): Model {
  const t = m.graph.constant(w)!;
  m.graph.setInitializer(makeTensorProto(w, DataType.FLOAT, t.dims, new Float32Array(t.size)));
  return m;
}

test('blocks of MatMul+bias, Gemm (beta·C) and Conv (bias) branches: each removed alone equals the dense model with its exit weight zeroed', async () => {
  const f = path.join(tmp, 'res.onnx');
  fs.writeFileSync(f, residualNet());
  const a = await analyzeGroups(loadModel(f));
  expect(a.blocks!.map((b) => [b.id, b.kind, b.exit.tensor, b.remainder?.tensor])).toEqual([
    ['s1', 'mlp', 'A2', 'Ab'], ['s2', 'mlp', 'G2', 'Gc'], ['s3', 'branch', 'C2', 'Cb'],
  ]);
  const x = r(11, N * D, 1);
  const feeds = { x: new ort.Tensor('float32', x, [N, D]) };
  const base = await prune(f, { depthOnly: true, ratio: 0.3, quiet: true });
  expect(base.report.verify?.passed).toBe(true);
  for (const b of a.blocks!) {
    // Each block alone, by a plan naming it.
    const planFile = path.join(tmp, `plan-${b.id}.json`);
    fs.writeFileSync(planFile, JSON.stringify({ ...base.plan!, groups: { [`block:${b.id}`]: [0] } }));
    const res = await prune(f, { depthOnly: true, plan: planFile, quiet: true });
    expect(res.report.verify?.passed).toBe(true);
    const g = res.model.graph;
    const removedAll = [b];
    for (const rb of removedAll) {
      for (const n of rb.nodes) expect(g.producer(n)).toBeUndefined();
      expect(g.constant(rb.exit.tensor)).toBeUndefined();
    }
    let ref = loadModel(f);
    for (const rb of removedAll) ref = zeroed(ref, rb.exit.tensor);
    const want = (await runOnce(ref, feeds)).y.data as Float32Array;
    const got = (await runOnce(res.model, feeds)).y.data as Float32Array;
    for (let k = 0; k < want.length; k++) expect(Math.abs(got[k] - want[k])).toBeLessThanOrEqual(1e-6 * (1 + Math.abs(want[k])));
    // Not the dense function.
    const dense = (await runOnce(loadModel(f), feeds)).y.data as Float32Array;
    expect(dense.some((v, k) => Math.abs(v - got[k]) > 1e-3)).toBe(true);
  }
});

const SHARED = path.join(__dirname, '..', '..', 'shared', 'models');
const llama = path.join(SHARED, 'llama_py.onnx');

(fs.existsSync(llama) ? test : test.skip)('llama_py: 6 blocks (3 attention + 3 MLP); --depth-only --ratio 0.3 removes whole blocks, verified', async () => {
  const a = await analyzeGroups(loadModel(llama));
  expect(a.blocks!.map((b) => b.kind)).toEqual(['attention', 'mlp', 'attention', 'mlp', 'attention', 'mlp']);
  const res = await prune(llama, { depthOnly: true, ratio: 0.3, quiet: true });
  const d = res.report.depth!;
  expect(d.blocks).toHaveLength(6);
  expect(d.removed.length).toBeGreaterThanOrEqual(1);
  expect(res.report.verify?.passed).toBe(true);
  expect(res.report.allocation!.achieved).toBeLessThanOrEqual(0.3 + 1e-9);
  expect(res.report.allocation!.achieved).toBeGreaterThan(0.15);
  // The removed blocks' nodes are gone; the lowest-scoring blocks went.
  for (const id of d.removed) {
    const b = a.blocks!.find((x) => `block:${x.id}` === id)!;
    for (const n of b.nodes) expect(res.model.graph.producer(n)).toBeUndefined();
  }
  const worst = Math.max(...d.blocks.filter((b) => d.removed.includes(b.id)).map((b) => b.score));
  const keptScores = d.blocks.filter((b) => !d.removed.includes(b.id)).map((b) => b.score);
  expect(keptScores.filter((s) => s < worst).length).toBeLessThan(keptScores.length);
}, 120000);

test('--depth-only with an importance, allocation or reconstruction option is one clear error, nothing written', async () => {
  const { runCliInProcess } = await import('./helpers/cli');
  const f = path.join(tmp, 'res2.onnx');
  fs.writeFileSync(f, residualNet());
  const out = path.join(tmp, 'res2-out.onnx');
  for (const extra of [['--importance', 'wanda'], ['--allocation', 'global'], ['--reconstruct', 'ls']]) {
    const r = await runCliInProcess([f, out, '--depth-only', '--ratio', '0.2', ...extra]);
    expect(r.code).toBe(1);
    expect(r.stderr.trim().split('\n')).toEqual([expect.stringMatching(new RegExp(`^onnx-prune: error: --depth-only removes whole blocks by their own score: ${extra[0]} does not apply to it$`))]);
    expect(fs.existsSync(out)).toBe(false);
  }
});

(fs.existsSync(llama) ? test : test.skip)('a saved depth plan replays byte for byte with --depth-only (and says so without it)', async () => {
  const { runCliInProcess } = await import('./helpers/cli');
  const [a, b, c, plan] = ['a.onnx', 'b.onnx', 'c.onnx', 'depth.plan.json'].map((n) => path.join(tmp, n));
  expect((await runCliInProcess([llama, a, '--depth-only', '--ratio', '0.3', '--save-plan', plan, '--quiet'])).code).toBe(0);
  const replay = await runCliInProcess([llama, b, '--depth-only', '--plan', plan]);
  expect(replay.code).toBe(0);
  expect(replay.stdout).toMatch(/^removed [1-6]\/6 blocks; params /m);
  expect(fs.readFileSync(a).equals(fs.readFileSync(b))).toBe(true);
  const r = await runCliInProcess([llama, c, '--plan', plan]);
  expect(r.code).toBe(1);
  expect(r.stderr).toMatch(/is a residual block: apply the plan with --depth-only/);
  expect(fs.existsSync(c)).toBe(false);
}, 60000);

const vit = path.join(SHARED, 'vit_s.onnx');
(fs.existsSync(vit) ? test : test.skip)('vit_s: nn.MultiheadAttention blocks are found through the view/transpose after out_proj; removed verified; a budget no block fits is one line', async () => {
  const a = await analyzeGroups(loadModel(vit));
  expect(a.blocks!.map((b) => b.kind)).toEqual(['attention', 'mlp', 'attention', 'mlp']);
  const res = await prune(vit, { depthOnly: true, ratio: 0.2, quiet: true });
  expect(res.report.verify?.passed).toBe(true);
  expect(res.report.depth!.removed.length).toBe(1);
  await expect(prune(vit, { depthOnly: true, ratio: 0.1, quiet: true })).rejects.toThrow(/--depth-only: no block fits within 10\.0 % of params \(the smallest removes 1\d\.\d %\)/);
}, 60000);
