/**
 * Calibration Gram statistics computed in onnxruntime (src/ort/gram.ts), against float64 references computed
 * here from the same activations (captured as plain outputs): XᵀX over rows, im2col patches built naively.
 */
import * as path from 'path';
import { DataType, float16ToFloat32, float32ToFloat16 } from '../src/ir/dtype';
import { UserError } from '../src/ir/errors';
import { loadModel } from '../src/ir/io';
import type { Model } from '../src/ir/model';
import { calibFromArrays, loadCalibration, type CalibSet } from '../src/ort/calib';
import { runModel } from '../src/ort/feeds';
import { captureGrams, gramAt, gramRequestFor, type ConvGramRequest, type GramRequest, type GramStats } from '../src/ort/gram';
import { ort } from '../src/ort/session';
import { choleskyInPlace } from '../src/util/linalg';
import { attr, floatTensor, graph, modelBytes, node, seededRng, tensor, uniform, valueInfo } from './helpers/builder';

const SHARED = path.resolve(__dirname, '../../shared/models');

/** The whole calibration set's value of `name` (one run over every sample), as float64 with its dims. */
async function activation(model: Model, calib: CalibSet, name: string): Promise<{ data: Float64Array; dims: number[] }> {
  const feeds: Record<string, ort.Tensor> = {};
  for (const x of calib.inputs) feeds[x.name] = new ort.Tensor(x.dtype === DataType.FLOAT16 ? 'float16' : 'float32', x.data as Float32Array, x.dims);
  const outs = await runModel(model, feeds, [name]);
  const t = outs[name] ?? feeds[name];
  const d = t.data as ArrayLike<number>;
  const data = t.type === 'float16' ? Float64Array.from(d as Uint16Array, (h) => float16ToFloat32(h)) : Float64Array.from(d);
  return { data, dims: t.dims.map(Number) };
}

interface Rows {
  rows: number;
  dim: number;
  /** rows × dim, row-major. */
  p: Float64Array;
}

/** Rows of X with channel axis `axis`: every other position is a row. */
function matmulRowsRef(x: { data: Float64Array; dims: number[] }, axis: number): Rows {
  const dims = x.dims;
  const a = axis < 0 ? axis + dims.length : axis;
  const C = dims[a];
  const outer = dims.slice(0, a).reduce((s, d) => s * d, 1);
  const inner = dims.slice(a + 1).reduce((s, d) => s * d, 1);
  const p = new Float64Array(outer * inner * C);
  let r = 0;
  for (let o = 0; o < outer; o++) {
    for (let i = 0; i < inner; i++, r++) for (let c = 0; c < C; c++) p[r * C + c] = x.data[(o * C + c) * inner + i];
  }
  return { rows: outer * inner, dim: C, p };
}

