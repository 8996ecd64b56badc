/**
 * Physical pruning on tiny models built in code with hand-written groups: shapes after pruning, and
 * equivalence with the masked dense model in onnxruntime.
 */
import { valueTypeOf } from '../src/ir/graph';
import { loadModel } from '../src/ir/io';
import type { Model } from '../src/ir/model';
import { encodeModelProto } from '../src/ir/proto';
import { applyPlan } from '../src/prune/apply';
import { maskPlan } from '../src/prune/mask';
import type { PlanGroups } from '../src/prune/plan';
import { cloneModel, findFailingGroups, verifyPruned } from '../src/verify/verify';
import {
  attentionHeads, computedShapeHeads, concatFlatten, constantNodeWeights, convBnConv, convReluConv, depthwise, fp16Weights, gemmMlp,
  layerNormCoupled, sharedInitializer, splitFused, type Fixture,
} from './prune-fixtures';

const dims = (m: Model, name: string) => m.graph.constant(name)!.dims;
const ints = (m: Model, name: string) => m.graph.constant(name)!.toNumbers();

async function pruneAndVerify(fx: Fixture, plan: PlanGroups, opts: { batch?: number } = {}) {
  const pruned = loadModel(fx.bytes);
  const summary = applyPlan(pruned, fx.analysis, plan);
  const r = await verifyPruned(fx.model, pruned, fx.analysis, plan, { seed: 7, batch: opts.batch ?? 4 });
  return { pruned, summary, ...r };
}

function expectEquivalent(r: Awaited<ReturnType<typeof pruneAndVerify>>) {
  expect(r.verify.error).toBeUndefined();
  expect(r.verify.passed).toBe(true);
  expect(r.verify.maxRelDiff).toBeLessThanOrEqual(1e-4);
  // The masked model really differs from the dense one (the test would be vacuous otherwise).
  expect(r.fidelity!.cosine).toBeLessThan(0.99999);
}

