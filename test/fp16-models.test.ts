/**
 * Fully-float16 models, as onnxconverter-common's convert_float_to_float16 makes them: every Conv / Gemm /
 * MatMul / BatchNormalization / LayerNormalization computes in float16 and every weight and bias is float16,
 * with float16 graph inputs/outputs, or (keep_io_types) float32 ones and Casts at the edges.
 * Built in code, pruned end to end through the CLI: l2 / wanda / fluctuation (the last two add a bias where a
 * bias-less Conv or MatMul gets compensated: it must be float16 too), --target flops, --save-plan/--plan replay
 * and --calib with a float16 .npy. Every run must exit 0 and pass verification; the output loads in onnxruntime,
 * has the input model's output types and shapes, fewer parameters, only float16 float weights, and stays close
 * enough to the dense model.
 */
import * as fs from 'fs';
import * as path from 'path';
import { analyzeGroups } from '../src/pipeline/stages';
import type { GroupAnalysis } from '../src/analysis/types';
import { float16ToFloat32, float32ToFloat16 } from '../src/ir/dtype';
import { loadModel } from '../src/ir/io';
import { onnx as onnxProto } from '../src/ir/proto';
import { toLong, toNumber } from '../src/ir/long';
import { applyPlan } from '../src/prune/apply';
import { cloneModel } from '../src/ir/clone';
import { createSession, ort } from '../src/ort/session';
import { HALF_RTOL_CAP, NOISE_SAFETY, halfTolerance, roundingBudgets } from '../src/verify/rounding';
import { applyCompensation } from '../src/score/compensate';
import { verifyPruned } from '../src/verify/verify';
import { DataType, attr, graph, modelBytes, node, seededRng, tensor, uniform, valueInfo } from './helpers/builder';
import { mkTmp, rmTmp, runCliInProcess } from './helpers/cli';
import { countParams } from './helpers/params';

const H = DataType.FLOAT16;
const F = DataType.FLOAT;

let seed = 700;
/** A float16 initializer, uniform in [-scale, scale) (rounded to half). */
const half = (name: string, dims: number[], scale = 0.5, offset = 0) => {
  const v = uniform(seededRng(seed++), dims.reduce((a, b) => a * b, 1), scale);
  return tensor(name, H, dims, Uint16Array.from(v, (x) => float32ToFloat16(x + offset)));
};
/** A float16 scalar constant. */
const halfScalar = (name: string, v: number) => tensor(name, H, [], Uint16Array.of(float32ToFloat16(v)));

/**
 * (a)/(b) Conv→BatchNormalization→Relu→Conv(no bias)→Relu→GlobalAveragePool→Flatten→Gemm, all float16.
 * `fp32io`: float32 graph input/output with Cast to/from float16 at the edges (keep_io_types).
 */
function cnn(fp32io: boolean): Uint8Array {
  const x = fp32io ? 'x16' : 'x';
  const y = fp32io ? 'y16' : 'y';
  const nodes = [
    ...(fp32io ? [node('Cast', ['x'], ['x16'], [attr.int('to', H)], 'cast_in')] : []),
    node('Conv', [x, 'W1', 'B1'], ['c1'], [attr.ints('pads', [1, 1, 1, 1])], 'conv1'),
    node('BatchNormalization', ['c1', 'bn_s', 'bn_b', 'bn_m', 'bn_v'], ['bn'], [attr.float('epsilon', 1e-5)], 'bn1'),
    node('Relu', ['bn'], ['r1']),
    node('Conv', ['r1', 'W2'], ['c2'], [attr.ints('pads', [1, 1, 1, 1])], 'conv2'),
    node('Relu', ['c2'], ['r2']),
    node('GlobalAveragePool', ['r2'], ['gap']),
    node('Flatten', ['gap'], ['flat'], [attr.int('axis', 1)]),
    node('Gemm', ['flat', 'Wfc', 'Bfc'], [y], [attr.int('transB', 1)], 'fc'),
    ...(fp32io ? [node('Cast', ['y16'], ['y'], [attr.int('to', F)], 'cast_out')] : []),
  ];
  const io = fp32io ? F : H;
  const g = graph({
    name: fp32io ? 'cnn_fp16_fp32io' : 'cnn_fp16',
    nodes,
    inputs: [valueInfo('x', io, ['N', 3, 16, 16])],
    outputs: [valueInfo('y', io, ['N', 10])],
    initializers: [
      half('W1', [32, 3, 3, 3]), half('B1', [32], 0.2),
      half('bn_s', [32], 0.3, 1), half('bn_b', [32], 0.2), half('bn_m', [32], 0.1), half('bn_v', [32], 0.4, 0.6),
      half('W2', [64, 32, 3, 3], 0.1),
      half('Wfc', [10, 64], 0.3), half('Bfc', [10], 0.1),
    ],
  });
  return modelBytes(g, { opset: 17 });
}