/** im2col patches of X[N, C, spatial…] for a convolution (explicit pads, or SAME_UPPER/SAME_LOWER/VALID), column order [C, k…]. */
function convRowsRef(x: { data: Float64Array; dims: number[] }, r: ConvGramRequest): Rows {
  const [N, C, ...sp] = x.dims;
  const k = r.kernel;
  const nd = k.length;
  const s = r.strides ?? k.map(() => 1);
  const dl = r.dilations ?? k.map(() => 1);
  let padBegin = r.pads ? r.pads.slice(0, nd) : k.map(() => 0);
  let padEnd = r.pads ? r.pads.slice(nd) : k.map(() => 0);
  let out = sp.map((h, i) => Math.floor((h + padBegin[i] + padEnd[i] - dl[i] * (k[i] - 1) - 1) / s[i]) + 1);
  if (r.autoPad === 'SAME_UPPER' || r.autoPad === 'SAME_LOWER') {
    out = sp.map((h, i) => Math.ceil(h / s[i]));
    const total = sp.map((h, i) => Math.max(0, (out[i] - 1) * s[i] + dl[i] * (k[i] - 1) + 1 - h));
    padBegin = total.map((t) => (r.autoPad === 'SAME_UPPER' ? Math.floor(t / 2) : Math.ceil(t / 2)));
    padEnd = total.map((t, i) => t - padBegin[i]);
  } else if (r.autoPad === 'VALID') {
    padBegin = k.map(() => 0);
    out = sp.map((h, i) => Math.floor((h - dl[i] * (k[i] - 1) - 1) / s[i]) + 1);
  }
  const kk = k.reduce((a, b) => a * b, 1);
  const L = out.reduce((a, b) => a * b, 1);
  const spatial = sp.reduce((a, b) => a * b, 1);
  const D = C * kk;
  const p = new Float64Array(N * L * D);
  const unflat = (idx: number, shape: number[]) => {
    const v = new Array(shape.length);
    for (let i = shape.length - 1; i >= 0; i--) { v[i] = idx % shape[i]; idx = Math.floor(idx / shape[i]); }
    return v as number[];
  };
  for (let n = 0; n < N; n++) {
    for (let l = 0; l < L; l++) {
      const o = unflat(l, out);
      const row = (n * L + l) * D;
      for (let c = 0; c < C; c++) {
        for (let j = 0; j < kk; j++) {
          const kj = unflat(j, k);
          let inside = true, flat = 0;
          for (let i = 0; i < nd; i++) {
            const pos = o[i] * s[i] - padBegin[i] + kj[i] * dl[i];
            if (pos < 0 || pos >= sp[i]) inside = false;
            flat = flat * sp[i] + pos;
          }
          p[row + c * kk + j] = inside ? x.data[(n * C + c) * spatial + flat] : 0;
        }
      }
    }
  }
  return { rows: N * L, dim: D, p };
}

function gramRef(r: Rows): { gram: Float64Array; sum: Float64Array } {
  const { rows, dim: D, p } = r;
  const gram = new Float64Array(D * D);
  const sum = new Float64Array(D);
  for (let n = 0; n < rows; n++) {
    for (let i = 0; i < D; i++) {
      const v = p[n * D + i];
      sum[i] += v;
      if (v !== 0) for (let j = 0; j < D; j++) gram[i * D + j] += v * p[n * D + j];
    }
  }
  return { gram, sum };
}

/** Largest |got − ref| relative to the Cauchy–Schwarz scale √(H_ii H_jj) (relative to |Σx| + √(N·H_ii) for sums). */
function gramError(s: GramStats, ref: { gram: Float64Array; sum: Float64Array }, count: number): number {
  const D = s.dim;
  let worst = 0;
  for (let i = 0; i < D; i++) {
    for (let j = 0; j < D; j++) {
      if (s.blockDiagonal && Math.floor(i / s.blockSize) !== Math.floor(j / s.blockSize)) continue;
      const scale = Math.sqrt(ref.gram[i * D + i] * ref.gram[j * D + j]) || 1;
      worst = Math.max(worst, Math.abs(gramAt(s, i, j) - ref.gram[i * D + j]) / scale);
    }
    const scale = Math.abs(ref.sum[i]) + Math.sqrt(count * ref.gram[i * D + i]) || 1;
    worst = Math.max(worst, Math.abs(s.sum[i] - ref.sum[i]) / scale);
  }
  return worst;
}

const TOL = 1e-6;

/** The full Gram of `s` (fails the test when it is block-diagonal). */
function full(s: GramStats): Float64Array {
  if (s.blockDiagonal) throw new Error(`expected a full Gram: ${s.reason}`);
  return s.gram;
}

async function expectMatchesReference(model: Model, calib: CalibSet, req: GramRequest, rows: (x: { data: Float64Array; dims: number[] }) => Rows, opts = {}): Promise<GramStats> {
  const [s] = await captureGrams(model, calib, [req], { quiet: true, ...opts });
  const x = await activation(model, calib, req.tensor);
  const r = rows(x);
  expect(s.dim).toBe(r.dim);
  expect(s.count).toBe(r.rows);
  const err = gramError(s, gramRef(r), r.rows); if (process.env.GRAM_DEBUG) console.log(req.tensor, req.kind, err);
  expect(err).toBeLessThan(TOL);
  return s;
}

