/** Importance methods on a hand-built Conv → BN → Relu → Conv model with a hand-written group. */
import type { Group, GroupAnalysis, WeightMember } from '../src/analysis/types';
import { loadModel } from '../src/ir/io';
import { calibFromArrays } from '../src/ort/calib';
import { captureStats, withExtraOutputs, type ActivationStats } from '../src/ort/capture';
import { createSession, modelBytes as bytesOf, ort } from '../src/ort/session';
import { activationRequests, scoreGroups, scoreGroupsDetailed } from '../src/score';
import { lampTransform } from '../src/score/lamp';
import { inverseDiagonal } from '../src/score/obs-weights';
import { attr, DataType, floatTensor, graph, modelBytes, node, seededRng, uniform, valueInfo } from './helpers/builder';

// conv1: W1[4,3,1,1]; BN over 4 channels; conv2: W2[2,4,1,1].
const W1 = [
  1, 0, 0, //
  0, 2, 0, //
  0, 0, -3, //
  1, 1, 1,
];
const gamma = [0.5, -4, 1, 2];
const W2 = [
  1, -1, 2, 0.5, //
  3, 1, -2, 0.5,
];

function build(w1 = W1, w2 = W2) {
  const g = graph({
    nodes: [
      node('Conv', ['x', 'W1', 'B1'], ['c1'], [], 'conv1'),
      node('BatchNormalization', ['c1', 'gamma', 'beta', 'mean', 'var'], ['bn']),
      node('Relu', ['bn'], ['r']),
      node('Conv', ['r', 'W2'], ['y'], [], 'conv2'),
    ],
    inputs: [valueInfo('x', DataType.FLOAT, ['batch', 3, 2, 2])],
    outputs: [valueInfo('y', DataType.FLOAT, ['batch', 2, 2, 2])],
    initializers: [
      floatTensor('W1', [4, 3, 1, 1], w1), floatTensor('B1', [4], [9, 9, 9, 9]),
      floatTensor('gamma', [4], gamma), floatTensor('beta', [4], [7, 7, 7, 7]), floatTensor('mean', [4], [5, 5, 5, 5]), floatTensor('var', [4], [6, 6, 6, 6]),
      floatTensor('W2', [2, 4, 1, 1], w2),
    ],
  });
  return loadModel(modelBytes(g));
}

const u4 = [[0], [1], [2], [3]];
const m = (tensor: string, nodeId: string, input: number, axis: number, role: WeightMember['role']): WeightMember =>
  ({ kind: 'weight', tensor, node: nodeId, input, axis, role, indices: u4 });

function groupOf(withBn = true): Group {
  const members = [m('W1', 'c1', 1, 0, 'out'), m('B1', 'c1', 2, 0, 'out'), m('W2', 'y', 1, 1, 'in')];
  if (withBn) members.push(m('gamma', 'bn', 1, 0, 'param'), m('beta', 'bn', 2, 0, 'param'), m('mean', 'bn', 3, 0, 'param'), m('var', 'bn', 4, 0, 'param'));
  return { id: 'g', label: 'conv1', unit: 'channel', unitSize: 1, size: 4, members, paramsPerUnit: 0 };
}

const analysis = (g: Group): GroupAnalysis => ({ groups: [g], declined: [], summary: { totalParams: 0, prunableParams: 0, groups: 1, declined: 0 } });

/** Σ over rows of f(W2[row, u]) — the consumer's column u. */
const col = (u: number, f: (v: number) => number) => f(W2[u]) + f(W2[4 + u]);
const row = (u: number, f: (v: number) => number) => f(W1[3 * u]) + f(W1[3 * u + 1]) + f(W1[3 * u + 2]);

describe('magnitude scores', () => {
  const model = build();

  test('L1 and L2: kernels and the BN scale, mean over members (biases and running stats left out)', () => {
    const l1 = scoreGroups(model, analysis(groupOf()), { method: 'l1' }).g;
    const l2 = scoreGroups(model, analysis(groupOf()), { method: 'l2' }).g;
    for (let u = 0; u < 4; u++) {
      expect(l1[u]).toBeCloseTo((row(u, Math.abs) + Math.abs(gamma[u]) + col(u, Math.abs)) / 3, 6);
      expect(l2[u]).toBeCloseTo((row(u, (v) => v * v) + gamma[u] ** 2 + col(u, (v) => v * v)) / 3, 6);
    }
  });

  test('member reduction sum and max', () => {
    const s = scoreGroups(model, analysis(groupOf()), { method: 'l1', reduce: 'sum' }).g;
    const mx = scoreGroups(model, analysis(groupOf()), { method: 'l1', reduce: 'max' }).g;
    for (let u = 0; u < 4; u++) {
      expect(s[u]).toBeCloseTo(row(u, Math.abs) + Math.abs(gamma[u]) + col(u, Math.abs), 6);
      expect(mx[u]).toBeCloseTo(Math.max(row(u, Math.abs), Math.abs(gamma[u]), col(u, Math.abs)), 6);
    }
  });

  test('BN scale is |γ|; a group without BatchNormalization falls back to L2 and says so', () => {
    expect(Array.from(scoreGroups(model, analysis(groupOf()), { method: 'bn' }).g)).toEqual(gamma.map(Math.abs));
    const r = scoreGroupsDetailed(model, analysis(groupOf(false)), { method: 'bn' });
    expect(r.info.fallbacks).toEqual([{ group: 'g', reason: expect.stringMatching(/no unfolded BatchNormalization/) }]);
    const l2 = scoreGroups(model, analysis(groupOf(false)), { method: 'l2' }).g;
    expect(Array.from(r.scores.g)).toEqual(Array.from(l2));
  });
});

