/**
 * Shape inference: tiny graphs built in code (hand-computed shapes, each also checked against onnxruntime), the
 * symbolic-dim arithmetic, and every shared model compared tensor by tensor with the shapes ORT really produces.
 */
import * as fs from 'fs';
import * as path from 'path';
import { DataType } from '../src/ir/dtype';
import { loadModel } from '../src/ir/io';
import type { Model } from '../src/ir/model';
import { type Shape, evalShape, inferShapes, isFullyKnown, knownValue, knownValues } from '../src/ir/shapes';
import { inferShapesWithOrt } from './helpers/ort-shapes';
import { addDim, divDim, eqDim, mulDim, subDim } from '../src/ir/shapes/sym';
import {
  attr, constantNode, floatTensor, graph, int64Tensor, modelBytes, node, onnx, valueInfo,
} from './helpers/builder';

const MODELS = path.resolve(__dirname, '../../shared/models');

type In = [name: string, dtype: DataType, shape: (number | string)[]];

interface Case {
  name: string;
  opset?: number;
  inputs: In[];
  nodes: onnx.NodeProto[];
  inits?: onnx.TensorProto[];
  /** Hand-computed shapes of some tensors. */
  expect: Record<string, Shape>;
  /** Symbol values used for the ORT run. */
  dims?: Record<string, number>;
}

function build(c: Case): Model {
  const produced = c.nodes.flatMap((n) => n.output);
  const consumed = new Set(c.nodes.flatMap((n) => n.input));
  const outs = produced.filter((o) => o && !consumed.has(o));
  const g = graph({
    nodes: c.nodes,
    inputs: c.inputs.map(([n, dt, s]) => valueInfo(n, dt, s)),
    outputs: outs.map((o) => onnx.ValueInfoProto.create({ name: o })),
    initializers: c.inits ?? [],
  });
  return loadModel(modelBytes(g, { opset: c.opset ?? 17 }));
}

const f = DataType.FLOAT;
const i64 = (name: string, v: number[], dims = [v.length]) => int64Tensor(name, dims, v);
const w = (name: string, dims: number[]) => floatTensor(name, dims, new Float32Array(dims.reduce((a, b) => a * b, 1)).fill(0.01));