function floatCalib(model: Model, dims: number[], seed: number, scale = 1): CalibSet {
  const n = dims.reduce((a, b) => a * b, 1);
  return calibFromArrays(model, [{ dtype: DataType.FLOAT, dims, data: uniform(seededRng(seed), n, scale) }], 'test');
}

/** x[N,5,6] → MatMul(W1[6,8]) → Tanh = t[N,5,8] → MatMul(W2[8,3]); W3[4,5] · t (weight on the left). */
function matmulModel(): Model {
  const g = graph({
    nodes: [
      node('MatMul', ['x', 'W1'], ['h']),
      node('Tanh', ['h'], ['t']),
      node('MatMul', ['t', 'W2'], ['y']),
      node('MatMul', ['W3', 't'], ['z']),
    ],
    inputs: [valueInfo('x', DataType.FLOAT, ['N', 5, 6])],
    outputs: [valueInfo('y', DataType.FLOAT, ['N', 5, 3]), valueInfo('z', DataType.FLOAT, ['N', 4, 8])],
    initializers: [floatTensor('W1', [6, 8], uniform(seededRng(1), 48)), floatTensor('W2', [8, 3], uniform(seededRng(2), 24)), floatTensor('W3', [4, 5], uniform(seededRng(3), 20))],
  });
  return loadModel(modelBytes(g));
}

