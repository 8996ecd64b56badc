/**
 * Input sizes for shape measurement and verification, the tolerance for saturating outputs, and the
 * "nothing prunable" outcome, on tiny models built in code (the real-model counterparts are in
 * npm-models-prune.test.ts, which needs the npm registry).
 */
import * as fs from 'fs';
import * as path from 'path';
import { concreteShapes, probeCandidates } from '../src/analysis/shape-source';
import { OrtShapeProbe } from '../src/ort/shape-probe';
import { UserError } from '../src/ir/errors';
import { loadModel } from '../src/ir/io';
import { applyPlan } from '../src/prune/apply';
import { cloneModel } from '../src/ir/clone';
import { nothingPrunedNote } from '../src/prune/explain';
import type { OutputComparison } from '../src/verify/compare';
import { calibBatches, loadCalibration, prepareCalibration } from '../src/ort/calib';
import { captureStats, statKey } from '../src/ort/capture';
import { ortErrorSummary } from '../src/ort/errors';
import { activationTaps, widenToActivationInput } from '../src/verify/tolerance';
import { verifyPruned } from '../src/verify/verify';
import { DEFAULT_INT_RANGE, VERIFY_SEQ_LADDER, intInputRanges, runOnAcceptedInputs, verificationFeeds } from '../src/ort/feeds';
import { mkTmp, rmTmp, runCliInProcess } from './helpers/cli';
import { DataType, attr, floatTensor, graph, int64Tensor, modelBytes, node, seededRng, uniform, valueInfo } from './helpers/builder';
import { analysisOf, group, units, w } from './prune-fixtures';

const f = (name: string, dims: number[], seed: number, scale = 0.5) =>
  floatTensor(name, dims, uniform(seededRng(seed), dims.reduce((a, b) => a * b, 1), scale));

/** x[batch, seq] → reflect Pad by `pad` on each side → Conv(1→8) → Relu → Conv(8→4): needs seq > pad. */
function reflectModel(pad = 16) {
  const g = graph({
    nodes: [
      node('Pad', ['x', 'pads'], ['p'], [attr.string('mode', 'reflect')]),
      node('Unsqueeze', ['p', 'ax1'], ['u']),
      node('Conv', ['u', 'W1', 'B1'], ['c1'], [], 'conv1'),
      node('Relu', ['c1'], ['r1']),
      node('Conv', ['r1', 'W2', 'B2'], ['y'], [], 'conv2'),
    ],
    inputs: [valueInfo('x', DataType.FLOAT, ['batch', 'seq'])],
    outputs: [valueInfo('y', DataType.FLOAT, ['batch', 4, 'len'])],
    initializers: [int64Tensor('pads', [4], [0, pad, 0, pad]), int64Tensor('ax1', [1], [1]),
      f('W1', [8, 1, 3], 1), f('B1', [8], 2), f('W2', [4, 8, 3], 3), f('B2', [4], 4)],
  });
  const model = loadModel(modelBytes(g));
  const analysis = analysisOf([group('c1', 8, [w('W1', 'c1', 1, 0, 'out', units(8)), w('B1', 'c1', 2, 0, 'out', units(8)), w('W2', 'y', 1, 1, 'in', units(8))])]);
  return { model, analysis };
}

/** x[batch, 8] → Gemm(16) → Relu → Gemm(1, bias −30) → Sigmoid: the output is ~1e-13, its input ~−30. */
function saturatingModel() {
  const g = graph({
    nodes: [
      node('Gemm', ['x', 'W1', 'B1'], ['h'], [attr.int('transB', 1)], 'fc1'),
      node('Relu', ['h'], ['r']),
      node('Gemm', ['r', 'W2', 'B2'], ['logit'], [attr.int('transB', 1)], 'fc2'),
      node('Sigmoid', ['logit'], ['y']),
    ],
    inputs: [valueInfo('x', DataType.FLOAT, ['batch', 8])],
    outputs: [valueInfo('y', DataType.FLOAT, ['batch', 1])],
    initializers: [f('W1', [16, 8], 11), f('B1', [16], 12), f('W2', [1, 16], 13), floatTensor('B2', [1], [-30])],
  });
  const model = loadModel(modelBytes(g));
  const analysis = analysisOf([group('h', 16, [w('W1', 'h', 1, 0, 'out', units(16)), w('B1', 'h', 2, 0, 'out', units(16)), w('W2', 'logit', 1, 1, 'in', units(16))])]);
  return { model, analysis };
}

