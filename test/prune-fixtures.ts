/**
 * Tiny models built in code for the pruning tests, each with hand-written groups (the analysis contract of
 * src/analysis/types.ts) so that apply/mask/verify can be tested independently of the analysis.
 */
import type { AttrMember, Group, GroupAnalysis, Member, MemberRole, ShapeMember, WeightMember } from '../src/analysis/types';
import { loadModel } from '../src/ir/io';
import type { Model } from '../src/ir/model';
import { float32ToFloat16 } from '../src/ir/dtype';
import { DataType, attr, constantNode, floatTensor, graph, int64Tensor, modelBytes, node, onnx, seededRng, tensor, uniform, valueInfo } from './helpers/builder';

export interface Fixture {
  model: Model;
  bytes: Uint8Array;
  analysis: GroupAnalysis;
}

/** indices[u] = [offset + u*per, ..., offset + u*per + per - 1] for `size` units. */
export function units(size: number, per = 1, offset = 0): number[][] {
  return Array.from({ length: size }, (_, u) => Array.from({ length: per }, (_, j) => offset + u * per + j));
}

export function w(tensor: string, nodeId: string, input: number, axis: number, role: MemberRole, indices: number[][]): WeightMember {
  return { kind: 'weight', tensor, node: nodeId, input, axis, role, indices };
}

export function sh(tensor: string, nodeId: string, input: number, position: number, perUnit: number): ShapeMember {
  return { kind: 'shape', tensor, node: nodeId, input, position, perUnit };
}

export function at(nodeId: string, attrName: string, perUnit: number, position?: number): AttrMember {
  return { kind: 'attr', node: nodeId, attr: attrName, position, perUnit };
}

export function group(id: string, size: number, members: Member[], unit: Group['unit'] = 'channel', unitSize = 1): Group {
  return { id, label: id, unit, unitSize, size, members, paramsPerUnit: 0 };
}

export function analysisOf(groups: Group[]): GroupAnalysis {
  return { groups, declined: [], summary: { totalParams: 0, prunableParams: 0, groups: groups.length, declined: 0 } };
}

function fixture(g: onnx.GraphProto, groups: Group[], opset = 17, irVersion = 8): Fixture {
  const bytes = modelBytes(g, { opset, irVersion });
  return { model: loadModel(bytes), bytes, analysis: analysisOf(groups) };
}

const f = (name: string, dims: number[], seed: number, scale = 0.5) =>
  floatTensor(name, dims, uniform(seededRng(seed), dims.reduce((a, b) => a * b, 1), scale));

/** Conv(8) → Relu → Conv(4); optional value_info with a (soon stale) shape for the hidden tensor. */
export function convReluConv(withValueInfo = false): Fixture {
  const g = graph({
    nodes: [
      node('Conv', ['x', 'W1', 'B1'], ['c1'], [attr.ints('pads', [1, 1, 1, 1])], 'conv1'),
      node('Relu', ['c1'], ['r1']),
      node('Conv', ['r1', 'W2', 'B2'], ['y'], [attr.ints('pads', [1, 1, 1, 1])], 'conv2'),
    ],
    inputs: [valueInfo('x', DataType.FLOAT, ['batch', 3, 8, 8])],
    outputs: [valueInfo('y', DataType.FLOAT, ['batch', 4, 8, 8])],
    initializers: [f('W1', [8, 3, 3, 3], 1), f('B1', [8], 2), f('W2', [4, 8, 3, 3], 3), f('B2', [4], 4)],
    valueInfo: withValueInfo ? [valueInfo('c1', DataType.FLOAT, ['batch', 8, 8, 8]), valueInfo('r1', DataType.FLOAT, ['batch', 8, 8, 8])] : [],
  });
  return fixture(g, [group('conv1', 8, [w('W1', 'c1', 1, 0, 'out', units(8)), w('B1', 'c1', 2, 0, 'out', units(8)), w('W2', 'y', 1, 1, 'in', units(8))])]);
}