/**
 * (c) A pre-LayerNorm transformer MLP block, float16: y = x + (GELU(LN(x)·W1 + b1)·W2 [+ b2]), GELU written
 * with Erf as torch exports it. `bias2 = false` leaves the second MatMul bias-less (its output goes straight
 * into the residual Add), so compensation has to insert a bias Add.
 */
function mlp(bias2: boolean): Uint8Array {
  const nodes = [
    node('LayerNormalization', ['x', 'ln_s', 'ln_b'], ['ln'], [attr.int('axis', -1), attr.float('epsilon', 1e-5)], 'ln'),
    node('MatMul', ['ln', 'W1'], ['h0'], [], 'fc1'),
    node('Add', ['h0', 'b1'], ['h'], [], 'fc1_bias'),
    node('Div', ['h', 'sqrt2'], ['hd']),
    node('Erf', ['hd'], ['he']),
    node('Add', ['he', 'one'], ['he1']),
    node('Mul', ['h', 'he1'], ['hm']),
    node('Mul', ['hm', 'halfc'], ['g']),
    node('MatMul', ['g', 'W2'], [bias2 ? 'o0' : 'o'], [], 'fc2'),
    ...(bias2 ? [node('Add', ['o0', 'b2'], ['o'], [], 'fc2_bias')] : []),
    node('Add', ['x', 'o'], ['y'], [], 'residual'),
  ];
  const g = graph({
    name: bias2 ? 'mlp_fp16' : 'mlp_fp16_nobias',
    nodes,
    inputs: [valueInfo('x', H, ['batch', 'seq', 64])],
    outputs: [valueInfo('y', H, ['batch', 'seq', 64])],
    initializers: [
      half('ln_s', [64], 0.2, 1), half('ln_b', [64], 0.1),
      half('W1', [64, 256], 0.2), half('b1', [256], 0.3),
      halfScalar('sqrt2', Math.SQRT2), halfScalar('one', 1), halfScalar('halfc', 0.5),
      half('W2', [256, 64], 0.1), ...(bias2 ? [half('b2', [64], 0.1)] : []),
    ],
  });
  return modelBytes(g, { opset: 17 });
}

/**
 * (e) A fully convolutional float16 network with a feature-map output (segmentation / detection heads):
 * Conv→BatchNormalization→Relu→Conv(no bias)→Relu→Conv. Many float16 output elements: with the plain float32
 * tolerance its verification failed by one float16 rounding step (max abs diff 0.00195 = 6.1e-4 of the scale).
 * `dtype` FLOAT builds the same network in float32 (for the tolerance tests).
 */
function convHead(dtype: DataType = H): Uint8Array {
  let k = 900; // the same weights for both types
  const t = (name: string, dims: number[], scale = 0.5, offset = 0) => {
    const v = uniform(seededRng(k++), dims.reduce((a, b) => a * b, 1), scale).map((x) => x + offset);
    return dtype === H ? tensor(name, H, dims, Uint16Array.from(v, (x) => float32ToFloat16(x))) : tensor(name, F, dims, v);
  };
  const pads = [attr.ints('pads', [1, 1, 1, 1])];
  const g = graph({
    name: 'conv_head',
    nodes: [
      node('Conv', ['x', 'W1', 'B1'], ['c1'], pads, 'conv1'),
      node('BatchNormalization', ['c1', 'bn_s', 'bn_b', 'bn_m', 'bn_v'], ['bn'], [], 'bn1'),
      node('Relu', ['bn'], ['r1']),
      node('Conv', ['r1', 'W2'], ['c2'], pads, 'conv2'),
      node('Relu', ['c2'], ['r2']),
      node('Conv', ['r2', 'W3', 'B3'], ['y'], pads, 'conv3'),
    ],
    inputs: [valueInfo('x', dtype, ['N', 3, 32, 32])],
    outputs: [valueInfo('y', dtype, ['N', 8, 32, 32])],
    initializers: [
      t('W1', [32, 3, 3, 3]), t('B1', [32], 0.2), t('bn_s', [32], 0.3, 1), t('bn_b', [32], 0.2), t('bn_m', [32], 0.1),
      t('bn_v', [32], 0.4, 0.6), t('W2', [64, 32, 3, 3], 0.1), t('W3', [8, 64, 3, 3], 0.1), t('B3', [8], 0.1),
    ],
  });
  return modelBytes(g, { opset: 17 });
}

