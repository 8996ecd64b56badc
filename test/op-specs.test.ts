/**
 * The op spec registry (src/ir/ops): one entry per op holds its shape rule, channel behaviour, weighted-layer
 * facts and MACs, and every stage reads it. Checked here: the shape-rule table (src/ir/shapes) and the
 * channel-rule table (src/analysis) cover the same ops; plain unary ops pass channels (Conv→Shrink→Conv prunes
 * and verifies); the newly covered ops behave as their specs say; weighted facts (axes, activation sites,
 * compensation, MACs) read through the spec.
 */
import { channelRule, OP_RULES } from '../src/analysis/op-rules';
import { DECLINE } from '../src/analysis/decline';
import type { GroupAnalysis } from '../src/analysis/types';
import { OP_SPECS, opSpec, specOf } from '../src/ir/ops';
import { loadModel } from '../src/ir/io';
import type { Model } from '../src/ir/model';
import type { Node } from '../src/ir/node';
import { encodeModelProto } from '../src/ir/proto';
import { RULES } from '../src/ir/shapes';
import { applyPlan } from '../src/prune/apply';
import { applyCompensation } from '../src/score/compensate';
import { inputSite } from '../src/score/sites';
import { verifyPruned } from '../src/verify/verify';
import { G, analyze, declinedOf, expectMaskOk, groupOf, weights } from './analysis-kit';
import { DataType } from './helpers/builder';

/** Every elementwise unary op of ONNX (and of its early experimental opsets) that the shape rules cover. */
const UNARY_OPS = [
  'Abs', 'Acos', 'Acosh', 'Affine', 'Asin', 'Asinh', 'Atan', 'Atanh', 'BitwiseNot', 'Cast', 'CastLike', 'Ceil', 'Celu',
  'Cos', 'Cosh', 'Elu', 'Erf', 'Exp', 'Floor', 'Gelu', 'HardSigmoid', 'HardSwish', 'Identity', 'IsInf', 'IsNaN',
  'LeakyRelu', 'Log', 'Mish', 'Neg', 'Not', 'ParametricSoftplus', 'Reciprocal', 'Relu', 'Round', 'Scale', 'ScaledTanh',
  'Selu', 'Shrink', 'Sigmoid', 'Sign', 'Sin', 'Sinh', 'Softplus', 'Softsign', 'Sqrt', 'Swish', 'Tan', 'Tanh',
  'ThresholdedRelu',
];

const X = ['batch', 4, 6, 6];

function nodeOf(model: Model, opType: string): Node {
  const n = model.graph.nodes.find((x) => x.opType === opType);
  if (!n) throw new Error(`no ${opType} node`);
  return n;
}

function expectDeclined(a: GroupAnalysis, producer: string, reason: string): void {
  const d = declinedOf(a, producer);
  expect(d?.reasons ?? [d?.reason]).toContain(reason);
  expect(a.groups.some((x) => ((x.info?.producers as string[]) ?? []).includes(producer))).toBe(false);
}

describe('one registry for shape rules and channel rules', () => {
  test('every op with a shape rule has a channel rule or an explicit decline reason', () => {
    expect(Object.keys(RULES).filter((op) => !OP_RULES[op])).toEqual([]);
    // Every channel behaviour a spec names is implemented by analysis.
    for (const [op, s] of Object.entries(OP_SPECS)) expect([op, typeof channelRule(s.channels).apply]).toEqual([op, 'function']);
  });

  test('every op with a channel rule has a shape rule, except the ops inferShapes handles itself', () => {
    // Constant: inferShapes reads its value; If / Loop: it infers their subgraphs; Scan: no shape inference
    // (its outputs stay unknown, onnxruntime measures them). Analysis declines channels entering subgraphs.
    expect(Object.keys(OP_RULES).filter((op) => !RULES[op]).sort()).toEqual(['Constant', 'If', 'Loop', 'Scan']);
  });

  test('the ops whose channels are declined, and why', () => {
    const declined = Object.entries(OP_SPECS)
      .flatMap(([op, s]) => (typeof s.channels === 'object' && 'decline' in s.channels && !('mix' in s.channels) ? [`${op}: ${s.channels.decline}`] : []))
      .sort();
    expect(declined).toEqual([
      'Bernoulli: unknownOp', 'Compress: unknownOp', 'ConvInteger: unknownOp', 'DepthToSpace: unknownOp',
      'DynamicQuantizeLinear: reduction', 'GatherElements: dataIndex', 'GatherND: dataIndex',
      'If: controlFlow', 'Loop: controlFlow', 'MatMulInteger: unknownOp', 'MaxUnpool: dataIndex',
      'Multinomial: unknownOp', 'NonMaxSuppression: unknownOp', 'NonZero: unknownOp', 'OneHot: unknownOp',
      'QLinearConv: unknownOp', 'QLinearMatMul: unknownOp', 'Scan: controlFlow', 'Scatter: dataIndex',
      'ScatterElements: dataIndex', 'ScatterND: dataIndex', 'SpaceToDepth: unknownOp', 'Unique: unknownOp',
    ]);
  });

  test('every elementwise unary op with a shape rule passes channels unchanged', () => {
    for (const op of UNARY_OPS) expect([op, !!RULES[op], OP_SPECS[op]?.channels]).toEqual([op, true, 'unary']);
  });

  test('specs are for the default domain only', () => {
    expect(opSpec('Relu', '')).toBe(OP_SPECS.Relu);
    expect(opSpec('Relu', 'ai.onnx')).toBe(OP_SPECS.Relu);
    expect(opSpec('Relu', 'com.microsoft')).toBeUndefined();
    expect(opSpec('Col2Im', '')).toBeUndefined();
    expect(opSpec('toString', '')).toBeUndefined();
  });
});

