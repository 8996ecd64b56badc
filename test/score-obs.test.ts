/**
 * `obs` importance (src/score/obs.ts): the greedy multi-consumer OBS path from calibration Grams, on small models
 * built in code and analysed for real. References are computed here from the consumers' inputs fetched from
 * onnxruntime (Grams summed in float64 in the test) and obsPathMulti (tested on its own in test/refit.test.ts).
 */
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { analyzeGroups } from '../src/analysis/analyze';
import type { Group, GroupAnalysis, WeightMember } from '../src/analysis/types';
import { loadModel } from '../src/ir/io';
import type { Model } from '../src/ir/model';
import { calibFromArrays } from '../src/ort/calib';
import { withExtraOutputs } from '../src/ort/capture';
import { captureGrams } from '../src/ort/gram';
import { createSession, modelBytes as bytesOf, ort } from '../src/ort/session';
import { scoreGroups as scoreStage } from '../src/pipeline/stages';
import { scoreGroupsDetailed } from '../src/score';
import { cumulativeScores, gramKey, obsGramRequests } from '../src/score/obs';
import { blockUnits, obsPathMulti, type ObsConsumer } from '../src/score/refit';
import { attr, DataType, floatTensor, graph, modelBytes, node, seededRng, uniform, valueInfo } from './helpers/builder';

const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'score-obs-'));
afterAll(() => fs.rmSync(tmp, { recursive: true, force: true }));

/** Ascending-score order, ties by unit index (as allocation ranks units). */
const ascending = (s: ArrayLike<number>) => Array.from({ length: s.length }, (_, u) => u).sort((a, b) => s[a] - s[b] || a - b);

/**
 * h = Gemm(Relu(Gemm(x, W0)), W1) read by two consumers on different activations: Gemm(Relu(h), W2) and
 * MatMul(h, W3). Two groups: fc0's 7 outputs (consumer fc1) and fc1's 8 (consumers fc2 and side).
 */
function twoConsumerModel(): Model {
  const r = seededRng(5);
  return loadModel(modelBytes(graph({
    nodes: [
      node('Gemm', ['x', 'W0', 'B0'], ['h0'], [attr.int('transB', 1)], 'fc0'),
      node('Relu', ['h0'], ['a']),
      node('Gemm', ['a', 'W1', 'B1'], ['h'], [attr.int('transB', 1)], 'fc1'),
      node('Relu', ['h'], ['r']),
      node('Gemm', ['r', 'W2'], ['y1'], [attr.int('transB', 1)], 'fc2'),
      node('MatMul', ['h', 'W3'], ['y2'], [], 'side'),
    ],
    inputs: [valueInfo('x', DataType.FLOAT, ['batch', 6])],
    outputs: [valueInfo('y1', DataType.FLOAT, ['batch', 5]), valueInfo('y2', DataType.FLOAT, ['batch', 4])],
    initializers: [
      floatTensor('W0', [7, 6], uniform(r, 42, 1)), floatTensor('B0', [7], uniform(r, 7, 0.3)),
      floatTensor('W1', [8, 7], uniform(r, 56, 1)), floatTensor('B1', [8], uniform(r, 8, 0.3)),
      floatTensor('W2', [5, 8], uniform(r, 40, 1)), floatTensor('W3', [8, 4], uniform(r, 32, 1)),
    ],
  })));
}

/** Conv(1×1) → Relu → Conv(3×3, pads 1): the consumer's Gram is im2col, a channel is 9 columns. */
function convModel(transpose = false): Model {
  const r = seededRng(9);
  return loadModel(modelBytes(graph({
    nodes: [
      node('Conv', ['x', 'W1', 'B1'], ['c'], [], 'conv1'),
      node('Relu', ['c'], ['r']),
      transpose
        ? node('ConvTranspose', ['r', 'W2'], ['y'], [attr.ints('kernel_shape', [3, 3])], 'conv2')
        : node('Conv', ['r', 'W2'], ['y'], [attr.ints('kernel_shape', [3, 3]), attr.ints('pads', [1, 1, 1, 1])], 'conv2'),
    ],
    inputs: [valueInfo('x', DataType.FLOAT, ['batch', 2, 6, 6])],
    outputs: [valueInfo('y', DataType.FLOAT, ['batch', 3, transpose ? 8 : 6, transpose ? 8 : 6])],
    initializers: [
      floatTensor('W1', [5, 2, 1, 1], uniform(r, 10, 1)), floatTensor('B1', [5], uniform(r, 5, 0.5)),
      floatTensor('W2', transpose ? [5, 3, 3, 3] : [3, 5, 3, 3], uniform(r, 135, 1)),
    ],
  })));
}