/**
 * A BERT-like embedding front end: input_ids index a 100-row word table, token_type_ids a 2-row table,
 * position_ids (+ 2, as RoBERTa offsets them) an 18-row table; attention_mask multiplies the embeddings; `lengths`
 * masks positions ≥ length (compared with a Range over the sequence). Then Gemm-like MatMul(32) → Relu → MatMul(4).
 */
function bertLike() {
  const D = 16;
  const g = graph({
    nodes: [
      node('Gather', ['word_emb', 'input_ids'], ['we'], [], 'word_embeddings'),
      node('Gather', ['type_emb', 'token_type_ids'], ['te'], [], 'token_type_embeddings'),
      node('Cast', ['position_ids'], ['pos64'], [attr.int('to', DataType.INT64)]),
      node('Add', ['pos64', 'two'], ['pos']),
      node('Gather', ['pos_emb', 'pos'], ['pe'], [], 'position_embeddings'),
      node('Add', ['we', 'te'], ['e1']),
      node('Add', ['e1', 'pe'], ['e2']),
      node('Cast', ['attention_mask'], ['mask_f'], [attr.int('to', DataType.FLOAT)]),
      node('Unsqueeze', ['mask_f', 'ax2'], ['mask_u']),
      node('Shape', ['input_ids'], ['ids_shape']),
      node('Gather', ['ids_shape', 'one'], ['seq_len'], [attr.int('axis', 0)]),
      node('Range', ['zero', 'seq_len', 'one'], ['positions']),
      node('Unsqueeze', ['lengths', 'ax1'], ['len_u']),
      node('Less', ['positions', 'len_u'], ['valid']),
      node('Cast', ['valid'], ['valid_f'], [attr.int('to', DataType.FLOAT)]),
      node('Unsqueeze', ['valid_f', 'ax2'], ['valid_u']),
      node('Mul', ['e2', 'mask_u'], ['e3']),
      node('Mul', ['e3', 'valid_u'], ['e4']),
      node('MatMul', ['e4', 'W1'], ['h'], [], 'fc1'),
      node('Relu', ['h'], ['r']),
      node('MatMul', ['r', 'W2'], ['y'], [], 'fc2'),
    ],
    inputs: [
      valueInfo('input_ids', DataType.INT64, ['batch', 'seq']), valueInfo('token_type_ids', DataType.INT64, ['batch', 'seq']),
      valueInfo('position_ids', DataType.INT32, ['batch', 'seq']), valueInfo('attention_mask', DataType.INT64, ['batch', 'seq']),
      valueInfo('lengths', DataType.INT64, ['batch']),
    ],
    outputs: [valueInfo('y', DataType.FLOAT, ['batch', 'seq', 4])],
    initializers: [
      f('word_emb', [100, D], 31), f('type_emb', [2, D], 32), f('pos_emb', [18, D], 33), int64Tensor('two', [], [2]),
      int64Tensor('ax1', [1], [1]), int64Tensor('ax2', [1], [2]), int64Tensor('zero', [], [0]), int64Tensor('one', [], [1]),
      f('W1', [D, 32], 34), f('W2', [32, 4], 35),
    ],
  });
  const model = loadModel(modelBytes(g, { opset: 17 }));
  const analysis = analysisOf([group('fc1', 32, [w('W1', 'h', 1, 1, 'out', units(32)), w('W2', 'y', 1, 0, 'in', units(32))], 'neuron')]);
  return { model, analysis };
}