/**
 * (f) A deep float16 residual MLP: `blocks` × (x + MatMul(Relu(MatMul(LayerNorm(x), W1)), W2)), 4 rounding stages
 * each (LayerNorm, both MatMuls, the residual Add): the stage bound Σ ε grows to ~10 % of the scale at 24 blocks,
 * far above what rounding really does there.
 */
function deepMlp(blocks = 24): Uint8Array {
  let k = 1300;
  const t = (name: string, dims: number[], scale: number, offset = 0) => {
    const v = uniform(seededRng(k++), dims.reduce((a, b) => a * b, 1), scale).map((x) => x + offset);
    return tensor(name, H, dims, Uint16Array.from(v, (x) => float32ToFloat16(x)));
  };
  const nodes: onnxProto.INodeProto[] = [];
  const inits: onnxProto.ITensorProto[] = [];
  let cur = 'x';
  for (let b = 0; b < blocks; b++) {
    nodes.push(
      node('LayerNormalization', [cur, `ln${b}_s`, `ln${b}_b`], [`ln${b}`], [attr.int('axis', -1)], `ln${b}`),
      node('MatMul', [`ln${b}`, `W1_${b}`], [`h${b}`], [], `fc1_${b}`),
      node('Relu', [`h${b}`], [`r${b}`]),
      node('MatMul', [`r${b}`, `W2_${b}`], [`o${b}`], [], `fc2_${b}`),
      node('Add', [cur, `o${b}`], [`x${b + 1}`], [], `res${b}`),
    );
    inits.push(t(`ln${b}_s`, [32], 0.1, 1), t(`ln${b}_b`, [32], 0.1), t(`W1_${b}`, [32, 64], 0.3), t(`W2_${b}`, [64, 32], 0.1));
    cur = `x${b + 1}`;
  }
  nodes.push(node('Identity', [cur], ['y']));
  const g = graph({
    name: 'deep_mlp_fp16',
    nodes: nodes as onnxProto.NodeProto[],
    inputs: [valueInfo('x', H, ['batch', 'seq', 32])],
    outputs: [valueInfo('y', H, ['batch', 'seq', 32])],
    initializers: inits as onnxProto.TensorProto[],
  });
  return modelBytes(g, { opset: 17 });
}

interface ModelCase {
  file: string;
  bytes: Uint8Array;
  /** Input shape for our own fidelity inputs and the calibration .npy (sample axis first). */
  inputShape: number[];
  /** Extra CLI flags for every run. */
  flags: string[];
  /** Compensation has a bias-less consumer (Conv or MatMul) to give a new bias. */
  addsBias: boolean;
}

// --no-protect-defaults on the CNNs: the stem conv's channels feed the bias-less conv2, the case where
// compensation has to create a bias.
const CASES: ModelCase[] = [
  { file: 'cnn_fp16.onnx', bytes: cnn(false), inputShape: [4, 3, 16, 16], flags: ['--no-protect-defaults'], addsBias: true },
  { file: 'cnn_fp16_fp32io.onnx', bytes: cnn(true), inputShape: [4, 3, 16, 16], flags: ['--no-protect-defaults'], addsBias: true },
  { file: 'mlp_fp16.onnx', bytes: mlp(true), inputShape: [4, 6, 64], flags: [], addsBias: false },
  { file: 'mlp_fp16_nobias.onnx', bytes: mlp(false), inputShape: [4, 6, 64], flags: [], addsBias: true },
  { file: 'conv_head_fp16.onnx', bytes: convHead(), inputShape: [2, 3, 32, 32], flags: ['--no-protect-defaults'], addsBias: true },
];

let tmp: string;
const p = (f: string) => path.join(tmp, f);

