/**
 * Hand-checked groups of the two shared MNIST models (from their node lists), so the importance/allocation
 * quality test does not depend on the group analysis. Node ids are first outputs, as in src/analysis/types.ts.
 *   mnist_lenet_bn: conv1(32) → conv2(64) → conv3(64) → Flatten (64×7×7) → fc1(128) → fc2(10)
 *   mnist_resmlp:   inp(256) → h1(512) → h2(256) + residual → out(10)
 */
import type { Group, GroupAnalysis, WeightMember } from '../src/analysis/types';

const units = (n: number, per = 1) => Array.from({ length: n }, (_, u) => Array.from({ length: per }, (_, j) => u * per + j));
const w = (tensor: string, node: string, input: number, axis: number, role: WeightMember['role'], indices: number[][]): WeightMember =>
  ({ kind: 'weight', tensor, node, input, axis, role, indices });
const g = (id: string, unit: Group['unit'], size: number, paramsPerUnit: number, members: WeightMember[]): Group =>
  ({ id, label: id, unit, unitSize: 1, size, members, paramsPerUnit });
const analysis = (groups: Group[], totalParams: number): GroupAnalysis =>
  ({ groups, declined: [], summary: { totalParams, prunableParams: 0, groups: groups.length, declined: 0 } });

export function lenetGroups(): GroupAnalysis {
  const c1 = '/f/f.0/Conv_output_0', c2 = '/f/f.4/Conv_output_0', c3 = '/f/f.8/Conv_output_0', f1 = '/c/c.1/Gemm_output_0';
  return analysis([
    g('conv1', 'channel', 32, 9 + 1 + 64 * 9, [w('onnx::Conv_42', c1, 1, 0, 'out', units(32)), w('onnx::Conv_43', c1, 2, 0, 'out', units(32)), w('onnx::Conv_45', c2, 1, 1, 'in', units(32))]),
    g('conv2', 'channel', 64, 32 * 9 + 1 + 64 * 9, [w('onnx::Conv_45', c2, 1, 0, 'out', units(64)), w('onnx::Conv_46', c2, 2, 0, 'out', units(64)), w('onnx::Conv_48', c3, 1, 1, 'in', units(64))]),
    g('conv3', 'channel', 64, 64 * 9 + 1 + 49 * 128, [w('onnx::Conv_48', c3, 1, 0, 'out', units(64)), w('onnx::Conv_49', c3, 2, 0, 'out', units(64)), w('c.1.weight', f1, 1, 1, 'in', units(64, 49))]),
    g('fc1', 'neuron', 128, 3136 + 1 + 10, [w('c.1.weight', f1, 1, 0, 'out', units(128)), w('c.1.bias', f1, 2, 0, 'out', units(128)), w('c.3.weight', 'logits', 1, 1, 'in', units(128))]),
  ], 458570);
}

export function resmlpGroups(): GroupAnalysis {
  const inp = '/inp/Gemm_output_0', h1 = '/h1/Gemm_output_0', h2 = '/h2/Gemm_output_0';
  return analysis([
    g('residual', 'channel', 256, 784 + 1 + 512 + 512 + 1 + 10, [
      w('inp.weight', inp, 1, 0, 'out', units(256)), w('inp.bias', inp, 2, 0, 'out', units(256)), w('h1.weight', h1, 1, 1, 'in', units(256)),
      w('h2.weight', h2, 1, 0, 'out', units(256)), w('h2.bias', h2, 2, 0, 'out', units(256)), w('out.weight', 'logits', 1, 1, 'in', units(256)),
    ]),
    g('hidden', 'neuron', 512, 256 + 1 + 256, [w('h1.weight', h1, 1, 0, 'out', units(512)), w('h1.bias', h1, 2, 0, 'out', units(512)), w('h2.weight', h2, 1, 1, 'in', units(512))]),
  ], 466442);
}
