/**
 * Exporter patterns we have no sample models of, built in code: old opsets (9–12: attribute-form Slice,
 * Squeeze/Unsqueeze, Split, Pad, Clip, ReduceMean; Upsample/Resize; BatchNormalization-9; Gemm transB; Flatten)
 * and tf2onnx/Keras habits (NHWC with Transposes around Conv, last-axis per-channel constants, Dense as
 * MatMul + Add, Constant-node weights, Reshape with -1, unfolded BN, depthwise Conv, Concat on axis -1).
 * Each model runs the real pipeline (load → analyze → importance-l2 → plan → prune → verify → save at ratio 0.5):
 * the expected groups are found (or declined for the right reason), the saved model runs in onnxruntime,
 * equals the masked dense model, and has fewer parameters.
 */
import * as fs from 'fs';
import * as path from 'path';
import type { Group, GroupAnalysis, Member } from '../src/analysis/types';
import { DECLINE } from '../src/analysis/decline';
import { loadModel } from '../src/ir/io';
import { Pipeline, newContext } from '../src/pipeline/pipeline';
import { registerBuiltinPasses } from '../passes';
registerBuiltinPasses();
import { runModel, verificationFeeds } from '../src/verify/verify';
import { DataType, attr, constantNode, floatTensor, graph, int64Tensor, modelBytes, node, onnx, seededRng, uniform, valueInfo } from './helpers/builder';
import { mkTmp, rmTmp } from './helpers/cli';
import { countParams } from './helpers/params';

let tmp: string;
beforeAll(() => { tmp = mkTmp('onnx-prune-exporters-'); });
afterAll(() => rmTmp(tmp));

let seed = 100;
const rnd = (name: string, dims: number[], scale = 0.5) =>
  floatTensor(name, dims, uniform(seededRng(seed++), dims.reduce((a, b) => a * b, 1), scale));
/** Positive values (BatchNormalization variance). */
const pos = (name: string, dims: number[]) => {
  const next = seededRng(seed++);
  return floatTensor(name, dims, Float32Array.from({ length: dims.reduce((a, b) => a * b, 1) }, () => 0.5 + next()));
};
const F = DataType.FLOAT;
const conv = (x: string, w: string, b: string | undefined, y: string, extra: onnx.AttributeProto[] = []) =>
  node('Conv', b ? [x, w, b] : [x, w], [y], extra, y);
const pads1 = [attr.ints('pads', [1, 1, 1, 1])];

interface Run {
  analysis: GroupAnalysis;
  before: number;
  after: number;
  report: Record<string, any>;
}

/** Builds the model, runs the whole pipeline at ratio 0.5, reloads the saved file and runs it in ORT. */
async function prune(name: string, g: onnx.GraphProto, opset: number): Promise<Run> {
  const bytes = modelBytes(g, { opset, irVersion: opset < 13 ? 6 : 8 });
  const input = path.join(tmp, `${name}.onnx`);
  const output = path.join(tmp, `${name}.pruned.onnx`);
  fs.writeFileSync(input, bytes);
  const options = { ratio: 0.5, seed: 0, verifyBatch: 1, verifySeq: 8, keepInvalid: true };
  const ctx = newContext({ inputPath: input, outputPath: output, options });
  await Pipeline.fromNames(['load', 'analyze', 'importance-l2', 'plan', 'prune', 'verify', 'save'], options).run(ctx);
  const report = ctx.report as Record<string, any>;
  const analysis = ctx.artifacts.groups as GroupAnalysis;
  const out = fs.readFileSync(output);
  const reloaded = loadModel(out);
  const y = await runModel(reloaded, verificationFeeds(reloaded, { batch: 1, seq: 8 }));
  for (const o of g.output) expect(y[o.name ?? '']).toBeDefined();
  return { analysis, before: countParams(bytes).total, after: countParams(out).total, report };
}

/** The run pruned something, matches the masked dense model, and lost parameters. */
function expectPruned(r: Run): void {
  expect({ error: r.report.verify?.error, failing: r.report.verify?.failingGroups ?? [] }).toEqual({ error: undefined, failing: [] });
  expect(r.report.verify.passed).toBe(true);
  expect(r.report.verify.skipped).toBeUndefined();
  expect(r.after).toBeLessThan(r.before);
}

/** The group whose channels `tensor` produces ('out' member). */
function groupOf(a: GroupAnalysis, tensor: string): Group {
  const g = a.groups.find((x) => x.members.some((m) => m.kind === 'weight' && m.tensor === tensor && m.role === 'out'));
  if (!g) throw new Error(`no group produced by ${tensor}; declined: ${JSON.stringify(a.declined.map((d) => [d.reason, d.node, d.tensor]))}`);
  return g;
}

const weight = (g: Group, tensor: string, role: string) =>
  g.members.find((m) => m.kind === 'weight' && m.tensor === tensor && m.role === role) as Extract<Member, { kind: 'weight' }> | undefined;

function declinedFor(a: GroupAnalysis, producer: string) {
  return a.declined.find((d) => d.producers?.includes(producer));
}