/** A .npy (format 1.0) of float16 values. */
function npyFloat16(dims: number[], values: Float32Array): Uint8Array {
  let header = `{'descr': '<f2', 'fortran_order': False, 'shape': (${dims.join(', ')}${dims.length === 1 ? ',' : ''}), }`;
  while ((10 + header.length + 1) % 64 !== 0) header += ' ';
  header += '\n';
  const head = new Uint8Array(10 + header.length);
  head.set([0x93, 0x4e, 0x55, 0x4d, 0x50, 0x59, 1, 0]);
  new DataView(head.buffer).setUint16(8, header.length, true);
  head.set(Buffer.from(header, 'latin1'), 10);
  const data = Uint16Array.from(values, (v) => float32ToFloat16(v));
  const out = new Uint8Array(head.length + data.byteLength);
  out.set(head);
  out.set(new Uint8Array(data.buffer), head.length);
  return out;
}

/** Seeded, zero-centred values (sum of three uniforms), like real normalized inputs. */
function centred(n: number, s: number): Float32Array {
  const next = seededRng(s);
  return Float32Array.from({ length: n }, () => (next() + next() + next() - 1.5) * 1.5);
}

beforeAll(() => {
  tmp = mkTmp('onnx-prune-fp16-');
  for (const c of CASES) {
    fs.writeFileSync(p(c.file), c.bytes);
    const n = c.inputShape.reduce((a, b) => a * b, 1);
    fs.writeFileSync(p(`${c.file}.calib.npy`), npyFloat16([16, ...c.inputShape.slice(1)], centred(16 * (n / c.inputShape[0]), 31)));
  }
});
afterAll(() => rmTmp(tmp));

/** Runs a model file on our own centred inputs (float16 or float32, as the model's input is typed). */
async function runOnCentred(file: string, shape: number[]): Promise<ort.Tensor> {
  const m = loadModel(file);
  const input = m.graph.realInputs[0];
  const isHalf = input.type?.tensorType?.elemType === H;
  const v = centred(shape.reduce((a, b) => a * b, 1), 5);
  const t = isHalf ? new ort.Tensor('float16', Uint16Array.from(v, (x) => float32ToFloat16(x)), shape) : new ort.Tensor('float32', v, shape);
  const session = await createSession(fs.readFileSync(file));
  try {
    const out = await session.run({ [input.name ?? '']: t });
    return out[m.graph.outputs[0].name ?? ''];
  } finally {
    await session.release();
  }
}

function values(t: ort.Tensor): Float64Array {
  const d = t.data as ArrayLike<number>;
  return t.type === 'float16' ? Float64Array.from(d, (h) => float16ToFloat32(h)) : Float64Array.from(d);
}

/** cosine and ‖pruned − dense‖ / ‖dense‖. */
function closeness(dense: ort.Tensor, pruned: ort.Tensor): { cosine: number; relErr: number } {
  const a = values(dense), b = values(pruned);
  let dot = 0, na = 0, nb = 0, nd = 0;
  for (let i = 0; i < a.length; i++) {
    dot += a[i] * b[i];
    na += a[i] * a[i];
    nb += b[i] * b[i];
    nd += (a[i] - b[i]) ** 2;
  }
  return { cosine: dot / Math.sqrt(na * nb), relErr: Math.sqrt(nd / na) };
}

/** Element types of every float initializer and Constant value in the saved model. */
function floatWeightTypes(bytes: Uint8Array): Set<number> {
  const m = onnxProto.ModelProto.decode(bytes);
  const types = new Set<number>();
  const floats = [F, H, DataType.DOUBLE, DataType.BFLOAT16];
  for (const t of m.graph?.initializer ?? []) if (floats.includes(t.dataType ?? 0)) types.add(t.dataType ?? 0);
  for (const n of m.graph?.node ?? []) for (const a of n.attribute ?? []) if (a.t && floats.includes(a.t.dataType ?? 0)) types.add(a.t.dataType ?? 0);
  return types;
}

/**
 * The float32 twin of a float16 model: the same weight values (float16 is exact in float32), every float16
 * type and Cast target float32. Pruning it the same way says what fidelity to expect of the float16 prune.
 */
function float32Twin(bytes: Uint8Array): Uint8Array {
  const m = onnxProto.ModelProto.decode(bytes);
  const g = m.graph!;
  g.initializer = g.initializer.map((t) => {
    if (t.dataType !== H) return t;
    const h = new Uint16Array(Uint8Array.from(t.rawData).buffer);
    return tensor(t.name ?? '', F, (t.dims ?? []).map((d) => toNumber(d)), Float32Array.from(h, (x) => float16ToFloat32(x)));
  });
  for (const vi of [...g.input, ...g.output, ...g.valueInfo]) if (vi.type?.tensorType?.elemType === H) vi.type.tensorType.elemType = F;
  for (const n of g.node) for (const a of n.attribute) if (n.opType === 'Cast' && a.name === 'to' && toNumber(a.i ?? 0) === H) a.i = toLong(F);
  return onnxProto.ModelProto.encode(m).finish();
}

