/**
 * MAC counting: hand-computed MACs on tiny models built in code, and on shared models an independent per-node
 * calculation from the shapes onnxruntime really produces.
 */
import * as path from 'path';
import { countMacs } from '../src/analysis/flops';
import { DataType } from '../src/ir/dtype';
import { loadModel } from '../src/ir/io';
import type { Model } from '../src/ir/model';
import { inferShapesWithOrt } from './helpers/ort-shapes';
import { attr, floatTensor, graph, modelBytes, node, onnx, valueInfo } from './helpers/builder';

const MODELS = path.resolve(__dirname, '../../shared/models');

const w = (name: string, dims: number[]) => floatTensor(name, dims, new Float32Array(dims.reduce((a, b) => a * b, 1)).fill(0.01));

function build(nodes: onnx.NodeProto[], inputs: onnx.ValueInfoProto[], inits: onnx.TensorProto[], outputs: string[]): Model {
  return loadModel(modelBytes(graph({ nodes, inputs, outputs: outputs.map((o) => onnx.ValueInfoProto.create({ name: o })), initializers: inits })));
}

/** x[batch,3,8,8] → Conv 3x3/2 → BN → Relu → depthwise Conv → GAP → Flatten → Gemm → MatMul. */
function convGemmModel(): Model {
  return build(
    [
      node('Conv', ['x', 'w1', 'b1'], ['c1'], [attr.ints('kernel_shape', [3, 3]), attr.ints('strides', [2, 2]), attr.ints('pads', [1, 1, 1, 1])]),
      node('BatchNormalization', ['c1', 'bn_s', 'bn_b', 'bn_m', 'bn_v'], ['bn']),
      node('Relu', ['bn'], ['r1']),
      node('Conv', ['r1', 'w2'], ['c2'], [attr.int('group', 4), attr.ints('pads', [1, 1, 1, 1])]),
      node('Add', ['c2', 'r1'], ['res']),
      node('GlobalAveragePool', ['res'], ['gap']),
      node('Flatten', ['gap'], ['fl']),
      node('Gemm', ['fl', 'fc', 'fcb'], ['logits'], [attr.int('transB', 1)]),
      node('MatMul', ['logits', 'proj'], ['y']),
    ],
    [valueInfo('x', DataType.FLOAT, ['batch', 3, 8, 8])],
    [w('w1', [4, 3, 3, 3]), w('b1', [4]), w('bn_s', [4]), w('bn_b', [4]), w('bn_m', [4]), w('bn_v', [4]), w('w2', [4, 1, 3, 3]), w('fc', [10, 4]), w('fcb', [10]), w('proj', [10, 6])],
    ['y'],
  );
}

describe('countMacs on tiny models (hand-computed)', () => {
  test('conv + depthwise conv + gemm + matmul; batch substituted as 1 or given', () => {
    const m = convGemmModel();
    const r = countMacs(m);
    // Conv 3x3 stride 2 pad 1 on 8x8 → 4x4: 4·4·4 outputs × 3·3·3 = 1728; depthwise: 64 × 1·3·3 = 576;
    // Gemm 1×4×10 = 40; MatMul 1×6 outputs × K=10 = 60. BN, Relu, Add, pooling count 0 and are not listed.
    expect(r.perNode).toEqual([
      { node: 'c1', opType: 'Conv', macs: 1728 },
      { node: 'c2', opType: 'Conv', macs: 576 },
      { node: 'logits', opType: 'Gemm', macs: 40 },
      { node: 'y', opType: 'MatMul', macs: 60 },
    ]);
    expect(r.macs).toBe(1728 + 576 + 40 + 60);
    expect(r.unknown).toEqual([]);
    expect(countMacs(m, { dims: { batch: 3 } }).macs).toBe(3 * (1728 + 576 + 40 + 60));
  });

  test('ConvTranspose, batched MatMul, Einsum, LSTM', () => {
    const m = build(
      [
        node('ConvTranspose', ['x', 'wt'], ['ct'], [attr.ints('strides', [2, 2])]),
        node('MatMul', ['a', 'b'], ['ab']),
        node('Einsum', ['e1', 'e2'], ['ein'], [attr.string('equation', 'bij,bjk->bik')]),
        node('LSTM', ['s', 'lw', 'lr'], ['ly'], [attr.int('hidden_size', 4)]),
      ],
      [
        valueInfo('x', DataType.FLOAT, [1, 2, 3, 3]), valueInfo('a', DataType.FLOAT, [2, 3, 4, 5]), valueInfo('e1', DataType.FLOAT, [2, 3, 4]),
        valueInfo('e2', DataType.FLOAT, [2, 4, 5]), valueInfo('s', DataType.FLOAT, [5, 2, 3]),
      ],
      [w('wt', [2, 5, 2, 2]), w('b', [5, 6]), w('lw', [1, 16, 3]), w('lr', [1, 16, 4])],
      ['ct', 'ab', 'ein', 'ly'],
    );
    const r = countMacs(m);
    const by = Object.fromEntries(r.perNode.map((p) => [p.node, p.macs]));
    expect(by).toEqual({
      ct: 1 * 2 * 3 * 3 * (5 * 2 * 2), // every input element is spread over Cout·k·k outputs
      ab: 2 * 3 * 4 * 6 * 5,
      ein: 2 * 3 * 4 * 5, // = batched matmul 2·3·5 outputs × K 4
      ly: 5 * 2 * 1 * 4 * 4 * (3 + 4),
    });
    expect(r.macs).toBe(360 + 720 + 120 + 1120);
  });

  test('a matmul whose shapes are unknown makes the total unknown and is listed', () => {
    const m = build(
      [onnx.NodeProto.create({ opType: 'Mystery', domain: 'com.example', input: ['x'], output: ['q'] }), node('MatMul', ['q', 'wm'], ['y']), node('Conv', ['x4', 'wc'], ['c'])],
      [valueInfo('x', DataType.FLOAT, [2, 3]), valueInfo('x4', DataType.FLOAT, [1, 1, 4, 4])],
      [w('wm', [3, 5]), w('wc', [2, 1, 1, 1])],
      ['y', 'c'],
    );
    const r = countMacs(m);
    expect(r.macs).toBeUndefined();
    expect(r.unknown).toEqual(['y']);
    expect(r.perNode).toEqual([{ node: 'c', opType: 'Conv', macs: 2 * 16 }]);
  });
});