// ---------------------------------------------------------------------------------------------------------
// Old opsets (9–12)

describe('old opsets', () => {
  test('Slice-9 with starts/ends/axes attributes on a spatial axis: channels prune', async () => {
    const g = graph({
      nodes: [
        conv('x', 'W1', 'B1', 'c1', pads1), node('Relu', ['c1'], ['r1']),
        node('Slice', ['r1'], ['s'], [attr.ints('starts', [1]), attr.ints('ends', [7]), attr.ints('axes', [2])]),
        conv('s', 'W2', 'B2', 'y'),
      ],
      inputs: [valueInfo('x', F, [1, 3, 8, 8])], outputs: [valueInfo('y', F, [1, 4, 6, 8])],
      initializers: [rnd('W1', [8, 3, 3, 3]), rnd('B1', [8]), rnd('W2', [4, 8, 1, 1]), rnd('B2', [4])],
    });
    const r = await prune('slice9-spatial', g, 9);
    expect(groupOf(r.analysis, 'W1').size).toBe(8);
    expectPruned(r);
  });

  test('Slice-9 attribute bounds on the channel axis (torch chunk at opset 9) become attribute members', async () => {
    // x[:, :4] and x[:, 4:] (ends = INT64_MAX, as torch exports it): each half is its own group; removing
    // channels of the first half shifts both bounds of the second Slice.
    const g = graph({
      nodes: [
        conv('x', 'W1', 'B1', 'c1', pads1), node('Relu', ['c1'], ['r1']),
        node('Slice', ['r1'], ['s1'], [attr.ints('starts', [0]), attr.ints('ends', [4]), attr.ints('axes', [1])], 's1'),
        node('Slice', ['r1'], ['s2'], [attr.ints('starts', [4]), attr.ints('ends', [9223372036854775807n]), attr.ints('axes', [1])], 's2'),
        conv('s1', 'Wa', 'Ba', 'ya'), conv('s2', 'Wb', 'Bb', 'yb'), node('Add', ['ya', 'yb'], ['y']),
      ],
      inputs: [valueInfo('x', F, [1, 3, 8, 8])], outputs: [valueInfo('y', F, [1, 4, 8, 8])],
      initializers: [rnd('W1', [8, 3, 3, 3]), rnd('B1', [8]), rnd('Wa', [4, 4, 1, 1]), rnd('Ba', [4]), rnd('Wb', [4, 4, 1, 1]), rnd('Bb', [4])],
    });
    const r = await prune('slice9-chunk', g, 9);
    const groups = r.analysis.groups.filter((x) => weight(x, 'W1', 'out'));
    expect(groups.map((x) => x.size)).toEqual([4, 4]);
    const first = groups.find((x) => weight(x, 'Wa', 'in'))!;
    const second = groups.find((x) => weight(x, 'Wb', 'in'))!;
    const attrs = (x: Group) => x.members.filter((m) => m.kind === 'attr');
    expect(attrs(first)).toEqual(expect.arrayContaining([
      { kind: 'attr', node: 's1', attr: 'ends', position: 0, perUnit: 1 },
      { kind: 'attr', node: 's2', attr: 'starts', position: 0, perUnit: 1 },
    ]));
    expect(attrs(first)).toHaveLength(2);
    expect(attrs(second)).toEqual([]); // its bounds are 4 (below it) and INT64_MAX (clamped)
    expectPruned(r);
    const pruned = loadModel(path.join(tmp, 'slice9-chunk.pruned.onnx'));
    const kept = pruned.graph.constant('Wa')!.dims[1];
    expect(pruned.graph.producer('s2')!.attrInts('starts')).toEqual([kept]);
  });

  test('Slice-9 with a negative end on the channel axis (x[:, 2:-1]): no rewrite needed', async () => {
    const g = graph({
      nodes: [
        conv('x', 'W1', 'B1', 'c1', pads1), node('Relu', ['c1'], ['r1']),
        node('Slice', ['r1'], ['s'], [attr.ints('starts', [2]), attr.ints('ends', [-1]), attr.ints('axes', [-3])], 's'),
        conv('s', 'W2', 'B2', 'y'),
      ],
      inputs: [valueInfo('x', F, [1, 3, 8, 8])], outputs: [valueInfo('y', F, [1, 4, 8, 8])],
      initializers: [rnd('W1', [10, 3, 3, 3]), rnd('B1', [10]), rnd('W2', [4, 7, 1, 1]), rnd('B2', [4])],
    });
    const r = await prune('slice9-negative', g, 9);
    const grp = groupOf(r.analysis, 'W1');
    expect(grp.size).toBe(7);
    expect(grp.members.filter((m) => m.kind === 'attr')).toEqual([]);
    // The three channels outside the slice (0, 1 below it, 9 above) are declined: they reach no weight, and
    // they do not even shift the bounds alike.
    const outside = declinedFor(r.analysis, 'c1');
    expect([DECLINE.noConsumer, DECLINE.sliceBound]).toContain(outside?.reason);
    expectPruned(r);
  });

  test('Slice-9 negative bounds (x[:, :-4], x[:, -4:]): removing channels at or above a bound raises it', async () => {
    const g = graph({
      nodes: [
        conv('x', 'W1', 'B1', 'c1', pads1), node('Relu', ['c1'], ['r1']),
        node('Slice', ['r1'], ['s1'], [attr.ints('starts', [0]), attr.ints('ends', [-4]), attr.ints('axes', [1])], 's1'),
        node('Slice', ['r1'], ['s2'], [attr.ints('starts', [-4]), attr.ints('ends', [8]), attr.ints('axes', [1])], 's2'),
        conv('s1', 'Wa', 'Ba', 'ya'), conv('s2', 'Wb', 'Bb', 'yb'), node('Add', ['ya', 'yb'], ['y']),
      ],
      inputs: [valueInfo('x', F, [1, 3, 8, 8])], outputs: [valueInfo('y', F, [1, 4, 8, 8])],
      initializers: [rnd('W1', [8, 3, 3, 3]), rnd('B1', [8]), rnd('Wa', [4, 4, 1, 1]), rnd('Ba', [4]), rnd('Wb', [4, 4, 1, 1]), rnd('Bb', [4])],
    });
    const r = await prune('slice9-negative-chunk', g, 9);
    const groups = r.analysis.groups.filter((x) => weight(x, 'W1', 'out'));
    const attrs = (x: Group) => x.members.filter((m) => m.kind === 'attr');
    expect(attrs(groups.find((x) => weight(x, 'Wa', 'in'))!)).toEqual([]);
    expect(attrs(groups.find((x) => weight(x, 'Wb', 'in'))!)).toEqual(expect.arrayContaining([
      { kind: 'attr', node: 's1', attr: 'ends', position: 0, perUnit: -1 },
      { kind: 'attr', node: 's2', attr: 'starts', position: 0, perUnit: -1 },
    ]));
    expectPruned(r);
    const pruned = loadModel(path.join(tmp, 'slice9-negative-chunk.pruned.onnx'));
    const keptB = pruned.graph.constant('Wb')!.dims[1];
    expect(keptB).toBeLessThan(4);
    expect(pruned.graph.producer('s2')!.attrInts('starts')).toEqual([-keptB]);
    expect(pruned.graph.producer('s1')!.attrInts('ends')).toEqual([-keptB]);
  });

  test('Squeeze/Unsqueeze-11 with axes attributes (squeeze-excitation block)', async () => {
    const g = graph({
      nodes: [
        conv('x', 'W1', 'B1', 'c1', pads1), node('Relu', ['c1'], ['r1']),
        node('GlobalAveragePool', ['r1'], ['gap']),
        node('Squeeze', ['gap'], ['sq'], [attr.ints('axes', [2, 3])]),
        node('Gemm', ['sq', 'Wse1', 'Bse1'], ['e1'], [attr.int('transB', 1)], 'e1'), node('Relu', ['e1'], ['e1r']),
        node('Gemm', ['e1r', 'Wse2', 'Bse2'], ['e2'], [attr.int('transB', 1)], 'e2'), node('Sigmoid', ['e2'], ['e2s']),
        node('Unsqueeze', ['e2s'], ['un'], [attr.ints('axes', [-1, -2])]),
        node('Mul', ['r1', 'un'], ['scaled']),
        conv('scaled', 'W2', 'B2', 'y'),
      ],
      inputs: [valueInfo('x', F, [1, 3, 6, 6])], outputs: [valueInfo('y', F, [1, 4, 6, 6])],
      initializers: [
        rnd('W1', [8, 3, 3, 3]), rnd('B1', [8]), rnd('Wse1', [4, 8]), rnd('Bse1', [4]), rnd('Wse2', [8, 4]), rnd('Bse2', [8]),
        rnd('W2', [4, 8, 1, 1]), rnd('B2', [4]),
      ],
    });
    const r = await prune('squeeze11', g, 11);
    // The SE gate's output rows are the block's channels: one group of 8 with Wse2 rows and W1 rows.
    const grp = groupOf(r.analysis, 'W1');
    expect(grp.size).toBe(8);
    expect(weight(grp, 'Wse2', 'out')).toBeDefined();
    expect(weight(grp, 'Wse1', 'in')).toBeDefined();
    expect(groupOf(r.analysis, 'Wse1').size).toBe(4);
    expectPruned(r);
  });

  test('Split-11 with a `split` attribute: the sizes become attribute members', async () => {
    const g = graph({
      nodes: [
        conv('x', 'W1', 'B1', 'c1', pads1), node('Relu', ['c1'], ['r1']),
        node('Split', ['r1'], ['a', 'b'], [attr.int('axis', 1), attr.ints('split', [4, 4])], 'a'),
        conv('a', 'Wa', 'Ba', 'ya'), conv('b', 'Wb', 'Bb', 'yb'),
        node('Add', ['ya', 'yb'], ['y']),
      ],
      inputs: [valueInfo('x', F, [1, 3, 6, 6])], outputs: [valueInfo('y', F, [1, 4, 6, 6])],
      initializers: [rnd('W1', [8, 3, 3, 3]), rnd('B1', [8]), rnd('Wa', [4, 4, 1, 1]), rnd('Ba', [4]), rnd('Wb', [4, 4, 1, 1]), rnd('Bb', [4])],
    });
    const r = await prune('split11', g, 11);
    const grp = groupOf(r.analysis, 'W1');
    expect(grp.members.filter((m) => m.kind === 'attr' && m.attr === 'split').length).toBeGreaterThan(0);
    expectPruned(r);
  });

  test('Split-2 with an unequal `split` attribute [3, 5]: each part is its own group', async () => {
    const g = graph({
      nodes: [
        conv('x', 'W1', 'B1', 'c1', pads1), node('Relu', ['c1'], ['r1']),
        node('Split', ['r1'], ['a', 'b'], [attr.int('axis', -3), attr.ints('split', [3, 5])], 'a'),
        conv('a', 'Wa', 'Ba', 'ya'), conv('b', 'Wb', 'Bb', 'yb'), node('Add', ['ya', 'yb'], ['y']),
      ],
      inputs: [valueInfo('x', F, [1, 3, 6, 6])], outputs: [valueInfo('y', F, [1, 4, 6, 6])],
      initializers: [rnd('W1', [8, 3, 3, 3]), rnd('B1', [8]), rnd('Wa', [4, 3, 1, 1]), rnd('Ba', [4]), rnd('Wb', [4, 5, 1, 1]), rnd('Bb', [4])],
    });
    const r = await prune('split2-unequal', g, 9);
    const groups = r.analysis.groups.filter((x) => weight(x, 'W1', 'out'));
    expect(groups.map((x) => x.size).sort()).toEqual([3, 5]);
    const small = groups.find((x) => x.size === 3)!;
    expect(small.members).toContainEqual({ kind: 'attr', node: 'a', attr: 'split', position: 0, perUnit: 1 });
    expect(weight(small, 'W1', 'out')?.indices).toEqual([[0], [1], [2]]);
    expectPruned(r);
    const pruned = loadModel(path.join(tmp, 'split2-unequal.pruned.onnx'));
    expect(pruned.graph.producer('a')!.attrInts('split')).toEqual([pruned.graph.constant('Wa')!.dims[1], pruned.graph.constant('Wb')!.dims[1]]);
  });

  test('Upsample-9 (scales input) and Resize-11 (scales) on spatial axes: channels prune', async () => {
    const scales = floatTensor('scales', [4], [1, 1, 2, 2]);
    const up = graph({
      nodes: [conv('x', 'W1', 'B1', 'c1', pads1), node('Upsample', ['c1', 'scales'], ['u'], [attr.string('mode', 'nearest')]), conv('u', 'W2', 'B2', 'y')],
      inputs: [valueInfo('x', F, [1, 3, 4, 4])], outputs: [valueInfo('y', F, [1, 4, 8, 8])],
      initializers: [rnd('W1', [8, 3, 3, 3]), rnd('B1', [8]), rnd('W2', [4, 8, 1, 1]), rnd('B2', [4]), scales],
    });
    const r9 = await prune('upsample9', up, 9);
    expect(groupOf(r9.analysis, 'W1').size).toBe(8);
    expectPruned(r9);

    const rs = graph({
      nodes: [conv('x', 'W1', 'B1', 'c1', pads1), node('Resize', ['c1', 'roi', 'scales'], ['u'], [attr.string('mode', 'nearest')]), conv('u', 'W2', 'B2', 'y')],
      inputs: [valueInfo('x', F, [1, 3, 4, 4])], outputs: [valueInfo('y', F, [1, 4, 8, 8])],
      initializers: [rnd('W1', [8, 3, 3, 3]), rnd('B1', [8]), rnd('W2', [4, 8, 1, 1]), rnd('B2', [4]), scales, floatTensor('roi', [0], [])],
    });
    const r11 = await prune('resize11', rs, 11);
    expect(groupOf(r11.analysis, 'W1').size).toBe(8);
    expectPruned(r11);
  });

  test('Upsample scaling the channel axis is declined (Resize scales the pruned axis)', async () => {
    const g = graph({
      nodes: [conv('x', 'W1', 'B1', 'c1', pads1), node('Upsample', ['c1', 'scales'], ['u'], [attr.string('mode', 'nearest')]), conv('u', 'W2', 'B2', 'y')],
      inputs: [valueInfo('x', F, [1, 3, 4, 4])], outputs: [valueInfo('y', F, [1, 4, 8, 8])],
      initializers: [rnd('W1', [8, 3, 3, 3]), rnd('B1', [8]), rnd('W2', [4, 16, 1, 1]), rnd('B2', [4]), floatTensor('scales', [4], [1, 2, 2, 2])],
    });
    const r = await prune('upsample9-channels', g, 9);
    expect(r.analysis.groups.find((x) => weight(x, 'W1', 'out'))).toBeUndefined();
    expect(declinedFor(r.analysis, 'c1')?.reason).toBe(DECLINE.resize);
  });

  test('Resize-13 with a constant `sizes` input passing the channels through: channels prune, sizes[1] shrinks', async () => {
    const g = graph({
      nodes: [conv('x', 'W1', 'B1', 'c1', pads1), node('Resize', ['c1', '', '', 'sizes'], ['u'], [attr.string('mode', 'nearest')]), conv('u', 'W2', 'B2', 'y')],
      inputs: [valueInfo('x', F, [1, 3, 4, 4])], outputs: [valueInfo('y', F, [1, 4, 8, 8])],
      initializers: [rnd('W1', [8, 3, 3, 3]), rnd('B1', [8]), rnd('W2', [4, 8, 1, 1]), rnd('B2', [4]), int64Tensor('sizes', [4], [1, 8, 8, 8])],
    });
    const r = await prune('resize13-sizes', g, 13);
    const grp = groupOf(r.analysis, 'W1');
    expect(grp.size).toBe(8);
    expect(grp.members).toContainEqual({ kind: 'shape', tensor: 'sizes', node: 'u', input: 3, position: 1, perUnit: 1 });
    expectPruned(r);
    const pruned = loadModel(path.join(tmp, 'resize13-sizes.pruned.onnx'));
    const kept = pruned.graph.constant('W1')!.dims[0];
    expect(kept).toBeLessThan(8);
    expect(pruned.graph.constant('sizes')!.toNumbers()).toEqual([1, kept, 8, 8]);
  });

  test('Resize-18 with `sizes` over an `axes` attribute naming the channel axis: sizes[0] shrinks', async () => {
    const g = graph({
      nodes: [
        conv('x', 'W1', 'B1', 'c1', pads1),
        node('Resize', ['c1', '', '', 'sizes'], ['u'], [attr.string('mode', 'nearest'), attr.ints('axes', [1, 2, 3])]),
        conv('u', 'W2', 'B2', 'y'),
      ],
      inputs: [valueInfo('x', F, [1, 3, 4, 4])], outputs: [valueInfo('y', F, [1, 4, 8, 8])],
      initializers: [rnd('W1', [8, 3, 3, 3]), rnd('B1', [8]), rnd('W2', [4, 8, 1, 1]), rnd('B2', [4]), int64Tensor('sizes', [3], [8, 8, 8])],
    });
    const r = await prune('resize18-sizes-axes', g, 18);
    expect(groupOf(r.analysis, 'W1').members).toContainEqual({ kind: 'shape', tensor: 'sizes', node: 'u', input: 3, position: 0, perUnit: 1 });
    expectPruned(r);
    const pruned = loadModel(path.join(tmp, 'resize18-sizes-axes.pruned.onnx'));
    expect(pruned.graph.constant('sizes')!.toNumbers()).toEqual([pruned.graph.constant('W1')!.dims[0], 8, 8]);
  });

  test('Resize-13 with `sizes` scaling the channel axis is declined (Resize scales the pruned axis)', async () => {
    const g = graph({
      nodes: [conv('x', 'W1', 'B1', 'c1', pads1), node('Resize', ['c1', '', '', 'sizes'], ['u'], [attr.string('mode', 'nearest')]), conv('u', 'W2', 'B2', 'y')],
      inputs: [valueInfo('x', F, [1, 3, 4, 4])], outputs: [valueInfo('y', F, [1, 4, 8, 8])],
      initializers: [rnd('W1', [8, 3, 3, 3]), rnd('B1', [8]), rnd('W2', [4, 16, 1, 1]), rnd('B2', [4]), int64Tensor('sizes', [4], [1, 16, 8, 8])],
    });
    const r = await prune('resize13-sizes-channels', g, 13);
    expect(r.analysis.groups.find((x) => weight(x, 'W1', 'out'))).toBeUndefined();
    expect(declinedFor(r.analysis, 'c1')?.reason).toBe(DECLINE.resize);
  });

  test('BatchNormalization-9, Clip-6 with min/max attributes, Pad-2 with a pads attribute', async () => {
    const g = graph({
      nodes: [
        conv('x', 'W1', undefined, 'c1', pads1),
        node('BatchNormalization', ['c1', 'bn_s', 'bn_b', 'bn_m', 'bn_v'], ['bn'], [attr.float('epsilon', 1e-5)]),
        node('Clip', ['bn'], ['cl'], [attr.float('min', 0), attr.float('max', 6)]),
        node('Pad', ['cl'], ['p'], [attr.ints('pads', [0, 0, 1, 1, 0, 0, 1, 1]), attr.string('mode', 'constant')]),
        conv('p', 'W2', 'B2', 'y'),
      ],
      inputs: [valueInfo('x', F, [1, 3, 6, 6])], outputs: [valueInfo('y', F, [1, 4, 6, 6])],
      initializers: [
        rnd('W1', [8, 3, 3, 3]), rnd('bn_s', [8]), rnd('bn_b', [8]), rnd('bn_m', [8]), pos('bn_v', [8]),
        rnd('W2', [4, 8, 3, 3]), rnd('B2', [4]),
      ],
    });
    const r = await prune('bn9-clip-pad', g, 9);
    const grp = groupOf(r.analysis, 'W1');
    for (const t of ['bn_s', 'bn_b', 'bn_m', 'bn_v']) expect(weight(grp, t, 'param')).toBeDefined();
    expectPruned(r);
  });

  test('Pad-2 padding the channel axis is declined (Pad on the pruned axis)', async () => {
    const g = graph({
      nodes: [
        conv('x', 'W1', 'B1', 'c1', pads1),
        node('Pad', ['c1'], ['p'], [attr.ints('pads', [0, 1, 0, 0, 0, 1, 0, 0])]),
        conv('p', 'W2', 'B2', 'y'),
      ],
      inputs: [valueInfo('x', F, [1, 3, 6, 6])], outputs: [valueInfo('y', F, [1, 4, 6, 6])],
      initializers: [rnd('W1', [8, 3, 3, 3]), rnd('B1', [8]), rnd('W2', [4, 10, 1, 1]), rnd('B2', [4])],
    });
    const r = await prune('pad2-channels', g, 10);
    expect(declinedFor(r.analysis, 'c1')?.reason).toBe(DECLINE.pad);
  });

  test('Gemm transB=1 and transB=0, Flatten → Gemm, ReduceMean-11 with axes', async () => {
    const g = graph({
      nodes: [
        conv('x', 'W1', 'B1', 'c1', pads1), node('Relu', ['c1'], ['r1']),
        node('MaxPool', ['r1'], ['mp'], [attr.ints('kernel_shape', [2, 2]), attr.ints('strides', [2, 2])]),
        node('Flatten', ['mp'], ['fl'], [attr.int('axis', 1)]),
        node('Gemm', ['fl', 'Wf1', 'Bf1'], ['h1'], [attr.int('transB', 1)], 'h1'), node('Relu', ['h1'], ['h1r']),
        node('Gemm', ['h1r', 'Wf2', 'Bf2'], ['h2'], [attr.int('transB', 0)], 'h2'), node('Relu', ['h2'], ['h2r']),
        node('Gemm', ['h2r', 'Wf3', 'Bf3'], ['y'], [attr.int('transB', 1)], 'y'),
        // A second head: ReduceMean over H, W with negative axes, then Gemm.
        node('ReduceMean', ['r1'], ['rm'], [attr.ints('axes', [-2, -1]), attr.int('keepdims', 0)]),
        node('Gemm', ['rm', 'Wr', 'Br'], ['z'], [attr.int('transB', 0)], 'z'),
      ],
      inputs: [valueInfo('x', F, [1, 3, 4, 4])], outputs: [valueInfo('y', F, [1, 5]), valueInfo('z', F, [1, 3])],
      initializers: [
        rnd('W1', [8, 3, 3, 3]), rnd('B1', [8]),
        rnd('Wf1', [16, 32]), rnd('Bf1', [16]), rnd('Wf2', [16, 12]), rnd('Bf2', [12]), rnd('Wf3', [5, 12]), rnd('Bf3', [5]),
        rnd('Wr', [8, 3]), rnd('Br', [3]),
      ],
    });
    const r = await prune('gemm11', g, 11);
    const conv1 = groupOf(r.analysis, 'W1');
    expect(conv1.size).toBe(8);
    // Flatten: channel c owns columns [4c, 4c+4) of Wf1.
    expect(weight(conv1, 'Wf1', 'in')?.indices[1]).toEqual([4, 5, 6, 7]);
    expect(weight(conv1, 'Wr', 'in')?.axis).toBe(0);
    expect(weight(groupOf(r.analysis, 'Wf1'), 'Wf2', 'in')?.axis).toBe(0);
    expect(weight(groupOf(r.analysis, 'Wf2'), 'Wf3', 'in')?.axis).toBe(1);
    expect(groupOf(r.analysis, 'Wf2').size).toBe(12);
    expectPruned(r);
  });

  test('ReduceMean-11 (axes attribute) over the channel axis: a statistics member, pruned and verified against the norm-aware reference', async () => {
    const g = graph({
      nodes: [
        conv('x', 'W1', 'B1', 'c1', pads1),
        node('ReduceMean', ['c1'], ['m'], [attr.ints('axes', [1]), attr.int('keepdims', 1)]),
        node('Sub', ['c1', 'm'], ['d']),
        conv('d', 'W2', 'B2', 'y'),
      ],
      inputs: [valueInfo('x', F, [1, 3, 4, 4])], outputs: [valueInfo('y', F, [1, 4, 4, 4])],
      initializers: [rnd('W1', [8, 3, 3, 3]), rnd('B1', [8]), rnd('W2', [4, 8, 1, 1]), rnd('B2', [4])],
    });
    const r = await prune('reducemean-channels', g, 11);
    expect(declinedFor(r.analysis, 'c1')).toBeUndefined();
    expect(r.analysis.groups.some((x) => x.members.some((m) => m.kind === 'stat' && m.node === 'm'))).toBe(true);
    expectPruned(r);
  });
});