describe('plain unary ops pass channels', () => {
  test('Conv → Shrink → Conv: one group, and pruning it verifies in onnxruntime', async () => {
    const g = new G();
    const x = g.input('x', ['batch', 3, 8, 8]);
    const c1 = g.conv(x, 3, 8, { k: 3 });
    g.output(g.conv(g.op('Shrink', [c1], { lambd: 0.1, bias: 0.05 }), 8, 4, { k: 3 }));
    const model = g.model(17);
    const a = await analyze(model);
    expect(a.groups.length).toBe(1);
    const grp = groupOf(a, c1);
    expect(grp.size).toBe(8);
    const w1 = weights(grp, 'out').find((m) => m.input === 1)!.tensor;
    const w2 = weights(grp, 'in')[0].tensor;

    const plan = { [grp.id]: [1, 4, 6] };
    const pruned = loadModel(encodeModelProto(model.toProto()));
    applyPlan(pruned, a, plan);
    expect(pruned.graph.constant(w1)!.dims).toEqual([5, 3, 3, 3]);
    expect(pruned.graph.constant(w2)!.dims).toEqual([4, 5, 3, 3]);
    const r = await verifyPruned(model, pruned, a, plan, { seed: 7, batch: 2 });
    expect(r.verify.error).toBeUndefined();
    expect(r.verify.passed).toBe(true);
    expect(r.verify.maxRelDiff).toBeLessThanOrEqual(1e-4);
  });

  test.each([
    ['Softplus', {}], ['Softsign', {}], ['Mish', {}], ['HardSwish', {}], ['Erf', {}], ['Gelu', {}], ['Celu', { alpha: 0.5 }],
    ['ThresholdedRelu', { alpha: 0.1 }], ['Shrink', { lambd: 0.2 }],
  ] as const)('Conv → %s → Conv: one group, coupling holds in onnxruntime', async (op, attrs) => {
    const g = new G();
    const x = g.input('x', X);
    const c = g.conv(x, 4, 6);
    g.output(g.conv(g.op(op, [c], attrs), 6, 2));
    const model = g.model(20);
    const a = await analyze(model);
    expect(a.groups.length).toBe(1);
    await expectMaskOk(model, groupOf(a, c));
  });

  test('Swish (opset 24) passes channels', async () => {
    const g = new G();
    const x = g.input('x', X);
    const c = g.conv(x, 4, 6);
    g.output(g.conv(g.op('Swish', [c], { alpha: 1.5 }), 6, 2));
    const a = await analyze(g.model(24));
    expect(groupOf(a, c).size).toBe(6);
  });
});

