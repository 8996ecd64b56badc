/**
 * One negative test per decline reason (src/ir/ops/decline.ts): each graph is built so that the group
 * produced by a marked node must not be offered for pruning, and the declined entry names the reason.
 * A positive control in the same graph shows the rest of the model still prunes.
 */
import { analyzeGroupsWithShapes } from '../src/analysis/analyze';
import { DECLINE } from '../src/analysis/decline';
import { concreteShapes } from '../src/analysis/shape-source';
import { OrtShapeProbe } from '../src/ort/shape-probe';
import type { GroupAnalysis } from '../src/analysis/types';
import { G, analyze, declinedOf, groupOf, shapes } from './analysis-kit';
import { DataType, attr, floatTensor, graph, node, valueInfo } from './helpers/builder';

const X = ['batch', 4, 6, 6];

/** The producer's units are declined with `reason`; unless `partial`, none of them is in a group. */
function expectDeclined(a: GroupAnalysis, producer: string, reason: string, partial = false): void {
  const d = a.declined.find((x) => x.producers?.includes(producer) && (x.reasons ?? [x.reason]).includes(reason));
  if (!d) throw new Error(`no declined group of ${producer} with '${reason}': ${JSON.stringify(declinedOf(a, producer))}`);
  if (!partial) expect(a.groups.some((x) => ((x.info?.producers as string[]) ?? []).includes(producer))).toBe(false);
}

test('reaches a graph output', async () => {
  const g = new G();
  const x = g.input('x', X);
  const c = g.conv(x, 4, 6);
  const keep = g.conv(x, 4, 3);
  g.output(c);
  g.output(g.conv(keep, 3, 2));
  const a = await analyze(g.model());
  expectDeclined(a, c, DECLINE.graphOutput);
  expect(groupOf(a, keep).size).toBe(3);
});

test('coupled with a graph input', async () => {
  const g = new G();
  const x = g.input('x', X);
  const c = g.conv(x, 4, 4);
  g.output(g.conv(g.op('Add', [c, x]), 4, 2));
  expectDeclined(await analyze(g.model()), c, DECLINE.graphInput);
});

test('coupled with a tensor that cannot be pruned (computed at run time)', async () => {
  const g = new G();
  const x = g.input('x', X);
  const c = g.conv(x, 4, 4);
  const ones = g.op('ConstantOfShape', [g.op('Shape', [x])], { value: floatTensor('v', [1], [1]) });
  g.output(g.conv(g.op('Mul', [c, ones]), 4, 2));
  expectDeclined(await analyze(g.model()), c, DECLINE.pinned);
});

test('unsupported op (and a non-default domain)', async () => {
  const g = new G();
  const x = g.input('x', X);
  const c = g.conv(x, 4, 4);
  const d = g.conv(x, 4, 4);
  // Col2Im: a default-domain op without an op spec (src/ir/ops).
  g.output(g.op('Col2Im', [c, g.ints([6, 6]), g.ints([1, 1])]));
  g.output(g.op('Custom', [d], {}, 1, 'com.example'));
  const a = await analyzeGroupsWithShapes(g.model(), (await concreteShapes(g.model(), { mode: 'static' })).shapes);
  expectDeclined(a, c, `${DECLINE.unknownOp}: Col2Im`);
  expectDeclined(a, d, `${DECLINE.unknownOp}: com.example.Custom`);
});

test('normalization over the pruned axis (LayerNormalization, decomposed RMSNorm), with normStatistics off', async () => {
  const g = new G();
  const x = g.input('x', ['batch', 'seq', 8]);
  const h = g.op('MatMul', [x, g.weight([8, 8])]);
  const ln = g.op('LayerNormalization', [h, g.weight([8]), g.weight([8])], { axis: -1 });
  const h2 = g.op('MatMul', [x, g.weight([8, 8])]);
  const rms = g.op('Mul', [h2, g.op('Div', [g.floats([1], []), g.op('Sqrt', [g.op('ReduceMean', [g.op('Pow', [h2, g.floats([2], [])])], { axes: [-1] })])])]);
  g.output(g.op('MatMul', [g.op('Add', [ln, rms]), g.weight([8, 2])]));
  const a = await analyze(g.model(), { normStatistics: false });
  expectDeclined(a, h, DECLINE.normalization);
  expectDeclined(a, h2, DECLINE.reduction);
  // By default both are one group (coupled by the Add) whose norms run over the kept channels.
  const on = await analyze(g.model());
  expect(on.groups.find((x) => ((x.info?.producers as string[]) ?? []).includes(h))?.members.filter((m) => m.kind === 'stat').length).toBe(2);
});

