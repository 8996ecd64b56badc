/** Calibration inputs (files, arrays, random) and streaming activation statistics through onnxruntime. */
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { DataType } from '../src/ir/dtype';
import { loadModel } from '../src/ir/io';
import type { Model } from '../src/ir/model';
import { calibBatches, calibFromArrays, loadCalibration, sliceCalibration } from '../src/ort/calib';
import { accumulate, captureStats, channelMean, channelRms, channelVariance, statKey } from '../src/ort/capture';
import { attr, floatTensor, graph, modelBytes, node, seededRng, uniform, valueInfo } from './helpers/builder';

const fixtures = path.join(__dirname, 'fixtures', 'calib');

/** x[batch,10] → Gemm(Bᵀ, 16) → Relu → Gemm(5). */
function mlp(): { model: Model; W1: Float32Array; B1: Float32Array } {
  const W1 = uniform(seededRng(1), 160, 0.5);
  const B1 = uniform(seededRng(2), 16, 0.5);
  const g = graph({
    nodes: [
      node('Gemm', ['x', 'W1', 'B1'], ['h'], [attr.int('transB', 1)]),
      node('Relu', ['h'], ['r']),
      node('Gemm', ['r', 'W2'], ['y']),
    ],
    inputs: [valueInfo('x', DataType.FLOAT, ['batch', 10])],
    outputs: [valueInfo('y', DataType.FLOAT, ['batch', 5])],
    initializers: [floatTensor('W1', [16, 10], W1), floatTensor('B1', [16], B1), floatTensor('W2', [16, 5], uniform(seededRng(3), 80))],
  });
  return { model: loadModel(modelBytes(g)), W1, B1 };
}

/** Hidden activations r = relu(x W1ᵀ + b1), computed here independently of onnxruntime. */
function hidden(x: Float32Array, n: number, W1: Float32Array, B1: Float32Array): Float64Array {
  const r = new Float64Array(n * 16);
  for (let s = 0; s < n; s++) {
    for (let o = 0; o < 16; o++) {
      let v = B1[o];
      for (let i = 0; i < 10; i++) v += x[s * 10 + i] * W1[o * 10 + i];
      r[s * 16 + o] = Math.max(0, v);
    }
  }
  return r;
}

describe('captureStats', () => {
  const { model, W1, B1 } = mlp();
  const n = 37;
  const x = uniform(seededRng(9), n * 10, 2);
  const calib = calibFromArrays(model, [{ dtype: DataType.FLOAT, dims: [n, 10], data: x }], 'test');

  test('per-channel sum, sum of squares, mean, variance and RMS match a direct computation', async () => {
    const stats = await captureStats(model, calib, [{ tensor: 'r', axis: 1, gram: true }, { tensor: 'x', axis: -1 }], { batch: 8, quiet: true });
    const s = stats.get(statKey('r', 1))!;
    const r = hidden(x, n, W1, B1);
    expect(s.count).toBe(n);
    expect(s.channels).toBe(16);
    for (let c = 0; c < 16; c++) {
      let sum = 0, sq = 0;
      for (let k = 0; k < n; k++) {
        sum += r[k * 16 + c];
        sq += r[k * 16 + c] ** 2;
      }
      expect(s.sum[c]).toBeCloseTo(sum, 3);
      expect(s.sumSq[c]).toBeCloseTo(sq, 3);
      expect(channelMean(s)[c]).toBeCloseTo(sum / n, 4);
      expect(channelVariance(s)[c]).toBeCloseTo(sq / n - (sum / n) ** 2, 4);
      expect(channelRms(s)[c]).toBeCloseTo(Math.sqrt(sq / n), 4);
      for (let d = 0; d < 16; d++) {
        let g = 0;
        for (let k = 0; k < n; k++) g += r[k * 16 + c] * r[k * 16 + d];
        expect(s.gram![c * 16 + d]).toBeCloseTo(g, 2);
      }
    }
    // A graph input is read from the feeds.
    const xs = stats.get(statKey('x', -1))!;
    expect(xs.channels).toBe(10);
    let x0 = 0;
    for (let k = 0; k < n; k++) x0 += x[k * 10];
    expect(xs.sum[0]).toBeCloseTo(x0, 4);
  });

  test('statistics do not depend on the batch size', async () => {
    const a = (await captureStats(model, calib, [{ tensor: 'h', axis: 1 }], { batch: 1, quiet: true })).get(statKey('h', 1))!;
    const b = (await captureStats(model, calib, [{ tensor: 'h', axis: 1 }], { batch: 64, quiet: true })).get(statKey('h', 1))!;
    for (let c = 0; c < 16; c++) {
      expect(a.sum[c]).toBeCloseTo(b.sum[c], 4);
      expect(a.sumSq[c]).toBeCloseTo(b.sumSq[c], 4);
    }
  });

  test('accumulate reduces every axis but the channel axis', () => {
    const s = { tensor: 't', axis: 1, channels: 2, count: 0, sum: new Float64Array(2), sumSq: new Float64Array(2) };
    // [2, 2, 3]: channel 0 holds 1..3 and 7..9, channel 1 holds 4..6 and 10..12.
    accumulate(s, Float32Array.from({ length: 12 }, (_, i) => i + 1), [2, 2, 3], 0);
    expect(s.count).toBe(6);
    expect(Array.from(s.sum)).toEqual([1 + 2 + 3 + 7 + 8 + 9, 4 + 5 + 6 + 10 + 11 + 12]);
    expect(s.sumSq[0]).toBe(1 + 4 + 9 + 49 + 64 + 81);
  });

  test('an unknown tensor is refused', async () => {
    await expect(captureStats(model, calib, [{ tensor: 'nope', axis: 1 }], { quiet: true })).rejects.toThrow(/cannot capture 'nope'/);
  });
});