/** Gemm(transB=1, 16) → Relu → Gemm(transB=0, 5); `irVersion` 3 lists the initializers as graph inputs too. */
export function gemmMlp(irVersion = 8): Fixture {
  const inits = [f('W1', [16, 10], 5), f('B1', [16], 6), f('W2', [16, 5], 7), f('B2', [5], 8)];
  const g = graph({
    nodes: [
      node('Gemm', ['x', 'W1', 'B1'], ['h'], [attr.int('transB', 1)]),
      node('Relu', ['h'], ['r']),
      node('Gemm', ['r', 'W2', 'B2'], ['y']),
    ],
    inputs: [valueInfo('x', DataType.FLOAT, ['batch', 10]), ...(irVersion < 4 ? inits.map((t) => valueInfo(t.name, DataType.FLOAT, t.dims.map(Number))) : [])],
    outputs: [valueInfo('y', DataType.FLOAT, ['batch', 5])],
    initializers: inits,
  });
  return fixture(g, [group('fc1', 16, [w('W1', 'h', 1, 0, 'out', units(16)), w('B1', 'h', 2, 0, 'out', units(16)), w('W2', 'y', 1, 0, 'in', units(16))], 'neuron')], irVersion < 4 ? 9 : 17, irVersion);
}

/** Conv (no bias) → BatchNormalization → Relu → Conv. */
export function convBnConv(): Fixture {
  const next = seededRng(9);
  const varT = floatTensor('bn_var', [6], Float32Array.from({ length: 6 }, () => 0.5 + next()));
  const g = graph({
    nodes: [
      node('Conv', ['x', 'W1'], ['c1'], [attr.ints('pads', [1, 1, 1, 1])]),
      node('BatchNormalization', ['c1', 'bn_scale', 'bn_bias', 'bn_mean', 'bn_var'], ['bn']),
      node('Relu', ['bn'], ['r']),
      node('Conv', ['r', 'W2', 'B2'], ['y']),
    ],
    inputs: [valueInfo('x', DataType.FLOAT, ['batch', 2, 5, 5])],
    outputs: [valueInfo('y', DataType.FLOAT, ['batch', 3, 5, 5])],
    initializers: [f('W1', [6, 2, 3, 3], 10), f('bn_scale', [6], 11), f('bn_bias', [6], 12), f('bn_mean', [6], 13), varT, f('W2', [3, 6, 1, 1], 14), f('B2', [3], 15)],
  });
  return fixture(g, [group('conv1', 6, [
    w('W1', 'c1', 1, 0, 'out', units(6)),
    w('bn_scale', 'bn', 1, 0, 'param', units(6)), w('bn_bias', 'bn', 2, 0, 'param', units(6)),
    w('bn_mean', 'bn', 3, 0, 'param', units(6)), w('bn_var', 'bn', 4, 0, 'param', units(6)),
    w('W2', 'y', 1, 1, 'in', units(6)),
  ])]);
}

/**
 * Multi-head attention exported as MatMul → Reshape → Transpose: 4 heads × 4, seq 4 fixed. The q/k/v Reshapes
 * share one shape initializer [1,4,4,4]; the output Reshape's shape [1,4,16] is a Constant node.
 */
export function attentionHeads(): Fixture {
  const nodes = [constantNode('shape_o', int64Tensor('', [3], [1, 4, 16]))];
  for (const p of ['q', 'k', 'v']) {
    nodes.push(node('MatMul', ['x', `W${p}`], [`${p}_lin`]));
    nodes.push(node('Reshape', [`${p}_lin`, 'shape_qkv'], [`${p}_4d`]));
    nodes.push(node('Transpose', [`${p}_4d`], [`${p}_h`], [attr.ints('perm', [0, 2, 1, 3])]));
  }
  nodes.push(
    node('Transpose', ['k_h'], ['k_t'], [attr.ints('perm', [0, 1, 3, 2])]),
    node('MatMul', ['q_h', 'k_t'], ['scores']),
    node('Softmax', ['scores'], ['probs'], [attr.int('axis', -1)]),
    node('MatMul', ['probs', 'v_h'], ['ctx_h']),
    node('Transpose', ['ctx_h'], ['ctx_t'], [attr.ints('perm', [0, 2, 1, 3])]),
    node('Reshape', ['ctx_t', 'shape_o'], ['ctx']),
    node('MatMul', ['ctx', 'Wo'], ['y']),
  );
  const g = graph({
    nodes,
    inputs: [valueInfo('x', DataType.FLOAT, [1, 4, 16])],
    outputs: [valueInfo('y', DataType.FLOAT, [1, 4, 16])],
    initializers: [f('Wq', [16, 16], 20), f('Wk', [16, 16], 21), f('Wv', [16, 16], 22), f('Wo', [16, 16], 23), int64Tensor('shape_qkv', [4], [1, 4, 4, 4])],
  });
  const heads = units(4, 4);
  return fixture(g, [group('attn', 4, [
    w('Wq', 'q_lin', 1, 1, 'out', heads), w('Wk', 'k_lin', 1, 1, 'out', heads), w('Wv', 'v_lin', 1, 1, 'out', heads),
    sh('shape_qkv', 'q_4d', 1, 2, 1), sh('shape_qkv', 'k_4d', 1, 2, 1), sh('shape_qkv', 'v_4d', 1, 2, 1),
    sh('shape_o', 'ctx', 1, 2, 4),
    w('Wo', 'y', 1, 0, 'in', heads),
  ], 'head', 4)]);
}