describe('applyPlan + verify on hand-built models', () => {
  test('Conv → Relu → Conv: filters, bias and the consumer input channels', async () => {
    const fx = convReluConv();
    const r = await pruneAndVerify(fx, { conv1: [1, 4, 6] });
    expect(dims(r.pruned, 'W1')).toEqual([5, 3, 3, 3]);
    expect(dims(r.pruned, 'B1')).toEqual([5]);
    expect(dims(r.pruned, 'W2')).toEqual([4, 5, 3, 3]);
    expect(r.summary).toMatchObject({ groupsPruned: 1, unitsRemoved: 3, copies: [] });
    expectEquivalent(r);
    // The kept filters are the original ones, in order.
    const before = fx.model.graph.constant('W1')!.toFloat32();
    const after = r.pruned.graph.constant('W1')!.toFloat32();
    const kept = [0, 2, 3, 5, 7];
    kept.forEach((k, i) => expect(Array.from(after.subarray(i * 27, (i + 1) * 27))).toEqual(Array.from(before.subarray(k * 27, (k + 1) * 27))));
  });

  test('stale value_info shapes are dropped (element types kept) and ORT still loads the model', async () => {
    const fx = convReluConv(true);
    const r = await pruneAndVerify(fx, { conv1: [0, 1] });
    expectEquivalent(r);
    for (const vi of r.pruned.graph.proto.valueInfo) {
      const t = valueTypeOf(vi)!;
      expect(t.dtype).toBe(1);
      // Either no shape any more, or a re-inferred one with the new width.
      if (t.shape) expect(t.shape[1]).toBe(6);
    }
  });

  test('Gemm (transB) → Relu → Gemm with biases', async () => {
    const r = await pruneAndVerify(gemmMlp(), { fc1: [0, 3, 5, 8, 9, 15] });
    expect(dims(r.pruned, 'W1')).toEqual([10, 10]);
    expect(dims(r.pruned, 'B1')).toEqual([10]);
    expect(dims(r.pruned, 'W2')).toEqual([10, 5]);
    expectEquivalent(r);
  });

  test('initializers listed as graph inputs (IR 3) get their input shapes updated', async () => {
    const r = await pruneAndVerify(gemmMlp(3), { fc1: [2, 7] });
    const w1 = r.pruned.graph.proto.input.find((i) => i.name === 'W1')!;
    expect(valueTypeOf(w1)!.shape).toEqual([14, 10]);
    expectEquivalent(r);
  });

  test('Conv → BatchNormalization → Conv: BN scale/bias/mean/var are sliced', async () => {
    const r = await pruneAndVerify(convBnConv(), { conv1: [2, 5] });
    for (const t of ['bn_scale', 'bn_bias', 'bn_mean', 'bn_var']) expect(dims(r.pruned, t)).toEqual([4]);
    expect(dims(r.pruned, 'W2')).toEqual([3, 4, 1, 1]);
    expectEquivalent(r);
  });

  test('attention heads: shared Reshape shape initializer edited once, Constant-node shape too', async () => {
    const fx = attentionHeads();
    const r = await pruneAndVerify(fx, { attn: [1, 2] }, { batch: 1 });
    expect(dims(r.pruned, 'Wq')).toEqual([16, 8]);
    expect(dims(r.pruned, 'Wo')).toEqual([8, 16]);
    expect(ints(r.pruned, 'shape_qkv')).toEqual([1, 4, 2, 4]);
    expect(ints(r.pruned, 'shape_o')).toEqual([1, 4, 8]);
    expect(r.summary.copies).toEqual([]);
    // Head 0 and 3 survive whole: their q columns are the original columns 0-3 and 12-15.
    const before = fx.model.graph.constant('Wq')!.toFloat32();
    const after = r.pruned.graph.constant('Wq')!.toFloat32();
    expect(after[0 * 8 + 4]).toBe(before[0 * 16 + 12]);
    expectEquivalent(r);
  });

  test.each([17, 11] as const)('Split sizes (opset %i) shrink per segment', async (opset) => {
    const fx = splitFused(opset);
    const r = await pruneAndVerify(fx, { seg_a: [0], seg_c: [1, 3] });
    expect(dims(r.pruned, 'W')).toEqual([6, 9]);
    expect(dims(r.pruned, 'Wa')).toEqual([3, 3]);
    expect(dims(r.pruned, 'Wb')).toEqual([4, 3]);
    expect(dims(r.pruned, 'Wc')).toEqual([2, 3]);
    if (opset === 17) expect(ints(r.pruned, 'split_sizes')).toEqual([3, 4, 2]);
    else expect(r.pruned.graph.producer('a')!.attrInts('split')).toEqual([3, 4, 2]);
    expectEquivalent(r);
  });

  test('float16 weights are sliced as raw half bits', async () => {
    const fx = fp16Weights();
    const r = await pruneAndVerify(fx, { h: [0, 2, 7] }, { batch: 8 });
    const t = r.pruned.graph.constant('W1h')!;
    expect(t.dtype).toBe(10);
    expect(t.dims).toEqual([10, 5]);
    const before = fx.model.graph.constant('W1h')!.data() as Uint16Array;
    const after = t.data() as Uint16Array;
    expect(after[0]).toBe(before[1]);
    expect(after[5 + 4]).toBe(before[8 + 6]);
    expectEquivalent(r);
  });

  test('Constant-node weights (value tensor behind Identity, value_floats) are rewritten in place', async () => {
    const r = await pruneAndVerify(constantNodeWeights(), { h: [1, 4] });
    const g = r.pruned.graph;
    expect(dims(r.pruned, 'W1c')).toEqual([5, 4]);
    expect(dims(r.pruned, 'W2')).toEqual([4, 2]);
    const b1 = g.producer('B1')!;
    expect(b1.opType).toBe('Constant');
    expect(b1.attrFloats('value_floats')).toHaveLength(4);
    expect(g.initializers.size).toBe(0);
    expectEquivalent(r);
  });

  test.each([false, true])('shared weight pruned differently by its two readers gets a private copy (Constant node: %s)', async (constNode) => {
    const fx = sharedInitializer(constNode);
    const r = await pruneAndVerify(fx, { branch1: [1, 2], branch2: [5] });
    const g = r.pruned.graph;
    expect(r.summary.copies).toHaveLength(1);
    const copy = r.summary.copies[0];
    expect(copy.tensor).toBe('Wsh');
    expect(copy.nodes).toEqual(['h2']);
    expect(dims(r.pruned, 'Wsh')).toEqual([6, 6]);
    expect(dims(r.pruned, copy.copy)).toEqual([6, 7]);
    expect(g.producer('h2')!.inputs[1]).toBe(copy.copy);
    // The Identity that fed h2 is gone (nothing reads it any more); names of everything else are kept.
    expect(g.producer('Wsh_id')).toBeUndefined();
    if (constNode) expect(g.producer(copy.copy)!.opType).toBe('Constant');
    expectEquivalent(r);
  });

  test('shared weight pruned by one reader only: the other keeps the original name and data', async () => {
    const fx = sharedInitializer();
    const r = await pruneAndVerify(fx, { branch2: [0, 7] });
    const g = r.pruned.graph;
    expect(dims(r.pruned, 'Wsh')).toEqual([6, 8]);
    expect(r.summary.copies).toHaveLength(1);
    expect(r.summary.copies[0].nodes).toEqual(['h2']);
    expect(dims(r.pruned, r.summary.copies[0].copy)).toEqual([6, 6]);
    expect(Array.from(g.constant('Wsh')!.toFloat32())).toEqual(Array.from(fx.model.graph.constant('Wsh')!.toFloat32()));
    expectEquivalent(r);
  });

  test('depthwise Conv: group attribute, depthwise filters and bias follow the channels', async () => {
    const r = await pruneAndVerify(depthwise(), { c1: [0, 3, 4] });
    const dw = r.pruned.graph.producer('d')!;
    expect(dw.attrInt('group')).toBe(5);
    expect(dims(r.pruned, 'Wd')).toEqual([5, 1, 3, 3]);
    expect(dims(r.pruned, 'W3')).toEqual([5, 5, 1, 1]);
    expectEquivalent(r);
  });

  test('two groups shrinking the same Reshape element add up; Flatten-style blocks are sliced', async () => {
    const r = await pruneAndVerify(concatFlatten(), { c1: [0, 5], c2: [2] });
    expect(ints(r.pruned, 'flat_shape')).toEqual([2, 63]);
    expect(dims(r.pruned, 'Wg')).toEqual([4, 63]);
    expectEquivalent(r);
  });

  test('a computed shape element marked replaceWith gets a constant; its dead Shape chain goes', async () => {
    const fx = computedShapeHeads();
    const r = await pruneAndVerify(fx, { heads: [0] });
    const g = r.pruned.graph;
    const concat = g.producer('back_shape')!;
    expect(concat.inputs[1]).not.toBe('emb_1');
    expect(g.constant(concat.inputs[1])!.toNumbers()).toEqual([-1]);
    expect(ints(r.pruned, 'split_shape')).toEqual([2, 3, 1, 4]);
    for (const gone of ['emb_1', 'emb', 'x_shape', 'idx2']) expect(g.producer(gone)).toBeUndefined();
    expect(g.initializers.has('axes0')).toBe(false);
    expect(g.initializers.has('lead_dims')).toBe(true);
    expect(r.summary.replaced).toEqual(['back_shape[1] = -1']);
    expectEquivalent(r);
  });

  test('an empty plan changes nothing (byte-identical)', () => {
    const fx = convReluConv();
    const m = loadModel(fx.bytes);
    const s = applyPlan(m, fx.analysis, {});
    expect(s.groupsPruned).toBe(0);
    expect(Buffer.from(encodeModelProto(m.toProto())).equals(Buffer.from(fx.bytes))).toBe(true);
  });

  test('pruning is deterministic: the same plan twice gives the same bytes', () => {
    const fx = sharedInitializer();
    const out = [0, 1].map(() => {
      const m = loadModel(fx.bytes);
      applyPlan(m, fx.analysis, { branch1: [3], branch2: [4, 6] });
      return Buffer.from(encodeModelProto(m.toProto()));
    });
    expect(out[0].equals(out[1])).toBe(true);
  });
});