describe('integer input ranges', () => {
  test('each integer input gets its own range: its table, a sequence length, or {0, 1}', () => {
    const { model } = bertLike();
    const r = intInputRanges(model, 8);
    expect(r).toEqual({
      input_ids: { low: 0, high: 100, from: 'Gather(word_embeddings) rows' },
      token_type_ids: { low: 0, high: 2, from: 'Gather(token_type_embeddings) rows' },
      // Cast, then + 2 into 18 rows: 0..15.
      position_ids: { low: 0, high: 16, from: 'Gather(position_embeddings) rows' },
      attention_mask: DEFAULT_INT_RANGE,
      // Compared with positions 0..seq−1: a length in 1..seq.
      lengths: { low: 1, high: 9, from: 'compared with Range (a length)' },
    });
    expect(intInputRanges(model, 64).lengths).toEqual({ low: 1, high: 65, from: 'compared with Range (a length)' });
  });

  test('the seeded inputs use them (deterministically), and verification reports them', async () => {
    const { model, analysis } = bertLike();
    const feeds = verificationFeeds(model, { seed: 3 });
    const vals = (name: string) => Array.from(feeds[name].data as ArrayLike<number | bigint>, Number);
    const ranges = intInputRanges(model, 8);
    for (const [name, { low, high }] of Object.entries(ranges)) {
      expect({ name, min: Math.min(...vals(name)) >= low, max: Math.max(...vals(name)) < high }).toEqual({ name, min: true, max: true });
    }
    // Token ids are no longer limited by the smallest table (the 2-row token types): 16 draws from 0..99.
    expect(Math.max(...vals('input_ids'))).toBeGreaterThan(20);
    expect(vals('attention_mask').every((v) => v === 0 || v === 1)).toBe(true);
    expect(Array.from(verificationFeeds(model, { seed: 3 }).input_ids.data as BigInt64Array)).toEqual(Array.from(feeds.input_ids.data as BigInt64Array));
    const pruned = cloneModel(model);
    applyPlan(pruned, analysis, { fc1: [1, 4, 9] });
    const v = await verifyPruned(model, pruned, analysis, { fc1: [1, 4, 9] });
    expect(v.verify.passed).toBe(true);
    expect(v.verify.inputs.intRanges).toEqual(ranges);
    expect(v.verify.weakened).toEqual([]);
  });

  test('a model with one integer input keeps the range it had (the table it indexes)', () => {
    const g = graph({
      nodes: [node('Gather', ['emb', 'ids'], ['e']), node('MatMul', ['e', 'W'], ['y'])],
      inputs: [valueInfo('ids', DataType.INT64, ['batch', 'seq'])],
      outputs: [valueInfo('y', DataType.FLOAT, ['batch', 'seq', 4])],
      initializers: [f('emb', [256, 8], 41), f('W', [8, 4], 42)],
    });
    const model = loadModel(modelBytes(g));
    expect(intInputRanges(model, 8)).toEqual({ ids: { low: 0, high: 256, from: 'Gather(Gather(e)) rows' } });
    const ids = Array.from(verificationFeeds(model).ids.data as BigInt64Array, Number);
    expect(Math.max(...ids)).toBeLessThan(256);
    expect(Math.max(...ids)).toBeGreaterThan(2);
  });
});

describe('verification inputs', () => {
  test('default sizes the model rejects: the ladder finds one it accepts and says so', async () => {
    const { model } = reflectModel();
    const r = await runOnAcceptedInputs(model);
    expect(r.feeds.x.dims).toEqual([2, VERIFY_SEQ_LADDER[1]]);
    expect(r.note).toMatch(/does not run with the default input sizes \(x\[2,8\]: Pad .*reflect.*\); verified with symbolic dims = 64/);
    expect(r.outputs.y.dims[0]).toBe(2);
  });

  test('verifyPruned uses the accepted sizes; user-chosen sizes are used as given, a rejected one is a UserError', async () => {
    const { model, analysis } = reflectModel();
    const pruned = cloneModel(model);
    applyPlan(pruned, analysis, { c1: [1, 5] });
    const r = await verifyPruned(model, pruned, analysis, { c1: [1, 5] });
    expect(r.verify.passed).toBe(true);
    expect(r.verify.inputs.shapes.x).toEqual([2, 64]);
    expect(r.verify.inputs.note).toBeDefined();
    const mine = await verifyPruned(model, pruned, analysis, { c1: [1, 5] }, { seq: 40, batch: 1 });
    expect(mine.verify.inputs.shapes.x).toEqual([1, 40]);
    expect(mine.verify.inputs.note).toBeUndefined();
    const bad = verifyPruned(model, pruned, analysis, { c1: [1, 5] }, { seq: 8 });
    await expect(bad).rejects.toThrow(UserError);
    await expect(bad).rejects.toThrow(/^verification: the model does not run on the verification inputs \(x\[2,8\]: Pad .*\); set --verify-seq/);
  });

  test('a model that runs on no size is a one-line UserError naming --verify-seq', async () => {
    const { model } = reflectModel(100000);
    await expect(runOnAcceptedInputs(model)).rejects.toThrow(/^verification: .*\(\d+ sizes, largest x\[2,\d+\]: .*\); set --verify-seq N/);
  });
});