describe('captureGrams: matmul-like consumers', () => {
  const model = matmulModel();
  const calib = floatCalib(model, [23, 5, 6], 7, 2);

  test('MatMul with a 3-D input: channel axis −1, every other position a row', async () => {
    const mm = model.graph.nodes.find((n) => n.outputs[0] === 'y')!;
    const made = gramRequestFor(mm, 1, [8, 3]);
    expect(made).toEqual({ request: { kind: 'matmul', tensor: 't', axis: -1, channels: 8 } });
    const s = await expectMatchesReference(model, calib, (made as { request: GramRequest }).request, (x) => matmulRowsRef(x, -1));
    expect(s.blockDiagonal).toBeUndefined();
    expect(s.count).toBe(23 * 5);
    expect(s.columnsPerChannel).toBe(1);
  });

  test('weight on the left: channel axis −2 of X[…, K, N] (rank unknown: reshaped at run time), and the same axis named from the front', async () => {
    const mm = model.graph.nodes.find((n) => n.outputs[0] === 'z')!;
    const made = gramRequestFor(mm, 0, [4, 5]);
    expect(made).toEqual({ request: { kind: 'matmul', tensor: 't', axis: -2, channels: 5 } });
    const a = await expectMatchesReference(model, calib, (made as { request: GramRequest }).request, (x) => matmulRowsRef(x, -2));
    expect(a.count).toBe(23 * 8);
    const b = await expectMatchesReference(model, calib, { kind: 'matmul', tensor: 't', axis: 1, channels: 5 }, (x) => matmulRowsRef(x, 1));
    const c = await expectMatchesReference(model, calib, { kind: 'matmul', tensor: 't', axis: 1, channels: 5, rank: 3 }, (x) => matmulRowsRef(x, 1));
    expect(full(b)).toEqual(full(a));
    expect(c.count).toBe(a.count);
    // Axis 0 of the activation (a graph input's first axis here): rows are everything after it.
    await expectMatchesReference(model, calib, { kind: 'matmul', tensor: 'x', axis: 0, channels: 23 }, (x) => matmulRowsRef(x, 0));
  });

  test('a channel count that does not match the activation is refused (not reshaped silently)', async () => {
    // 't' has 8 channels on its last axis; 4 divides 5·8, so a Reshape to [-1, 4] alone would succeed.
    await expect(captureGrams(model, calib, [{ kind: 'matmul', tensor: 't', axis: -1, channels: 4 }], { quiet: true })).rejects.toThrow(/has 8 channels on axis -1, the request 4/);
    await expect(captureGrams(model, calib, [{ kind: 'matmul', tensor: 'nope', axis: -1, channels: 4 }], { quiet: true })).rejects.toThrow(UserError);
  });

  test('Gemm with transA 0 and 1', async () => {
    // x[N,10] → Gemm(W[10,7]) = h → Relu = r[N,7] → Gemm(r, V[7,3]); rᵀ[7,N] → Gemm(transA 1, U[7,2]).
    const g = graph({
      nodes: [
        node('Gemm', ['x', 'W', 'B'], ['h']),
        node('Relu', ['h'], ['r']),
        node('Gemm', ['r', 'V'], ['y'], [attr.int('transB', 0)]),
        node('Transpose', ['r'], ['rt'], [attr.ints('perm', [1, 0])]),
        node('Gemm', ['rt', 'U'], ['z'], [attr.int('transA', 1)]),
      ],
      inputs: [valueInfo('x', DataType.FLOAT, ['N', 10])],
      outputs: [valueInfo('y', DataType.FLOAT, ['N', 3]), valueInfo('z', DataType.FLOAT, ['N', 2])],
      initializers: [
        floatTensor('W', [10, 7], uniform(seededRng(4), 70)), floatTensor('B', [7], uniform(seededRng(5), 7, 0.3)),
        floatTensor('V', [7, 3], uniform(seededRng(6), 21)), floatTensor('U', [7, 2], uniform(seededRng(7), 14)),
      ],
    });
    const m = loadModel(modelBytes(g));
    const cal = floatCalib(m, [41, 10], 8);
    const y = gramRequestFor(m.graph.nodes[2], 1, [7, 3]) as { request: GramRequest };
    const z = gramRequestFor(m.graph.nodes[4], 1, [7, 2]) as { request: GramRequest };
    expect(y.request).toEqual({ kind: 'matmul', tensor: 'r', axis: 1, channels: 7, rank: 2 });
    expect(z.request).toEqual({ kind: 'matmul', tensor: 'rt', axis: 0, channels: 7, rank: 2 });
    const a = await expectMatchesReference(m, cal, y.request, (x) => matmulRowsRef(x, 1));
    const b = await expectMatchesReference(m, cal, z.request, (x) => matmulRowsRef(x, 0));
    expect(a.count).toBe(41);
    expect(b.count).toBe(41);
    // The same rows seen both ways round: the same statistics.
    for (let i = 0; i < 49; i++) expect(Math.abs(full(a)[i] - full(b)[i])).toBeLessThanOrEqual(1e-5 * Math.max(1, Math.abs(full(a)[i])));
    // The automatic batch size (32 samples, then larger runs for one row per sample) sees every sample once.
    const many = floatCalib(m, [301, 10], 9);
    const [auto] = await captureGrams(m, many, [y.request], { quiet: true });
    const [one] = await captureGrams(m, many, [y.request], { quiet: true, batch: 301 });
    expect(auto.count).toBe(301);
    expect(gramError(auto, { gram: full(one), sum: one.sum }, 301)).toBeLessThan(TOL);
    const x = await activation(m, many, 'r');
    expect(gramError(auto, gramRef(matmulRowsRef(x, 1)), 301)).toBeLessThan(TOL);
  });
});

/** x[N,C,spatial…] → Relu = r → Conv(W, attrs) = y (no bias), plus the request the helper makes for it. */
function convModel(C: number, O: number, spatial: number[], kernel: number[], attrs: ReturnType<typeof attr.int>[]): { model: Model; W: Float32Array; request: ConvGramRequest } {
  const wDims = [O, C, ...kernel];
  const W = uniform(seededRng(11), wDims.reduce((a, b) => a * b, 1));
  const g = graph({
    nodes: [node('Relu', ['x'], ['r']), node('Conv', ['r', 'W'], ['y'], attrs)],
    inputs: [valueInfo('x', DataType.FLOAT, ['N', C, ...spatial])],
    outputs: [valueInfo('y', DataType.FLOAT)],
    initializers: [floatTensor('W', wDims, W)],
  });
  const model = loadModel(modelBytes(g));
  const made = gramRequestFor(model.graph.nodes[1], 1, wDims);
  if (!('request' in made) || made.request.kind !== 'conv') throw new Error('no conv request');
  return { model, W, request: made.request };
}