test('Softmax over the pruned axis', async () => {
  const g = new G();
  const x = g.input('x', ['batch', 8]);
  const h = g.op('Gemm', [x, g.weight([6, 8])], { transB: 1 });
  g.output(g.op('Gemm', [g.op('Softmax', [h], { axis: 1 }), g.weight([2, 6])], { transB: 1 }));
  expectDeclined(await analyze(g.model()), h, DECLINE.softmax);
});

test('reduction over the pruned axis (ReduceMax over channels; ReduceMean not kept as size 1)', async () => {
  const g = new G();
  const x = g.input('x', X);
  const c = g.conv(x, 4, 4);
  const m = g.op('ReduceMax', [c], { axes: [1], keepdims: 1 });
  g.output(g.conv(g.op('Sub', [c, m]), 4, 2));
  expectDeclined(await analyze(g.model(17)), c, DECLINE.reduction);
  const g2 = new G();
  const c2 = g2.conv(g2.input('x', X), 4, 4);
  const m2 = g2.op('ReduceMean', [c2], { axes: [1], keepdims: 0 });
  g2.output(g2.op('Add', [g2.conv(c2, 4, 2), g2.op('Unsqueeze', [m2, g2.ints([1])])]));
  expectDeclined(await analyze(g2.model(17)), c2, DECLINE.reduction);
});

test('contraction over the pruned axis without a weight', async () => {
  const g = new G();
  const x = g.input('x', ['batch', 'seq', 8]);
  const a1 = g.op('MatMul', [x, g.weight([8, 6])]);
  const b1 = g.op('MatMul', [x, g.weight([8, 6])]);
  const s = g.op('MatMul', [a1, g.op('Transpose', [b1], { perm: [0, 2, 1] })]);
  g.output(g.op('MatMul', [s, x]));
  const a = await analyze(g.model());
  expectDeclined(a, a1, DECLINE.contraction);
  expectDeclined(a, b1, DECLINE.contraction);
});

test('broadcast to every unit of the other operand (multi-query k/v head)', async () => {
  // Two query heads of 4 read one k/v head [b, 1, s, 4] broadcast by MatMul: the k/v projections are
  // declined, the query heads (positive control) stay a head group.
  const g = new G();
  const x = g.input('x', ['batch', 'seq', 8]);
  const q = g.op('MatMul', [x, g.weight([8, 8])]);
  const k = g.op('MatMul', [x, g.weight([8, 4])]);
  const v = g.op('MatMul', [x, g.weight([8, 4])]);
  const heads = (t: string, n: number, perm: number[]) => g.op('Transpose', [g.op('Reshape', [t, g.ints([0, 0, n, 4])])], { perm });
  const p = g.op('Softmax', [g.op('MatMul', [heads(q, 2, [0, 2, 1, 3]), heads(k, 1, [0, 2, 3, 1])])], { axis: -1 });
  const ctx = g.op('Transpose', [g.op('MatMul', [p, heads(v, 1, [0, 2, 1, 3])])], { perm: [0, 2, 1, 3] });
  g.output(g.linear(g.op('Reshape', [ctx, g.ints([0, 0, 8])]), 8, 3));
  const a = await analyze(g.model());
  expectDeclined(a, k, DECLINE.broadcastShared);
  expectDeclined(a, v, DECLINE.broadcastShared);
  expect(groupOf(a, q).unit).toBe('head');
});

