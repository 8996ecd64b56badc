/**
 * FLAP bias compensation: hidden units 0 and 1 are constant (2 and 0 after Relu), so removing them from the
 * consumer and folding their mean into its bias must reproduce the dense output exactly, for every consumer
 * form (Gemm with/without bias, MatMul with/without a following bias Add, Conv without bias).
 */
import type { Group, GroupAnalysis, WeightMember } from '../src/analysis/types';
import { DataType } from '../src/ir/dtype';
import { loadModel } from '../src/ir/io';
import type { Model } from '../src/ir/model';
import { calibFromArrays } from '../src/ort/calib';
import { captureStats } from '../src/ort/capture';
import { createSession, modelBytes as bytesOf, ort } from '../src/ort/session';
import { activationRequests } from '../src/score';
import { compensateBias } from '../src/score/compensate';
import { attr, floatTensor, graph, modelBytes, node, seededRng, uniform, valueInfo } from './helpers/builder';

const H = 6;
const units = (n: number) => Array.from({ length: n }, (_, u) => [u]);
const wm = (tensor: string, nodeId: string, input: number, axis: number, role: WeightMember['role'], n: number): WeightMember =>
  ({ kind: 'weight', tensor, node: nodeId, input, axis, role, indices: units(n) });
const grp = (id: string, size: number, members: WeightMember[]): Group => ({ id, label: id, unit: 'channel', unitSize: 1, size, members, paramsPerUnit: 0 });

/** Hidden layer with units 0 (≡ 2) and 1 (≡ 0) constant. */
function hiddenWeights(inputs: number): { W1: Float32Array; B1: Float32Array } {
  const W1 = uniform(seededRng(11), H * inputs, 0.7);
  for (let i = 0; i < 2 * inputs; i++) W1[i] = 0;
  const B1 = uniform(seededRng(12), H, 0.3);
  B1[0] = 2;
  B1[1] = -1;
  return { W1, B1 };
}

type Variant = 'gemm-bias' | 'gemm' | 'matmul' | 'matmul-add' | 'conv';

function build(v: Variant): { model: Model; analysis: GroupAnalysis; consumerW: string; inAxis: number } {
  const W2 = uniform(seededRng(13), H * 3, 0.8);
  const conv = v === 'conv';
  const { W1, B1 } = hiddenWeights(conv ? 2 : 4);
  const nodes = [
    conv ? node('Conv', ['x', 'W1', 'B1'], ['h']) : node('Gemm', ['x', 'W1', 'B1'], ['h'], [attr.int('transB', 1)]),
    node('Relu', ['h'], ['r']),
  ];
  const inits = [floatTensor('W1', conv ? [H, 2, 1, 1] : [H, 4], W1), floatTensor('B1', [H], B1)];
  let consumer: WeightMember;
  let outMember: WeightMember;
  switch (v) {
    case 'gemm-bias': case 'gemm':
      nodes.push(node('Gemm', v === 'gemm' ? ['r', 'W2'] : ['r', 'W2', 'B2'], ['y'], [attr.float('alpha', 0.5), attr.float('beta', 2)]));
      inits.push(floatTensor('W2', [H, 3], W2));
      if (v === 'gemm-bias') inits.push(floatTensor('B2', [3], [0.1, 0.2, 0.3]));
      consumer = wm('W2', 'y', 1, 0, 'in', H);
      outMember = wm('W2', 'y', 1, 1, 'out', 3);
      break;
    case 'matmul': case 'matmul-add':
      nodes.push(node('MatMul', ['r', 'W2'], [v === 'matmul' ? 'y' : 'mm']));
      if (v === 'matmul-add') nodes.push(node('Add', ['mm', 'B2'], ['y']));
      inits.push(floatTensor('W2', [H, 3], W2));
      if (v === 'matmul-add') inits.push(floatTensor('B2', [3], [0.1, 0.2, 0.3]));
      consumer = wm('W2', v === 'matmul' ? 'y' : 'mm', 1, 0, 'in', H);
      outMember = wm('W2', v === 'matmul' ? 'y' : 'mm', 1, 1, 'out', 3);
      break;
    case 'conv':
      nodes.push(node('Conv', ['r', 'W2'], ['y']));
      inits.push(floatTensor('W2', [3, H, 1, 1], W2));
      consumer = wm('W2', 'y', 1, 1, 'in', H);
      outMember = wm('W2', 'y', 1, 0, 'out', 3);
      break;
  }
  const shapeX = conv ? ['batch', 2, 3, 3] : ['batch', 4];
  const shapeY = conv ? ['batch', 3, 3, 3] : ['batch', 3];
  const g = graph({ nodes, inputs: [valueInfo('x', DataType.FLOAT, shapeX)], outputs: [valueInfo('y', DataType.FLOAT, shapeY)], initializers: inits });
  const model = loadModel(modelBytes(g));
  const hidden = grp('hidden', H, [wm('W1', 'h', 1, 0, 'out', H), wm('B1', 'h', 2, 0, 'out', H), consumer!]);
  // A second group prunes the consumer's outputs (so a created bias must join it).
  const out = grp('out', 3, [outMember!]);
  return { model, analysis: { groups: [hidden, out], declined: [], summary: { totalParams: 0, prunableParams: 0, groups: 2, declined: 0 } }, consumerW: 'W2', inAxis: consumer!.axis };
}