test('calibration inputs the model rejects are a one-line UserError, not an internal error', async () => {
  const { model } = reflectModel(16); // a reflect Pad of 16 needs 17 samples per row: the default size 8 is too small
  const calib = loadCalibration(model, { seed: 0, randomSamples: 4 });
  const run = captureStats(model, calib, [{ tensor: 'c1', axis: 1 }], { quiet: true });
  await expect(run).rejects.toThrow(UserError);
  await expect(run).rejects.toThrow(/^calibration: onnxruntime cannot run the model on the random calibration inputs x\[4,8\] \(Pad .*\); give --calib data/);
});

test('random calibration without a file runs at the sizes verification finds, or at the user-chosen seq', async () => {
  const { model } = reflectModel(16);
  const calib = await prepareCalibration(model, { seed: 0, randomSamples: 6 });
  expect(calib.seq).toBe(VERIFY_SEQ_LADDER.find((s) => s > 16));
  const stats = await captureStats(model, calib, [{ tensor: 'c1', axis: 1 }], { batch: 4, quiet: true });
  // 6 samples in batches of 4 and 2, each row padded to seq + 32 and convolved (kernel 3).
  expect(stats.get(statKey('c1', 1))!.count).toBe(6 * (calib.seq! + 32 - 2));
  const mine = await prepareCalibration(model, { seed: 0, seq: 40 });
  expect(mine.seq).toBe(40);
  expect([...calibBatches(mine, 16)][0].x.dims).toEqual([16, 40]);
  // A size the model rejects, chosen by the user, fails when calibrating (a UserError naming the inputs).
  await expect(captureStats(model, await prepareCalibration(model, { seq: 8 }), [{ tensor: 'c1', axis: 1 }], { quiet: true })).rejects.toThrow(UserError);
});

describe('shape measurement probes', () => {
  test('candidates: distinct small dims first, then the user sizes, scaled and uniform ones', () => {
    const { model } = reflectModel();
    const c = probeCandidates(model, { seq: 40, batch: 1 });
    expect(c.map((s) => s.x)).toEqual([[3, 5], [1, 40], [3, 160], [3, 640], [1, 64], [1, 256], [1, 1024]]);
  });

  test('onnxruntime measurement retries larger probes; the user sizes come right after the small ones', async () => {
    const { model } = reflectModel();
    expect((await concreteShapes(model, { mode: 'ort', probe: OrtShapeProbe.open })).inputShapes.x).toEqual([3, 160]);
    const t = await concreteShapes(model, { mode: 'ort', seq: 40, batch: 1, probe: OrtShapeProbe.open });
    expect(t.inputShapes.x).toEqual([1, 40]);
    expect(t.shapes.get('y')).toEqual([1, 4, 40 + 32 - 4]);
  });

  test('no probe runs: a one-line UserError that names the options', async () => {
    const { model } = reflectModel(100000);
    await expect(concreteShapes(model, { mode: 'ort', probe: OrtShapeProbe.open })).rejects.toThrow(/^onnxruntime cannot run the model to measure shapes on any of \d+ probe input sizes .*--verify-seq N/);
  });
});

