/**
 * Group analysis of the shared exporter models (../shared/models): hand-checked structure per model, and
 * invariants every analysis must satisfy (uniform units, indices inside the tensors, stable output).
 */
import * as fs from 'fs';
import * as path from 'path';
import { DECLINE } from '../src/analysis/decline';
import type { Group, GroupAnalysis } from '../src/analysis/types';
import type { Model } from '../src/ir/model';
import { SHARED, analyze, attrs, groupOf, sharedModel, shapes, weights } from './analysis-kit';

const cache = new Map<string, Promise<{ model: Model; a: GroupAnalysis }>>();
function load(file: string, opts: { rewriteComputedShapes?: boolean; normStatistics?: boolean } = {}) {
  const key = `${file}|${!!opts.rewriteComputedShapes}|${opts.normStatistics !== false}`;
  if (!cache.has(key)) {
    cache.set(key, (async () => {
      const model = sharedModel(file);
      return { model, a: await analyze(model, opts) };
    })());
  }
  return cache.get(key)!;
}

const producersOf = (g: Group) => [...((g.info?.producers as string[]) ?? [])];
const range = (s: number, n: number) => Array.from({ length: n }, (_, i) => s + i);

function checkInvariants(model: Model, a: GroupAnalysis): void {
  const problems: string[] = [];
  const ids = new Set<string>();
  for (const g of a.groups) {
    if (ids.has(g.id)) problems.push(`${g.id}: duplicate id`);
    ids.add(g.id);
    if (g.size < 2 || g.paramsPerUnit <= 0) problems.push(`${g.id}: size ${g.size}, paramsPerUnit ${g.paramsPerUnit}`);
    if (!weights(g, 'in').length) problems.push(`${g.id}: no consumer`);
    for (const w of weights(g)) {
      const t = model.graph.constant(w.tensor);
      if (!t) { problems.push(`${g.id}: ${w.tensor} is not a stored weight`); continue; }
      if (w.indices.length !== g.size) problems.push(`${g.id}: ${w.tensor} has ${w.indices.length} unit lists`);
      if (model.graph.producer(w.node)?.outputs[0] !== w.node) problems.push(`${g.id}: no node ${w.node}`);
      const seen = new Set<number>();
      for (const l of w.indices) {
        if (l.length !== w.indices[0].length) problems.push(`${g.id}: ${w.tensor} units of unequal width`);
        for (const i of l) {
          if (!(i >= 0 && i < t.dims[w.axis]) || seen.has(i)) problems.push(`${g.id}: ${w.tensor} index ${i} out of range or repeated`);
          seen.add(i);
        }
      }
    }
  }
  expect(problems.slice(0, 5)).toEqual([]);
  expect(a.summary.groups).toBe(a.groups.length);
  expect(a.summary.declined).toBe(a.declined.length);
  expect(a.summary.prunableParams).toBeLessThanOrEqual(a.summary.totalParams);
  for (const d of a.declined) expect(d.reason.length).toBeGreaterThan(0);
}

const files = fs.readdirSync(SHARED).filter((f) => f.endsWith('.onnx')).sort();

describe.each(files)('%s', (file) => {
  test('analysis runs and satisfies the invariants; same model → same analysis', async () => {
    const { model, a } = await load(file);
    checkInvariants(model, a);
    expect(a.groups.length).toBeGreaterThan(0);
    const again = await analyze(sharedModel(file));
    expect(JSON.stringify(again)).toBe(JSON.stringify(a));
  });
});

test('resnet50_b: every conv writing into a residual Add chain is in that group', async () => {
  const { model, a } = await load('resnet50_b.onnx');
  const g = model.graph;
  const convsInto = (name: string): string[] => {
    const out: string[] = [];
    const stack = [name];
    while (stack.length) {
      const p = g.producer(stack.pop()!);
      if (!p) continue;
      if (p.opType === 'Conv') out.push(p.outputs[0]);
      else if (['Relu', 'Add', 'Identity'].includes(p.opType)) stack.push(...p.inputs);
    }
    return out;
  };
  const adds = g.nodes.filter((n) => n.opType === 'Add');
  expect(adds.length).toBe(4);
  for (const add of adds) {
    const convs = convsInto(add.outputs[0]);
    expect(convs.length).toBeGreaterThanOrEqual(2);
    const grp = groupOf(a, convs[0]);
    expect(producersOf(grp).sort()).toEqual(expect.arrayContaining(convs.sort()));
    expect(grp.unit).toBe('channel');
    expect(weights(grp, 'out').map((w) => w.node)).toEqual(expect.arrayContaining(convs));
  }
  // the last stage's group is read by the classifier
  const last = groupOf(a, convsInto(adds[3].outputs[0])[0]);
  expect(weights(last, 'in').map((w) => w.tensor)).toContain('fc.weight');
});