interface Checked {
  report: Record<string, any>;
  cosine: number;
  relErr: number;
}

/**
 * Prunes `c` with `args` and checks the result: exit 0, verification passed, fewer params, float weights all of
 * `weightType`, the input model's output types and shapes, finite outputs in onnxruntime; returns the fidelity.
 */
async function pruneAndCheck(c: ModelCase, out: string, args: string[], weightType: number = H): Promise<Checked> {
  const r = await runCliInProcess([p(c.file), p(out), '--json', ...c.flags, ...args]);
  if (r.code !== 0) throw new Error(`exit ${r.code}: ${r.stderr.trim()} ${r.stdout.slice(0, 2000)}`);
  const report = JSON.parse(r.stdout);
  expect({ passed: report.verify?.passed, error: report.verify?.error }).toEqual({ passed: true, error: undefined });
  expect(report.verify.skipped).toBeUndefined();
  const outBytes = fs.readFileSync(p(out));
  expect(countParams(outBytes).total).toBeLessThan(countParams(c.bytes).total);
  expect(report.params.after).toBeLessThan(report.params.before);
  // No float32 weight sneaks into a float16 model (a created bias has the weight's type).
  expect([...floatWeightTypes(outBytes)]).toEqual([weightType]);
  // The output's declared and actual types/shapes equal the input model's.
  const declared = (file: string) => loadModel(file).graph.outputs.map((o) => [o.name, o.type?.tensorType?.elemType, (o.type?.tensorType?.shape?.dim ?? []).map((d) => d.dimParam || toNumber(d.dimValue ?? 0))]);
  expect(declared(p(out))).toEqual(declared(p(c.file)));
  const dense = await runOnCentred(p(c.file), c.inputShape);
  const pruned = await runOnCentred(p(out), c.inputShape);
  expect([pruned.type, pruned.dims]).toEqual([dense.type, dense.dims]);
  expect(values(pruned).every(Number.isFinite)).toBe(true);
  const fid = closeness(dense, pruned);
  // The verification run's own fidelity: still positively correlated with the dense model.
  expect(report.fidelity.cosine).toBeGreaterThan(0);
  return { report, ...fid };
}

const METHODS = ['l2', 'wanda', 'fluctuation'] as const;

describe.each(CASES)('$file', (c) => {
  test.each(METHODS.flatMap((m) => [0.3, 0.5].map((ratio) => [m, ratio] as const)))('--importance %s --ratio %s', async (method, ratio) => {
    const out = `${c.file}.${method}.${ratio}.onnx`;
    const r = await pruneAndCheck(c, out, ['--importance', method, '--ratio', String(ratio)]);
    // Fidelity as good as pruning the float32 twin the same way (up to float16 noise and near-tie selections).
    const twin = { ...c, file: `${c.file}.fp32.onnx`, bytes: float32Twin(c.bytes) };
    fs.writeFileSync(p(twin.file), twin.bytes);
    const r32 = await pruneAndCheck(twin, `${twin.file}.${method}.${ratio}.onnx`, ['--importance', method, '--ratio', String(ratio)], F);
    expect(r.cosine).toBeGreaterThan(r32.cosine - 0.02);
    if (method !== 'l2') {
      // Bias compensation was applied and did not turn the model into garbage: at most a little worse than
      // the same selection without compensation.
      expect(r.report.compensation?.consumers).toBeGreaterThan(0);
      // A created bias is float16 like the weights (pruneAndCheck checks every float weight's type).
      if (c.addsBias) expect(r.report.compensation.biasesAdded).toBeGreaterThan(0);
      const plain = await pruneAndCheck(c, `${out}.nocomp.onnx`, ['--importance', method, '--ratio', String(ratio), '--no-compensate']);
      expect(r.relErr).toBeLessThan(plain.relErr * 1.25 + 0.05);
    }
  });

  test('--target flops', async () => {
    const r = await pruneAndCheck(c, `${c.file}.flops.onnx`, ['--target', 'flops', '--ratio', '0.4']);
    expect(r.report.flops.after).toBeLessThan(r.report.flops.before);
  });

  test('--save-plan then --plan (wanda, compensated) is byte-identical', async () => {
    const plan = p(`${c.file}.plan.json`);
    await pruneAndCheck(c, `${c.file}.planned.onnx`, ['--importance', 'wanda', '--ratio', '0.5', '--save-plan', plan]);
    await pruneAndCheck(c, `${c.file}.replayed.onnx`, ['--plan', plan]);
    expect(Buffer.compare(fs.readFileSync(p(`${c.file}.planned.onnx`)), fs.readFileSync(p(`${c.file}.replayed.onnx`)))).toBe(0);
  });

  test('--calib with a float16 .npy (fluctuation, compensated)', async () => {
    const r = await pruneAndCheck(c, `${c.file}.calib.onnx`, ['--importance', 'fluctuation', '--ratio', '0.3', '--calib', p(`${c.file}.calib.npy`)]);
    expect(r.cosine).toBeGreaterThan(0.6);
  });
});

