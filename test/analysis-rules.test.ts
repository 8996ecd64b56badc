/**
 * Op channel rules on graphs built in code: each test puts an op on the path of a group and checks the
 * group's structure (units, members, index maps, shape/attr members), then checks the coupling in
 * onnxruntime (masked model == masked model with scrambled producers).
 */
import { G, analyze, attrs, expectMaskOk, groupOf, shapes, weights } from './analysis-kit';
import { constantNode, floatTensor } from './helpers/builder';

const X = ['batch', 4, 6, 6];

describe('convolutions and per-channel ops', () => {
  test('Conv → BN → Relu → Conv: one group of channels, BN params as param members', async () => {
    const g = new G();
    const x = g.input('x', X);
    const c1 = g.conv(x, 4, 8, { k: 3 });
    const bn = g.op('BatchNormalization', [c1, g.weight([8]), g.weight([8]), g.weight([8]), g.floats(Array(8).fill(1.5))]);
    const c2 = g.conv(g.op('Relu', [bn]), 8, 5);
    g.output(c2);
    const m = g.model();
    const a = await analyze(m);
    const grp = groupOf(a, c1);
    expect(grp).toMatchObject({ unit: 'channel', size: 8, unitSize: 1 });
    expect(weights(grp, 'out').map((w) => [w.input, w.axis])).toEqual([[1, 0], [2, 0]]);
    expect(weights(grp, 'param')).toHaveLength(4);
    expect(weights(grp, 'in')).toHaveLength(1);
    expect(weights(grp, 'in')[0]).toMatchObject({ axis: 1, indices: Array.from({ length: 8 }, (_, i) => [i]) });
    expect(grp.paramsPerUnit).toBe(4 * 9 + 1 + 4 + 5);
    await expectMaskOk(m, grp);
  });

  test('depthwise conv (group = C) inside the expand conv group, with the group attribute', async () => {
    const g = new G();
    const x = g.input('x', X);
    const e = g.conv(x, 4, 12);
    const dw = g.conv(g.op('Clip', [e, g.floats([0], []), g.floats([6], [])]), 12, 12, { k: 3, group: 12 });
    const p = g.conv(dw, 12, 4);
    g.output(p);
    const m = g.model();
    const a = await analyze(m);
    const grp = groupOf(a, e);
    expect(grp.size).toBe(12);
    const dwNode = dw;
    expect(weights(grp, 'param').filter((w) => w.node === dwNode).map((w) => w.input).sort()).toEqual([1, 2]);
    expect(attrs(grp)).toEqual([{ kind: 'attr', node: dwNode, attr: 'group', perUnit: 1 }]);
    expect(weights(grp, 'in').map((w) => w.node)).toEqual([p]);
    await expectMaskOk(m, grp);
  });

  test('depthwise conv with channel multiplier 2: two weight rows per unit', async () => {
    const g = new G();
    const x = g.input('x', X);
    const e = g.conv(x, 4, 6);
    const dw = g.conv(e, 6, 12, { k: 3, group: 6 });
    g.output(g.conv(dw, 12, 3));
    const m = g.model();
    const grp = groupOf(await analyze(m), e);
    const w = weights(grp, 'param').find((x2) => x2.node === dw && x2.input === 1)!;
    expect(w.indices[1]).toEqual([2, 3]);
    expect(weights(grp, 'in')[0].indices[1]).toEqual([2, 3]);
    await expectMaskOk(m, grp);
  });

  test('ConvTranspose produces (weight axis 1) and consumes (weight axis 0)', async () => {
    const g = new G();
    const x = g.input('x', X);
    const c = g.conv(x, 4, 6);
    const t = g.op('ConvTranspose', [c, g.weight([6, 5, 2, 2]), g.weight([5])], { strides: [2, 2], kernel_shape: [2, 2] });
    g.output(g.conv(t, 5, 3));
    const m = g.model();
    const a = await analyze(m);
    expect(weights(groupOf(a, c), 'in')[0]).toMatchObject({ node: t, axis: 0 });
    const gt = groupOf(a, t);
    expect(weights(gt, 'out').map((w) => [w.input, w.axis])).toEqual([[1, 1], [2, 0]]);
    await expectMaskOk(m, gt);
  });

  test('residual Add couples every conv writing into the chain', async () => {
    const g = new G();
    const x = g.input('x', X);
    const a1 = g.conv(x, 4, 8);
    const b1 = g.conv(g.op('Relu', [g.conv(a1, 8, 3)]), 3, 8);
    const s1 = g.op('Relu', [g.op('Add', [a1, b1])]);
    const b2 = g.conv(s1, 8, 8, { k: 3 });
    const s2 = g.op('Add', [s1, b2]);
    g.output(g.conv(s2, 8, 2));
    const m = g.model();
    const grp = groupOf(await analyze(m), a1);
    expect((grp.info!.producers as string[]).sort()).toEqual([a1, b1, b2].sort());
    expect(weights(grp, 'in')).toHaveLength(3);
    await expectMaskOk(m, grp);
  });

  test('per-channel Mul/Add/Sub/Div/Pow/Where/PRelu constants broadcast along the channel axis', async () => {
    const g = new G();
    const x = g.input('x', X);
    const c = g.conv(x, 4, 6);
    let y = g.op('Mul', [c, g.weight([6, 1, 1])]);
    y = g.op('Add', [y, g.weight([6, 1, 1])]);
    y = g.op('Sub', [y, g.floats([0.5], [])]);
    y = g.op('Div', [y, g.floats([1, 2, 3, 4, 5, 6], [1, 6, 1, 1])]);
    y = g.op('PRelu', [y, g.weight([6, 1, 1])]);
    y = g.op('Pow', [g.op('Abs', [y]), g.floats([2], [])]);
    y = g.op('Where', [g.op('Greater', [y, g.floats([0.1], [])]), y, g.weight([6, 1, 1])]);
    g.output(g.conv(y, 6, 2));
    const m = g.model();
    const grp = groupOf(await analyze(m), c);
    expect(weights(grp, 'param')).toHaveLength(5);
    expect(weights(grp, 'param').every((w) => w.indices[3][0] === 3)).toBe(true);
    await expectMaskOk(m, grp);
  });

  test('activations, pooling, Pad, Resize, Dropout, Cast, Identity keep channels', async () => {
    const g = new G();
    const x = g.input('x', X);
    const c = g.conv(x, 4, 6);
    let y = g.op('HardSwish', [c]);
    y = g.op('HardSigmoid', [y]);
    y = g.op('Sigmoid', [g.op('Tanh', [g.op('LeakyRelu', [y], { alpha: 0.1 })])]);
    y = g.op('Erf', [g.op('Gelu', [y])]);
    y = g.op('MaxPool', [y], { kernel_shape: [2, 2], strides: [2, 2] });
    y = g.op('Pad', [y, g.ints([0, 0, 1, 1, 0, 0, 1, 1])]);
    y = g.op('Resize', [y, '', g.floats([1, 1, 2, 2])], { mode: 'nearest' });
    y = g.op('AveragePool', [y], { kernel_shape: [2, 2] });
    y = g.op('Identity', [g.op('Cast', [g.op('Dropout', [y])], { to: 1 })]);
    y = g.op('Softmax', [y], { axis: 3 });
    g.output(g.conv(y, 6, 2));
    const m = g.model(20);
    const grp = groupOf(await analyze(m), c);
    expect(grp.size).toBe(6);
    await expectMaskOk(m, grp);
  });

  test('InstanceNormalization is per channel; GroupNormalization makes each norm group a unit', async () => {
    const g = new G();
    const x = g.input('x', X);
    const c = g.conv(x, 4, 6);
    const i = g.op('InstanceNormalization', [c, g.weight([6]), g.weight([6])]);
    const c2 = g.conv(i, 6, 8);
    const gn = g.op('GroupNormalization', [c2, g.weight([8]), g.weight([8])], { num_groups: 4 });
    g.output(g.conv(gn, 8, 2));
    const m = g.model(21);
    const a = await analyze(m);
    const gi = groupOf(a, c);
    expect(weights(gi, 'param')).toHaveLength(2);
    await expectMaskOk(m, gi);
    const gg = groupOf(a, c2);
    expect(gg).toMatchObject({ size: 4, unitSize: 2 });
    expect(attrs(gg)).toEqual([{ kind: 'attr', node: gn, attr: 'num_groups', perUnit: 1 }]);
    await expectMaskOk(m, gg);
  });
});