describe('tolerance of saturating outputs', () => {
  test('the output of a Sigmoid is judged at its input\'s scale, and the input is checked too', async () => {
    const { model, analysis } = saturatingModel();
    expect(activationTaps(model)).toEqual([{ output: 'y', input: 'logit', op: 'Sigmoid', gain: 0.25 }]);
    const plan = { h: [0, 3, 7] };
    const pruned = cloneModel(model);
    applyPlan(pruned, analysis, plan);
    const r = await verifyPruned(model, pruned, analysis, plan);
    expect(r.verify.passed).toBe(true);
    expect(r.verify.outputs[0].scale).toBeLessThan(1e-9);
    expect(r.verify.outputs[0].toleranceScale).toBeGreaterThan(5);
    expect(r.verify.activationInputs?.map((a) => [a.name, a.activationOf])).toEqual([['logit', 'Sigmoid → y']]);
  });

  test('the tap is found through layout and mean ops after the activation (Sigmoid → Squeeze → ReduceMean → Unsqueeze)', async () => {
    // Like Silero VAD's head: the mean over time of a saturated Sigmoid. Judged against max|y| alone (~1e-13), the
    // rounding of the logits would fail; through the tap it passes, and the logits are still checked strictly.
    const g = graph({
      nodes: [
        node('Gemm', ['x', 'W1', 'B1'], ['h'], [attr.int('transB', 1)], 'fc1'),
        node('Relu', ['h'], ['r']),
        node('Gemm', ['r', 'W2', 'B2'], ['logit'], [attr.int('transB', 1)], 'fc2'),
        node('Sigmoid', ['logit'], ['p']),
        node('Squeeze', ['p', 'axT'], ['sq']),
        node('ReduceMean', ['sq'], ['mean'], [attr.ints('axes', [0]), attr.int('keepdims', 0)]),
        node('Unsqueeze', ['mean', 'ax'], ['y']),
      ],
      inputs: [valueInfo('x', DataType.FLOAT, ['batch', 8])],
      outputs: [valueInfo('y', DataType.FLOAT, [1])],
      initializers: [f('W1', [16, 8], 11), f('B1', [16], 12), f('W2', [1, 16], 13), floatTensor('B2', [1], [-30]), int64Tensor('ax', [1], [0]), int64Tensor('axT', [1], [1])],
    });
    const model = loadModel(modelBytes(g, { opset: 17 }));
    expect(activationTaps(model)).toEqual([{ output: 'y', input: 'logit', op: 'Sigmoid', gain: 0.25 }]);
    const analysis = analysisOf([group('h', 16, [w('W1', 'h', 1, 0, 'out', units(16)), w('B1', 'h', 2, 0, 'out', units(16)), w('W2', 'logit', 1, 1, 'in', units(16))])]);
    const plan = { h: [0, 3, 7] };
    const pruned = cloneModel(model);
    applyPlan(pruned, analysis, plan);
    const r = await verifyPruned(model, pruned, analysis, plan);
    expect(r.verify.passed).toBe(true);
    expect(r.verify.activationInputs?.map((a) => [a.name, a.activationOf])).toEqual([['logit', 'Sigmoid → y']]);
  });

  test('a wrong group changes the logits by far more than rounding: caught even though the output is ~0', async () => {
    const { model, analysis } = saturatingModel();
    const broken = analysisOf([{ ...analysis.groups[0], members: analysis.groups[0].members.map((m) => (m.kind === 'weight' && m.role === 'in' ? { ...m, indices: [...m.indices].reverse() } : m)) }]);
    const plan = { h: [0, 3, 7] };
    const pruned = cloneModel(model);
    applyPlan(pruned, broken, plan);
    const r = await verifyPruned(model, pruned, broken, plan);
    expect(r.verify.passed).toBe(false);
    expect(r.verify.error).toMatch(/'logit' \(input of Sigmoid → y\) differs from the masked model/);
    // Judged at the logits' scale, the ~1e-13 output moves by far less than the tolerance: only 'logit' sees it.
    expect(r.verify.outputs[0].maxRelDiff).toBeLessThan(r.verify.rtol);
  });

  test('widening: rtol · max(max|y|, L · max|x|)', () => {
    const c: OutputComparison = { name: 'y', dims: [1], scale: 2e-7, maxAbsDiff: 1e-7, maxRelDiff: 0.5, cosine: 1 };
    const x: OutputComparison = { name: 'x', dims: [1], scale: 30, maxAbsDiff: 1e-6, maxRelDiff: 1e-6 / 30, cosine: 1 };
    const wide = widenToActivationInput(c, { output: 'y', input: 'x', op: 'Sigmoid', gain: 0.25 }, x);
    expect(wide.toleranceScale).toBe(7.5);
    expect(wide.maxRelDiff).toBeCloseTo(1e-7 / 7.5, 15);
    // An output already larger than L · max|x| keeps its own scale.
    const big = { ...c, scale: 10, maxRelDiff: 1e-8 };
    expect(widenToActivationInput(big, { output: 'y', input: 'x', op: 'Sigmoid', gain: 0.25 }, x)).toBe(big);
  });
});

