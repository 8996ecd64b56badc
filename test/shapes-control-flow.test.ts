/**
 * Shape inference through If control flow (as in Silero VAD: conditions computed from shapes, or from a sample
 * rate input), known input values, and measuring tensors inside the If branches that run in onnxruntime.
 */
import { countMacs } from '../src/analysis/flops';
import { DataType } from '../src/ir/dtype';
import { UserError } from '../src/ir/errors';
import { loadModel } from '../src/ir/io';
import type { Model } from '../src/ir/model';
import { encodeModelProto } from '../src/ir/proto';
import { inferShapes } from '../src/ir/shapes';
import { inlineIfs } from '../src/verify/inline-if';
import { inferShapesWithOrt } from './helpers/ort-shapes';
import { ort } from '../src/ort/session';
import { attr, constantNode, floatTensor, graph, int64Tensor, modelBytes, node, onnx, valueInfo } from './helpers/builder';
import { runOnce } from './helpers/ort-run';

const out = (name: string) => onnx.ValueInfoProto.create({ name });

/** A branch that reshapes `x` to `dims` (output `<name>_y`), with its target as a branch initializer. */
function reshapeBranch(name: string, dims: number[], extra: onnx.NodeProto[] = []): onnx.GraphProto {
  return graph({
    name,
    nodes: [node('Reshape', ['x', `${name}_s`], [`${name}_y`]), ...extra],
    inputs: [],
    outputs: [out(`${name}_y`)],
    initializers: [int64Tensor(`${name}_s`, [dims.length], dims)],
  });
}

/**
 * x [2, 12] → If (x's dim 1 == 12): then reshape to [24] (with a nested If on the same condition inside), else
 * reshape to [4, 6]; a second If decides on `sr == 16000` (sr an int64 scalar input).
 */
function controlFlowModel() {
  const inner = graph({
    name: 'inner',
    nodes: [node('If', ['c'], ['inner_y'], [attr.graph('then_branch', reshapeBranch('it', [3, 8])), attr.graph('else_branch', reshapeBranch('ie', [8, 3]))])],
    inputs: [],
    outputs: [out('inner_y')],
  });
  const thenBranch = graph({
    name: 'then',
    nodes: [node('Reshape', ['x', 'flat'], ['then_y']), node('If', ['c'], ['then_z'], [attr.graph('then_branch', inner), attr.graph('else_branch', reshapeBranch('ee', [24, 1]))])],
    inputs: [],
    outputs: [out('then_y'), out('then_z')],
    initializers: [int64Tensor('flat', [1], [24])],
  });
  const elseBranch = graph({
    name: 'else',
    nodes: [node('Reshape', ['x', 'four_six'], ['else_y']), node('Identity', ['x'], ['else_z'])],
    inputs: [],
    outputs: [out('else_y'), out('else_z')],
    initializers: [int64Tensor('four_six', [2], [4, 6])],
  });
  const g = graph({
    nodes: [
      node('Shape', ['x'], ['shp']),
      constantNode('one', int64Tensor('', [1], [1])),
      node('Gather', ['shp', 'one'], ['d1']),
      constantNode('twelve', int64Tensor('', [1], [12])),
      node('Equal', ['d1', 'twelve'], ['c1']),
      node('Squeeze', ['c1'], ['c']),
      node('If', ['c'], ['y', 'z'], [attr.graph('then_branch', thenBranch), attr.graph('else_branch', elseBranch)]),
      constantNode('k16', int64Tensor('', [], [16000])),
      node('Equal', ['sr', 'k16'], ['is16']),
      node('If', ['is16'], ['w'], [attr.graph('then_branch', reshapeBranch('wt', [6, 4])), attr.graph('else_branch', reshapeBranch('we', [2, 2, 6]))]),
    ],
    inputs: [valueInfo('x', DataType.FLOAT, ['n', 12]), valueInfo('sr', DataType.INT64, [])],
    outputs: [out('y'), out('z'), out('w')],
  });
  return loadModel(modelBytes(g, { opset: 13 }));
}

const feeds = (n: number, sr: number) => ({
  x: new ort.Tensor('float32', Float32Array.from({ length: n * 12 }, (_, i) => i), [n, 12]),
  sr: new ort.Tensor('int64', BigInt64Array.from([BigInt(sr)]), []),
});