describe('LAMP', () => {
  test('share of the energy of the unit and every stronger unit', () => {
    const t = lampTransform(Float64Array.from([1, 4, 2, 3]));
    expect(Array.from(t)).toEqual([1 / 10, 1, 2 / 9, 3 / 7]);
    expect(Array.from(lampTransform(Float64Array.from([2, 2, 1])))).toEqual([0.5, 0.5, 0.2]);
  });

  test('scores are marked as comparable across groups', () => {
    const r = scoreGroupsDetailed(build(), analysis(groupOf()), { method: 'lamp' });
    expect(r.info.normalized).toBe(true);
    expect(Math.max(...r.scores.g)).toBe(1);
  });
});

describe('random', () => {
  test('seeded, independent of group order, different for another seed', () => {
    const g1 = groupOf(), g2 = { ...groupOf(), id: 'h' };
    const a = scoreGroups(build(), { ...analysis(g1), groups: [g1, g2] }, { method: 'random', seed: 3 });
    const b = scoreGroups(build(), { ...analysis(g1), groups: [g2, g1] }, { method: 'random', seed: 3 });
    const c = scoreGroups(build(), analysis(g1), { method: 'random', seed: 4 });
    expect(Array.from(a.g)).toEqual(Array.from(b.g));
    expect(Array.from(a.g)).not.toEqual(Array.from(a.h));
    expect(Array.from(a.g)).not.toEqual(Array.from(c.g));
  });
});

describe('data-aware scores', () => {
  // The consumer conv2 reads 'r' (channel axis 1): two samples per channel.
  const mean = [1, 0, 2, 0.5];
  const sq = [3, 0.5, 9, 1];
  const stats: ActivationStats = new Map([[
    'r@1', { tensor: 'r', axis: 1, channels: 4, count: 2, sum: Float64Array.from(mean, (v) => 2 * v), sumSq: Float64Array.from(sq, (v) => 2 * v) },
  ]]);

  test('wanda = Σ|W_:,j|·RMS(X_j) over the consumer', () => {
    const s = scoreGroups(build(), analysis(groupOf()), { method: 'wanda', stats }).g;
    for (let u = 0; u < 4; u++) expect(s[u]).toBeCloseTo(col(u, Math.abs) * Math.sqrt(sq[u]), 6);
  });

  test('fluctuation = Var(X_j)·‖W_:,j‖²', () => {
    const s = scoreGroups(build(), analysis(groupOf()), { method: 'fluctuation', stats }).g;
    for (let u = 0; u < 4; u++) expect(s[u]).toBeCloseTo(col(u, (v) => v * v) * (sq[u] - mean[u] ** 2), 6);
  });

  test('missing statistics: an error without any, a magnitude fallback for an unmeasured group', () => {
    expect(() => scoreGroups(build(), analysis(groupOf()), { method: 'wanda' })).toThrow(/needs activation statistics/);
    const r = scoreGroupsDetailed(build(), analysis(groupOf()), { method: 'wanda', stats: new Map() });
    expect(r.info.fallbacks[0].reason).toMatch(/scored by L1 magnitude/);
  });
});