describe('ops newly covered by the registry', () => {
  test('TopK along a spatial axis keeps the channels; along the channels it mixes them', async () => {
    const g = new G();
    const x = g.input('x', X);
    const c = g.conv(x, 4, 6);
    const d = g.conv(x, 4, 6);
    const [spatial] = g.opN('TopK', [c, g.ints([2])], { axis: 3 }, 2);
    const [channels] = g.opN('TopK', [d, g.ints([2])], { axis: 1 }, 2);
    g.output(g.conv(spatial, 6, 2));
    g.output(g.conv(channels, 2, 2));
    const model = g.model();
    const a = await analyze(model);
    expect(groupOf(a, c).size).toBe(6);
    expectDeclined(a, d, DECLINE.reduction);
    await expectMaskOk(model, groupOf(a, c));
  });

  test('GridSample samples each channel: channels pass; a grid computed from channels is declined', async () => {
    const g = new G();
    const x = g.input('x', X);
    const grid = g.input('grid', ['batch', 5, 5, 2]);
    const c = g.conv(x, 4, 6);
    g.output(g.conv(g.op('GridSample', [c, grid], { align_corners: 1 }), 6, 2));
    const d = g.conv(x, 4, 2);
    const computedGrid = g.op('Transpose', [d], { perm: [0, 2, 3, 1] });
    g.output(g.conv(g.op('GridSample', [x, computedGrid]), 4, 2));
    const model = g.model(16);
    const a = await analyze(model);
    expect(groupOf(a, c).size).toBe(6);
    expectDeclined(a, d, DECLINE.dataIndex);
    await expectMaskOk(model, groupOf(a, c));
  });

  test('ImageScaler (per-channel bias attribute) and ReverseSequence are position-dependent', async () => {
    const g = new G();
    const x = g.input('x', X);
    const c = g.conv(x, 4, 6);
    g.output(g.conv(g.op('ImageScaler', [c], { scale: { float: 2 }, bias: { floats: [0, 1, 2, 3, 4, 5] } }), 6, 2));
    // ReverseSequence over [time, batch, features] (time_axis 0, batch_axis 1).
    const h = g.input('h', [5, 'batch', 4]);
    const lens = g.input('lens', ['batch'], DataType.INT64);
    const s = g.op('MatMul', [h, g.weight([4, 6])]);
    g.output(g.op('MatMul', [g.op('ReverseSequence', [s, lens]), g.weight([6, 2])]));
    const t = g.op('MatMul', [h, g.weight([4, 6])]);
    // Features moved onto the time axis: [6, batch, 5].
    const rev = g.op('ReverseSequence', [g.op('Transpose', [t], { perm: [2, 1, 0] }), lens]);
    g.output(g.op('MatMul', [g.op('Transpose', [rev], { perm: [2, 1, 0] }), g.weight([6, 2])]));
    const a = await analyze(g.model(10));
    expectDeclined(a, c, DECLINE.positional);
    expect(groupOf(a, s).size).toBe(6); // features along the last axis: not the time or batch axis
    expectDeclined(a, t, DECLINE.positional);
  });

  test('explicitly declined ops name their reason', async () => {
    const g = new G();
    const x = g.input('x', X);
    const c = g.conv(x, 4, 8);
    g.output(g.conv(g.op('DepthToSpace', [c], { blocksize: 2 }), 2, 2));
    const d = g.conv(x, 4, 4);
    g.output(g.conv(g.op('ScatterElements', [d, g.ints([0], [1, 1, 1, 1]), g.floats([1], [1, 1, 1, 1])]), 4, 2));
    const a = await analyze(g.model());
    expectDeclined(a, c, `${DECLINE.unknownOp}: DepthToSpace`);
    expectDeclined(a, d, DECLINE.dataIndex);
  });
});