test('mobilenet_v2_050: each depthwise conv sits inside its expand conv group', async () => {
  const { model, a } = await load('mobilenet_v2_050.onnx');
  const g = model.graph;
  const dws = g.nodes.filter((n) => n.opType === 'Conv' && n.attrInt('group', 1) > 1);
  expect(dws.length).toBe(17);
  for (const dw of dws) {
    let p = g.producer(dw.inputs[0])!;
    while (p.opType !== 'Conv') p = g.producer(p.inputs[0])!;
    const grp = groupOf(a, p.outputs[0]);
    const id = dw.outputs[0];
    expect(weights(grp, 'param').some((w) => w.node === id && w.input === 1 && w.axis === 0)).toBe(true);
    expect(attrs(grp)).toContainEqual({ kind: 'attr', node: id, attr: 'group', perUnit: 1 });
    expect(producersOf(grp)).not.toContain(id);
  }
});

test('mobilenet_v3_small_050: the SE scale (fc2 → HardSigmoid → Mul) joins the block group', async () => {
  const { a } = await load('mobilenet_v3_small_050.onnx');
  const grp = groupOf(a, '/features/features.4/block/block.2/fc2/Conv_output_0');
  expect(producersOf(grp)).toContain('/features/features.4/block/block.0/block.0.0/Conv_output_0');
  expect(weights(grp, 'in').map((w) => w.tensor)).toContain('features.4.block.2.fc1.weight');
});

test('squeezenet1_1: the two expand convs of a Fire module are read at offsets 0 and 64 of the next squeeze', async () => {
  const { a } = await load('squeezenet1_1.onnx');
  const e1 = groupOf(a, '/features/features.3/expand1x1/Conv_output_0');
  const e3 = groupOf(a, '/features/features.3/expand3x3/Conv_output_0');
  expect(e1.id).not.toBe(e3.id);
  expect(weights(e1, 'in')[0].indices[0]).toEqual([0]);
  expect(weights(e3, 'in')[0].indices[0]).toEqual([64]);
});

test('densenet_s: a dense layer\'s new channels are read by every later BN and conv of the block', async () => {
  const { a } = await load('densenet_s.onnx');
  const grp = groupOf(a, '/features/denseblock1/denselayer1/conv2/Conv_output_0');
  expect(grp.size).toBe(12);
  expect(weights(grp, 'param').some((w) => w.node.includes('denselayer2/norm1'))).toBe(true);
  expect(weights(grp, 'in').some((w) => w.node.includes('transition1/conv'))).toBe(true);
});

test('mnist_lenet_bn: the last conv channels map to 49 Flatten columns of the classifier', async () => {
  const { a } = await load('mnist_lenet_bn.onnx');
  const grp = groupOf(a, '/f/f.8/Conv_output_0');
  const fc = weights(grp, 'in')[0];
  expect(fc.indices[1]).toEqual(range(49, 49));
});

test('mnist_resmlp: the residual hidden block couples both producers', async () => {
  const { a } = await load('mnist_resmlp.onnx');
  const grp = groupOf(a, '/inp/Gemm_output_0');
  expect(producersOf(grp)).toEqual(['/inp/Gemm_output_0', '/h2/Gemm_output_0']);
});

test('shufflenet_v2_x0_5: branch groups prune; the channel shuffle chain is declined with a reason', async () => {
  const { model, a } = await load('shufflenet_v2_x0_5.onnx');
  expect(a.groups.length).toBeGreaterThanOrEqual(15);
  const shuffleFed = a.declined.filter((d) => d.producers?.some((p) => p.includes('branch2.5') || p.includes('branch1.2')));
  expect(shuffleFed.length).toBeGreaterThan(0);
  for (const d of a.declined) expect([DECLINE.shapeRewrite, DECLINE.singleUnit, DECLINE.graphOutput]).toContain(d.reason);
  // the shuffle's chunk Slice is where it stops
  expect(shuffleFed.some((d) => model.graph.producer(d.node ?? '')?.opType === 'Slice')).toBe(true);
});