// ---------------------------------------------------------------------------------------------------------
// tf2onnx / Keras

describe('tf2onnx / Keras', () => {
  const toNchw = (x: string, y: string) => node('Transpose', [x], [y], [attr.ints('perm', [0, 3, 1, 2])]);
  const toNhwc = (x: string, y: string) => node('Transpose', [x], [y], [attr.ints('perm', [0, 2, 3, 1])]);

  test('NHWC: Transpose → Conv → Transpose, last-axis bias Add and scale Mul (unfolded BN), Concat axis -1', async () => {
    const g = graph({
      nodes: [
        toNchw('x', 'xc'),
        conv('xc', 'W1', undefined, 'c1', pads1), toNhwc('c1', 'c1h'),
        node('Add', ['c1h', 'b1'], ['a1']), node('Mul', ['a1', 'bn_mul'], ['m1']), node('Add', ['m1', 'bn_add'], ['bn1']),
        node('Relu', ['bn1'], ['r1']),
        conv('xc', 'W2', 'B2', 'c2', pads1), toNhwc('c2', 'c2h'), node('Relu', ['c2h'], ['r2']),
        node('Concat', ['r1', 'r2'], ['cat'], [attr.int('axis', -1)]),
        toNchw('cat', 'catc'), conv('catc', 'W3', 'B3', 'c3'), toNhwc('c3', 'y'),
      ],
      inputs: [valueInfo('x', F, [1, 6, 6, 3])], outputs: [valueInfo('y', F, [1, 6, 6, 4])],
      initializers: [
        rnd('W1', [8, 3, 3, 3]), rnd('b1', [8]), rnd('bn_mul', [8]), rnd('bn_add', [8]),
        rnd('W2', [6, 3, 3, 3]), rnd('B2', [6]), rnd('W3', [4, 14, 1, 1]), rnd('B3', [4]),
      ],
    });
    const r = await prune('nhwc', g, 13);
    const g1 = groupOf(r.analysis, 'W1');
    expect(g1.size).toBe(8);
    for (const t of ['b1', 'bn_mul', 'bn_add']) expect(weight(g1, t, 'param') ?? weight(g1, t, 'out')).toBeDefined();
    expect(weight(g1, 'W3', 'in')?.indices[0]).toEqual([0]);
    const g2 = groupOf(r.analysis, 'W2');
    expect(weight(g2, 'W3', 'in')?.indices[0]).toEqual([8]);
    expectPruned(r);
  });

  test('Dense as MatMul [in, out] + Add bias, weights as Constant nodes', async () => {
    const c = (name: string, dims: number[]) => {
      const t = rnd('', dims);
      return constantNode(name, t);
    };
    const g = graph({
      nodes: [
        c('k1', [10, 16]), c('b1', [16]), c('k2', [16, 12]), c('b2', [12]), c('k3', [12, 5]), c('b3', [5]),
        node('MatMul', ['x', 'k1'], ['d1']), node('Add', ['d1', 'b1'], ['d1b']), node('Relu', ['d1b'], ['h1']),
        node('MatMul', ['h1', 'k2'], ['d2']), node('Add', ['d2', 'b2'], ['d2b']), node('Relu', ['d2b'], ['h2']),
        node('MatMul', ['h2', 'k3'], ['d3']), node('Add', ['d3', 'b3'], ['y']),
      ],
      inputs: [valueInfo('x', F, ['N', 10])], outputs: [valueInfo('y', F, ['N', 5])],
    });
    const r = await prune('dense-constants', g, 13);
    const g1 = groupOf(r.analysis, 'k1');
    expect(g1.size).toBe(16);
    expect(weight(g1, 'k1', 'out')?.axis).toBe(1);
    expect(weight(g1, 'b1', 'out')).toBeDefined();
    expect(weight(g1, 'k2', 'in')?.axis).toBe(0);
    expect(groupOf(r.analysis, 'k2').size).toBe(12);
    expectPruned(r);
    // The weights are still Constant nodes, now smaller.
    const pruned = loadModel(path.join(tmp, 'dense-constants.pruned.onnx'));
    expect(pruned.graph.initializers.size).toBe(0);
    expect(pruned.graph.constant('k1')!.dims[1]).toBeLessThan(16);
  });

  test('Keras Flatten as Reshape with a constant [-1, H*W*C] shape (NHWC, channel last)', async () => {
    const g = graph({
      nodes: [
        toNchw('x', 'xc'), conv('xc', 'W1', 'B1', 'c1', pads1), node('Relu', ['c1'], ['r1']), toNhwc('r1', 'rh'),
        node('Reshape', ['rh', 'shape'], ['fl'], [], 'fl'),
        node('MatMul', ['fl', 'K'], ['d']), node('Add', ['d', 'b'], ['y']),
      ],
      inputs: [valueInfo('x', F, [1, 3, 3, 3])], outputs: [valueInfo('y', F, [1, 5])],
      initializers: [rnd('W1', [8, 3, 3, 3]), rnd('B1', [8]), int64Tensor('shape', [2], [-1, 72]), rnd('K', [72, 5]), rnd('b', [5])],
    });
    const r = await prune('keras-flatten', g, 13);
    const g1 = groupOf(r.analysis, 'W1');
    expect(g1.size).toBe(8);
    // Channel c sits at rows c, c+8, c+16, ... of K (h*24 + w*8 + c).
    expect(weight(g1, 'K', 'in')?.indices[2]).toEqual(Array.from({ length: 9 }, (_, i) => 2 + 8 * i));
    expect(g1.members).toContainEqual({ kind: 'shape', tensor: 'shape', node: 'fl', input: 1, position: 1, perUnit: 9 });
    expectPruned(r);
  });

  test('Keras head: NHWC GlobalAveragePooling as ReduceMean(axes=[1, 2]), Dense on a 3-D input, Softmax', async () => {
    const g = graph({
      nodes: [
        toNchw('x', 'xc'), conv('xc', 'W1', 'B1', 'c1', pads1), toNhwc('c1', 'c1h'),
        node('Mul', ['c1h', 'gamma'], ['m']), node('Add', ['m', 'beta'], ['bn']), node('Relu', ['bn'], ['r']),
        node('ReduceMean', ['r'], ['gap'], [attr.ints('axes', [1, 2]), attr.int('keepdims', 0)]),
        node('MatMul', ['gap', 'K1'], ['d1']), node('Add', ['d1', 'b1'], ['d1b']), node('Relu', ['d1b'], ['h']),
        // [N, 12] → [N, 3, 4] (a Keras Reshape) → Dense on the last axis → Softmax.
        node('Reshape', ['h', 'shape'], ['h3']),
        node('MatMul', ['h3', 'K2'], ['d2']), node('Add', ['d2', 'b2'], ['d2b']),
        node('Softmax', ['d2b'], ['y'], [attr.int('axis', -1)]),
      ],
      inputs: [valueInfo('x', F, [1, 5, 5, 3])], outputs: [valueInfo('y', F, [1, 3, 6])],
      initializers: [
        rnd('W1', [8, 3, 3, 3]), rnd('B1', [8]), rnd('gamma', [1, 1, 1, 8]), rnd('beta', [8]),
        rnd('K1', [8, 12]), rnd('b1', [12]), int64Tensor('shape', [3], [-1, 3, 4]), rnd('K2', [4, 6]), rnd('b2', [6]),
      ],
    });
    const r = await prune('keras-head', g, 13);
    const g1 = groupOf(r.analysis, 'W1');
    expect(g1.size).toBe(8);
    expect(weight(g1, 'gamma', 'param')?.axis).toBe(3);
    expect(weight(g1, 'K1', 'in')?.axis).toBe(0);
    // The 12 Dense neurons are reshaped to [3, 4] and the next Dense contracts the 4: a unit would be a column
    // {k, 4+k, 8+k} (K1 columns, K2 row k, the Reshape's 4 shrinking). Not offered: the contraction sees
    // labels on a kept axis (3) and on the contracted one.
    expect(declinedFor(r.analysis, 'd1')?.reason).toBe(DECLINE.weightOnBatchAxis);
    // The Dense output (6) meets Softmax(-1) and the graph output.
    expect(declinedFor(r.analysis, 'd2')?.reasons).toEqual(expect.arrayContaining([DECLINE.softmax]));
    expectPruned(r);
  });

  test('Depthwise conv via Conv group=C between pointwise convs (NHWC)', async () => {
    const g = graph({
      nodes: [
        toNchw('x', 'xc'), conv('xc', 'W1', 'B1', 'c1'), node('Relu', ['c1'], ['r1']),
        conv('r1', 'Wd', 'Bd', 'dw', [attr.int('group', 8), attr.ints('pads', [1, 1, 1, 1])]), node('Relu', ['dw'], ['r2']),
        conv('r2', 'W3', 'B3', 'c3'), toNhwc('c3', 'y'),
      ],
      inputs: [valueInfo('x', F, [1, 5, 5, 3])], outputs: [valueInfo('y', F, [1, 5, 5, 4])],
      initializers: [rnd('W1', [8, 3, 1, 1]), rnd('B1', [8]), rnd('Wd', [8, 1, 3, 3]), rnd('Bd', [8]), rnd('W3', [4, 8, 1, 1]), rnd('B3', [4])],
    });
    const r = await prune('depthwise', g, 13);
    const g1 = groupOf(r.analysis, 'W1');
    expect(weight(g1, 'Wd', 'param')).toBeDefined();
    expect(g1.members).toContainEqual({ kind: 'attr', node: 'dw', attr: 'group', perUnit: 1 });
    expectPruned(r);
  });
});