describe('layout ops and index maps', () => {
  test('Concat offsets: two groups share the consumer with disjoint index ranges', async () => {
    const g = new G();
    const x = g.input('x', X);
    const a1 = g.conv(x, 4, 3);
    const b1 = g.conv(x, 4, 5);
    const cat = g.op('Concat', [a1, b1], { axis: 1 });
    const bn = g.op('BatchNormalization', [cat, g.weight([8]), g.weight([8]), g.weight([8]), g.floats(Array(8).fill(1))]);
    g.output(g.conv(bn, 8, 2));
    const m = g.model();
    const an = await analyze(m);
    expect(weights(groupOf(an, a1), 'in')[0].indices).toEqual([[0], [1], [2]]);
    expect(weights(groupOf(an, b1), 'in')[0].indices).toEqual([[3], [4], [5], [6], [7]]);
    expect(weights(groupOf(an, b1), 'param')[0].indices[0]).toEqual([3]);
    await expectMaskOk(m, groupOf(an, b1));
  });

  test('Split with sizes: one group per output part, with a split-size shape member each', async () => {
    const g = new G();
    const x = g.input('x', X);
    const c = g.conv(x, 4, 8);
    const [p, q] = g.opN('Split', [c, g.ints([3, 5])], { axis: 1 }, 2);
    g.output(g.op('Add', [g.conv(p, 3, 2), g.conv(q, 5, 2)]));
    const m = g.model();
    const an = await analyze(m);
    const groups = an.groups.filter((x2) => (x2.info!.producers as string[]).includes(c));
    expect(groups.map((x2) => x2.size).sort()).toEqual([3, 5]);
    for (const grp of groups) {
      const sm = shapes(grp);
      expect(sm).toHaveLength(1);
      expect(sm[0]).toMatchObject({ input: 1, position: grp.size === 3 ? 0 : 1, perUnit: 1 });
      await expectMaskOk(m, grp);
    }
  });

  test('opset 11: Split sizes in the attribute become attr members; legacy Softmax coerces to 2-D', async () => {
    const g = new G();
    const x = g.input('x', X);
    const c = g.conv(x, 4, 8);
    const [p, q] = g.opN('Split', [c], { axis: 1, split: [5, 3] }, 2);
    const s = g.op('Softmax', [g.conv(x, 4, 3)], { axis: 2 });
    g.output(g.op('Add', [g.op('Add', [g.conv(p, 5, 2), g.conv(q, 3, 2)]), g.conv(s, 3, 2)]));
    const m = g.model(11);
    const an = await analyze(m);
    const parts = an.groups.filter((x2) => (x2.info!.producers as string[]).includes(c));
    expect(parts.map((x2) => [x2.size, attrs(x2)])).toEqual(expect.arrayContaining([
      [5, [{ kind: 'attr', node: p, attr: 'split', position: 0, perUnit: 1 }]],
      [3, [{ kind: 'attr', node: p, attr: 'split', position: 1, perUnit: 1 }]],
    ]));
    for (const grp of parts) await expectMaskOk(m, grp);
    // axis 2 at opset 11 normalizes over axes 2 and 3 only: channels stay prunable
    expect(an.groups.some((x2) => x2.size === 3 && !(x2.info!.producers as string[]).includes(c))).toBe(true);
  });

  test('Slice ranges shift the consumed channels; Flatten → Gemm maps a channel to its H·W columns', async () => {
    const g = new G();
    const x = g.input('x', X);
    const c = g.conv(x, 4, 8);
    const s = g.op('Slice', [c, g.ints([2]), g.ints([7]), g.ints([1])]);
    const p = g.op('MaxPool', [s], { kernel_shape: [2, 2], strides: [2, 2] });
    const f = g.op('Flatten', [p], { axis: 1 });
    g.output(g.op('Gemm', [f, g.weight([3, 45]), g.weight([3])], { transB: 1 }));
    const m = g.model();
    const an = await analyze(m);
    const grp = an.groups.find((x2) => (x2.info!.producers as string[]).includes(c) && x2.size === 5)!;
    const fc = weights(grp, 'in')[0];
    expect(fc.axis).toBe(1);
    expect(fc.indices[0]).toEqual([0, 1, 2, 3, 4, 5, 6, 7, 8]);
    expect(fc.indices[4]).toEqual([36, 37, 38, 39, 40, 41, 42, 43, 44]);
    expect(weights(grp, 'out')[0].indices[0]).toEqual([2]);
    // ends (7) shifts with every removed unit; starts (2) does not
    expect(shapes(grp)).toEqual([expect.objectContaining({ input: 2, position: 0, perUnit: 1 })]);
    await expectMaskOk(m, grp);
  });

  test('Transpose to channels-last, MatMul, Transpose back; Gemm with transB and bias', async () => {
    const g = new G();
    const x = g.input('x', X);
    const c = g.conv(x, 4, 6);
    const t = g.op('Transpose', [c], { perm: [0, 2, 3, 1] });
    const h = g.linear(t, 6, 10);
    const back = g.op('Transpose', [g.op('Relu', [h])], { perm: [0, 3, 1, 2] });
    const gap = g.op('GlobalAveragePool', [back]);
    const sq = g.op('Squeeze', [gap, g.ints([2, 3])]);
    g.output(g.op('Gemm', [sq, g.weight([3, 10]), g.weight([3])], { transB: 1 }));
    const m = g.model();
    const an = await analyze(m);
    expect(weights(groupOf(an, c), 'in')[0]).toMatchObject({ axis: 0 });
    const mm = an.groups.find((x2) => (x2.info!.producers as string[]).some((p) => p !== c))!;
    expect(mm).toMatchObject({ unit: 'neuron', size: 10 });
    expect(weights(mm, 'out').map((w) => w.axis)).toEqual([1, 0]);
    expect(weights(mm, 'in')[0]).toMatchObject({ axis: 1 });
    await expectMaskOk(m, mm);
  });

  test('MatMul with the weight on the left, batched MatMul, Einsum as a plain matmul', async () => {
    const g = new G();
    const x = g.input('x', ['batch', 4, 'seq']);
    const left = g.op('MatMul', [g.weight([6, 4]), x]);
    const t = g.op('Transpose', [g.op('Relu', [left])], { perm: [0, 2, 1] });
    const e = g.op('Einsum', [t, g.weight([6, 7])], { equation: 'btc,cd->btd' });
    g.output(g.op('MatMul', [g.op('Tanh', [e]), g.weight([7, 2])]));
    const m = g.model();
    const an = await analyze(m);
    const gl = groupOf(an, left);
    expect(weights(gl, 'out')[0]).toMatchObject({ axis: 0 });
    expect(weights(gl, 'in')[0]).toMatchObject({ node: e, axis: 0 });
    await expectMaskOk(m, gl);
    const ge = groupOf(an, e);
    expect(weights(ge, 'out')[0]).toMatchObject({ axis: 1 });
    await expectMaskOk(m, ge);
  });

  test('Tile and Expand repeat channels: each unit owns all its copies', async () => {
    const g = new G();
    const x = g.input('x', X);
    const c = g.conv(x, 4, 3);
    const tiled = g.op('Tile', [c, g.ints([1, 2, 1, 1])]);
    const u = g.op('Unsqueeze', [g.op('ReduceMean', [c, g.ints([2, 3])], { keepdims: 0 }), g.ints([2])]);
    const ex = g.op('Expand', [u, g.ints([1, 1, 6])]);
    g.output(g.conv(tiled, 6, 2));
    g.output(g.op('MatMul', [g.op('Transpose', [ex], { perm: [0, 2, 1] }), g.weight([3, 2])]));
    const m = g.model(18);
    const grp = groupOf(await analyze(m), c);
    expect(weights(grp, 'in').find((w) => w.axis === 1)!.indices[1]).toEqual([1, 4]);
    await expectMaskOk(m, grp);
  });

  test('channel shuffle (Reshape → Transpose → Reshape) pairs the channels that share a row', async () => {
    const g = new G();
    const x = g.input('x', X);
    const c = g.conv(x, 4, 8);
    const r = g.op('Reshape', [c, g.constInts([0, 2, 4, 6, 6])]);
    const t = g.op('Transpose', [r], { perm: [0, 2, 1, 3, 4] });
    const s = g.op('Reshape', [t, g.constInts([0, -1, 6, 6])]);
    g.output(g.conv(s, 8, 2));
    const m = g.model();
    const grp = groupOf(await analyze(m), c);
    expect(grp).toMatchObject({ size: 4, unitSize: 2 });
    expect(weights(grp, 'out')[0].indices[1]).toEqual([1, 5]);
    expect(weights(grp, 'in')[0].indices[1]).toEqual([2, 3]);
    // the middle Reshape element (C/2 = 4) loses one per pair
    expect(shapes(grp)).toEqual([expect.objectContaining({ position: 2, perUnit: 1 })]);
    await expectMaskOk(m, grp);
  });

  test('Shape → Gather → Concat plumbing is recognized; Reshape constants become shape members', async () => {
    const g = new G();
    const x = g.input('x', X);
    const c = g.conv(x, 4, 8);
    const n = g.op('Unsqueeze', [g.op('Gather', [g.op('Shape', [c]), g.constInts([0], [])]), g.constInts([0])]);
    const flatShape = g.op('Concat', [n, g.constInts([288])], { axis: 0 });
    const f = g.op('Reshape', [c, flatShape]);
    g.output(g.op('Gemm', [f, g.weight([2, 288])], { transB: 1 }));
    const m = g.model();
    const grp = groupOf(await analyze(m), c);
    expect(shapes(grp)).toEqual([expect.objectContaining({ position: 0, perUnit: 36 })]);
    expect(weights(grp, 'in')[0].indices[0]).toHaveLength(36);
    await expectMaskOk(m, grp);
  });

  test('Gather with a constant index on a non-pruned axis (the "3" of a packed q/k/v tensor)', async () => {
    const g = new G();
    const x = g.input('x', ['batch', 'seq', 8]);
    const qkv = g.op('MatMul', [x, g.weight([8, 24])]);
    const r = g.op('Reshape', [qkv, g.ints([0, 0, 3, 2, 4])]);
    const p = g.op('Transpose', [r], { perm: [2, 0, 3, 1, 4] });
    const q = g.op('Gather', [p, g.ints([0], [])], { axis: 0 });
    const k = g.op('Gather', [p, g.ints([1], [])], { axis: 0 });
    const v = g.op('Gather', [p, g.ints([2], [])], { axis: 0 });
    const att = g.op('Softmax', [g.op('MatMul', [q, g.op('Transpose', [k], { perm: [0, 1, 3, 2] })])], { axis: -1 });
    const o = g.op('Transpose', [g.op('MatMul', [att, v])], { perm: [0, 2, 1, 3] });
    const merged = g.op('Reshape', [o, g.ints([0, 0, 8])]);
    g.output(g.op('MatMul', [merged, g.weight([8, 8])]));
    const m = g.model();
    const grp = groupOf(await analyze(m), qkv);
    expect(grp).toMatchObject({ unit: 'head', size: 2, unitSize: 4 });
    expect(weights(grp, 'out')[0].indices[1]).toEqual([4, 5, 6, 7, 12, 13, 14, 15, 20, 21, 22, 23]);
    expect(shapes(grp).map((s) => [s.position, s.perUnit]).sort()).toEqual([[2, 4], [3, 1]]);
    await expectMaskOk(m, grp);
  });
});

