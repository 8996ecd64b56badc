/**
 * Hostile input against verification and the written model (issue 10, causes 3 and 4):
 *  - NaN / infinity never verify by matching themselves: only a non-finite value the dense model has at the same
 *    element passes (src/verify/compare.ts `expected`); fidelity is not 1 for NaN outputs;
 *  - a hand-edited plan with non-finite or overflowing bias deltas is a user error (src/score/compensate.ts);
 *  - calibration data holding NaN / infinity is a user error naming the input and sample (src/ort/calib.ts);
 *  - every model written is loaded by onnxruntime first, also at --ratio 0 and when nothing is prunable
 *    (passes/save.ts);
 *  - `--pass` plugins run before verification (src/pipeline/prune.ts), so a plugin that corrupts a weight fails it.
 */
import * as fs from 'fs';
import * as path from 'path';
import { cloneModel } from '../src/ir/clone';
import { DataType } from '../src/ir/dtype';
import { loadModel } from '../src/ir/io';
import { encodeModelProto } from '../src/ir/proto';
import type { Model } from '../src/ir/model';
import { applyPlan } from '../src/prune/apply';
import { compareOutputs } from '../src/verify/compare';
import { verifyPruned } from '../src/verify/verify';
import { ort } from '../src/ort/session';
import { G } from './analysis-kit';
import { attr, floatTensor, graph, modelBytes, node, valueInfo } from './helpers/builder';
import { SHARED_MODELS, lines, mkTmp, rmTmp, runBuiltCli, runCliInProcess } from './helpers/cli';
import { analysisOf, group, units, w } from './prune-fixtures';

let tmp: string;
beforeAll(() => { tmp = mkTmp('onnx-prune-hostile-'); });
afterAll(() => rmTmp(tmp));

const LENET = path.join(SHARED_MODELS, 'mnist_lenet_bn.onnx');
const MLP = path.join(__dirname, '..', 'models', 'tiny_mlp.onnx'); // input [N, 64]
const TINY = path.join(__dirname, '..', 'models', 'tiny_cnn.onnx');

const t32 = (data: number[], dims: number[]) => new ort.Tensor('float32', Float32Array.from(data), dims);

/** The files in `dir` (nothing written: only what the test put there). */
const filesIn = (dir: string) => fs.readdirSync(dir).sort();

function freshDir(name: string): string {
  const d = path.join(tmp, name);
  fs.mkdirSync(d, { recursive: true });
  return d;
}

function save(model: Model, file: string): string {
  fs.writeFileSync(file, encodeModelProto(model.toProto()));
  return file;
}