test('convnext_s: MLP hidden neurons prune; the LayerNorm residual stream of each stage is a group (norms over kept channels)', async () => {
  const { model, a } = await load('convnext_s.onnx');
  const sharedDims = (t: string) => model.graph.constant(t)!.dims;
  const streams = a.groups.filter((g) => g.members.some((m) => m.kind === 'stat'));
  expect(streams.map((g) => [g.unit, g.size])).toEqual([['channel', 24], ['channel', 48], ['channel', 96], ['channel', 192]]);
  for (const g of a.groups.filter((x) => !streams.includes(x))) {
    // Linear(C, 4C) → GELU → Linear(4C, C): 4C neurons
    const w = weights(g, 'out').find((x) => x.axis === 1)!;
    expect(g.unit).toBe('neuron');
    expect(g.size).toBe(4 * sharedDims(w.tensor)[0]);
  }
  const first = groupOf(a, '/features/features.1/features.1.0/block/block.3/MatMul_output_0');
  expect(first.size).toBe(96);
  expect(a.declined.some((d) => d.reason === DECLINE.normalization)).toBe(false);
  const off = (await load('convnext_s.onnx', { normStatistics: false })).a;
  expect(off.declined.some((d) => d.reason === DECLINE.normalization)).toBe(true);
});

for (const [file, layers, kv] of [['llama_s.onnx', 2, false], ['llama_gqa_s.onnx', 2, true]] as const) {
  test(`${file}: per layer one ${kv ? 'kv-group' : 'head'} group and one SwiGLU group of 352 neurons`, async () => {
    const { a } = await load(file);
    for (let l = 0; l < layers; l++) {
      const p = `/layers.${l}/self_attn`;
      const heads = groupOf(a, `${p}/q_proj/MatMul_output_0`);
      expect(producersOf(heads).sort()).toEqual([`${p}/k_proj/MatMul_output_0`, `${p}/q_proj/MatMul_output_0`, `${p}/v_proj/MatMul_output_0`]);
      const o = weights(heads, 'in');
      expect(o).toHaveLength(1);
      expect(o[0]).toMatchObject({ node: `${p}/o_proj/MatMul_output_0`, axis: 0 });
      if (!kv) {
        expect(heads).toMatchObject({ unit: 'head', size: 4, unitSize: 32 });
        expect(o[0].indices[2]).toEqual(range(64, 32));
        expect(shapes(heads).map((s) => s.perUnit).sort((x, y) => x - y)).toEqual([1, 1, 1, 32]);
      } else {
        expect(heads).toMatchObject({ unit: 'kv-group', size: 2, unitSize: 16, info: expect.objectContaining({ kvHeads: 2, queriesPerKv: 4 }) });
        expect(weights(heads, 'out').find((w) => w.node.includes('q_proj'))!.indices[1]).toEqual(range(64, 64));
        expect(weights(heads, 'out').find((w) => w.node.includes('k_proj'))!.indices[1]).toEqual(range(16, 16));
        // q head count (8) loses 4 per kv-group, kv head counts (2) one, merge width (128) 64
        expect(shapes(heads).map((s) => s.perUnit).sort((x, y) => x - y)).toEqual([1, 1, 1, 1, 4, 4, 4, 64]);
      }
      const mlp = groupOf(a, `/layers.${l}/mlp/gate_proj/MatMul_output_0`);
      expect(mlp).toMatchObject({ unit: 'neuron', size: 352 });
      expect(producersOf(mlp)).toContain(`/layers.${l}/mlp/up_proj/MatMul_output_0`);
      expect(weights(mlp, 'in')[0].node).toBe(`/layers.${l}/mlp/down_proj/MatMul_output_0`);
    }
    // The hidden size is one group through the RMSNorms (statistics over the kept channels); the vocabulary
    // reaches the output.
    expect(a.declined.map((d) => d.reason)).toEqual([DECLINE.graphOutput]);
    const hidden = a.groups.filter((g) => g.members.some((m) => m.kind === 'stat'));
    expect(hidden.map((g) => [g.size, g.members.filter((m) => m.kind === 'stat').length])).toEqual([[128, 5]]);
  });
}