describe('captureGrams: convolutions (im2col patches)', () => {
  const cases: { name: string; C: number; spatial: number[]; kernel: number[]; attrs: ReturnType<typeof attr.int>[] }[] = [
    { name: '3×3, pads 1', C: 3, spatial: [7, 6], kernel: [3, 3], attrs: [attr.ints('pads', [1, 1, 1, 1])] },
    { name: '2×3, asymmetric pads, strides 2×1, dilations 1×2', C: 3, spatial: [9, 8], kernel: [2, 3], attrs: [attr.ints('pads', [1, 0, 0, 2]), attr.ints('strides', [2, 1]), attr.ints('dilations', [1, 2])] },
    { name: '1×1, stride 2', C: 5, spatial: [6, 5], kernel: [1, 1], attrs: [attr.ints('strides', [2, 2])] },
    { name: '1-D, kernel 3, pad 1, stride 2, dilation 2', C: 4, spatial: [17], kernel: [3], attrs: [attr.ints('pads', [1, 2]), attr.ints('strides', [2]), attr.ints('dilations', [2])] },
    { name: 'auto_pad SAME_UPPER, stride 2', C: 2, spatial: [7, 7], kernel: [3, 2], attrs: [attr.string('auto_pad', 'SAME_UPPER'), attr.ints('strides', [2, 2])] },
    { name: 'auto_pad VALID', C: 2, spatial: [6, 7], kernel: [3, 3], attrs: [attr.string('auto_pad', 'VALID')] },
  ];
  for (const c of cases) {
    test(`${c.name}: Gram and Σx equal the naive im2col reference; column c·k+j is kernel position j of channel c`, async () => {
      const O = 4;
      const { model, W, request } = convModel(c.C, O, c.spatial, c.kernel, c.attrs);
      const calib = floatCalib(model, [9, c.C, ...c.spatial], 21);
      const s = await expectMatchesReference(model, calib, request, (x) => convRowsRef(x, request));
      const kk = c.kernel.reduce((a, b) => a * b, 1);
      expect(s.dim).toBe(c.C * kk);
      expect(s.columnsPerChannel).toBe(kk);
      // Independently of the reference im2col: the consumer's own output y_o = w_o · p, with w_o the weight row
      // flattened as [C, k…], so Σ y_o = w_o · Σx and Σ y_o² = w_oᵀ H w_o over every output position.
      const y = await activation(model, calib, 'y');
      const L = y.data.length / (9 * O);
      expect(s.count).toBe(9 * L);
      const D = s.dim;
      for (let o = 0; o < O; o++) {
        const w = W.subarray(o * D, (o + 1) * D);
        let sy = 0, syy = 0;
        for (let n = 0; n < 9; n++) for (let l = 0; l < L; l++) { const v = y.data[(n * O + o) * L + l]; sy += v; syy += v * v; }
        let ws = 0, whw = 0;
        for (let i = 0; i < D; i++) {
          ws += w[i] * s.sum[i];
          for (let j = 0; j < D; j++) whw += w[i] * gramAt(s, i, j) * w[j];
        }
        expect(Math.abs(ws - sy)).toBeLessThan(1e-4 * (1 + Math.abs(sy)));
        expect(Math.abs(whw - syy)).toBeLessThan(1e-4 * syy);
      }
    });
  }

  test('several calibration batches give the statistics of one batch', async () => {
    const { model, request } = convModel(3, 4, [7, 6], [3, 3], [attr.ints('pads', [1, 1, 1, 1])]);
    const calib = floatCalib(model, [29, 3, 7, 6], 5);
    const [one] = await captureGrams(model, calib, [request], { batch: 29, quiet: true });
    const [many] = await captureGrams(model, calib, [request], { batch: 4, quiet: true });
    expect(many.count).toBe(one.count);
    const ref = { gram: full(one), sum: one.sum };
    expect(gramError(many, ref, one.count)).toBeLessThan(TOL);
    // And not trivially: batches do differ from each other.
    const [first] = await captureGrams(model, { ...calib, samples: 4 }, [request], { batch: 4, quiet: true });
    expect(first.count).toBeLessThan(one.count);
  });

  test('ConvTranspose and grouped convolutions are declined with a reason; a batched MatMul weight too', () => {
    const g = graph({
      nodes: [
        node('ConvTranspose', ['x', 'W'], ['y']),
        node('Conv', ['x', 'G'], ['z'], [attr.int('group', 2)]),
        node('MatMul', ['x', 'B'], ['u']),
      ],
      inputs: [valueInfo('x', DataType.FLOAT, [1, 4, 5, 5])],
      outputs: [valueInfo('y', DataType.FLOAT), valueInfo('z', DataType.FLOAT), valueInfo('u', DataType.FLOAT)],
    });
    const m = loadModel(modelBytes(g));
    expect(gramRequestFor(m.graph.nodes[0], 1, [4, 3, 3, 3])).toEqual({ decline: expect.stringMatching(/ConvTranspose/) });
    expect(gramRequestFor(m.graph.nodes[1], 1, [4, 2, 3, 3])).toEqual({ decline: expect.stringMatching(/grouped Conv \(group 2\)/) });
    expect(gramRequestFor(m.graph.nodes[2], 1, [4, 5, 6])).toEqual({ decline: expect.stringMatching(/batched MatMul weight/) });
    expect(gramRequestFor(m.graph.nodes[2], 1, [1, 5, 6])).toEqual({ request: { kind: 'matmul', tensor: 'x', axis: -1, channels: 5 } });
  });
});