test('grouped convolution that cannot lose whole groups (ConvTranspose)', async () => {
  const g = new G();
  const x = g.input('x', X);
  const c = g.conv(x, 4, 8);
  const t = g.op('ConvTranspose', [c, g.weight([8, 4, 3, 3])], { group: 2, pads: [1, 1, 1, 1] });
  g.output(g.conv(t, 8, 2));
  expectDeclined(await analyze(g.model()), c, DECLINE.groupedConv);
});

test('recurrent op (LSTM): a state input computed from another group', async () => {
  const g = new G();
  const x = g.input('x', ['seq', 'batch', 8]);
  const z = g.input('z', ['batch', 8]);
  const h0 = g.op('MatMul', [z, g.weight([8, 3])]);
  const [y] = g.opN('LSTM', [x, g.weight([1, 12, 8]), g.weight([1, 12, 3]), '', '', g.op('Unsqueeze', [h0, g.ints([0])])], { hidden_size: 3 }, 1);
  g.output(g.op('MatMul', [y, g.weight([3, 2])]));
  expectDeclined(await analyze(g.model()), h0, DECLINE.recurrent);
});

test('recurrent state passed in by the caller', async () => {
  const g = new G();
  const x = g.input('x', ['seq', 1, 8]);
  const h0 = g.input('h0', [1, 1, 3]);
  const [y] = g.opN('LSTM', [x, g.weight([1, 12, 8]), g.weight([1, 12, 3]), '', '', h0], { hidden_size: 3 }, 1);
  g.output(g.op('MatMul', [y, g.weight([3, 2])]));
  expectDeclined(await analyze(g.model()), y, DECLINE.recurrentState);
});

test('used inside a subgraph (control flow)', async () => {
  const g = new G();
  const x = g.input('x', X);
  const cond = g.input('cond', [], DataType.BOOL);
  const c = g.conv(x, 4, 4);
  const branch = (name: string, op: string) => graph({
    name,
    nodes: [node(op, [c], [`${name}_out`])],
    inputs: [],
    outputs: [valueInfo(`${name}_out`, DataType.FLOAT)],
  });
  const y = g.name('if');
  g.nodes.push(node('If', [cond], [y], [attr.graph('then_branch', branch('t', 'Relu')), attr.graph('else_branch', branch('e', 'Sigmoid'))]));
  g.output(y);
  g.output(g.conv(c, 4, 2));
  expectDeclined(await analyze(g.model()), c, DECLINE.controlFlow);
});

test('unknown tensor shape', async () => {
  const g = new G();
  const x = g.input('x', X);
  const c = g.conv(x, 4, 4);
  const r = g.op('Relu', [c]);
  g.output(g.conv(r, 4, 2));
  const m = g.model();
  const s = (await concreteShapes(m, { probe: OrtShapeProbe.open })).shapes;
  s.delete(r);
  expectDeclined(analyzeGroupsWithShapes(m, s), c, DECLINE.unknownShape);
});

test('Reshape cannot be mapped (inconsistent shapes)', async () => {
  const g = new G();
  const x = g.input('x', X);
  const c = g.conv(x, 4, 4);
  const r = g.op('Reshape', [c, g.ints([0, -1])]);
  g.output(g.op('Gemm', [r, g.weight([2, 144])], { transB: 1 }));
  const m = g.model();
  const s = (await concreteShapes(m, { probe: OrtShapeProbe.open })).shapes;
  s.set(r, [2, 143]);
  expectDeclined(analyzeGroupsWithShapes(m, s), c, DECLINE.reshape);
});

test('Gather on the pruned axis (constant index) and with a data-dependent index', async () => {
  const g = new G();
  const x = g.input('x', X);
  const idx = g.input('idx', [2], DataType.INT64);
  const c = g.conv(x, 4, 6);
  const d = g.conv(x, 4, 6);
  g.output(g.conv(g.op('Gather', [c, g.ints([0, 2, 4])], { axis: 1 }), 3, 2));
  g.output(g.conv(g.op('Gather', [d, idx], { axis: 1 }), 2, 2));
  const a = await analyze(g.model());
  expectDeclined(a, c, DECLINE.gatherAxis);
  expectDeclined(a, d, DECLINE.dataIndex);
});