/** q/k/v projections → heads (Reshape/Transpose) → attention → merge → o projection. */
function attention(g: G, x: string, d: number, heads: number, kvHeads = heads) {
  const hd = d / heads;
  const split = (t: string, h: number) => g.op('Transpose', [g.op('Reshape', [t, g.constInts([0, 0, h, hd])])], { perm: [0, 2, 1, 3] });
  const qp = g.op('MatMul', [x, g.weight([d, d])]);
  const kp = g.op('MatMul', [x, g.weight([d, kvHeads * hd])]);
  const vp = g.op('MatMul', [x, g.weight([d, kvHeads * hd])]);
  const q = split(qp, heads);
  let k = split(kp, kvHeads);
  let v = split(vp, kvHeads);
  if (kvHeads !== heads) {
    const rep = heads / kvHeads;
    const repeat = (t: string) => g.op('Reshape', [
      g.op('Expand', [g.op('Unsqueeze', [t, g.ints([2])]), g.ints([1, kvHeads, rep, 1, hd])]),
      g.constInts([0, heads, -1, hd]),
    ]);
    k = repeat(k);
    v = repeat(v);
  }
  const scores = g.op('Div', [g.op('MatMul', [q, g.op('Transpose', [k], { perm: [0, 1, 3, 2] })]), g.floats([Math.sqrt(hd)], [])]);
  const att = g.op('MatMul', [g.op('Softmax', [scores], { axis: -1 }), v]);
  const merged = g.op('Reshape', [g.op('Transpose', [att], { perm: [0, 2, 1, 3] }), g.constInts([0, 0, d])]);
  return { qp, kp, vp, out: g.op('MatMul', [merged, g.weight([d, d])]) };
}