function groupWith(a: GroupAnalysis, tensor: string, role: WeightMember['role']): Group {
  const g = a.groups.find((x) => x.members.some((m) => m.kind === 'weight' && m.tensor === tensor && m.role === role));
  if (!g) throw new Error(`no group with ${role} member ${tensor}`);
  return g;
}

function calibData(model: Model, n: number, dims: number[], seed: number) {
  const x = uniform(seededRng(seed), n * dims.reduce((a, b) => a * b, 1), 1);
  return { x, calib: calibFromArrays(model, [{ dtype: DataType.FLOAT, dims: [n, ...dims], data: x }], 'test') };
}

/** Grams captured for `groups` and keyed as ScoreOptions.grams wants them. */
async function gramsFor(model: Model, groups: Group[], calib: ReturnType<typeof calibData>['calib']) {
  const reqs = groups.flatMap((g) => obsGramRequests(model.graph, g));
  const got = await captureGrams(model, calib, reqs, { quiet: true });
  return new Map(reqs.map((r, i) => [gramKey(r), got[i]]));
}

describe('obs: scores from the greedy multi-consumer OBS path', () => {
  test('two consumers on different activations: the score order is the path over both, scores = cumulative loss share', async () => {
    const model = twoConsumerModel();
    const a = await analyzeGroups(model, {});
    const g = groupWith(a, 'W1', 'out');
    expect(g.size).toBe(8);
    const ins = g.members.filter((m): m is WeightMember => m.kind === 'weight' && m.role === 'in').map((m) => m.tensor).sort();
    expect(ins).toEqual(['W2', 'W3']);
    const n = 40;
    const { x, calib } = calibData(model, n, [6], 21);
    const grams = await gramsFor(model, [g], calib);
    expect(grams.size).toBe(2);
    const res = scoreGroupsDetailed(model, { ...a, groups: [g] }, { method: 'obs', grams });
    expect(res.info).toEqual({ method: 'obs', normalized: true, fallbacks: [] });
    const s = res.scores[g.id];

    // Reference: the consumers' inputs from onnxruntime, their Grams in float64 here, W3 ([8, 4], d_in × d_out) transposed.
    const session = await createSession(bytesOf(withExtraOutputs(model, ['h', 'r'])));
    const outs = await session.run({ x: new ort.Tensor('float32', x, [n, 6]) }, ['h', 'r']);
    await session.release();
    const gram = (t: Float32Array) => {
      const H = new Float64Array(64);
      for (let k = 0; k < n; k++) for (let i = 0; i < 8; i++) for (let j = 0; j < 8; j++) H[i * 8 + j] += t[k * 8 + i] * t[k * 8 + j];
      return H;
    };
    const w = (name: string) => Float64Array.from(model.graph.constant(name)!.toFloat32());
    const W3 = w('W3'), W3t = new Float64Array(32);
    for (let j = 0; j < 8; j++) for (let o = 0; o < 4; o++) W3t[o * 8 + j] = W3[j * 4 + o];
    const units = blockUnits(8, 1);
    const consumers: ObsConsumer[] = [
      { W: w('W2'), dOut: 5, dIn: 8, H: gram(outs.r.data as Float32Array), units },
      { W: W3t, dOut: 4, dIn: 8, H: gram(outs.h.data as Float32Array), units },
    ];
    const path = obsPathMulti(consumers, 8);
    expect(ascending(s)).toEqual(path.order);
    const total = path.scores.reduce((t, v) => t + v, 0);
    let cum = 0;
    path.order.forEach((u, t) => { cum += path.scores[t]; expect(s[u]).toBeCloseTo(cum / total, 5); });
    expect(s[path.order[7]]).toBe(1);
    // Both consumers count: neither one alone gives this order (the test would not see one being dropped).
    for (const c of consumers) expect(obsPathMulti([c], 8).order).not.toEqual(path.order);
  });

  test('conv consumer: channel c owns im2col columns c·9 … c·9+8', async () => {
    const model = convModel();
    const a = await analyzeGroups(model, {});
    const g = groupWith(a, 'W1', 'out');
    const { calib } = calibData(model, 12, [2, 6, 6], 31);
    const grams = await gramsFor(model, [g], calib);
    const [H] = [...grams.values()];
    expect(H.dim).toBe(45);
    const s = scoreGroupsDetailed(model, { ...a, groups: [g] }, { method: 'obs', grams }).scores[g.id];
    const W = Float64Array.from(model.graph.constant('W2')!.toFloat32());
    const gramOf = H.blockDiagonal ? undefined : H.gram;
    const path = obsPathMulti([{ W, dOut: 3, dIn: 45, H: gramOf!, units: blockUnits(5, 9) }], 5);
    expect(ascending(s)).toEqual(path.order);
    // The column map matters: channel-interleaved columns (c + 5·t) would give another path.
    const wrong = Array.from({ length: 5 }, (_, c) => Array.from({ length: 9 }, (_, t) => c + 5 * t));
    expect(obsPathMulti([{ W, dOut: 3, dIn: 45, H: gramOf!, units: wrong }], 5).order).not.toEqual(path.order);
  });

  test('a group without a consumer Gram falls back to obs-weights on the same scale, and says so', async () => {
    const model = convModel(true);
    const a = await analyzeGroups(model, {});
    const g = groupWith(a, 'W1', 'out');
    expect(obsGramRequests(model.graph, g)).toEqual([]);
    const res = scoreGroupsDetailed(model, { ...a, groups: [g] }, { method: 'obs', grams: new Map() });
    expect(res.info.fallbacks).toEqual([{ group: g.id, reason: expect.stringMatching(/no consumer with a full Gram \(ConvTranspose.*\): scored by obs-weights/) }]);
    const ow = scoreGroupsDetailed(model, { ...a, groups: [g] }, { method: 'obs-weights' }).scores[g.id];
    const s = res.scores[g.id];
    expect(ascending(s)).toEqual(ascending(ow));
    expect(Math.max(...s)).toBe(1);
    expect(() => scoreGroupsDetailed(model, { ...a, groups: [g] }, { method: 'obs' })).toThrow(/needs Gram statistics/);
  });

  test('cumulativeScores: strictly increasing along the order, ties and zero costs nudged up', () => {
    const s = cumulativeScores([2, 0, 3, 1], [0, 0, 1, 3], 4);
    expect(s[2]).toBe(0);
    expect(s[0]).toBeGreaterThan(0);
    expect(s[0]).toBeLessThan(1e-300);
    expect(s[3]).toBe(0.25);
    expect(s[1]).toBe(1);
    expect(ascending(s)).toEqual([2, 0, 3, 1]);
    expect(Array.from(cumulativeScores([1, 0], [0, 0], 2))).toEqual([Number.MIN_VALUE, 0]);
  });
});