describe('float16 verification tolerance and compensation', () => {
  /** The analysis and a plan removing `units` from every group of the model in `bytes`. */
  async function planned(bytes: Uint8Array, units: number[]) {
    const dense = loadModel(bytes);
    const analysis = await analyzeGroups(dense);
    const plan = Object.fromEntries(analysis.groups.map((g) => [g.id, units]));
    return { dense, analysis, plan };
  }
  const touched = (a: GroupAnalysis) => new Set(a.groups.flatMap((g) => g.members.map((m) => m.node)));

  test('the budget counts the half-precision rounding stages from the first pruned node; float32 has none', async () => {
    const half16 = await planned(convHead(), [0]);
    // conv1 (its output channels are pruned), bn1, conv2, conv3: four float16 roundings; the Relus are exact.
    expect(roundingBudgets(half16.dense, touched(half16.analysis)).get('y')).toEqual({ stages: 4, rtol: 4 * 2 ** -10, epsilon: 2 ** -10 });
    const float32 = await planned(convHead(F), [0]);
    expect(roundingBudgets(float32.dense, touched(float32.analysis)).size).toBe(0);
    // Nothing pruned: no stage can differ.
    expect(roundingBudgets(half16.dense, new Set()).size).toBe(0);
    // With float32 I/O, the edge Casts: the input Cast is before the pruned nodes, the output Cast widens (exact).
    const io = await planned(cnn(true), [0]);
    const b = roundingBudgets(io.dense, touched(io.analysis));
    expect(b.get('y')).toEqual(b.get('y16'));
    expect(b.get('y')!.stages).toBeGreaterThanOrEqual(3); // conv2, fc (and conv1/bn1 when its group is planned)
  });

  test('a compensated bias beyond float16 range is skipped, not written as infinity', async () => {
    for (const [make, nodeId, channels] of [[() => mlp(false), 'o', 64], [() => convHead(), 'c2', 64]] as const) {
      const { dense, analysis } = await planned(make(), [0]);
      const huge = applyCompensation(cloneModel(dense), analysis, [{ node: nodeId, input: 1, delta: Array(channels).fill(1e5) }]);
      expect(huge.biasesAdded).toBe(0);
      expect(huge.skipped).toEqual([{ node: nodeId, reason: expect.stringMatching(/overflows float16/) }]);
      const model = cloneModel(dense);
      const fine = applyCompensation(model, analysis, [{ node: nodeId, input: 1, delta: Array(channels).fill(0.25) }]);
      expect(fine).toMatchObject({ biasesAdded: 1, consumers: 1, skipped: [] });
      const added = [...model.graph.initializers.values()].filter((t) => !dense.graph.initializers.has(t.name));
      expect(added.map((t) => [t.dtype, t.dims, t.toFloat32()[0]])).toEqual([[H, [channels], 0.25]]);
    }
  });

  test.each([['conv_head', () => convHead()], ['mlp', () => mlp(true)]] as const)('%s: a wrong unit removed still fails verification', async (_name, make) => {
    const { dense, analysis, plan } = await planned(make(), [0]);
    const pruned = cloneModel(dense);
    applyPlan(pruned, analysis, plan);
    // Correct: passes (within the budget).
    const ok = await verifyPruned(dense, pruned, analysis, plan, { batch: 2 });
    expect(ok.verify.passed).toBe(true);
    // Compared against a model masking unit 1 instead of 0: one channel off must not hide in the budget.
    const wrong = Object.fromEntries(Object.keys(plan).map((k) => [k, [1]]));
    const bad = await verifyPruned(dense, pruned, analysis, wrong, { batch: 2 });
    expect(bad.verify.passed).toBe(false);
    expect(bad.verify.error).toMatch(/half-precision rounding budget/);
    const out = bad.verify.outputs[0];
    expect(out.maxAbsDiff / out.scale).toBeGreaterThan(3 * out.rounding!.rtol);
  });

  test('the tolerance is the measured noise floor × NOISE_SAFETY, at least one step, at most the stage bound and 1 %', () => {
    const deep = { rtol: 96 * 2 ** -10, stages: 96, epsilon: 2 ** -10 };
    expect(halfTolerance(deep, 5e-4)).toEqual({ stages: 96, bound: deep.rtol, noiseFloor: 5e-4, rtol: NOISE_SAFETY * 5e-4, limitedBy: 'noise' });
    expect(halfTolerance(deep, 1e-5)).toMatchObject({ rtol: 2 ** -10, limitedBy: 'epsilon' });
    expect(halfTolerance(deep, 0.01)).toMatchObject({ rtol: HALF_RTOL_CAP, limitedBy: 'cap' });
    // Not measured (the perturbed model did not run): the ceiling.
    expect(halfTolerance(deep, undefined)).toEqual({ stages: 96, bound: deep.rtol, rtol: HALF_RTOL_CAP, limitedBy: 'cap' });
    const shallow = { rtol: 3 * 2 ** -10, stages: 3, epsilon: 2 ** -10 };
    expect(halfTolerance(shallow, 1e-3)).toMatchObject({ rtol: 3 * 2 ** -10, limitedBy: 'stages' });
  });

  test('conv_head: the measured floor sets the tolerance, reported in the comparison and in verify.weakened', async () => {
    const { dense, analysis, plan } = await planned(convHead(), [0]);
    const pruned = cloneModel(dense);
    applyPlan(pruned, analysis, plan);
    const r = await verifyPruned(dense, pruned, analysis, plan, { batch: 2 });
    expect(r.verify.passed).toBe(true);
    const y = r.verify.outputs[0];
    const rd = y.rounding!;
    expect(rd.noiseFloor).toBeGreaterThan(0);
    expect(rd.bound).toBe(4 * 2 ** -10);
    expect(rd.rtol).toBe(Math.min(rd.bound, Math.max(2 ** -10, NOISE_SAFETY * rd.noiseFloor!)));
    expect(r.verify.weakened).toEqual([{
      kind: 'rounding-budget', output: 'y', tolerance: rd.rtol,
      detail: expect.stringMatching(/^tolerance \S+ of its scale instead of 0.0001 for float16\/bfloat16 rounding \(4 stage\(s\); measured noise floor \S+ × 4/),
    }]);
  });

  test('a deep float16 network: a wrong unit the stage bound (~10 %) would hide fails at the measured tolerance', async () => {
    const bytes = deepMlp();
    const dense = loadModel(bytes);
    const analysis = await analyzeGroups(dense);
    // The first block's hidden units: 95 rounding stages follow them.
    const first = analysis.groups.find((g) => g.members.some((m) => m.node === 'h0'))!;
    const plan = { [first.id]: [0] };
    const pruned = cloneModel(dense);
    applyPlan(pruned, analysis, plan);
    const ok = await verifyPruned(dense, pruned, analysis, plan, { batch: 2 });
    expect(ok.verify.passed).toBe(true);
    const rd = ok.verify.outputs[0].rounding!;
    expect(rd.stages).toBe(95);
    expect(rd.bound).toBeGreaterThan(0.09);
    expect(rd.rtol).toBeLessThan(HALF_RTOL_CAP / 2);
    // Compared against a model masking unit 1 instead: 8.5 % of the scale off, inside the stage bound.
    const bad = await verifyPruned(dense, pruned, analysis, { [first.id]: [1] }, { batch: 2 });
    const out = bad.verify.outputs[0];
    expect(out.maxAbsDiff / out.scale).toBeGreaterThan(0.05);
    expect(out.maxAbsDiff / out.scale).toBeLessThan(out.rounding!.bound);
    expect(bad.verify.passed).toBe(false);
    expect(bad.verify.error).toMatch(/half-precision rounding budget .* of 95 float16\/bfloat16 stage\(s\); measured noise floor/);
  });
});