describe('weighted-layer facts come from the spec', () => {
  function gemmModel(transA: number, transB: number): Model {
    const g = new G();
    const x = g.input('x', transA ? [8, 'batch'] : ['batch', 8]);
    const w = transB ? g.weight([6, 8]) : g.weight([8, 6]);
    g.output(g.op('Gemm', [x, w, g.weight([6])], { transA, transB, alpha: { float: 2 }, beta: 0.5 }));
    return g.model();
  }

  test('Gemm: weight axes and activation site follow transA / transB', () => {
    const n = nodeOf(gemmModel(0, 1), 'Gemm');
    const w = specOf(n)!.weighted!;
    expect([w.inAxis!(n, 1, 2), w.outAxis!(n, 1, 2), w.site!(n, 1, 2)]).toEqual([1, 0, { input: 0, axis: 1 }]);
    expect([w.inAxis!(n, 0, 2), w.outAxis!(n, 0, 2), w.site!(n, 0, 2)]).toEqual([1, 0, { input: 1, axis: 1 }]);
    expect(w.inAxis!(n, 2, 1)).toBeUndefined();
    expect(w.bias).toBe(2);
    expect(w.compensation!.biasScale!(n)).toBe(4);
    const m = nodeOf(gemmModel(1, 0), 'Gemm');
    expect([w.inAxis!(m, 1, 2), w.outAxis!(m, 1, 2), w.site!(m, 1, 2)]).toEqual([0, 1, { input: 0, axis: 0 }]);
    expect(specOf(m)!.macs!(m, (name) => (name === m.inputs[0] ? [8, 3] : name === m.inputs[1] ? [8, 6] : undefined))).toBe(3 * 8 * 6);
  });

  test('score sites read the spec: a Gemm transB consumer meets its input on axis 1', async () => {
    const g = new G();
    const x = g.input('x', ['batch', 8]);
    const h = g.op('Relu', [g.op('Gemm', [x, g.weight([6, 8]), g.weight([6])], { transB: 1 })]);
    g.output(g.op('Gemm', [h, g.weight([2, 6]), g.weight([2])], { transB: 1 }));
    const model = g.model();
    const a = await analyze(model);
    const consumer = weights(a.groups[0], 'in')[0];
    expect(consumer.axis).toBe(1);
    expect(inputSite(model.graph, consumer, 2)).toEqual({ tensor: h, axis: 1 });
  });

  test('convolutions: grouped ones have no activation site; ConvTranspose has no bias compensation', () => {
    const g = new G();
    const x = g.input('x', X);
    const c = g.conv(x, 4, 4, { group: 2 });
    const t = g.op('ConvTranspose', [c, g.weight([4, 3, 2, 2]), g.weight([3])], { strides: [2, 2] });
    g.output(t);
    const model = g.model();
    const conv = nodeOf(model, 'Conv'), ct = nodeOf(model, 'ConvTranspose');
    const cw = specOf(conv)!.weighted!, tw = specOf(ct)!.weighted!;
    expect([cw.unit, cw.inAxis!(conv, 1, 4), cw.outAxis!(conv, 1, 4), cw.site!(conv, 1, 4)]).toEqual(['conv', 1, 0, undefined]);
    expect([tw.unit, tw.inAxis!(ct, 1, 4), tw.outAxis!(ct, 1, 4), tw.site!(ct, 1, 4)]).toEqual(['conv', 0, 1, { input: 0, axis: 1 }]);
    expect(cw.compensation).toEqual({ input: 1 });
    expect(tw.compensation).toBeUndefined();
  });

  test('MatMul: a right weight of any rank, a left weight of rank 2; compensation for rank 2 only', () => {
    const g = new G();
    const x = g.input('x', ['batch', 3, 8]);
    g.output(g.op('MatMul', [x, g.weight([3, 8, 6])]));
    const n = nodeOf(g.model(), 'MatMul');
    const w = specOf(n)!.weighted!;
    expect([w.unit, w.inAxis!(n, 1, 3), w.outAxis!(n, 1, 3), w.site!(n, 1, 3)]).toEqual(['fc', 1, 2, { input: 0, axis: -1 }]);
    expect([w.inAxis!(n, 0, 2), w.outAxis!(n, 0, 2), w.site!(n, 0, 2), w.site!(n, 0, 3)]).toEqual([1, 0, { input: 1, axis: -2 }, undefined]);
    expect(w.compensation).toEqual({ input: 1, rank: 2 });
  });

  test('bias compensation reads the spec: Gemm beta 0 is skipped, a ConvTranspose has no compensable weight', () => {
    const empty: GroupAnalysis = { groups: [], declined: [], summary: { totalParams: 0, prunableParams: 0, groups: 0, declined: 0 } };
    const g = new G();
    const x = g.input('x', ['batch', 8]);
    const y = g.op('Gemm', [x, g.weight([8, 6]), g.weight([6])], { beta: { float: 0 } });
    g.output(y);
    const gemm = g.model();
    const report = applyCompensation(gemm, empty, [{ node: y, input: 1, delta: [1, 1, 1, 1, 1, 1] }]);
    expect(report.skipped).toEqual([{ node: y, reason: 'Gemm with beta 0' }]);

    const h = new G();
    const z = h.op('ConvTranspose', [h.input('x', X), h.weight([4, 3, 2, 2]), h.weight([3])]);
    h.output(z);
    expect(() => applyCompensation(h.model(), empty, [{ node: z, input: 1, delta: [1, 1, 1] }])).toThrow(/no compensable weight/);
  });
});
