/**
 * Builds the project's own tiny example models (no third-party files), deterministically (same bytes on
 * every run):
 * - tiny_cnn.onnx: Conv(BN folded) → Relu → Conv(stride 2, BN folded) → Relu → GlobalAveragePool → Flatten →
 *   Gemm; input float [N,3,32,32], output logits [N,10].
 * - tiny_mlp.onnx: Gemm → Relu → MatMul+Add → Relu → Gemm; input float [N,64], output logits [N,10].
 *
 * Usage: `npm run models` (= `node dist/models/make-models.js [OUT_DIR]`; default: the repository's models/).
 * Only + - * / and sqrt are used on weights, so the bytes do not depend on the platform's Math library.
 */
import * as fs from 'fs';
import * as path from 'path';
import { loadModel, saveModel } from '../src/ir/io';
import { encodeModelProto } from '../src/ir/proto';
import {
  DataType, attr, floatTensor, graph, modelProto, node, onnx, seededRng, uniform, valueInfo,
} from '../src/ir/builder';

const PRODUCER = { producerName: 'onnx-prune make-models', producerVersion: '1', opset: 17, irVersion: 8 };

/** Conv weights [out,in,k,k] and bias with a BatchNormalization folded in (as exporters do in eval mode). */
function foldedConv(next: () => number, cout: number, cin: number, k: number): { w: Float32Array; b: Float32Array } {
  const fanIn = cin * k * k;
  const w = uniform(next, cout * fanIn, Math.sqrt(6 / fanIn));
  const b = uniform(next, cout, 0.1);
  const eps = 1e-5;
  for (let o = 0; o < cout; o++) {
    const gamma = 0.5 + next();
    const beta = (next() - 0.5) * 0.2;
    const mean = (next() - 0.5) * 0.2;
    const variance = 0.5 + next();
    const s = gamma / Math.sqrt(variance + eps);
    for (let i = 0; i < fanIn; i++) w[o * fanIn + i] *= s;
    b[o] = (b[o] - mean) * s + beta;
  }
  return { w, b };
}

export function tinyCnn(): onnx.ModelProto {
  const next = seededRng(20240601);
  const c1 = foldedConv(next, 16, 3, 3);
  const c2 = foldedConv(next, 32, 16, 3);
  const fcW = uniform(next, 10 * 32, Math.sqrt(6 / 32));
  const fcB = uniform(next, 10, 0.1);
  const conv = (name: string, inp: string, out: string, stride: number) =>
    node('Conv', [inp, `${name}.weight`, `${name}.bias`], [out], [
      attr.ints('dilations', [1, 1]), attr.int('group', 1), attr.ints('kernel_shape', [3, 3]),
      attr.ints('pads', [1, 1, 1, 1]), attr.ints('strides', [stride, stride]),
    ], `/${name}/Conv`);
  const g = graph({
    name: 'tiny_cnn',
    nodes: [
      conv('conv1', 'input', '/conv1/Conv_output_0', 1),
      node('Relu', ['/conv1/Conv_output_0'], ['/relu1/Relu_output_0'], [], '/relu1/Relu'),
      conv('conv2', '/relu1/Relu_output_0', '/conv2/Conv_output_0', 2),
      node('Relu', ['/conv2/Conv_output_0'], ['/relu2/Relu_output_0'], [], '/relu2/Relu'),
      node('GlobalAveragePool', ['/relu2/Relu_output_0'], ['/pool/GlobalAveragePool_output_0'], [], '/pool/GlobalAveragePool'),
      node('Flatten', ['/pool/GlobalAveragePool_output_0'], ['/flatten/Flatten_output_0'], [attr.int('axis', 1)], '/flatten/Flatten'),
      node('Gemm', ['/flatten/Flatten_output_0', 'fc.weight', 'fc.bias'], ['logits'], [
        attr.float('alpha', 1), attr.float('beta', 1), attr.int('transB', 1),
      ], '/fc/Gemm'),
    ],
    initializers: [
      floatTensor('conv1.weight', [16, 3, 3, 3], c1.w), floatTensor('conv1.bias', [16], c1.b),
      floatTensor('conv2.weight', [32, 16, 3, 3], c2.w), floatTensor('conv2.bias', [32], c2.b),
      floatTensor('fc.weight', [10, 32], fcW), floatTensor('fc.bias', [10], fcB),
    ],
    inputs: [valueInfo('input', DataType.FLOAT, ['N', 3, 32, 32])],
    outputs: [valueInfo('logits', DataType.FLOAT, ['N', 10])],
  });
  return modelProto(g, { ...PRODUCER, docString: 'tiny CNN example built by models/make-models.ts (random weights, seed 20240601)' });
}