describe('loadCalibration', () => {
  const { model } = mlp();
  const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'calib-'));
  afterAll(() => fs.rmSync(tmp, { recursive: true, force: true }));

  test('raw .bin: shape inferred from the model, or given; mismatches are errors', () => {
    const data = Float32Array.from({ length: 30 }, (_, i) => i);
    const file = path.join(tmp, 'x.bin');
    fs.writeFileSync(file, Buffer.from(data.buffer));
    const set = loadCalibration(model, { file });
    expect(set.samples).toBe(3);
    expect(set.inputs[0].dims).toEqual([3, 10]);
    expect(Array.from(set.inputs[0].data as Float32Array)).toEqual(Array.from(data));
    expect(loadCalibration(model, { file, shape: [3, 10] }).samples).toBe(3);
    expect(() => loadCalibration(model, { file, shape: [4, 10] })).toThrow(/holds 30 float elements, but --calib-shape 4,10 needs 40/);
    expect(() => loadCalibration(model, { file, shape: [3, 5, 2] })).toThrow(/expects rank 2/);
    // float64 data is converted to the input's float32.
    const f64 = path.join(tmp, 'x64.bin');
    fs.writeFileSync(f64, Buffer.from(Float64Array.from(data).buffer));
    const set64 = loadCalibration(model, { file: f64, dtype: 'float64' });
    expect(set64.inputs[0].data).toBeInstanceOf(Float32Array);
    expect(Array.from(set64.inputs[0].data as Float32Array)).toEqual(Array.from(data));
    expect(() => loadCalibration(model, { file: f64, dtype: 'int64' })).toThrow(/is int64; the model expects float/);
    expect(() => loadCalibration(model, { file, dtype: 'complex' })).toThrow(/--calib-dtype 'complex' is not one of/);
  });

  test('.npy with a wrong inner shape, and a missing file', () => {
    expect(() => loadCalibration(model, { file: path.join(fixtures, 'f32_c.npy') })).toThrow(/shape \[2,3,4\]; the model expects rank 2/);
    expect(() => loadCalibration(model, { file: path.join(tmp, 'missing.npy') })).toThrow(/calibration file '.*missing\.npy' does not exist/);
  });

  test('.npz arrays match inputs by name, else by order, with type conversion', async () => {
    const g = graph({
      nodes: [node('Cast', ['tokens'], ['tf'], [attr.int('to', DataType.FLOAT)]), node('ReduceSum', ['tf'], ['s'], [attr.int('keepdims', 0)]), node('Identity', ['x'], ['xo'])],
      inputs: [valueInfo('x', DataType.FLOAT, ['batch', 10]), valueInfo('tokens', DataType.INT64, ['batch', 3])],
      outputs: [valueInfo('xo', DataType.FLOAT, ['batch', 10]), valueInfo('s', DataType.FLOAT, [])],
    });
    const two = loadModel(modelBytes(g));
    for (const f of ['two_inputs.npz', 'two_inputs_compressed.npz', 'positional.npz']) {
      const set = loadCalibration(two, { file: path.join(fixtures, f) });
      expect(set.inputs.map((i) => i.name)).toEqual(['x', 'tokens']);
      expect(set.samples).toBe(6);
      expect(set.inputs[1].data).toBeInstanceOf(BigInt64Array);
      expect(Number((set.inputs[1].data as BigInt64Array)[17])).toBe(17);
      const stats = await captureStats(two, set, [{ tensor: 'tf', axis: 1 }], { batch: 4, quiet: true });
      expect(Array.from(stats.get(statKey('tf', 1))!.sum)).toEqual([0 + 3 + 6 + 9 + 12 + 15, 1 + 4 + 7 + 10 + 13 + 16, 2 + 5 + 8 + 11 + 14 + 17]);
    }
    expect(() => loadCalibration(two, { file: path.join(fixtures, 'f32_c.npy') })).toThrow(/2 inputs: give calibration data as \.npz/);
  });

  test('without a file: seeded random inputs and a warning', () => {
    const warnings: string[] = [];
    const a = loadCalibration(model, { seed: 5, randomSamples: 12, warn: (m) => warnings.push(m) });
    const b = loadCalibration(model, { seed: 5, randomSamples: 12 });
    expect(warnings.join()).toMatch(/random inputs .* measures noise/);
    expect(a.random).toBe(true);
    expect(a.samples).toBe(12);
    const ba = [...calibBatches(a, 5)], bb = [...calibBatches(b, 5)];
    expect(ba.map((f) => f.x.dims)).toEqual([[5, 10], [5, 10], [2, 10]]);
    expect(ba.map((f) => Array.from(f.x.data as Float32Array))).toEqual(bb.map((f) => Array.from(f.x.data as Float32Array)));
    expect(ba[0].x.data).not.toEqual(ba[1].x.data);
    expect([...calibBatches(sliceCalibration(a, 5, 10), 5)][0].x.data).toEqual(ba[1].x.data);
  });

  test('random inputs follow the named batch dim wherever it occurs; scalars stay scalars; fixed sizes stay', () => {
    const g = graph({
      nodes: [node('Identity', ['x'], ['xo']), node('Identity', ['state'], ['so']), node('Identity', ['sr'], ['sro'])],
      inputs: [valueInfo('x', DataType.FLOAT, ['batch', 'seq']), valueInfo('state', DataType.FLOAT, [2, 'batch', 3]), valueInfo('sr', DataType.INT64, [])],
      outputs: [valueInfo('xo', DataType.FLOAT, ['batch', 'seq']), valueInfo('so', DataType.FLOAT, [2, 'batch', 3]), valueInfo('sro', DataType.INT64, [])],
    });
    const set = loadCalibration(loadModel(modelBytes(g)), { seed: 1, randomSamples: 7, seq: 20 });
    expect(set.fixedBatch).toBeUndefined();
    const b = [...calibBatches(set, 4)];
    expect(b.map((f) => [f.x.dims, f.state.dims, f.sr.dims])).toEqual([[[4, 20], [2, 4, 3], []], [[3, 20], [2, 3, 3], []]]);
    const fixed = graph({
      nodes: [node('Identity', ['x'], ['xo'])],
      inputs: [valueInfo('x', DataType.FLOAT, [3, 'seq'])], outputs: [valueInfo('xo', DataType.FLOAT, [3, 'seq'])],
    });
    const fs3 = loadCalibration(loadModel(modelBytes(fixed)), { randomSamples: 16, seq: 5 });
    expect(fs3.fixedBatch).toBe(3);
    expect([...calibBatches(fs3, 16)].map((f) => f.x.dims)).toEqual([[3, 5], [3, 5], [3, 5], [3, 5], [3, 5]]);
  });

  test('batches and slices', () => {
    const set = calibFromArrays(model, [{ dtype: DataType.FLOAT, dims: [5, 10], data: Float32Array.from({ length: 50 }, (_, i) => i) }], 't');
    const batches = [...calibBatches(set, 2)];
    expect(batches.map((b) => b.x.dims[0])).toEqual([2, 2, 1]);
    expect(Array.from(batches[2].x.data as Float32Array)).toEqual(Array.from({ length: 10 }, (_, i) => 40 + i));
    const s = sliceCalibration(set, 1, 3);
    expect(s.samples).toBe(2);
    expect((s.inputs[0].data as Float32Array)[0]).toBe(10);
  });
});