/** MatMul(6→12) → Split into 3×4 (sizes as input at opset 17, as attribute at opset 11) → 3 branches → sum. */
export function splitFused(opset: 17 | 11): Fixture {
  const splitNode = opset >= 13
    ? node('Split', ['f', 'split_sizes'], ['a', 'b', 'c'], [attr.int('axis', 1)])
    : node('Split', ['f'], ['a', 'b', 'c'], [attr.int('axis', 1), attr.ints('split', [4, 4, 4])]);
  const g = graph({
    nodes: [
      node('MatMul', ['x', 'W'], ['f']),
      splitNode,
      ...['a', 'b', 'c'].flatMap((p) => [node('Relu', [p], [`r${p}`]), node('MatMul', [`r${p}`, `W${p}`], [`o${p}`])]),
      node('Add', ['oa', 'ob'], ['s1']),
      node('Add', ['s1', 'oc'], ['y']),
    ],
    inputs: [valueInfo('x', DataType.FLOAT, ['batch', 6])],
    outputs: [valueInfo('y', DataType.FLOAT, ['batch', 3])],
    initializers: [f('W', [6, 12], 30), f('Wa', [4, 3], 31), f('Wb', [4, 3], 32), f('Wc', [4, 3], 33), ...(opset >= 13 ? [int64Tensor('split_sizes', [3], [4, 4, 4])] : [])],
  });
  const groups = ['a', 'b', 'c'].map((p, k) => group(`seg_${p}`, 4, [
    w('W', 'f', 1, 1, 'out', units(4, 1, 4 * k)),
    opset >= 13 ? sh('split_sizes', 'a', 1, k, 1) : at('a', 'split', 1, k),
    w(`W${p}`, `o${p}`, 1, 0, 'in', units(4)),
  ]));
  return fixture(g, groups, opset);
}

/** float16 weights cast to float: W1 (fp16) → Cast → MatMul → Relu → MatMul ← Cast ← W2 (fp16). */
export function fp16Weights(): Fixture {
  const half = (name: string, dims: number[], seed: number) => {
    const v = uniform(seededRng(seed), dims.reduce((a, b) => a * b, 1), 0.5);
    return tensor(name, DataType.FLOAT16, dims, Uint16Array.from(v, (x) => float32ToFloat16(x)));
  };
  const g = graph({
    nodes: [
      node('Cast', ['W1h'], ['W1f'], [attr.int('to', DataType.FLOAT)]),
      node('Cast', ['W2h'], ['W2f'], [attr.int('to', DataType.FLOAT)]),
      node('MatMul', ['x', 'W1f'], ['h']),
      node('Relu', ['h'], ['r']),
      node('MatMul', ['r', 'W2f'], ['y']),
    ],
    inputs: [valueInfo('x', DataType.FLOAT, ['batch', 10])],
    outputs: [valueInfo('y', DataType.FLOAT, ['batch', 3])],
    initializers: [half('W1h', [10, 8], 40), half('W2h', [8, 3], 41)],
  });
  return fixture(g, [group('h', 8, [w('W1h', 'W1f', 0, 1, 'out', units(8)), w('W2h', 'W2f', 0, 0, 'in', units(8))], 'neuron')]);
}

/** Weights in Constant nodes (a `value` tensor behind an Identity, a `value_floats` bias). */
export function constantNodeWeights(): Fixture {
  const W1 = uniform(seededRng(50), 6 * 5, 0.5);
  const B1 = Array.from(uniform(seededRng(51), 6, 0.5));
  const W2 = uniform(seededRng(52), 6 * 2, 0.5);
  const g = graph({
    nodes: [
      constantNode('W1c', floatTensor('', [5, 6], W1)),
      node('Identity', ['W1c'], ['W1']),
      node('Constant', [], ['B1'], [attr.floats('value_floats', B1)], 'Constant_B1'),
      constantNode('W2', floatTensor('', [6, 2], W2)),
      node('Gemm', ['x', 'W1', 'B1'], ['h']),
      node('Tanh', ['h'], ['t']),
      node('MatMul', ['t', 'W2'], ['y']),
    ],
    inputs: [valueInfo('x', DataType.FLOAT, ['batch', 5])],
    outputs: [valueInfo('y', DataType.FLOAT, ['batch', 2])],
  });
  return fixture(g, [group('h', 6, [w('W1c', 'h', 1, 1, 'out', units(6)), w('B1', 'h', 2, 0, 'out', units(6)), w('W2', 'y', 1, 0, 'in', units(6))], 'neuron')]);
}