describe('captureGrams: memory cap, chunks, determinism', () => {
  test('under a small cap a conv Gram is block-diagonal: each channel\'s k×k block equals the full Gram\'s', async () => {
    const { model, request } = convModel(4, 3, [6, 6], [3, 3], [attr.ints('pads', [1, 1, 1, 1])]);
    const calib = floatCalib(model, [10, 4, 6, 6], 3);
    const [full] = await captureGrams(model, calib, [request], { quiet: true });
    const D = 36;
    // The full Gram takes 36²·8 = 10368 bytes; four 9×9 blocks 2592.
    const [bd] = await captureGrams(model, calib, [request], { quiet: true, maxGramBytes: 5000 });
    if (!bd.blockDiagonal || full.blockDiagonal) throw new Error('expected a block-diagonal and a full Gram');
    expect(bd.blockSize).toBe(9);
    expect(bd.blocks.length).toBe(4 * 81);
    expect(bd.reason).toMatch(/full Gram 36×36 .* over the .* cap: block-diagonal approximation, per-channel 9×9 blocks/);
    expect(bd.count).toBe(full.count);
    expect(Array.from(bd.sum)).toEqual(Array.from(full.sum));
    let worst = 0;
    for (let i = 0; i < D; i++) {
      for (let j = 0; j < D; j++) {
        const same = Math.floor(i / 9) === Math.floor(j / 9);
        if (!same) { expect(gramAt(bd, i, j)).toBe(0); continue; }
        worst = Math.max(worst, Math.abs(gramAt(bd, i, j) - full.gram[i * D + j]) / Math.sqrt(full.gram[i * D + i] * full.gram[j * D + j]));
      }
    }
    expect(worst).toBeLessThan(TOL);
    // A cap below even the blocks: the diagonal alone.
    const [diag] = await captureGrams(model, calib, [request], { quiet: true, maxGramBytes: 1000 });
    if (!diag.blockDiagonal) throw new Error('expected block-diagonal');
    expect(diag.blockSize).toBe(1);
    expect(diag.reason).toMatch(/the diagonal only \(9×9 blocks would take/);
    for (let i = 0; i < D; i++) expect(Math.abs(diag.blocks[i] - full.gram[i * D + i])).toBeLessThan(TOL * full.gram[i * D + i]);
  });

  test('matmul-like: diagonal blocks of the requested size, or the diagonal', async () => {
    const model = matmulModel();
    const calib = floatCalib(model, [23, 5, 6], 9);
    const req: GramRequest = { kind: 'matmul', tensor: 't', axis: -1, channels: 8, block: 4 };
    const [full] = await captureGrams(model, calib, [req], { quiet: true });
    const [bd] = await captureGrams(model, calib, [req], { quiet: true, maxGramBytes: 300 });
    const [diag] = await captureGrams(model, calib, [{ ...req, block: undefined }], { quiet: true, maxGramBytes: 300 });
    if (full.blockDiagonal || !bd.blockDiagonal || !diag.blockDiagonal) throw new Error('unexpected forms');
    expect([bd.blockSize, diag.blockSize]).toEqual([4, 1]);
    for (let i = 0; i < 8; i++) {
      for (let j = 0; j < 8; j++) {
        const want = Math.floor(i / 4) === Math.floor(j / 4) ? full.gram[i * 8 + j] : 0;
        expect(Math.abs(gramAt(bd, i, j) - want)).toBeLessThan(TOL * Math.sqrt(full.gram[i * 9] * full.gram[j * 9]));
      }
      expect(Math.abs(diag.blocks[i] - full.gram[i * 9])).toBeLessThan(TOL * full.gram[i * 9]);
    }
    await expect(captureGrams(model, calib, [{ ...req, block: 3 }], { quiet: true })).rejects.toThrow(/block 3 does not divide 8 channels/);
  });

  test('processed in chunks under maxConcurrentBytes, or all at once: the same bits; two runs: the same bits', async () => {
    const model = matmulModel();
    const calib = floatCalib(model, [23, 5, 6], 13);
    const reqs: GramRequest[] = [
      { kind: 'matmul', tensor: 't', axis: -1, channels: 8 },
      { kind: 'matmul', tensor: 'h', axis: -1, channels: 8 },
      { kind: 'matmul', tensor: 't', axis: -2, channels: 5 },
      { kind: 'matmul', tensor: 'x', axis: -1, channels: 6 },
    ];
    const together = await captureGrams(model, calib, reqs, { quiet: true, batch: 5 });
    const again = await captureGrams(model, calib, reqs, { quiet: true, batch: 5 });
    const apart = await captureGrams(model, calib, reqs, { quiet: true, batch: 5, maxConcurrentBytes: 1 });
    const bits = (s: GramStats) => [s.count, Array.from(s.sum), Array.from(full(s))];
    expect(together.map(bits)).toEqual(again.map(bits));
    expect(apart.map(bits)).toEqual(together.map(bits));
    expect(together.map((s) => s.dim)).toEqual([8, 8, 5, 6]);
    // Results are in request order (not the same statistics twice).
    expect(full(together[0])).not.toEqual(full(together[1]));
  });
});

describe('captureGrams: float16 models', () => {
  test('a float16 activation is cast to float32 in ORT and summed in float64', async () => {
    const W = uniform(seededRng(31), 6 * 5);
    const g = graph({
      nodes: [node('Relu', ['x'], ['r']), node('MatMul', ['r', 'W'], ['y'])],
      inputs: [valueInfo('x', DataType.FLOAT16, ['N', 6])],
      outputs: [valueInfo('y', DataType.FLOAT16, ['N', 5])],
      initializers: [tensor('W', DataType.FLOAT16, [6, 5], Uint16Array.from(W, (v) => float32ToFloat16(v)))],
    });
    const model = loadModel(modelBytes(g));
    // Values up to 300: products up to 9e4 and sums far past float16's range (65504).
    const x = Uint16Array.from(uniform(seededRng(32), 200 * 6, 300), (v) => float32ToFloat16(v));
    const calib = calibFromArrays(model, [{ dtype: DataType.FLOAT16, dims: [200, 6], data: x }], 'test');
    const s = await expectMatchesReference(model, calib, { kind: 'matmul', tensor: 'r', axis: -1, channels: 6 }, (a) => matmulRowsRef(a, -1));
    expect(Number.isFinite(full(s)[0])).toBe(true);
    expect(full(s)[0]).toBeGreaterThan(65504);
  });
});

/** Whether an n×n float64 matrix factors (is positive definite), by the project's Cholesky on a copy. */
const factors = (a: Float64Array, n: number): boolean => choleskyInPlace(a.slice(), n) < 0;

describe('captureGrams on mnist_lenet_bn with the real calibration digits', () => {
  test('the second conv\'s input: a symmetric PSD 288×288 Gram over 512 digits × 14·14 positions', async () => {
    const model = loadModel(path.join(SHARED, 'mnist_lenet_bn.onnx'));
    const calib = loadCalibration(model, { file: path.join(SHARED, 'mnist_calib_x.bin') });
    const convs = model.graph.nodes.filter((n) => n.opType === 'Conv');
    const w = model.graph.initializers.get(convs[1].inputs[1])!;
    const made = gramRequestFor(convs[1], 1, w.dims);
    if (!('request' in made)) throw new Error(made.decline);
    const [s] = await captureGrams(model, calib, [made.request], { quiet: true });
    if (s.blockDiagonal) throw new Error('expected the full Gram');
    const D = 32 * 9;
    expect(s.dim).toBe(D);
    expect(s.gram.length).toBe(D * D);
    expect(s.count).toBe(512 * 14 * 14);
    let meanDiag = 0;
    for (let i = 0; i < D; i++) {
      expect(s.gram[i * D + i]).toBeGreaterThanOrEqual(0);
      meanDiag += s.gram[i * D + i] / D;
      for (let j = 0; j < i; j++) expect(s.gram[i * D + j]).toBe(s.gram[j * D + i]);
    }
    // Post-ReLU/MaxPool activations are non-negative: so are their sums.
    expect(Math.min(...s.sum)).toBeGreaterThanOrEqual(0);
    // Positive semidefinite: with 1 % mean-diagonal damping (as the refit uses) the whole matrix factors, and so
    // do principal blocks (a channel's 9×9 block, the first 64 columns); a matrix with a negative direction would not.
    const damped = Float64Array.from(s.gram, (v, k) => (Math.floor(k / D) === k % D ? v + 0.01 * meanDiag : v));
    expect(factors(damped, D)).toBe(true);
    const sub = (n: number, from = 0) => {
      const a = new Float64Array(n * n);
      for (let i = 0; i < n; i++) for (let j = 0; j < n; j++) a[i * n + j] = damped[(from + i) * D + from + j];
      return a;
    };
    expect(factors(sub(9, 9 * 5), 9)).toBe(true);
    expect(factors(sub(64), 64)).toBe(true);
    const broken = Float64Array.from(damped);
    broken[1] = broken[D] = Math.sqrt(damped[0] * damped[D + 1]) * 1.5; // |H_01| > √(H_00 H_11): not PSD
    expect(factors(broken, D)).toBe(false);
    // xᵀHx ≥ 0 for random directions (without damping).
    const next = seededRng(5);
    for (let t = 0; t < 5; t++) {
      const v = Float64Array.from({ length: D }, () => next() * 2 - 1);
      let q = 0;
      for (let i = 0; i < D; i++) for (let j = 0; j < D; j++) q += v[i] * s.gram[i * D + j] * v[j];
      expect(q).toBeGreaterThanOrEqual(0);
    }
  });
});