const CASES: Case[] = [
  {
    name: 'broadcasting (numeric and symbolic)',
    inputs: [['a', f, [2, 1, 4]], ['b', f, [3, 1]], ['s', f, ['batch', 1, 4]]],
    nodes: [node('Add', ['a', 'b'], ['y']), node('Mul', ['s', 'b'], ['z']), node('Where', ['c', 'y', 'a'], ['wh']), node('Greater', ['a', 'b'], ['c'])],
    expect: { y: [2, 3, 4], z: ['batch', 3, 4], c: [2, 3, 4], wh: [2, 3, 4] },
    dims: { batch: 2 },
  },
  {
    name: 'Reshape with 0 and -1, allowzero',
    opset: 14,
    inputs: [['x', f, [2, 3, 4]]],
    inits: [i64('s1', [0, -1]), i64('s2', [-1, 3, 0]), i64('s3', [4, 6])],
    nodes: [node('Reshape', ['x', 's1'], ['y1']), node('Reshape', ['x', 's2'], ['y2']), node('Reshape', ['x', 's3'], ['y3'], [attr.int('allowzero', 1)])],
    expect: { y1: [2, 12], y2: [2, 3, 4], y3: [4, 6] },
  },
  {
    name: 'Slice: negative starts/ends, negative steps, axes, INT64 bounds',
    inputs: [['x', f, [10, 8, 6]]],
    inits: [
      i64('st', [-3, 1]), i64('en', [-1, 1000]), i64('ax', [0, -1]),
      i64('st2', [-1]), i64('en2', [-1e15]), i64('ax2', [1]), i64('sp2', [-3]),
      i64('st3', [2]), i64('en3', [100]), i64('sp3', [4]),
    ],
    nodes: [
      node('Slice', ['x', 'st', 'en', 'ax'], ['y1']),
      node('Slice', ['x', 'st2', 'en2', 'ax2', 'sp2'], ['y2']),
      node('Slice', ['x', 'st3', 'en3', '', 'sp3'], ['y3']),
    ],
    expect: { y1: [2, 8, 5], y2: [10, 3, 6], y3: [2, 8, 6] },
  },
  {
    name: 'Slice opset 9 attribute form',
    opset: 9,
    inputs: [['x', f, [10, 8]]],
    nodes: [node('Slice', ['x'], ['y'], [attr.ints('starts', [1, -4]), attr.ints('ends', [-2, 1000]), attr.ints('axes', [0, 1])])],
    expect: { y: [7, 4] },
  },
  {
    name: 'Split: sizes input, equal split, attribute form, num_outputs',
    opset: 18,
    inputs: [['x', f, [10, 7]]],
    inits: [i64('sp', [2, 3, 5])],
    nodes: [
      node('Split', ['x', 'sp'], ['a', 'b', 'c'], [attr.int('axis', 0)]),
      node('Split', ['x'], ['d', 'e'], [attr.int('axis', 0), attr.int('num_outputs', 2)]),
      node('Split', ['x'], ['g', 'h', 'k'], [attr.int('axis', -1), attr.int('num_outputs', 3)]),
    ],
    expect: { a: [2, 7], b: [3, 7], c: [5, 7], d: [5, 7], e: [5, 7], g: [10, 3], h: [10, 3], k: [10, 1] },
  },
  {
    name: 'Split opset 11 (split attribute) and opset 13 equal split',
    opset: 11,
    inputs: [['x', f, [4, 9]]],
    nodes: [node('Split', ['x'], ['a', 'b'], [attr.int('axis', 1), attr.ints('split', [4, 5])]), node('Split', ['x'], ['c', 'd'])],
    expect: { a: [4, 4], b: [4, 5], c: [2, 9], d: [2, 9] },
  },
  {
    name: 'Conv: strides, pads, dilations, groups, auto_pad',
    inputs: [['x', f, [1, 4, 17, 19]]],
    inits: [w('w1', [8, 4, 3, 5]), w('w2', [4, 1, 3, 3]), w('w3', [6, 4, 2, 2])],
    nodes: [
      node('Conv', ['x', 'w1'], ['y1'], [attr.ints('strides', [2, 3]), attr.ints('pads', [1, 2, 0, 1]), attr.ints('dilations', [2, 1])]),
      node('Conv', ['x', 'w2'], ['y2'], [attr.int('group', 4), attr.ints('pads', [1, 1, 1, 1]), attr.ints('kernel_shape', [3, 3])]),
      node('Conv', ['x', 'w3'], ['y3'], [attr.string('auto_pad', 'SAME_UPPER'), attr.ints('strides', [2, 2])]),
      node('Conv', ['x', 'w3'], ['y4'], [attr.string('auto_pad', 'VALID'), attr.ints('strides', [3, 3])]),
    ],
    // y1: H = floor((17+1+0-5)/2)+1 = 7, W = floor((19+2+1-5)/3)+1 = 6
    expect: { y1: [1, 8, 7, 6], y2: [1, 4, 17, 19], y3: [1, 6, 9, 10], y4: [1, 6, 6, 6] },
  },
  {
    name: 'ConvTranspose: strides, pads, output_padding, output_shape',
    inputs: [['x', f, [1, 4, 5, 6]]],
    inits: [w('w', [4, 3, 3, 3]), w('wg', [4, 2, 3, 3])],
    nodes: [
      node('ConvTranspose', ['x', 'w'], ['y1'], [attr.ints('strides', [2, 2]), attr.ints('pads', [1, 1, 1, 1]), attr.ints('output_padding', [1, 0])]),
      node('ConvTranspose', ['x', 'wg'], ['y2'], [attr.int('group', 2), attr.ints('strides', [2, 3]), attr.ints('output_shape', [11, 18])]),
    ],
    // y1: H = 2*4 + 1 + 3 - 2 = 10, W = 2*5 + 0 + 3 - 2 = 11
    expect: { y1: [1, 3, 10, 11], y2: [1, 4, 11, 18] },
  },
  {
    name: 'pooling: ceil_mode, pads, global; MaxUnpool',
    inputs: [['x', f, [2, 3, 10, 11]], ['x2', f, [1, 2, 6, 4]]],
    nodes: [
      node('MaxPool', ['x'], ['m1'], [attr.ints('kernel_shape', [3, 3]), attr.ints('strides', [2, 2]), attr.int('ceil_mode', 1)]),
      node('MaxPool', ['x'], ['m2'], [attr.ints('kernel_shape', [2, 2]), attr.ints('strides', [2, 2]), attr.ints('pads', [1, 1, 1, 1]), attr.int('ceil_mode', 1)]),
      node('AveragePool', ['x'], ['a1'], [attr.ints('kernel_shape', [3, 2]), attr.ints('pads', [1, 0, 1, 0])]),
      node('GlobalAveragePool', ['x'], ['g']),
      node('MaxPool', ['x'], ['m3', 'm3i'], [attr.ints('kernel_shape', [2, 2]), attr.ints('strides', [2, 2])]),
      node('Shape', ['x'], ['xs']),
      node('MaxUnpool', ['m3', 'm3i', 'xs'], ['un'], [attr.ints('kernel_shape', [2, 2]), attr.ints('strides', [2, 2])]),
      node('MaxPool', ['x2'], ['m4', 'm4i'], [attr.ints('kernel_shape', [2, 2]), attr.ints('strides', [2, 2])]),
      node('MaxUnpool', ['m4', 'm4i'], ['un2'], [attr.ints('kernel_shape', [2, 2]), attr.ints('strides', [2, 2])]),
    ],
    // m1: ceil((10-3)/2)+1 = 5 twice. m2: H ceil(10/2)+1 = 6; W ceil(11/2)+1 = 7, but the 7th window would start
    // at 12 ≥ 11 + 1 (inside the right padding only), so 6.
    expect: { m1: [2, 3, 5, 5], m2: [2, 3, 6, 6], a1: [2, 3, 10, 10], g: [2, 3, 1, 1], m3i: [2, 3, 5, 5], un: [2, 3, 10, 11], un2: [1, 2, 6, 4] },
  },
  {
    name: 'Gather along axes (tensor, scalar and negative indices)',
    inputs: [['x', f, [3, 4, 5]]],
    inits: [i64('i2', [0, 1, 2, -1], [2, 2]), i64('i0', [2], [])],
    nodes: [
      node('Gather', ['x', 'i2'], ['y1'], [attr.int('axis', 1)]),
      node('Gather', ['x', 'i0'], ['y2'], [attr.int('axis', -1)]),
      node('Gather', ['x', 'i2'], ['y3']),
    ],
    expect: { y1: [3, 2, 2, 5], y2: [3, 4], y3: [2, 2, 4, 5] },
  },
  {
    name: 'Squeeze/Unsqueeze (inputs, opset 13) and Flatten, Transpose, Concat',
    inputs: [['x', f, [1, 3, 1, 5]]],
    inits: [i64('ax', [0, 2]), i64('ux', [-1, 1])],
    nodes: [
      node('Squeeze', ['x', 'ax'], ['s']),
      node('Unsqueeze', ['s', 'ux'], ['u']),
      node('Flatten', ['x'], ['fl'], [attr.int('axis', 2)]),
      node('Transpose', ['x'], ['t'], [attr.ints('perm', [3, 1, 0, 2])]),
      node('Concat', ['x', 'x'], ['c'], [attr.int('axis', -1)]),
      node('Squeeze', ['x'], ['s2']),
    ],
    expect: { s: [3, 5], u: [3, 1, 5, 1], fl: [3, 5], t: [5, 3, 1, 1], c: [1, 3, 1, 10], s2: [3, 5] },
  },
  {
    name: 'Squeeze/Unsqueeze attribute form (opset 11)',
    opset: 11,
    inputs: [['x', f, [1, 3, 1]]],
    nodes: [node('Squeeze', ['x'], ['s'], [attr.ints('axes', [-1])]), node('Unsqueeze', ['s'], ['u'], [attr.ints('axes', [0, 3])])],
    expect: { s: [1, 3], u: [1, 1, 3, 1] },
  },
  {
    name: 'reductions: axes attribute (opset 13) and input (ReduceSum 13)',
    opset: 13,
    inputs: [['x', f, [2, 3, 4]]],
    inits: [i64('ax', [1])],
    nodes: [
      node('ReduceMean', ['x'], ['m'], [attr.ints('axes', [-1])]),
      node('ReduceMax', ['x'], ['mx'], [attr.ints('axes', [0, 2]), attr.int('keepdims', 0)]),
      node('ReduceSum', ['x', 'ax'], ['s'], [attr.int('keepdims', 0)]),
      node('ReduceSum', ['x'], ['sa']),
      node('ArgMax', ['x'], ['am'], [attr.int('axis', 1), attr.int('keepdims', 0)]),
    ],
    expect: { m: [2, 3, 1], mx: [3], s: [2, 4], sa: [1, 1, 1], am: [2, 4] },
  },
  {
    name: 'reductions: axes input (opset 18)',
    opset: 18,
    inputs: [['x', f, [2, 3, 4]]],
    inits: [i64('ax', [0, -1])],
    nodes: [node('ReduceMean', ['x', 'ax'], ['m']), node('ReduceL2', ['x'], ['l'], [attr.int('keepdims', 0)])],
    expect: { m: [1, 3, 1], l: [] },
  },
  {
    name: 'MatMul (batched, 1-D), Gemm (transposes), Einsum',
    inputs: [['a', f, [2, 1, 3, 4]], ['b', f, [5, 4, 6]], ['v', f, [4]], ['m', f, [4, 3]]],
    inits: [w('gw', [7, 4])],
    nodes: [
      node('MatMul', ['a', 'b'], ['ab']),
      node('MatMul', ['a', 'v'], ['av']),
      node('MatMul', ['v', 'b'], ['vb']),
      node('Gemm', ['m', 'gw'], ['g'], [attr.int('transA', 1), attr.int('transB', 1)]),
      node('Einsum', ['b', 'm'], ['e1'], [attr.string('equation', 'bji,jk->bik')]),
      node('Einsum', ['m'], ['e2'], [attr.string('equation', 'ij->ji')]),
      node('Einsum', ['a', 'm'], ['e3'], [attr.string('equation', '...ij,jk')]),
    ],
    expect: { ab: [2, 5, 3, 6], av: [2, 1, 3], vb: [5, 6], g: [3, 7], e1: [5, 6, 3], e2: [3, 4], e3: [2, 1, 3, 3] },
  },
  {
    name: 'Pad (input pads, opset 18 axes), Resize (scales, sizes), Tile, Expand, DepthToSpace',
    opset: 18,
    inputs: [['x', f, [1, 2, 4, 6]]],
    inits: [
      i64('pads', [0, 0, 1, 2, 0, 0, 3, 0]), i64('pads2', [1, 1, 2, 2]), i64('pax', [1, 3]),
      floatTensor('scales', [4], [1, 1, 2, 1.5]), i64('sizes', [3, 5]), i64('rax', [2, 3]),
      i64('reps', [2, 1, 1, 3]), i64('eshape', [3, 1, 1, 1]),
    ],
    nodes: [
      node('Pad', ['x', 'pads'], ['p1']),
      node('Pad', ['x', 'pads2', '', 'pax'], ['p2']),
      node('Resize', ['x', '', 'scales'], ['r1'], [attr.string('mode', 'nearest')]),
      node('Resize', ['x', '', '', 'sizes'], ['r2'], [attr.ints('axes', [2, 3])]),
      node('Tile', ['x', 'reps'], ['t']),
      node('Expand', ['x', 'eshape'], ['e']),
      node('DepthToSpace', ['x'], ['d'], [attr.int('blocksize', 1)]),
    ],
    expect: { p1: [1, 2, 8, 8], p2: [1, 5, 4, 9], r1: [1, 2, 8, 9], r2: [1, 2, 3, 5], t: [2, 2, 4, 18], e: [3, 2, 4, 6], d: [1, 2, 4, 6] },
  },
  {
    name: 'Pad attribute form and Resize with scales (opset 10)',
    opset: 10,
    inputs: [['x', f, [1, 2, 4, 6]], ['y', f, [1, 1, 10, 20]]],
    inits: [floatTensor('sc', [4], [1, 1, 2, 3]), floatTensor('down', [4], [1, 1, 0.7, 0.35])],
    nodes: [node('Pad', ['x'], ['p'], [attr.ints('pads', [0, 1, 0, 1, 0, 0, 2, 1])]), node('Resize', ['x', 'sc'], ['r']), node('Resize', ['y', 'down'], ['rd'])],
    // 10 × 0.7f and 20 × 0.35f are 6.99999988 in double but round to 7 in float32, as ORT computes them.
    expect: { p: [1, 3, 6, 8], r: [1, 2, 8, 18], rd: [1, 1, 7, 7] },
  },
  {
    name: 'opset 9: Upsample (scales input), BatchNormalization, Flatten, Gemm, Slice and Unsqueeze attributes',
    opset: 9,
    inputs: [['x', f, ['batch', 2, 3, 4]]],
    inits: [floatTensor('sc', [4], [1, 1, 2, 2]), w('s', [2]), w('b', [2]), w('mu', [2]), floatTensor('var', [2], [1, 1]), w('fw', [96, 5]), w('fb', [5])],
    nodes: [
      node('Upsample', ['x', 'sc'], ['u'], [attr.string('mode', 'nearest')]),
      node('BatchNormalization', ['u', 's', 'b', 'mu', 'var'], ['bn']),
      node('Flatten', ['bn'], ['fl']),
      node('Gemm', ['fl', 'fw', 'fb'], ['g']),
      node('Slice', ['g'], ['sl'], [attr.ints('starts', [1]), attr.ints('ends', [4]), attr.ints('axes', [1])]),
      node('Unsqueeze', ['sl'], ['us'], [attr.ints('axes', [1])]),
    ],
    expect: { u: ['batch', 2, 6, 8], bn: ['batch', 2, 6, 8], fl: ['batch', 96], g: ['batch', 5], sl: ['batch', 3], us: ['batch', 1, 3] },
    dims: { batch: 2 },
  },
  {
    name: 'LSTM / GRU output shapes',
    inputs: [['x', f, [5, 2, 3]]],
    inits: [w('W', [2, 16, 3]), w('R', [2, 16, 4]), w('Wg', [1, 12, 3]), w('Rg', [1, 12, 4])],
    nodes: [
      node('LSTM', ['x', 'W', 'R'], ['y', 'yh', 'yc'], [attr.int('hidden_size', 4), attr.string('direction', 'bidirectional')]),
      node('GRU', ['x', 'Wg', 'Rg'], ['gy', 'gh'], [attr.int('hidden_size', 4)]),
    ],
    expect: { y: [5, 2, 2, 4], yh: [2, 2, 4], yc: [2, 2, 4], gy: [5, 1, 2, 4], gh: [1, 2, 4] },
  },
  {
    name: 'misc: TopK, OneHot, GatherND, Range, ConstantOfShape, LayerNormalization, Cast',
    inputs: [['x', f, [3, 8]], ['idx', DataType.INT64, [3, 2]]],
    inits: [i64('k', [2]), i64('depth', [5], []), floatTensor('oh', [2], [0, 1]), i64('r0', [2], []), i64('r1', [11], []), i64('r2', [3], []), i64('cs', [2, 3]), w('lnw', [8])],
    nodes: [
      node('TopK', ['x', 'k'], ['tv', 'ti']),
      node('OneHot', ['idx', 'depth', 'oh'], ['o'], [attr.int('axis', 1)]),
      node('GatherND', ['x', 'idx'], ['gnd']),
      node('Range', ['r0', 'r1', 'r2'], ['rg']),
      node('ConstantOfShape', ['cs'], ['co']),
      node('LayerNormalization', ['x', 'lnw'], ['ln', 'lm', 'lv'], [attr.int('axis', 1)]),
      node('Cast', ['x'], ['ci'], [attr.int('to', DataType.INT32)]),
    ],
    expect: { tv: [3, 2], ti: [3, 2], o: [3, 5, 2], gnd: [3], rg: [3], co: [2, 3], ln: [3, 8], lm: [3, 1], ci: [3, 8] },
  },
  {
    name: 'shape plumbing: Shape → Gather → Unsqueeze → Concat → Reshape keeps symbols exact',
    inputs: [['x', f, ['batch', 'seq', 128]]],
    inits: [i64('g0', [0], []), i64('g1', [1], []), i64('ax0', [0]), i64('four', [4]), i64('thirty2', [32]), i64('minus1', [-1])],
    nodes: [
      node('Shape', ['x'], ['sh']),
      node('Gather', ['sh', 'g0'], ['b'], [attr.int('axis', 0)]),
      node('Gather', ['sh', 'g1'], ['s'], [attr.int('axis', 0)]),
      node('Unsqueeze', ['b', 'ax0'], ['ub']),
      node('Unsqueeze', ['s', 'ax0'], ['us']),
      node('Concat', ['ub', 'us', 'four', 'thirty2'], ['target'], [attr.int('axis', 0)]),
      node('Reshape', ['x', 'target'], ['heads']),
      node('Transpose', ['heads'], ['ht'], [attr.ints('perm', [0, 2, 1, 3])]),
      node('Mul', ['b', 's'], ['bs']),
      node('Unsqueeze', ['bs', 'ax0'], ['ubs']),
      node('Concat', ['ubs', 'minus1'], ['t2'], [attr.int('axis', 0)]),
      node('Reshape', ['ht', 't2'], ['flat']),
      node('Shape', ['x'], ['sh2'], [attr.int('start', -1)]),
    ],
    expect: { heads: ['batch', 'seq', 4, 32], ht: ['batch', 4, 'seq', 32], flat: ['batch*seq', 128], target: [4] },
    dims: { batch: 3, seq: 5 },
  },
  {
    name: 'Expand through the Equal/Where(-1) pattern and a Constant node',
    inputs: [['x', f, ['batch', 4, 8]]],
    inits: [i64('g0', [0], []), i64('ax0', [0]), i64('m1', [-1]), w('tok', [1, 1, 8])],
    nodes: [
      node('Shape', ['x'], ['sh']),
      node('Gather', ['sh', 'g0'], ['b']),
      node('Unsqueeze', ['b', 'ax0'], ['ub']),
      constantNode('c11', i64('', [-1, -1])),
      node('Concat', ['ub', 'c11'], ['want'], [attr.int('axis', 0)]),
      node('Shape', ['want'], ['wsh']),
      node('ConstantOfShape', ['wsh'], ['ones'], [attr.tensor('value', i64('', [1]))]),
      node('Mul', ['ones', 'm1'], ['neg']),
      node('Equal', ['want', 'neg'], ['eq']),
      node('Where', ['eq', 'ones', 'want'], ['ew']),
      node('Expand', ['tok', 'ew'], ['cls']),
      node('Concat', ['cls', 'x'], ['seqx'], [attr.int('axis', 1)]),
    ],
    expect: { cls: ['batch', 1, 8], seqx: ['batch', 5, 8], ew: [3] },
    dims: { batch: 2 },
  },
];