/**
 * One initializer Wsh [6,8] read by two MatMuls (one through an Identity), each feeding its own branch and
 * output; each branch is its own group, so the two readers may be pruned differently.
 */
export function sharedInitializer(constantNodeSource = false): Fixture {
  const data = uniform(seededRng(60), 48, 0.5);
  const g = graph({
    nodes: [
      ...(constantNodeSource ? [constantNode('Wsh', floatTensor('', [6, 8], data))] : []),
      node('Identity', ['Wsh'], ['Wsh_id']),
      node('MatMul', ['x1', 'Wsh'], ['h1']),
      node('MatMul', ['x2', 'Wsh_id'], ['h2']),
      node('Relu', ['h1'], ['r1']),
      node('Relu', ['h2'], ['r2']),
      node('MatMul', ['r1', 'W3'], ['y1']),
      node('MatMul', ['r2', 'W4'], ['y2']),
    ],
    inputs: [valueInfo('x1', DataType.FLOAT, ['batch', 6]), valueInfo('x2', DataType.FLOAT, ['batch', 6])],
    outputs: [valueInfo('y1', DataType.FLOAT, ['batch', 2]), valueInfo('y2', DataType.FLOAT, ['batch', 2])],
    initializers: [...(constantNodeSource ? [] : [floatTensor('Wsh', [6, 8], data)]), f('W3', [8, 2], 61), f('W4', [8, 2], 62)],
  });
  return fixture(g, [
    group('branch1', 8, [w('Wsh', 'h1', 1, 1, 'out', units(8)), w('W3', 'y1', 1, 0, 'in', units(8))]),
    group('branch2', 8, [w('Wsh', 'h2', 1, 1, 'out', units(8)), w('W4', 'y2', 1, 0, 'in', units(8))]),
  ]);
}

/** Conv 1x1 (8) → Relu → depthwise Conv 3x3 (group 8) → Relu → Conv 1x1 (5): one group through the depthwise. */
export function depthwise(): Fixture {
  const g = graph({
    nodes: [
      node('Conv', ['x', 'W1', 'B1'], ['c1']),
      node('Relu', ['c1'], ['r1']),
      node('Conv', ['r1', 'Wd', 'Bd'], ['d'], [attr.int('group', 8), attr.ints('pads', [1, 1, 1, 1])]),
      node('Relu', ['d'], ['rd']),
      node('Conv', ['rd', 'W3'], ['y']),
    ],
    inputs: [valueInfo('x', DataType.FLOAT, ['batch', 4, 6, 6])],
    outputs: [valueInfo('y', DataType.FLOAT, ['batch', 5, 6, 6])],
    initializers: [f('W1', [8, 4, 1, 1], 70), f('B1', [8], 71), f('Wd', [8, 1, 3, 3], 72), f('Bd', [8], 73), f('W3', [5, 8, 1, 1], 74)],
  });
  return fixture(g, [group('c1', 8, [
    w('W1', 'c1', 1, 0, 'out', units(8)), w('B1', 'c1', 2, 0, 'out', units(8)),
    w('Wd', 'd', 1, 0, 'param', units(8)), w('Bd', 'd', 2, 0, 'param', units(8)), at('d', 'group', 1),
    w('W3', 'y', 1, 1, 'in', units(8)),
  ])]);
}

/**
 * Two convs (6 and 4 channels, 3x3 maps) → Concat → Reshape [batch, 90] → Gemm: both groups shrink the same
 * Reshape shape element (their deltas add up) and slice the Gemm weight in 9-wide blocks.
 */