describe('attention', () => {
  test('MatMul → Reshape → Transpose heads: q/k/v rows and o columns of a head form one unit', async () => {
    const g = new G();
    const x = g.input('x', ['batch', 'seq', 16]);
    const { qp, kp, vp, out } = attention(g, x, 16, 4);
    g.output(out);
    const m = g.model();
    const grp = groupOf(await analyze(m), qp);
    expect(grp).toMatchObject({ unit: 'head', size: 4, unitSize: 4, info: expect.objectContaining({ heads: 4, headDim: 4 }) });
    expect((grp.info!.producers as string[]).sort()).toEqual([qp, kp, vp].sort());
    expect(weights(grp, 'in')[0].indices[2]).toEqual([8, 9, 10, 11]);
    // head count in the three split Reshapes, d in the merge Reshape
    expect(shapes(grp).map((s) => s.perUnit).sort((a, b) => a - b)).toEqual([1, 1, 1, 4]);
    await expectMaskOk(m, grp);
  });

  test('GQA (Unsqueeze → Expand → Reshape): a kv head with its query heads is one unit', async () => {
    const g = new G();
    const x = g.input('x', ['batch', 'seq', 16]);
    const { qp, kp, out } = attention(g, x, 16, 4, 2);
    g.output(out);
    const m = g.model();
    const grp = groupOf(await analyze(m), qp);
    expect(grp).toMatchObject({ unit: 'kv-group', size: 2, unitSize: 4, info: expect.objectContaining({ kvHeads: 2, queriesPerKv: 2 }) });
    expect(weights(grp, 'out').find((w) => w.node === qp)!.indices[1]).toEqual([8, 9, 10, 11, 12, 13, 14, 15]);
    expect(weights(grp, 'out').find((w) => w.node === kp)!.indices[1]).toEqual([4, 5, 6, 7]);
    await expectMaskOk(m, grp);
  });

  test('fused qkv + Split: each head takes its rows in all three parts; Split sizes shrink', async () => {
    const g = new G();
    const x = g.input('x', ['batch', 'seq', 8]);
    const qkv = g.op('MatMul', [x, g.weight([8, 24])]);
    const [q0, k0, v0] = g.opN('Split', [qkv, g.ints([8, 8, 8])], { axis: 2 }, 3);
    const sp = (t: string) => g.op('Transpose', [g.op('Reshape', [t, g.ints([0, 0, 2, 4])])], { perm: [0, 2, 1, 3] });
    const att = g.op('MatMul', [g.op('Softmax', [g.op('MatMul', [sp(q0), g.op('Transpose', [sp(k0)], { perm: [0, 1, 3, 2] })])], { axis: -1 }), sp(v0)]);
    g.output(g.op('MatMul', [g.op('Reshape', [g.op('Transpose', [att], { perm: [0, 2, 1, 3] }), g.ints([0, 0, 8])]), g.weight([8, 8])]));
    const m = g.model();
    const grp = groupOf(await analyze(m), qkv);
    expect(grp).toMatchObject({ unit: 'head', size: 2, unitSize: 4 });
    expect(weights(grp, 'out')[0].indices[0]).toEqual([0, 1, 2, 3, 8, 9, 10, 11, 16, 17, 18, 19]);
    expect(shapes(grp).filter((s) => s.node.includes('split')).map((s) => [s.position, s.perUnit])).toEqual([[0, 4], [1, 4], [2, 4]]);
    await expectMaskOk(m, grp);
  });

  test('SwiGLU: gate and up neurons are coupled by the Mul', async () => {
    const g = new G();
    const x = g.input('x', ['batch', 'seq', 8]);
    const gate = g.op('MatMul', [x, g.weight([8, 12])]);
    const up = g.op('MatMul', [x, g.weight([8, 12])]);
    const h = g.op('Mul', [g.op('Mul', [gate, g.op('Sigmoid', [gate])]), up]);
    g.output(g.op('MatMul', [h, g.weight([12, 8])]));
    const m = g.model();
    const grp = groupOf(await analyze(m), gate);
    expect(grp).toMatchObject({ unit: 'neuron', size: 12 });
    expect((grp.info!.producers as string[]).sort()).toEqual([gate, up].sort());
    expect(grp.paramsPerUnit).toBe(24);
    await expectMaskOk(m, grp);
  });
});