describe('non-finite values in verification', () => {
  test('compareOutputs: NaN does not match NaN unless expected; cosine is NaN, not 1', () => {
    const nan = t32([NaN, NaN, NaN, NaN], [2, 2]);
    const c = compareOutputs('y', nan, nan);
    expect(c.maxAbsDiff).toBe(Infinity);
    expect(c.cosine).toBeNaN();
    expect(c.unexpectedNonFinite).toEqual({ count: 4, first: { index: [0, 0], reference: 'NaN', test: 'NaN' } });
    // Fidelity: a finite dense output against an all-NaN pruned one.
    const f = compareOutputs('y', t32([1, 2, 3, 4], [2, 2]), nan, { kl: true, expected: 'reference' });
    expect(f.cosine).toBeNaN();
    expect(f.kl).toBeUndefined();
    // Expected where the dense model has the same value at the same element, of the same kind.
    const inf = t32([1, Infinity, -Infinity, NaN], [4]);
    expect(compareOutputs('y', inf, inf, { expected: inf })).toMatchObject({ nonFinite: 3, maxAbsDiff: 0, cosine: 1 });
    const other = compareOutputs('y', inf, inf, { expected: t32([1, -Infinity, -Infinity, NaN], [4]) });
    expect(other.unexpectedNonFinite).toEqual({ count: 1, first: { index: [1], reference: 'Infinity', test: 'Infinity', expected: '-Infinity' } });
    expect(other.nonFinite).toBe(2);
  });

  /**
   * x[batch, 8] → Gemm(16, bias 5: every unit > 0) → Relu → r → Gemm(W2, bias B2) → Log → y.
   * W2 reads only units 2, 5 and 11 (the ones the plan removes), so the masked and pruned models compute Log(B2).
   */
  function logHead(b2: number) {
    const w2 = new Array(4 * 16).fill(0);
    for (let o = 0; o < 4; o++) for (const u of [2, 5, 11]) w2[o * 16 + u] = 0.25;
    const g = graph({
      nodes: [
        node('Gemm', ['x', 'W1', 'B1'], ['h'], [attr.int('transB', 1)], 'fc1'),
        node('Relu', ['h'], ['r']),
        node('Gemm', ['r', 'W2', 'B2'], ['z'], [attr.int('transB', 1)], 'head'),
        node('Log', ['z'], ['y']),
      ],
      inputs: [valueInfo('x', DataType.FLOAT, ['batch', 8])],
      outputs: [valueInfo('y', DataType.FLOAT, ['batch', 4])],
      initializers: [
        floatTensor('W1', [16, 8], Array.from({ length: 128 }, (_, i) => ((i * 37) % 11) / 40 - 0.12)),
        floatTensor('B1', [16], new Array(16).fill(5)),
        floatTensor('W2', [4, 16], w2),
        floatTensor('B2', [4], new Array(4).fill(b2)),
      ],
    });
    const model = loadModel(modelBytes(g, { opset: 17 }));
    const members = [w('W1', 'h', 1, 0, 'out', units(16)), w('B1', 'h', 2, 0, 'out', units(16)), w('W2', 'z', 1, 1, 'in', units(16))];
    return { model, analysis: analysisOf([group('fc1', 16, members, 'neuron')]) };
  }
  const plan = { fc1: [2, 5, 11] };

  test('a prune that makes an output −Infinity where the dense model is finite fails verification', async () => {
    const { model, analysis } = logHead(0); // masked / pruned: Log(0) = −Infinity everywhere; dense: finite
    const pruned = cloneModel(model);
    applyPlan(pruned, analysis, plan);
    const r = await verifyPruned(model, pruned, analysis, plan);
    expect(r.verify.passed).toBe(false);
    expect(r.verify.error).toMatch(/^output 'y': 8 element\(s\) NaN or infinite where the dense model has no such value \(first at \[0, 0\]: pruned -Infinity, masked -Infinity, dense -?\d/);
    expect(r.verify.weakened.filter((e) => e.kind === 'non-finite')).toEqual([]);
    expect(r.fidelity?.cosine).toBeNaN();
  });

  test('a dense model edited to NaN (a bias of 1e308 × 10) fails against the original, with fidelity not 1', async () => {
    // The compensated dense model (what a plan's bias deltas of 1e308 made) computes NaN / infinity; so do its
    // masked and pruned versions. Only the original (uncompensated) model says what non-finite values are expected.
    const { model: original, analysis } = logHead(1);
    const edited = cloneModel(original);
    edited.graph.initializers.get('B1')!.setData(new Float32Array(16).fill(Infinity));
    edited.graph.initializers.get('B2')!.setData(new Float32Array(4).fill(-Infinity));
    const pruned = cloneModel(edited);
    applyPlan(pruned, analysis, plan);
    const r = await verifyPruned(edited, pruned, analysis, plan, { original });
    expect(r.verify.passed).toBe(false);
    expect(r.verify.error).toMatch(/^output 'y': 8 element\(s\) NaN or infinite where the dense model has no such value \(first at \[0, 0\]: pruned NaN, masked NaN, dense /);
    expect(r.fidelity?.cosine).toBeNaN();
  });

  test('non-finite values the dense model has at the same elements still pass (listed as non-finite)', async () => {
    const { model, analysis } = logHead(-1); // Log(−1) = NaN in every model, wherever computed from B2 alone
    const edited = cloneModel(model);
    // W2 reads no unit at all: y = Log(−1) = NaN in the dense, masked and pruned models alike.
    edited.graph.initializers.get('W2')!.setData(new Float32Array(64));
    const pruned = cloneModel(edited);
    applyPlan(pruned, analysis, plan);
    const r = await verifyPruned(edited, pruned, analysis, plan);
    expect(r.verify.passed).toBe(true);
    expect(r.verify.weakened.find((e) => e.kind === 'non-finite')).toEqual({
      kind: 'non-finite', output: 'y', detail: '8 element(s) NaN or infinite in the dense, masked and pruned models alike were not compared',
    });
  });
});

describe('a hand-edited plan with non-finite or overflowing bias deltas', () => {
  let planText: string;
  beforeAll(async () => {
    const dir = freshDir('plan-source');
    const planFile = path.join(dir, 'p.json');
    const r = await runCliInProcess([LENET, path.join(dir, 'o.onnx'), '--ratio', '0.4', '--importance', 'wanda', '--reconstruct', 'bias', '--calib', path.join(SHARED_MODELS, 'mnist_calib_x.bin'), '--calib-shape', '512,1,28,28', '--save-plan', planFile, '--quiet']);
    expect(r.code).toBe(0);
    planText = fs.readFileSync(planFile, 'utf8');
    expect(JSON.parse(planText).compensation.length).toBeGreaterThan(0);
  });

  const edited = (delta: string) => {
    const p = JSON.parse(planText) as { compensation: { delta: number[] }[] };
    for (const c of p.compensation) c.delta = c.delta.map(() => 0);
    return JSON.stringify(p).replace(/"delta":\[0/, `"delta":[${delta}`);
  };

  test.each([
    ['1e308', /^onnx-prune: error: plan '.*': node '.*': compensated bias of channel 0 overflows float$/],
    ['-1e39', /^onnx-prune: error: plan '.*': node '.*': compensated bias of channel 0 overflows float$/],
    ['1e999', /^onnx-prune: error: plan '.*': node '.*': bias delta Infinity \(channel 0\) is not a finite number$/],
  ])('delta %s: exit 1, one line, nothing written (never "verified")', async (delta, message) => {
    const dir = freshDir(`plan-${delta}`);
    const planFile = path.join(dir, 'p.json');
    fs.writeFileSync(planFile, edited(delta));
    const r = await runCliInProcess([LENET, path.join(dir, 'o.onnx'), '--plan', planFile]);
    expect(r.stdout).not.toMatch(/verified/);
    expect(r.code).toBe(1);
    expect(lines(r.stderr)).toEqual([expect.stringMatching(message)]);
    expect(filesIn(dir)).toEqual(['p.json']);
  });
});

describe('calibration data with NaN or infinity', () => {
  /** A .npy file (version 1.0, C order) of `descr` ('<f4', '<f8', '<f2') holding `data`. */
  function npy(descr: string, dims: number[], data: ArrayBufferView): Buffer {
    let header = `{'descr': '${descr}', 'fortran_order': False, 'shape': (${dims.join(', ')}${dims.length === 1 ? ',' : ''}), }`;
    header += `${' '.repeat((64 - ((10 + header.length + 1) % 64)) % 64)}\n`;
    const pre = Buffer.alloc(10);
    pre.write('\x93NUMPY', 0, 'latin1');
    pre[6] = 1;
    pre.writeUInt16LE(header.length, 8);
    return Buffer.concat([pre, Buffer.from(header, 'latin1'), Buffer.from(data.buffer, data.byteOffset, data.byteLength)]);
  }
  const values = (n: number) => Float32Array.from({ length: n }, (_, i) => Math.sin(i));

  test.each([
    ['NaN (float32)', () => { const a = values(6 * 64); a[3 * 64 + 7] = NaN; return npy('<f4', [6, 64], a); }, /input 'input': NaN at sample 3: calibration values must be finite$/],
    ['-Infinity (float64)', () => { const a = Float64Array.from(values(6 * 64)); a[5 * 64] = -Infinity; return npy('<f8', [6, 64], a); }, /input 'input': -Infinity at sample 5: calibration values must be finite$/],
    ['1e300 (float64 → float32)', () => { const a = Float64Array.from(values(6 * 64)); a[64 + 1] = 1e300; return npy('<f8', [6, 64], a); }, /input 'input': value 1e\+300 at sample 1 overflows float$/],
    ['NaN (float16)', () => { const a = new Uint16Array(6 * 64); a[2 * 64] = 0x7e00; return npy('<f2', [6, 64], a); }, /input 'input': NaN at sample 2: calibration values must be finite$/],
  ])('%s in a .npy: exit 1, one line naming the input and sample, nothing written', async (_what, make, message) => {
    const dir = freshDir(`calib-${_what.replace(/\W+/g, '_')}`);
    const calib = path.join(dir, 'c.npy');
    fs.writeFileSync(calib, make());
    const r = await runCliInProcess([MLP, path.join(dir, 'o.onnx'), '--ratio', '0.3', '--importance', 'wanda', '--calib', calib, '--save-plan', path.join(dir, 'p.json')]);
    expect(r.code).toBe(1);
    expect(lines(r.stderr)).toEqual([expect.stringMatching(new RegExp(`^onnx-prune: error: calibration data '.*c\\.npy': ${message.source}`))]);
    expect(filesIn(dir)).toEqual(['c.npy']);
  });
});

describe('every model written is loaded by onnxruntime first', () => {
  /** x → Relu → an op of a domain onnxruntime does not know → y. */
  function unknownOp(): Model {
    const g = new G();
    const y = g.op('Frobnicate', [g.op('Relu', [g.input('x', ['batch', 8])])], {}, 1, 'com.example.unknown');
    g.output(y);
    return g.model();
  }
  /** x → Relu → h → Relu → y with h declared int64 (it is float): no weights, so no channel group. */
  function typeMismatch(): Model {
    const g = new G();
    const h = g.op('Relu', [g.input('x', ['batch', 8])]);
    g.output(g.op('Relu', [h]));
    const m = g.model();
    m.graph.proto.valueInfo.push(valueInfo(h, DataType.INT64, ['batch', 8]));
    return loadModel(encodeModelProto(m.toProto()));
  }
  /** x → MatMul + Add → Relu → y stamped with opset 99 (its only group reaches the output: declined). */
  function opset99(): Model {
    const g = new G();
    g.output(g.op('Relu', [g.linear(g.input('x', ['batch', 8]), 8, 4)]));
    const m = g.model();
    m.proto.opsetImport[0].version = 99;
    return loadModel(encodeModelProto(m.toProto()));
  }

  test.each([
    ['an unknown op domain', '0', unknownOp, /onnxruntime cannot load the model: .*No opset import for domain 'com\.example\.unknown'$/],
    ['a declared type onnxruntime rejects', '0', typeMismatch, /onnxruntime cannot load the model: Type Error: Type \(tensor\(int64\)\) of output arg/],
    ['a declared type onnxruntime rejects (no group)', '0.5', typeMismatch, /onnxruntime cannot load the model: Type Error: Type \(tensor\(int64\)\) of output arg/],
    ['an opset onnxruntime does not support (every group declined)', '0.5', opset99, /onnxruntime cannot load the model: ONNX Runtime only \*guarantees\* support for models stamped with official released onnx opset versions/],
  ])('%s at --ratio %s: exit 1, one line naming the reason, nothing written', async (_what, ratio, make, message) => {
    const dir = freshDir(`ort-${_what.replace(/\W+/g, '_')}-${ratio}`);
    const input = save(make(), path.join(dir, 'in.onnx'));
    const r = await runCliInProcess([input, path.join(dir, 'o.onnx'), '--ratio', ratio]);
    expect(r.code).toBe(1);
    expect(lines(r.stderr)).toEqual([expect.stringMatching(new RegExp(`^onnx-prune: error: ${message.source}`))]);
    expect(filesIn(dir)).toEqual(['in.onnx']);
  });

  test('--ratio 0 stays a byte-identical no-op for a model onnxruntime loads', async () => {
    const dir = freshDir('ratio0');
    const out = path.join(dir, 'o.onnx');
    const r = await runCliInProcess([TINY, out, '--ratio', '0']);
    expect(r.code).toBe(0);
    expect(fs.readFileSync(out).equals(fs.readFileSync(TINY))).toBe(true);
  });
});

describe('--pass plugins run before verification', () => {
  function writeModule(dir: string, name: string, source: string): string {
    const p = path.join(dir, name);
    fs.writeFileSync(p, source);
    return p;
  }

  test('a plugin that corrupts a weight fails verification: exit 3, nothing written', () => {
    const dir = freshDir('plugin-corrupt');
    const mod = writeModule(dir, 'corrupt.js', `
module.exports = {
  name: 'corrupt-weight',
  reads: ['model'],
  writes: ['model'],
  run(ctx) {
    const t = [...ctx.model.graph.initializers.values()].find((x) => x.dtype === 1 && x.dims.length === 4);
    const d = t.toFloat32();
    for (let i = 0; i < d.length; i++) d[i] *= 1.5;
    t.setData(d);
  },
};
`);
    const r = runBuiltCli([TINY, path.join(dir, 'o.onnx'), '--ratio', '0.5', '--pass', mod]);
    expect(r.code).toBe(3);
    expect(lines(r.stderr)).toEqual([expect.stringMatching(/^onnx-prune: error: verification failed: output '.*' differs from the masked model/)]);
    expect(filesIn(dir)).toEqual(['corrupt.js']);
  });

  test('a plugin that makes the model unloadable at --ratio 0 (no verification): exit 1, nothing written', () => {
    const dir = freshDir('plugin-unloadable');
    const mod = writeModule(dir, 'unknown-op.js', `
module.exports = {
  name: 'unknown-op',
  reads: ['model'],
  writes: ['model'],
  run(ctx) {
    const n = ctx.model.graph.nodes.find((x) => x.opType === 'Relu');
    n.proto.domain = 'com.example.unknown';
    n.proto.opType = 'Frobnicate';
    ctx.model.graph.invalidate();
  },
};
`);
    const r = runBuiltCli([TINY, path.join(dir, 'o.onnx'), '--ratio', '0', '--pass', mod]);
    expect(r.code).toBe(1);
    expect(lines(r.stderr)).toEqual([expect.stringMatching(/^onnx-prune: error: onnxruntime cannot load the model: /)]);
    expect(filesIn(dir)).toEqual(['unknown-op.js']);
  });
});