describe('shape rules on tiny graphs (checked against onnxruntime)', () => {
  for (const c of CASES) {
    test(c.name, async () => {
      const m = build(c);
      const r = inferShapes(m);
      expect(r.errors).toEqual([]);
      expect(r.unsupportedOps).toEqual([]);
      for (const [name, want] of Object.entries(c.expect)) expect([name, m.graph.types.get(name)?.shape]).toEqual([name, want]);
      // Every node output is fully known, and agrees with what ORT computes.
      expect(r.unknownTensors).toEqual([]);
      const dims = c.dims ?? {};
      const ort = await inferShapesWithOrt(m, { tensors: 'all', dims, fill: false });
      expect(ort.shapes.size).toBeGreaterThan(0);
      for (const [name, measured] of ort.shapes) {
        const t = m.graph.types.get(name)!;
        expect([name, evalShape(t.shape, dims)]).toEqual([name, measured]);
        expect([name, t.dtype]).toEqual([name, ort.dtypes.get(name)]);
      }
    });
  }

  test('the plumbing values are exposed through knownValues', () => {
    const c = CASES.find((x) => x.name.startsWith('shape plumbing'))!;
    const m = build(c);
    inferShapes(m);
    const v = knownValues(m.graph);
    expect(v.get('target')).toEqual({ dims: [4], data: ['batch', 'seq', 4, 32] });
    expect(v.get('sh2')?.data).toEqual([128]);
    expect(knownValue(m.graph, 'four')).toEqual({ dims: [1], data: [4] });
    expect(knownValue(m.graph, 'x')).toBeUndefined();
  });

  test('dims and inputShapes options substitute numbers; bad input names are user errors', () => {
    const c = CASES.find((x) => x.name.startsWith('shape plumbing'))!;
    const m = build(c);
    inferShapes(m, { dims: { batch: 3 } });
    expect(m.graph.types.get('heads')?.shape).toEqual([3, 'seq', 4, 32]);
    expect(m.graph.types.get('flat')?.shape).toEqual(['3*seq', 128]);
    inferShapes(m, { inputShapes: { x: [2, 7, 128] } });
    expect(m.graph.types.get('flat')?.shape).toEqual([14, 128]);
    expect(() => inferShapes(m, { inputShapes: { nope: [1] } })).toThrow(/'nope', which is not an input/);
  });

  test('unknown ops leave outputs unknown and are listed; inference continues downstream where it can', () => {
    const g = graph({
      nodes: [
        node('Relu', ['x'], ['r']),
        onnx.NodeProto.create({ opType: 'FancyOp', domain: 'com.example', input: ['r'], output: ['q'] }),
        onnx.NodeProto.create({ opType: 'NotARealOnnxOp', input: ['r'], output: ['q2'] }),
        node('Shape', ['q'], ['qs']),
        node('Add', ['q', 'r'], ['sum']),
      ],
      inputs: [valueInfo('x', DataType.FLOAT, [2, 3])],
      outputs: [onnx.ValueInfoProto.create({ name: 'sum' })],
    });
    const m = loadModel(modelBytes(g));
    const r = inferShapes(m);
    expect(r.unsupportedOps).toEqual(['NotARealOnnxOp', 'com.example.FancyOp']);
    expect(m.graph.types.get('q')?.shape).toBeUndefined();
    expect(m.graph.types.get('qs')?.shape).toEqual([undefined]);
    expect(m.graph.types.get('sum')?.shape).toBeUndefined();
    expect(r.known).toBe(1);
    expect(r.unknown).toBe(4);
    expect(r.unknownTensors).toEqual(['q', 'q2', 'qs', 'sum']);
  });

  test('a declared value_info fills what inference cannot tell', () => {
    const g = graph({
      nodes: [onnx.NodeProto.create({ opType: 'Mystery', domain: 'x.y', input: ['x'], output: ['q'] }), node('Relu', ['q'], ['r'])],
      inputs: [valueInfo('x', DataType.FLOAT, [2, 3])],
      outputs: [onnx.ValueInfoProto.create({ name: 'r' })],
      valueInfo: [valueInfo('q', DataType.FLOAT, ['n', 6])],
    });
    const m = loadModel(modelBytes(g));
    inferShapes(m);
    // 'n' is no input symbol: an exporter's name for an unknown size, so that dim stays unknown.
    expect(m.graph.types.get('r')).toEqual({ dtype: DataType.FLOAT, shape: [undefined, 6] });
    m.graph.proto.input[0] = valueInfo('x', DataType.FLOAT, ['n', 3]);
    inferShapes(m);
    expect(m.graph.types.get('r')).toEqual({ dtype: DataType.FLOAT, shape: ['n', 6] });
  });

  test('inferShapesWithOrt fills data-dependent shapes from a run, on a copy of the model', async () => {
    const g = graph({
      nodes: [node('NonZero', ['x'], ['nz']), node('Transpose', ['nz'], ['t']), node('Relu', ['x'], ['r'])],
      inputs: [valueInfo('x', DataType.FLOAT, ['batch', 3])],
      outputs: [onnx.ValueInfoProto.create({ name: 't' }), onnx.ValueInfoProto.create({ name: 'r' })],
    });
    const m = loadModel(modelBytes(g));
    inferShapes(m);
    expect(m.graph.types.get('nz')?.shape).toEqual([2, undefined]);
    const x = new Float32Array([1, 0, 2, 0, 0, 3]);
    const { ort: ortNs } = await import('../src/ort/session');
    const res = await inferShapesWithOrt(m, { feeds: { x: new ortNs.Tensor('float32', x, [2, 3]) } });
    // Only the statically unknown tensors are measured and filled; known dims (2) are kept.
    expect([...res.shapes.keys()].sort()).toEqual(['nz', 't']);
    expect(res.filled.sort()).toEqual(['nz', 't']);
    expect(m.graph.types.get('nz')).toEqual({ dtype: DataType.INT64, shape: [2, 3] });
    expect(m.graph.types.get('t')?.shape).toEqual([3, 2]);
    expect(m.graph.types.get('r')?.shape).toEqual(['batch', 3]);
    // The caller's model is unchanged apart from graph.types.
    expect(m.graph.outputs.map((o) => o.name)).toEqual(['t', 'r']);
  });

  test('Loop: carried values keep stable dims, scan outputs get a leading unknown dim', () => {
    const body = graph({
      name: 'body',
      nodes: [node('Add', ['acc_in', 'one'], ['acc_out']), node('Identity', ['cond_in'], ['cond_out']), node('Mul', ['acc_in', 'acc_in'], ['scan'])],
      inputs: [valueInfo('iter', DataType.INT64, []), valueInfo('cond_in', DataType.BOOL, []), valueInfo('acc_in', DataType.FLOAT, [])],
      outputs: [onnx.ValueInfoProto.create({ name: 'cond_out' }), onnx.ValueInfoProto.create({ name: 'acc_out' }), onnx.ValueInfoProto.create({ name: 'scan' })],
      initializers: [floatTensor('one', [1], [1])],
    });
    const g = graph({
      nodes: [node('Loop', ['trip', 'c0', 'x'], ['final', 'stacked'], [attr.graph('body', body)])],
      inputs: [valueInfo('trip', DataType.INT64, []), valueInfo('c0', DataType.BOOL, []), valueInfo('x', DataType.FLOAT, [2, 3])],
      outputs: [onnx.ValueInfoProto.create({ name: 'final' }), onnx.ValueInfoProto.create({ name: 'stacked' })],
    });
    const m = loadModel(modelBytes(g, { opset: 13 }));
    const r = inferShapes(m);
    expect(r.errors).toEqual([]);
    expect(m.graph.types.get('final')).toEqual({ dtype: DataType.FLOAT, shape: [2, 3] });
    expect(m.graph.types.get('stacked')?.shape).toEqual([undefined, 2, 3]);
  });

  test('If: outputs keep the dims both branches agree on', async () => {
    const branch = (name: string, dims: number[]) => graph({
      name,
      nodes: [node('Reshape', ['x', `${name}_s`], [`${name}_y`])],
      inputs: [],
      outputs: [onnx.ValueInfoProto.create({ name: `${name}_y` })],
      initializers: [i64(`${name}_s`, dims)],
    });
    const g = graph({
      nodes: [node('If', ['cond'], ['y'], [attr.graph('then_branch', branch('t', [4, 6])), attr.graph('else_branch', branch('e', [4, 3, 2]))]),
        node('If', ['cond'], ['z'], [attr.graph('then_branch', branch('t2', [4, 6])), attr.graph('else_branch', branch('e2', [4, -1]))])],
      inputs: [valueInfo('x', DataType.FLOAT, [2, 12]), valueInfo('cond', DataType.BOOL, [])],
      outputs: [onnx.ValueInfoProto.create({ name: 'y' }), onnx.ValueInfoProto.create({ name: 'z' })],
    });
    const m = loadModel(modelBytes(g));
    const r = inferShapes(m);
    expect(r.errors).toEqual([]);
    expect(m.graph.types.get('y')?.shape).toBeUndefined();
    expect(m.graph.types.get('z')?.shape).toEqual([4, 6]);
    expect(m.graph.nodes[0].subgraphs[1].types.get('e_y')?.shape).toEqual([4, 3, 2]);
  });
});