describe('If with a condition known statically', () => {
  test('takes the branch a shape comparison selects (nested too); the other branch is not counted', async () => {
    const m = controlFlowModel();
    const r = inferShapes(m, { inputShapes: { x: [2, 12] } });
    expect(r.errors).toEqual([]);
    const types = m.graph.types;
    expect(types.get('y')?.shape).toEqual([24]);
    expect(types.get('z')?.shape).toEqual([3, 8]);
    // sr unknown: both branches of the second If count, and their outputs disagree in rank.
    expect(types.get('w')?.shape).toBeUndefined();
    expect(r.unknownTensors).toEqual(['w']);
    // Counted node outputs: 11 main-graph ones + then (then_y, then_z) + inner (inner_y) + it (it_y) + wt_y + we_y.
    // Dead branches (else, ee, ie) are inferred but not counted.
    expect(r.known + r.unknown).toBe(11 + 2 + 1 + 1 + 2);
    const dead = m.graph.nodes.find((n) => n.outputs[0] === 'y')!.subgraphs[1];
    expect(dead.types.get('else_y')?.shape).toEqual([4, 6]);

    // onnxruntime agrees, for the whole run.
    const res = await runOnce(m, feeds(2, 16000));
    expect(res.y.dims).toEqual([24]);
    expect(res.z.dims).toEqual([3, 8]);
  });

  test('a symbolic dim leaves the condition unknown: both branches merge', () => {
    const m = controlFlowModel();
    // x's dim 1 is 12 in the declared shape ['n', 12]: the condition is still known.
    inferShapes(m);
    expect(m.graph.types.get('y')?.shape).toEqual([24]);
    const r = inferShapes(m, { inputShapes: { x: ['n', 'm'] } });
    expect(r.errors).toEqual([]);
    // then: [24] / else: [4, 6] (rank differs); then: [3, 8] or [8, 3] / else: x itself (rank 2).
    expect(m.graph.types.get('y')?.shape).toBeUndefined();
    expect(m.graph.types.get('z')?.shape).toEqual([undefined, undefined]);
  });

  test('inputValues fix a scalar input (a sample rate) so its If resolves', async () => {
    const m = controlFlowModel();
    inferShapes(m, { inputShapes: { x: [2, 12] }, inputValues: { sr: 16000 } });
    expect(m.graph.types.get('w')?.shape).toEqual([6, 4]);
    inferShapes(m, { inputShapes: { x: [2, 12] }, inputValues: { sr: 8000 } });
    expect(m.graph.types.get('w')?.shape).toEqual([2, 2, 6]);
    expect((await runOnce(m, feeds(2, 8000))).w.dims).toEqual([2, 2, 6]);
  });

  test('bad inputValues are user errors', () => {
    const m = controlFlowModel();
    expect(() => inferShapes(m, { inputValues: { rate: 16000 } })).toThrow(UserError);
    expect(() => inferShapes(m, { inputValues: { rate: 16000 } })).toThrow(/'rate', which is not an input/);
    expect(() => inferShapes(m, { inputValues: { sr: [16000, 8000] } })).toThrow(/has 2 element\(s\) but the input's shape \[\] holds 1/);
    expect(() => inferShapes(m, { inputShapes: { x: [2, 12] }, inputValues: { x: [1, 2, 3] } })).toThrow(/3 element\(s\) but the input's shape \[2, 12\] holds 24/);
  });
});

describe('MACs through If', () => {
  /** y = If(sr == 16000): x·W3 (then) or x·W5 (else), x [2, 12]. */
  function macModel() {
    const branch = (name: string, cols: number) => graph({
      name,
      nodes: [node('MatMul', ['x', `${name}_w`], [`${name}_y`])],
      inputs: [],
      outputs: [out(`${name}_y`)],
      initializers: [floatTensor(`${name}_w`, [12, cols], new Float32Array(12 * cols).fill(0.5))],
    });
    const g = graph({
      nodes: [constantNode('k16', int64Tensor('', [], [16000])), node('Equal', ['sr', 'k16'], ['is16']),
        node('If', ['is16'], ['y'], [attr.graph('then_branch', branch('t', 3)), attr.graph('else_branch', branch('e', 5))])],
      inputs: [valueInfo('x', DataType.FLOAT, [2, 12]), valueInfo('sr', DataType.INT64, [])],
      outputs: [out('y')],
    });
    return loadModel(modelBytes(g, { opset: 13 }));
  }

  test('an If decided by inputValues counts its taken branch; an undecided one makes the total unknown', () => {
    const m = macModel();
    const open = countMacs(m);
    expect(open.macs).toBeUndefined();
    expect(open.unknown).toEqual(['y']);
    expect(countMacs(m, { shapes: { inputValues: { sr: 16000 } } })).toEqual({ macs: 2 * 12 * 3, perNode: [{ node: 't_y', opType: 'MatMul', macs: 72 }], unknown: [] });
    expect(countMacs(m, { shapes: { inputValues: { sr: 8000 } } }).macs).toBe(2 * 12 * 5);
  });
});

describe('measuring tensors inside If branches with onnxruntime', () => {
  test('subgraphs: true measures the branches that run, level by level; the others get nothing', async () => {
    const m = controlFlowModel();
    const res = await inferShapesWithOrt(m, { feeds: feeds(2, 8000), tensors: 'all', subgraphs: true, fill: false });
    expect(res.shapes.get('then_y')).toEqual([24]);
    expect(res.shapes.get('inner_y')).toEqual([3, 8]);
    expect(res.shapes.get('it_y')).toEqual([3, 8]);
    expect(res.shapes.get('we_y')).toEqual([2, 2, 6]);
    for (const notRun of ['else_y', 'else_z', 'ee_y', 'ie_y', 'wt_y']) expect([notRun, res.shapes.has(notRun)]).toEqual([notRun, false]);
    expect(res.shapes.get('w')).toEqual([2, 2, 6]);
    // Without the option only main-graph tensors are measured.
    const main = await inferShapesWithOrt(m, { feeds: feeds(2, 8000), tensors: 'all', fill: false });
    expect([...main.shapes.keys()].sort()).toEqual(['c', 'c1', 'd1', 'is16', 'k16', 'one', 'shp', 'twelve', 'w', 'y', 'z']);
  });

  test('fill writes measured shapes into the subgraph that owns the tensor', async () => {
    const m = controlFlowModel();
    // x's dims symbolic: nothing in the branches is known statically.
    const res = await inferShapesWithOrt(m, { inputShapes: { x: ['n', 'm'] }, feeds: feeds(2, 16000), subgraphs: true });
    expect(res.filled.sort()).toEqual(['inner_y', 'then_z', 'w', 'y', 'z']);
    const thenGraph = m.graph.nodes.find((n) => n.outputs[0] === 'y')!.subgraphs[0];
    const innerGraph = thenGraph.nodes.find((n) => n.opType === 'If')!.subgraphs[0];
    expect(innerGraph.types.get('inner_y')?.shape).toEqual([3, 8]);
    expect(thenGraph.types.get('then_z')?.shape).toEqual([3, 8]);
    expect(m.graph.types.get('y')?.shape).toEqual([24]);
    expect(m.graph.types.get('z')?.shape).toEqual([3, 8]);
  });

  test('the product\'s inlineIfs splices the taken branch in, keeping tensor names; a name clash is refused', async () => {
    const m = controlFlowModel();
    const mainIfs = (x: Model) => x.graph.nodes.filter((n) => n.opType === 'If').map((n) => n.inputs[0]).sort();
    expect(mainIfs(m)).toEqual(['c', 'is16']);
    const ifOn = (x: Model, c: string) => x.graph.nodes.find((n) => n.opType === 'If' && n.inputs[0] === c)!.outputs[0];
    const one = inlineIfs(m, [{ ifOutput: ifOn(m, 'c'), then: true }])!;
    expect(mainIfs(one)).toEqual(['c', 'is16']); // the nested If on 'c' moved up
    const two = inlineIfs(one, [{ ifOutput: ifOn(one, 'c'), then: true }, { ifOutput: ifOn(one, 'is16'), then: false }])!;
    expect(mainIfs(two)).toEqual(['c']); // the innermost If
    const flat = inlineIfs(two, [{ ifOutput: ifOn(two, 'c'), then: true }])!;
    expect(mainIfs(flat)).toEqual([]);
    expect(flat.graph.nodes.some((n) => n.subgraphs.length)).toBe(false);
    expect(mainIfs(m)).toEqual(['c', 'is16']); // the input model is not modified
    const a = await runOnce(m, feeds(2, 8000));
    const b = await runOnce(flat, feeds(2, 8000));
    for (const k of ['y', 'z', 'w']) expect([k, Array.from(b[k].data as Float32Array)]).toEqual([k, Array.from(a[k].data as Float32Array)]);

    const clash = loadModel(encodeModelProto(m.toProto()));
    const thenG = clash.graph.proto.node.find((n) => n.opType === 'If' && n.output[0] === 'y')!.attribute.find((x) => x.name === 'then_branch')!.g!;
    thenG.node[0].output[0] = 'shp';
    thenG.output[0].name = 'shp';
    const reloaded = loadModel(encodeModelProto(clash.toProto()));
    expect(inlineIfs(reloaded, [{ ifOutput: 'y', then: true }])).toBeUndefined();
  });
});