describe('masked model', () => {
  test('zeroes only the consumers\' input slices, keeps shapes', () => {
    const fx = convReluConv();
    const m = cloneModel(fx.model);
    maskPlan(m, fx.analysis, { conv1: [2] });
    expect(dims(m, 'W1')).toEqual([8, 3, 3, 3]);
    expect(Array.from(m.graph.constant('W1')!.toFloat32())).toEqual(Array.from(fx.model.graph.constant('W1')!.toFloat32()));
    const w2 = m.graph.constant('W2')!.toFloat32();
    for (let o = 0; o < 4; o++) {
      for (let c = 0; c < 8; c++) {
        const block = Array.from(w2.subarray((o * 8 + c) * 9, (o * 8 + c + 1) * 9));
        if (c === 2) expect(block.every((v) => v === 0)).toBe(true);
        else expect(block.some((v) => v !== 0)).toBe(true);
      }
    }
  });
});

describe('verification catches wrong groups', () => {
  test('a group through LayerNorm over the pruned axis fails masked equivalence, and is named', async () => {
    const fx = layerNormCoupled();
    const r = await pruneAndVerify(fx, { through_ln: [1, 2, 3] });
    expect(r.verify.passed).toBe(false);
    expect(r.verify.maxRelDiff).toBeGreaterThan(1e-3);
    expect(r.verify.error).toMatch(/differs from the masked model/);
    const failing = await findFailingGroups(fx.model, fx.analysis, { through_ln: [1, 2, 3] });
    expect(failing.map((x) => x.group)).toEqual(['through_ln']);
    expect(failing[0].members.join('\n')).toMatch(/LayerNormalization\(n\)/);
  });

  test('a group missing its consumer makes a model ORT rejects; reported, not thrown', async () => {
    const fx = convReluConv();
    const broken = { ...fx.analysis, groups: [{ ...fx.analysis.groups[0], members: fx.analysis.groups[0].members.slice(0, 2) }] };
    const pruned = loadModel(fx.bytes);
    applyPlan(pruned, broken, { conv1: [0] });
    const r = await verifyPruned(fx.model, pruned, broken, { conv1: [0] }, { batch: 1 });
    expect(r.verify.passed).toBe(false);
    expect(r.verify.error).toMatch(/does not run in onnxruntime/);
  });

  test('only the bad group of several is reported', async () => {
    const good = splitFused(17);
    const bad = layerNormCoupled();
    const g1 = await findFailingGroups(good.model, good.analysis, { seg_a: [1], seg_b: [0, 1] });
    expect(g1).toEqual([]);
    const g2 = await findFailingGroups(bad.model, bad.analysis, { through_ln: [0] });
    expect(g2).toHaveLength(1);
  });
});