describe('Wanda on captured activations: X is read at the consumer input', () => {
  // conv1 (3 channels) → BN → Relu → MaxPool 2×2 → Flatten (3 × 4 positions) → Gemm W2[5, 12] (transB).
  // A unit is one conv1 channel; the Gemm reads it through 4 flattened columns c·4 + p.
  const W1c = uniform(seededRng(31), 3 * 2, 1);
  const W2g = uniform(seededRng(32), 5 * 12, 1);
  const model = loadModel(modelBytes(graph({
    nodes: [
      node('Conv', ['x', 'W1', 'B1'], ['c1']),
      node('BatchNormalization', ['c1', 'gamma', 'beta', 'mean', 'var'], ['bn']),
      node('Relu', ['bn'], ['r']),
      node('MaxPool', ['r'], ['p'], [attr.ints('kernel_shape', [2, 2]), attr.ints('strides', [2, 2])]),
      node('Flatten', ['p'], ['f']),
      node('Gemm', ['f', 'W2'], ['y'], [attr.int('transB', 1)]),
    ],
    inputs: [valueInfo('x', DataType.FLOAT, ['batch', 2, 4, 4])],
    outputs: [valueInfo('y', DataType.FLOAT, ['batch', 5])],
    initializers: [
      floatTensor('W1', [3, 2, 1, 1], W1c), floatTensor('B1', [3], [0.2, -0.1, 0.4]),
      floatTensor('gamma', [3], [1.5, -0.5, 2]), floatTensor('beta', [3], [0.3, 0.1, -0.2]),
      floatTensor('mean', [3], [0.1, 0, -0.1]), floatTensor('var', [3], [1, 2, 0.5]),
      floatTensor('W2', [5, 12], W2g),
    ],
  })));
  const per = (u: number) => [0, 1, 2, 3].map((p) => u * 4 + p);
  const wmem = (tensor: string, nodeId: string, input: number, axis: number, role: WeightMember['role'], indices: number[][]): WeightMember =>
    ({ kind: 'weight', tensor, node: nodeId, input, axis, role, indices });
  const one = [[0], [1], [2]];
  const grp: Group = {
    id: 'c', label: 'conv1', unit: 'channel', unitSize: 1, size: 3, paramsPerUnit: 0,
    members: [wmem('W1', 'c1', 1, 0, 'out', one), wmem('B1', 'c1', 2, 0, 'out', one), wmem('gamma', 'bn', 1, 0, 'param', one),
      wmem('W2', 'y', 1, 1, 'in', [per(0), per(1), per(2)])],
  };

  test('the site is the Gemm input (after BN, Relu, MaxPool and Flatten), one channel per flattened column', () => {
    expect(activationRequests(model.graph, analysis(grp))).toEqual([{ tensor: 'f', axis: 1, gram: undefined }]);
  });

  test('score_u = Σ over the unit\'s columns j of Σ_rows |W2[:, j]| · RMS(f_j), from onnxruntime', async () => {
    const n = 6;
    const x = uniform(seededRng(33), n * 2 * 16, 1);
    const calib = calibFromArrays(model, [{ dtype: DataType.FLOAT, dims: [n, 2, 4, 4], data: x }], 'test');
    const stats = await captureStats(model, calib, activationRequests(model.graph, analysis(grp)), { quiet: true, batch: 4 });
    const s = scoreGroups(model, analysis(grp), { method: 'wanda', stats }).c;
    // Reference: fetch f directly and compute the score by hand.
    const session = await createSession(bytesOf(withExtraOutputs(model, ['f', 'bn'])));
    const outs = await session.run({ x: new ort.Tensor('float32', x, [n, 2, 4, 4]) }, ['f', 'bn']);
    await session.release();
    const f = outs.f.data as Float32Array;
    for (let u = 0; u < 3; u++) {
      let want = 0;
      for (const j of per(u)) {
        let sq = 0, l1 = 0;
        for (let k = 0; k < n; k++) sq += f[k * 12 + j] ** 2;
        for (let o = 0; o < 5; o++) l1 += Math.abs(W2g[o * 12 + j]);
        want += l1 * Math.sqrt(sq / n);
      }
      expect(s[u]).toBeCloseTo(want, 5);
    }
    // The data exercise the Relu (BN outputs of both signs), so statistics taken before it would differ.
    expect(Math.min(...(outs.bn.data as Float32Array))).toBeLessThan(0);
  });
});

describe('obs-weights (data-free OBS-style)', () => {
  test('inverse diagonal', () => {
    const d = inverseDiagonal(Float64Array.from([2, 1, 1, 2]), 2);
    expect(d[0]).toBeCloseTo(2 / 3, 12);
    expect(d[1]).toBeCloseTo(2 / 3, 12);
    const e = inverseDiagonal(Float64Array.from([4, 2, 0, 2, 5, 1, 0, 1, 3]), 3);
    // inverse of [[4,2,0],[2,5,1],[0,1,3]]: det 44; cofactors 14, 12, 16.
    expect(Array.from(e).map((v) => +v.toFixed(10))).toEqual([14 / 44, 12 / 44, 16 / 44].map((v) => +v.toFixed(10)));
  });

  test('a unit that a sibling reproduces scores lower than unique units of the same energy', () => {
    // Units 0 and 1 have the same producer row; 2 and 3 are orthogonal. Every consumer column has the same norm.
    const w1 = [1, 0, 0, 1, 0, 0, 0, 1, 0, 0, 0, 1];
    const w2 = [1, 1, 1, 1, 1, 1, 1, 1];
    const g = groupOf(false);
    const s = scoreGroups(build(w1, w2), analysis(g), { method: 'obs-weights' }).g;
    const l2 = scoreGroups(build(w1, w2), analysis(g), { method: 'l2' }).g;
    expect(l2[0]).toBeCloseTo(l2[2], 9); // magnitude cannot tell them apart
    expect(s[0]).toBeCloseTo(s[1], 9);
    expect(s[2]).toBeCloseTo(s[3], 9);
    expect(s[0]).toBeLessThan(s[2] * 0.6);
  });
});