async function run(model: Model, x: ort.Tensor): Promise<Float32Array> {
  const s = await createSession(bytesOf(model));
  try {
    return (await s.run({ x })).y.data as Float32Array;
  } finally {
    await s.release();
  }
}

/** Zeroes positions `pos` along `axis` of a weight (the consumer side of removing those inputs). */
function zeroInputs(model: Model, name: string, axis: number, pos: number[]): void {
  const t = model.graph.constant(name)!;
  const d = t.toFloat32().slice();
  const dims = t.dims;
  const inner = dims.slice(axis + 1).reduce((a, b) => a * b, 1);
  for (let i = 0; i < d.length; i++) if (pos.includes(Math.floor(i / inner) % dims[axis])) d[i] = 0;
  t.setData(d);
}

describe('compensateBias', () => {
  const variants: Variant[] = ['gemm-bias', 'gemm', 'matmul', 'matmul-add', 'conv'];
  test.each(variants)('%s: removing constant inputs with compensation keeps the output', async (v) => {
    const { model, analysis, consumerW, inAxis } = build(v);
    const xs = v === 'conv' ? [8, 2, 3, 3] : [8, 4];
    const n = xs.reduce((a, b) => a * b, 1);
    const calib = calibFromArrays(model, [{ dtype: DataType.FLOAT, dims: xs, data: uniform(seededRng(21), n, 1) }], 'test');
    const x = new ort.Tensor('float32', uniform(seededRng(22), n, 1), xs);
    const dense = await run(model, x);
    const stats = await captureStats(model, calib, activationRequests(model.graph, analysis), { quiet: true });

    const plain = loadModel(bytesOf(model));
    zeroInputs(plain, consumerW, inAxis, [0, 1]);
    const uncompensated = await run(plain, x);
    expect(Math.max(...uncompensated.map((y, i) => Math.abs(y - dense[i])))).toBeGreaterThan(0.1);

    const report = compensateBias(model, analysis, { hidden: [0, 1] }, stats);
    expect(report.consumers).toBe(1);
    expect(report.biasesAdded).toBe(v === 'gemm' || v === 'matmul' || v === 'conv' ? 1 : 0);
    zeroInputs(model, consumerW, inAxis, [0, 1]);
    const compensated = await run(model, x);
    for (let i = 0; i < dense.length; i++) expect(compensated[i]).toBeCloseTo(dense[i], 5);
    if (report.biasesAdded) {
      // The new bias is sliced with the consumer's output channels.
      const added = analysis.groups[1].members.slice(1) as WeightMember[];
      expect(added).toHaveLength(1);
      expect(model.graph.constant(added[0].tensor)!.dims).toEqual([3]);
      expect(added[0].indices).toEqual(units(3));
    }
  });

  test('a shared bias gets a private copy and the members follow it', async () => {
    const { model, analysis } = build('gemm-bias');
    // Let another node read B2 too.
    model.graph.addNode({ opType: 'Mul', input: ['B2', 'B2'], output: ['b2sq'] });
    model.graph.proto.output.push(valueInfo('b2sq', DataType.FLOAT, [3]));
    analysis.groups[1].members.push(wm('B2', 'y', 2, 0, 'out', 3));
    const stats = await captureStats(model, calibFromArrays(model, [{ dtype: DataType.FLOAT, dims: [4, 4], data: uniform(seededRng(5), 16) }], 't'),
      activationRequests(model.graph, analysis), { quiet: true });
    compensateBias(model, analysis, { hidden: [0] }, stats);
    const gemm = model.graph.producer('y')!;
    expect(gemm.inputs[2]).not.toBe('B2');
    expect(Array.from(model.graph.constant('B2')!.toFloat32())).toEqual([0.1, 0.2, 0.3].map(Math.fround));
    expect((analysis.groups[1].members[1] as WeightMember).tensor).toBe(gemm.inputs[2]);
  });
});