describe('weights stored as Constant nodes behind Identity', () => {
  test('members name the Constant output; the reading node is the consumer', async () => {
    const g = new G();
    const x = g.input('x', X);
    const wName = g.name('cw');
    g.nodes.push(constantNode(wName, floatTensor(wName, [5, 4, 1, 1], Array.from({ length: 20 }, (_, i) => (i % 7) / 7 - 0.4))));
    const wi = g.op('Identity', [wName]);
    const c = g.op('Conv', [x, wi]);
    g.output(g.conv(c, 5, 2));
    const m = g.model();
    const grp = groupOf(await analyze(m), c);
    expect(weights(grp, 'out')[0]).toMatchObject({ tensor: wName, node: c, input: 1 });
    await expectMaskOk(m, grp);
  });
});

describe('slice bounds (ONNX clamping, shared by shape inference and analysis)', () => {
  // eslint-disable-next-line @typescript-eslint/no-require-imports
  const { sliceIndices } = require('../src/analysis/shape-plumbing') as typeof import('../src/analysis/shape-plumbing');
  test('negative step: start below -dim clamps to 0, end to -1', () => {
    expect(sliceIndices(4, -10, -10, -1)).toEqual([0]);
    expect(sliceIndices(4, 10, -10, -1)).toEqual([3, 2, 1, 0]);
    expect(sliceIndices(4, -2, -100, -1)).toEqual([2, 1, 0]);
  });
  test('positive step: bounds clamp to [0, dim]', () => {
    expect(sliceIndices(4, -10, 10, 2)).toEqual([0, 2]);
    expect(sliceIndices(4, 1, -1, 1)).toEqual([1, 2]);
  });
});