test('gpt2_s: heads across the fused c_attn Split (merge Reshape needs rewriteComputedShapes)', async () => {
  const plain = (await load('gpt2_s.onnx')).a;
  const d = plain.declined.find((x) => x.producers?.includes('/h.0/c_attn/MatMul_output_0'))!;
  expect(d.reason).toBe(DECLINE.shapeRewrite);
  expect(groupOf(plain, '/h.0/c_fc/MatMul_output_0')).toMatchObject({ unit: 'neuron', size: 512 });
  const { a } = await load('gpt2_s.onnx', { rewriteComputedShapes: true });
  const heads = groupOf(a, '/h.0/c_attn/MatMul_output_0');
  expect(heads).toMatchObject({ unit: 'head', size: 4, unitSize: 32 });
  expect(weights(heads, 'out')[0].indices[1]).toEqual([...range(32, 32), ...range(160, 32), ...range(288, 32)]);
  const split = shapes(heads).filter((s) => s.tensor === '/h.0/Constant_3_output_0');
  expect(split.map((s) => [s.position, s.perUnit])).toEqual([[0, 32], [1, 32], [2, 32]]);
  expect(shapes(heads).filter((s) => s.replaceWith === -1)).toHaveLength(1);
});

for (const [file, first, heads] of [
  ['vit_s.onnx', '/encoder/layers/encoder_layer_0/self_attention/MatMul_output_0', 4],
  ['torch_transformer_encoder_s.onnx', '/layers.0/self_attn/MatMul_output_0', 4],
  ['swin_s.onnx', '/features/features.3/features.3.0/attn/MatMul_output_0', 2],
] as const) {
  test(`${file}: packed in-projection heads (with rewriteComputedShapes), MLP neurons always`, async () => {
    const plain = (await load(file)).a;
    expect(plain.declined.find((x) => x.producers?.includes(first))!.reason).toBe(DECLINE.shapeRewrite);
    expect(plain.groups.every((g) => g.unit === 'neuron')).toBe(true);
    const { a } = await load(file, { rewriteComputedShapes: true });
    const grp = groupOf(a, first);
    expect(grp).toMatchObject({ unit: 'head', size: heads });
    const hd = grp.unitSize;
    const w = weights(grp, 'out')[0];
    expect(w.indices[1]).toEqual([...range(hd, hd), ...range(hd * (heads + 1), hd), ...range(hd * (2 * heads + 1), hd)]);
    expect(weights(grp, 'in')[0].indices[1]).toEqual(range(hd, hd));
  });
}

test('swin_s: relative position bias table is a per-head parameter; analysis of 3.4k nodes', async () => {
  const { a } = await load('swin_s.onnx', { rewriteComputedShapes: true });
  const grp = groupOf(a, '/features/features.5/features.5.0/attn/MatMul_output_0');
  const table = weights(grp, 'param').find((w) => w.axis === 1 && w.indices[0].length === 1);
  expect(table).toBeDefined();
  expect(table!.indices.map((l) => l[0])).toEqual([0, 1, 2]);
});

test('the shared set has a test for every model file', () => {
  expect(files).toEqual(expect.arrayContaining(['resnet50_b.onnx', 'swin_s.onnx', 'llama_s.onnx']));
  expect(files.length).toBeGreaterThanOrEqual(17);
  expect(fs.existsSync(path.join(SHARED, 'README.md'))).toBe(true);
});

test.each(['llama_gqa_s.onnx', 'shufflenet_v2_x0_5.onnx'])('%s: shapes measured with onnxruntime give the same analysis as static inference', async (file) => {
  const { a } = await load(file);
  const viaOrt = await analyze(sharedModel(file), { mode: 'ort' });
  expect(viaOrt.summary.shapeSource).toBe('ort');
  expect(a.summary.shapeSource).toBe('static');
  expect({ ...viaOrt, summary: { ...viaOrt.summary, shapeSource: 'static' } }).toEqual(a);
});