test('strided Slice on the pruned axis', async () => {
  const g = new G();
  const x = g.input('x', X);
  const c = g.conv(x, 4, 8);
  g.output(g.conv(g.op('Slice', [c, g.ints([0]), g.ints([8]), g.ints([1]), g.ints([2])]), 4, 2));
  expectDeclined(await analyze(g.model()), c, DECLINE.strided);
});

test('Slice bound depends on the unit', async () => {
  const g = new G();
  const x = g.input('x', X);
  const c = g.conv(x, 4, 8);
  g.output(g.conv(g.op('Slice', [c, g.ints([2]), g.ints([6]), g.ints([1])]), 4, 2));
  g.output(g.conv(c, 8, 2));
  const a = await analyze(g.model());
  // units 2..5 (read by both consumers) prune fine; units 0, 1, 6, 7 would shift the start differently
  expect(groupOf(a, c).size).toBe(4);
  expectDeclined(a, c, DECLINE.sliceBound, true);
});

test('Pad on the pruned axis', async () => {
  const g = new G();
  const x = g.input('x', X);
  const c = g.conv(x, 4, 4);
  g.output(g.conv(g.op('Pad', [c, g.ints([0, 1, 0, 0, 0, 1, 0, 0])]), 6, 2));
  expectDeclined(await analyze(g.model()), c, DECLINE.pad);
});

test('Resize given output sizes that scale the pruned axis', async () => {
  const g = new G();
  const x = g.input('x', X);
  const c = g.conv(x, 4, 4);
  g.output(g.conv(g.op('Resize', [c, '', '', g.ints([2, 8, 12, 12])], { mode: 'nearest' }), 8, 2));
  expectDeclined(await analyze(g.model()), c, DECLINE.resize);
});

test('position-dependent op on the pruned axis (Trilu)', async () => {
  const g = new G();
  const x = g.input('x', ['batch', 'seq', 8]);
  const h = g.op('MatMul', [x, g.weight([8, 6])]);
  g.output(g.op('MatMul', [g.op('Trilu', [h]), g.weight([6, 2])]));
  expectDeclined(await analyze(g.model()), h, DECLINE.positional);
});

test('irregular channel layout (a shuffle that mixes in graph-input channels)', async () => {
  const g = new G();
  const x = g.input('x', X);
  const c = g.conv(x, 4, 4);
  const cat = g.op('Concat', [c, x], { axis: 1 });
  const s = g.op('Reshape', [g.op('Transpose', [g.op('Reshape', [cat, g.ints([0, 2, 4, 6, 6])])], { perm: [0, 2, 1, 3, 4] }), g.ints([0, 8, 6, 6])]);
  g.output(g.conv(s, 8, 2));
  expectDeclined(await analyze(g.model()), c, DECLINE.irregular);
});

test('units of unequal shape (equal Split of one group into two parts)', async () => {
  const g = new G();
  const x = g.input('x', X);
  const c = g.conv(x, 4, 8);
  const [p, q] = g.opN('Split', [c], { axis: 1 }, 2);
  g.output(g.op('Add', [g.conv(p, 4, 2), g.conv(q, 4, 2)]));
  expectDeclined(await analyze(g.model(13)), c, DECLINE.nonUniform);
});