export function tinyMlp(): onnx.ModelProto {
  const next = seededRng(20240602);
  const w1 = uniform(next, 128 * 64, Math.sqrt(6 / 64)); // Gemm, transB: [out, in]
  const b1 = uniform(next, 128, 0.1);
  const w2 = uniform(next, 128 * 64, Math.sqrt(6 / 128)); // MatMul: [in, out]
  const b2 = uniform(next, 64, 0.1);
  const w3 = uniform(next, 10 * 64, Math.sqrt(6 / 64));
  const b3 = uniform(next, 10, 0.1);
  const g = graph({
    name: 'tiny_mlp',
    nodes: [
      node('Gemm', ['input', 'fc1.weight', 'fc1.bias'], ['/fc1/Gemm_output_0'], [
        attr.float('alpha', 1), attr.float('beta', 1), attr.int('transB', 1),
      ], '/fc1/Gemm'),
      node('Relu', ['/fc1/Gemm_output_0'], ['/relu1/Relu_output_0'], [], '/relu1/Relu'),
      node('MatMul', ['/relu1/Relu_output_0', 'fc2.weight'], ['/fc2/MatMul_output_0'], [], '/fc2/MatMul'),
      node('Add', ['/fc2/MatMul_output_0', 'fc2.bias'], ['/fc2/Add_output_0'], [], '/fc2/Add'),
      node('Relu', ['/fc2/Add_output_0'], ['/relu2/Relu_output_0'], [], '/relu2/Relu'),
      node('Gemm', ['/relu2/Relu_output_0', 'fc3.weight', 'fc3.bias'], ['logits'], [
        attr.float('alpha', 1), attr.float('beta', 1), attr.int('transB', 1),
      ], '/fc3/Gemm'),
    ],
    initializers: [
      floatTensor('fc1.weight', [128, 64], w1), floatTensor('fc1.bias', [128], b1),
      floatTensor('fc2.weight', [128, 64], w2), floatTensor('fc2.bias', [64], b2),
      floatTensor('fc3.weight', [10, 64], w3), floatTensor('fc3.bias', [10], b3),
    ],
    inputs: [valueInfo('input', DataType.FLOAT, ['N', 64])],
    outputs: [valueInfo('logits', DataType.FLOAT, ['N', 10])],
  });
  return modelProto(g, { ...PRODUCER, docString: 'tiny MLP example built by models/make-models.ts (random weights, seed 20240602)' });
}

export const EXAMPLE_MODELS: Record<string, () => onnx.ModelProto> = {
  'tiny_cnn.onnx': tinyCnn,
  'tiny_mlp.onnx': tinyMlp,
};

/** Writes every example model into `outDir` (atomically, inline weights) and returns the paths. */
export function writeModels(outDir: string): string[] {
  fs.mkdirSync(outDir, { recursive: true });
  return Object.entries(EXAMPLE_MODELS).map(([file, build]) => {
    const out = path.join(outDir, file);
    saveModel(loadModel(encodeModelProto(build())), out, { externalData: false });
    return out;
  });
}

/** The repository's models/ folder (works from models/ and from dist/models/). */
export function defaultModelsDir(): string {
  let dir = __dirname;
  for (let i = 0; i < 4; i++) {
    const pkg = path.join(dir, 'package.json');
    if (fs.existsSync(pkg) && (JSON.parse(fs.readFileSync(pkg, 'utf8')) as { name?: string }).name === 'onnx-prune') {
      return path.join(dir, 'models');
    }
    dir = path.dirname(dir);
  }
  throw new Error(`cannot find the onnx-prune package root above ${__dirname}`);
}

if (require.main === module) {
  const outDir = path.resolve(process.argv[2] ?? defaultModelsDir());
  for (const f of writeModels(outDir)) process.stdout.write(`wrote ${path.relative(process.cwd(), f) || f} (${fs.statSync(f).size} bytes)\n`);
}