describe('obs through the scoring stage (Grams captured a chunk of groups at a time)', () => {
  test('one chunk or one chunk per group: the same scores; the Grams are counted in the calibration report', async () => {
    const model = twoConsumerModel();
    const a = await analyzeGroups(model, {});
    const n = 32;
    const x = uniform(seededRng(41), n * 6, 1);
    const file = path.join(tmp, 'calib.bin');
    fs.writeFileSync(file, Buffer.from(x.buffer, x.byteOffset, x.byteLength));
    const calib = { file, shape: [n, 6], dtype: 'float32' };
    const one = await scoreStage(model, a, { method: 'obs', calib, quiet: true });
    const split = await scoreStage(model, a, { method: 'obs', calib, quiet: true, maxGramBytes: 1 });
    expect(Object.keys(one.scores)).toEqual(a.groups.map((g) => g.id));
    expect(a.groups.length).toBe(2);
    for (const g of a.groups) expect(Array.from(split.scores[g.id])).toEqual(Array.from(one.scores[g.id]));
    expect(one.calibration?.grams).toBe(3);
    expect(one.stats).toBeDefined(); // bias compensation reuses the activation statistics
    // The stage's Grams are those of the calibration file: the same scores as from Grams captured here.
    const g = groupWith(a, 'W1', 'out');
    const direct = scoreGroupsDetailed(model, { ...a, groups: [g] }, { method: 'obs', grams: await gramsFor(model, [g], calibFromArrays(model, [{ dtype: DataType.FLOAT, dims: [n, 6], data: x }], 'test')) });
    expect(Array.from(one.scores[g.id])).toEqual(Array.from(direct.scores[g.id]));
  });
});