describe('symbolic dims', () => {
  test('monomial arithmetic', () => {
    expect(mulDim('batch', 16)).toBe('16*batch');
    expect(mulDim('seq', 'batch')).toBe('batch*seq');
    expect(divDim('16*batch', 4)).toBe('4*batch');
    expect(divDim('batch*seq', 'seq')).toBe('batch');
    expect(divDim('batch', 2)).toBeUndefined();
    expect(divDim(7, 2)).toBe(3);
    expect(addDim('seq', 'seq')).toBe('2*seq');
    expect(subDim('seq', 'seq')).toBe(0);
    expect(addDim('seq', 1)).toBeUndefined();
    expect(eqDim('batch', -1)).toBe(false);
    expect(eqDim('batch', 0)).toBe(false);
    expect(eqDim('batch', 1)).toBeUndefined();
    expect(eqDim('4*batch', 6)).toBe(false);
    expect(evalShape(['batch*seq', '16*batch', 3], { batch: 2, seq: 5 })).toEqual([10, 32, 3]);
    expect(evalShape(['batch', undefined], {})).toBeUndefined();
  });
});

describe('shared models: static shapes agree with onnxruntime', () => {
  const files = fs.readdirSync(MODELS).filter((x) => x.endsWith('.onnx')).sort();
  const CNN = /resnet|mobilenet|shufflenet|squeezenet|mnasnet|densenet|convnext|lenet/;
  const coverage: string[] = [];

  afterAll(() => {
    // The figures the report quotes: coverage of node outputs per model.
    console.log(`shape inference coverage (node outputs fully known):\n${coverage.join('\n')}`);
  });

  for (const file of files) {
    test(file, async () => {
      const m = loadModel(path.join(MODELS, file));
      const t0 = performance.now();
      const r = inferShapes(m);
      const ms = performance.now() - t0;
      const total = r.known + r.unknown;
      const pct = (100 * r.known) / total;
      coverage.push(`  ${file.padEnd(34)} ${r.known}/${total} (${pct.toFixed(1)} %) in ${ms.toFixed(0)} ms`);
      expect(r.errors).toEqual([]);
      expect(r.unsupportedOps).toEqual([]);
      if (CNN.test(file)) expect(pct).toBeGreaterThanOrEqual(95);
      else expect(pct).toBeGreaterThanOrEqual(90);

      const types = new Map(m.graph.types);
      const tokenModel = m.graph.realInputs.some((i) => i.type?.tensorType?.elemType === DataType.INT64);
      const dims = { batch: 2, seq: 5 };
      const ort = await inferShapesWithOrt(m, { tensors: 'all', dims, intHigh: tokenModel ? 256 : 2, fill: false });
      let compared = 0;
      for (const [name, measured] of ort.shapes) {
        const t = types.get(name);
        if (!t || !isFullyKnown(t.shape)) continue;
        compared++;
        expect([name, evalShape(t.shape, dims)]).toEqual([name, measured]);
        expect([name, t.dtype]).toEqual([name, ort.dtypes.get(name)]);
      }
      expect(compared).toBe(r.known);
    });
  }
});