test('shape computed at runtime cannot be rewritten (allowed with rewriteComputedShapes)', async () => {
  const g = new G();
  const x = g.input('x', ['batch', 'seq', 8]);
  const h = g.op('MatMul', [x, g.weight([8, 8])]);
  const heads = g.op('Transpose', [g.op('Reshape', [h, g.ints([0, 0, 2, 4])])], { perm: [0, 2, 1, 3] });
  const att = g.op('MatMul', [g.op('Softmax', [g.op('MatMul', [heads, g.op('Transpose', [heads], { perm: [0, 1, 3, 2] })])], { axis: -1 }), heads]);
  const back = g.op('Transpose', [att], { perm: [0, 2, 1, 3] });
  // merge target [N, T, C] read from the (unpruned) input, as nn.MultiheadAttention exports it
  const sx = g.op('Shape', [x]);
  const dim = (i: number) => g.op('Unsqueeze', [g.op('Gather', [sx, g.constInts([i], [])]), g.constInts([0])]);
  const merged = g.op('Reshape', [back, g.op('Concat', [dim(0), dim(1), dim(2)], { axis: 0 })]);
  g.output(g.op('MatMul', [merged, g.weight([8, 2])]));
  const m = g.model();
  expectDeclined(await analyze(m), h, DECLINE.shapeRewrite);
  const rw = groupOf(await analyze(m, { rewriteComputedShapes: true }), h);
  expect(shapes(rw).filter((s) => s.replaceWith === -1)).toEqual([expect.objectContaining({ position: 0, perUnit: 4, value: 8 })]);
});

test('pruned size flows into data (or into a graph output)', async () => {
  const g = new G();
  const x = g.input('x', X);
  const c = g.conv(x, 4, 4);
  const n = g.op('Cast', [g.op('Gather', [g.op('Shape', [c]), g.constInts([1], [])])], { to: 1 });
  g.output(g.conv(g.op('Div', [c, n]), 4, 2));
  const d = g.conv(x, 4, 5);
  g.output(g.conv(d, 5, 2));
  g.output(g.op('Shape', [d]), DataType.INT64);
  const a = await analyze(g.model());
  expectDeclined(a, c, DECLINE.shapeAsData);
  expectDeclined(a, d, DECLINE.shapeAsData);
});

test('computed parameter is shared', async () => {
  const g = new G();
  const x = g.input('x', X);
  const c = g.conv(x, 4, 4);
  const p = g.op('Mul', [g.weight([4, 1, 1]), g.floats([2], [])]);
  g.output(g.conv(g.op('Add', [c, p]), 4, 2));
  g.output(p);
  expectDeclined(await analyze(g.model()), c, DECLINE.sharedParam);
});

test('only one unit', async () => {
  const g = new G();
  const x = g.input('x', X);
  const c = g.conv(x, 4, 1);
  g.output(g.conv(c, 1, 2));
  expectDeclined(await analyze(g.model()), c, DECLINE.singleUnit);
});

test('channels reach no consuming weight', async () => {
  const g = new G();
  const x = g.input('x', X);
  const c = g.conv(x, 4, 8);
  g.output(g.conv(g.op('Slice', [c, g.ints([0]), g.ints([4]), g.ints([1])]), 4, 2));
  const a = await analyze(g.model());
  expect(groupOf(a, c).size).toBe(4);
  expectDeclined(a, c, DECLINE.noConsumer, true);
});

test('weight applied across a pruned batch axis', async () => {
  const g = new G();
  const x = g.input('x', ['batch', 'seq', 8]);
  const h = g.op('MatMul', [x, g.weight([8, 8])]);
  const heads = g.op('Transpose', [g.op('Reshape', [h, g.ints([0, 0, 2, 4])])], { perm: [0, 2, 1, 3] });
  g.output(g.op('MatMul', [heads, g.weight([4, 3])]));
  expectDeclined(await analyze(g.model()), h, DECLINE.weightOnBatchAxis);
});

test('every decline reason has a test above', () => {
  const tested = [
    'graphOutput', 'graphInput', 'pinned', 'unknownOp', 'normalization', 'softmax', 'reduction', 'contraction', 'groupedConv',
    'recurrent', 'recurrentState', 'controlFlow', 'unknownShape', 'reshape', 'gatherAxis', 'dataIndex', 'strided', 'sliceBound', 'pad', 'resize',
    'positional', 'irregular', 'nonUniform', 'shapeRewrite', 'shapeAsData', 'sharedParam', 'singleUnit', 'noConsumer',
    'weightOnBatchAxis', 'broadcastShared', 'outerScope', 'scopeNames', // these two: test/subgraph-prune.test.ts
  ];
  expect(Object.keys(DECLINE).sort()).toEqual(tested.sort());
});