describe('nothing prunable', () => {
  let tmp: string;
  beforeAll(() => { tmp = mkTmp('onnx-prune-nothing-'); });
  afterAll(() => rmTmp(tmp));

  /** All the work happens inside an If on a bool input; the weight is a main-graph initializer. */
  function ifOnly(): Uint8Array {
    const branch = (name: string, op: string) => graph({
      name,
      nodes: [node('MatMul', ['x', 'W'], [`${name}_m`]), node(op, [`${name}_m`], [`${name}_y`])],
      inputs: [],
      outputs: [valueInfo(`${name}_y`, DataType.FLOAT, ['batch', 4])],
    });
    return modelBytes(graph({
      nodes: [node('If', ['cond'], ['y'], [attr.graph('then_branch', branch('then', 'Relu')), attr.graph('else_branch', branch('else', 'Sigmoid'))])],
      inputs: [valueInfo('x', DataType.FLOAT, ['batch', 6]), valueInfo('cond', DataType.BOOL, [])],
      outputs: [valueInfo('y', DataType.FLOAT, ['batch', 4])],
      initializers: [f('W', [6, 4], 21)],
    }));
  }

  test('the note says the weights are only used inside If branches', () => {
    const model = loadModel(ifOnly());
    const note = nothingPrunedNote(model, { groups: [], declined: [], summary: { totalParams: 24, prunableParams: 0, groups: 0, declined: 0 } }, { ratio: 0.3 });
    expect(note).toBe('nothing to prune: the analysis found no channel groups (in the main graph or its subgraphs); 24 of 24 params (100.0 %) are only used inside If branches');
  });

  test('the CLI exits 0, writes the model unchanged and warns once on stderr', async () => {
    const input = path.join(tmp, 'if.onnx');
    const out = path.join(tmp, 'if-out.onnx');
    fs.writeFileSync(input, ifOnly());
    const r = await runCliInProcess([input, out, '--ratio', '0.3', '--json']);
    expect(r.code).toBe(0);
    const rep = JSON.parse(r.stdout);
    expect(rep.groups.note).toMatch(/only used inside If branches/);
    expect(rep.warnings).toEqual([expect.stringMatching(/^nothing to prune: .*; the output is the input model unchanged$/)]);
    expect(rep.verify).toMatchObject({ passed: true, skipped: expect.stringMatching(/nothing was pruned/), outputs: [] });
    expect(fs.readFileSync(out).equals(fs.readFileSync(input))).toBe(true);
    const plain = await runCliInProcess([input, path.join(tmp, 'if-out2.onnx'), '--ratio', '0.3']);
    expect(plain.code).toBe(0);
    expect(plain.stderr).toMatch(/^onnx-prune: warning: nothing to prune: .*\n$/);
  });
});

test('ORT error messages are shortened to the op, the node and what went wrong', () => {
  const msg = "Non-zero status code returned while running Add node. Name:'p2o.Add.252' Status Message: /onnxruntime_src/onnxruntime/core/providers/cpu/math/element_wise_ops.h:563 void onnxruntime::BroadcastIterator::Init(ptrdiff_t, ptrdiff_t) axis == 1 || axis == largest was false. Attempting to broadcast an axis by a dimension other than 1. 2 by 8";
  expect(ortErrorSummary(new Error(msg))).toBe("Add 'p2o.Add.252': Attempting to broadcast an axis by a dimension other than 1. 2 by 8");
  expect(ortErrorSummary(new Error('plain\nsecond line'))).toBe('plain');
});