/** MACs computed independently from ORT-measured shapes (inputs, outputs) and weight dims / attributes. */
async function independentMacs(m: Model, dims: Record<string, number>): Promise<{ total: number; counted: number }> {
  const g = m.graph;
  const names = g.nodes.flatMap((n) => (['Conv', 'Gemm', 'MatMul'].includes(n.opType) ? [...n.inputs.slice(0, 1), n.outputs[0]] : []));
  const ort = await inferShapesWithOrt(m, { tensors: [...new Set(names.filter((x) => !g.initializers.has(x) && !g.isGraphInput(x)))], dims, fill: false });
  const shape = (name: string): number[] => {
    const init = g.constant(name);
    if (init) return init.dims;
    const s = ort.shapes.get(name);
    if (s) return s;
    const vi = g.realInputs.find((i) => i.name === name)!;
    return vi.type!.tensorType!.shape!.dim!.map((d) => (d.dimParam ? dims[d.dimParam] : Number(d.dimValue)));
  };
  let total = 0;
  let counted = 0;
  for (const n of g.nodes) {
    if (n.opType === 'Conv') {
      const [, cin] = shape(n.inputs[0]);
      const [batch, cout, ...spatial] = shape(n.outputs[0]);
      const kernel = n.attrInts('kernel_shape') ?? shape(n.inputs[1]).slice(2);
      const groups = n.attrInt('group', 1);
      total += batch * cout * (cin / groups) * kernel.reduce((a, b) => a * b, 1) * spatial.reduce((a, b) => a * b, 1);
      counted++;
    } else if (n.opType === 'Gemm') {
      const [rows, inner] = shape(n.inputs[0]);
      const cols = shape(n.outputs[0])[1];
      total += rows * inner * cols;
      counted++;
    } else if (n.opType === 'MatMul') {
      const a = shape(n.inputs[0]);
      total += shape(n.outputs[0]).reduce((x, y) => x * y, 1) * a[a.length - 1];
      counted++;
    }
  }
  return { total, counted };
}

describe('countMacs on shared models matches an independent per-node calculation from ORT shapes', () => {
  for (const [file, dims] of [
    ['resnet50_b.onnx', { batch: 2 }],
    ['mobilenet_v2_050.onnx', { batch: 1 }],
    ['vit_s.onnx', { batch: 3 }],
    ['gpt2_s.onnx', { batch: 2, seq: 5 }],
  ] as [string, Record<string, number>][]) {
    test(`${file} (${JSON.stringify(dims)})`, async () => {
      const m = loadModel(path.join(MODELS, file));
      const r = countMacs(m, { dims });
      const ref = await independentMacs(m, dims);
      expect(r.unknown).toEqual([]);
      expect(r.perNode.length).toBe(ref.counted);
      expect(r.macs).toBe(ref.total);
      expect(r.macs).toBeGreaterThan(0);
    });
  }

  test('resnet50_b with symbolic batch taken as 1 is half the batch-2 count', () => {
    const m = loadModel(path.join(MODELS, 'resnet50_b.onnx'));
    expect(2 * countMacs(m).macs!).toBe(countMacs(m, { dims: { batch: 2 } }).macs);
  });
});