export function concatFlatten(): Fixture {
  const g = graph({
    nodes: [
      node('Conv', ['x', 'W1', 'B1'], ['c1']),
      node('Conv', ['x', 'W2'], ['c2']),
      node('Concat', ['c1', 'c2'], ['cat'], [attr.int('axis', 1)]),
      node('Relu', ['cat'], ['r']),
      node('Reshape', ['r', 'flat_shape'], ['flat']),
      node('Gemm', ['flat', 'Wg', 'Bg'], ['y'], [attr.int('transB', 1)]),
    ],
    inputs: [valueInfo('x', DataType.FLOAT, [2, 3, 3, 3])],
    outputs: [valueInfo('y', DataType.FLOAT, [2, 4])],
    initializers: [f('W1', [6, 3, 1, 1], 80), f('B1', [6], 81), f('W2', [4, 3, 1, 1], 82), f('Wg', [4, 90], 83), f('Bg', [4], 84), int64Tensor('flat_shape', [2], [2, 90])],
  });
  return fixture(g, [
    group('c1', 6, [w('W1', 'c1', 1, 0, 'out', units(6)), w('B1', 'c1', 2, 0, 'out', units(6)), sh('flat_shape', 'flat', 1, 1, 9), w('Wg', 'y', 1, 1, 'in', units(6, 9))]),
    group('c2', 4, [w('W2', 'c2', 1, 0, 'out', units(4)), sh('flat_shape', 'flat', 1, 1, 9), w('Wg', 'y', 1, 1, 'in', units(4, 9, 54))]),
  ]);
}

/**
 * A wrong group on purpose: channels that go through a LayerNormalization over the channel axis, which
 * pruning changes (mean/variance over fewer channels), so the pruned model is not the masked one.
 */
export function layerNormCoupled(): Fixture {
  const g = graph({
    nodes: [
      node('MatMul', ['x', 'W1'], ['h']),
      node('LayerNormalization', ['h', 'ln_s', 'ln_b'], ['n'], [attr.int('axis', -1)]),
      node('MatMul', ['n', 'W2'], ['y']),
    ],
    inputs: [valueInfo('x', DataType.FLOAT, ['batch', 4])],
    outputs: [valueInfo('y', DataType.FLOAT, ['batch', 3])],
    initializers: [f('W1', [4, 8], 90), f('ln_s', [8], 91), f('ln_b', [8], 92), f('W2', [8, 3], 93)],
  });
  return fixture(g, [group('through_ln', 8, [
    w('W1', 'h', 1, 1, 'out', units(8)), w('ln_s', 'n', 1, 0, 'param', units(8)), w('ln_b', 'n', 2, 0, 'param', units(8)),
    w('W2', 'y', 1, 0, 'in', units(8)),
  ])]);
}

/**
 * Heads whose merge-back Reshape takes its last dim from the *input's* shape at run time
 * (Shape → Gather → Unsqueeze → Concat, like nn.MultiheadAttention's view(T*N, embed_dim)): the analysis marks
 * that element `replaceWith: -1`, and apply must wire a constant −1 into the Concat.
 */
export function computedShapeHeads(): Fixture {
  const g = graph({
    nodes: [
      node('MatMul', ['x', 'Wq'], ['q']),
      constantNode('split_shape', int64Tensor('', [4], [2, 3, 2, 4])),
      node('Reshape', ['q', 'split_shape'], ['q4']),
      node('Relu', ['q4'], ['r4']),
      node('Shape', ['x'], ['x_shape']),
      constantNode('idx2', int64Tensor('', [], [2])),
      node('Gather', ['x_shape', 'idx2'], ['emb']),
      node('Unsqueeze', ['emb', 'axes0'], ['emb_1']),
      node('Concat', ['lead_dims', 'emb_1'], ['back_shape'], [attr.int('axis', 0)]),
      node('Reshape', ['r4', 'back_shape'], ['back']),
      node('MatMul', ['back', 'Wo'], ['y']),
    ],
    inputs: [valueInfo('x', DataType.FLOAT, [2, 3, 8])],
    outputs: [valueInfo('y', DataType.FLOAT, [2, 3, 5])],
    initializers: [f('Wq', [8, 8], 100), f('Wo', [8, 5], 101), int64Tensor('axes0', [1], [0]), int64Tensor('lead_dims', [2], [2, 3])],
  });
  const heads = units(2, 4);
  return fixture(g, [group('heads', 2, [
    w('Wq', 'q', 1, 1, 'out', heads),
    sh('split_shape', 'q4', 1, 2, 1),
    { kind: 'shape', tensor: 'emb_1', node: 'back_shape', input: 1, position: 2, perUnit: 4, replaceWith: -1, value: 8 },
    w('Wo', 'y', 1, 0, 'in', heads),
  ], 'head', 4)]);
}
