/**
 * Weights that reach their op through a value-converting chain of constant ops (src/analysis/weight-chain.ts):
 *  - 'cast': float16 *storage*, float32 compute: every initializer (weights, biases, BatchNormalization
 *    parameters) stored as float16 → Cast(to=FLOAT) → op;
 *  - 'qdq': onnxruntime quantize_static style: int8 weights per channel (Conv / Gemm axis 0, MatMul [K,N] axis 1;
 *    the second MatMul uint8 with non-zero zero-points) → DequantizeLinear, int32 Conv/Gemm biases with
 *    per-channel scales, per-tensor quantized Add biases, and QuantizeLinear→DequantizeLinear pairs with scalar
 *    scale / zero-point on every activation;
 *  - 'fakeq': fake-quantized float weights (float32 → QuantizeLinear → DequantizeLinear per channel, float
 *    biases), activations as in 'qdq'.
 * Built in code as a Conv→BN→Relu→Conv→GAP→Flatten→Gemm CNN and a MatMul+Add MLP, next to the plain float32
 * model. Checked: `onnx-prune groups` finds the float32 model's groups (per-channel scales / zero-points join them
 * when they run along the pruned axis); magnitude importance reads the dequantized values; the CLI prunes at
 * --ratio 0.3 (l2, wanda), passes verification, removes parameters, keeps every stored type, and the output runs
 * in onnxruntime.
 */
import * as fs from 'fs';
import * as path from 'path';
import { analyzeGroups } from '../src/pipeline/stages';
import type { Group, GroupAnalysis, WeightMember } from '../src/analysis/types';
import { float16ToFloat32, float32ToFloat16 } from '../src/ir/dtype';
import { loadModel } from '../src/ir/io';
import { toNumber } from '../src/ir/long';
import { scoreGroups } from '../src/score';
import { axisProfile, unitSums } from '../src/score/tensor-math';
import { DataType, attr, graph, modelBytes, node, onnx, seededRng, tensor, uniform, valueInfo } from './helpers/builder';
import { mkTmp, rmTmp, runCliInProcess } from './helpers/cli';
import { runOnce, seededFeeds } from './helpers/ort-run';
import { countParams } from './helpers/params';
import { fp16Weights } from './prune-fixtures';

const F = DataType.FLOAT;
type Storage = 'fp32' | 'cast' | 'qdq' | 'fakeq';

/** Per-channel symmetric int8 (zero-point 0) or asymmetric uint8 quantization of `v` along `axis`. */
function quantize(v: Float32Array, dims: number[], axis: number, unsigned: boolean) {
  const C = dims[axis];
  let inner = 1;
  for (let a = axis + 1; a < dims.length; a++) inner *= dims[a];
  const chan = (i: number) => Math.floor(i / inner) % C;
  const lo = new Float64Array(C), hi = new Float64Array(C);
  v.forEach((x, i) => { lo[chan(i)] = Math.min(lo[chan(i)], x); hi[chan(i)] = Math.max(hi[chan(i)], x); });
  const scale = new Float32Array(C), zp = new Float64Array(C);
  for (let c = 0; c < C; c++) {
    if (unsigned) {
      scale[c] = (hi[c] - lo[c]) / 255 || 1;
      zp[c] = Math.min(255, Math.max(0, Math.round(-lo[c] / scale[c])));
    } else scale[c] = Math.max(-lo[c], hi[c]) / 127 || 1;
  }
  const q = v.map((x, i) => {
    const c = chan(i);
    return unsigned ? Math.min(255, Math.max(0, Math.round(x / scale[c]) + zp[c])) : Math.min(127, Math.max(-127, Math.round(x / scale[c])));
  });
  const deq = Float32Array.from(q, (x, i) => (x - zp[chan(i)]) * scale[chan(i)]);
  return { q, scale, zp, deq };
}

const ACT_SCALE = 0.03;

/**
 * Builds one model in a storage style. `twin`: the float32 model with the values the chains compute (float16
 * rounding, dequantized codes) and no activation quantization, for comparing importance scores.
 */
class ModelMaker {
  nodes: onnx.NodeProto[] = [];
  inits: onnx.TensorProto[] = [];
  private seed: number;
  constructor(readonly storage: Storage, readonly twin = false, seed = 1) { this.seed = seed; }

  /** Seeded values whose magnitude varies strongly along `axis` (so per-channel scales differ). */
  values(dims: number[], axis: number, scale: number, offset = 0): Float32Array {
    const v = uniform(seededRng(this.seed++), dims.reduce((a, b) => a * b, 1), scale);
    let inner = 1;
    for (let a = axis + 1; a < dims.length; a++) inner *= dims[a];
    return v.map((x, i) => x * (0.15 + 1.85 * (((Math.floor(i / inner) % dims[axis]) * 0.377) % 1)) + offset);
  }

  private plain(name: string, dims: number[], v: Float32Array): string {
    this.inits.push(tensor(name, F, dims, v));
    return name;
  }

  private half(name: string, dims: number[], v: Float32Array): string {
    const h = Uint16Array.from(v, (x) => float32ToFloat16(x));
    if (this.twin) return this.plain(name, dims, Float32Array.from(h, (x) => float16ToFloat32(x)));
    this.inits.push(tensor(name, DataType.FLOAT16, dims, h));
    this.nodes.push(node('Cast', [name], [`${name}_f`], [attr.int('to', F)], `${name}_cast`));
    return `${name}_f`;
  }

  /** A kernel (rank ≥ 2) quantized per channel along `axis`. */
  weight(name: string, dims: number[], v: Float32Array, axis: number, unsigned = false): string {
    if (this.storage === 'fp32') return this.plain(name, dims, v);
    if (this.storage === 'cast') return this.half(name, dims, v);
    const q = quantize(v, dims, axis, unsigned);
    if (this.twin) return this.plain(name, dims, q.deq);
    const C = dims[axis];
    if (this.storage === 'fakeq') {
      const zp = unsigned ? tensor(`${name}_zp`, DataType.UINT8, [C], Uint8Array.from(q.zp)) : tensor(`${name}_zp`, DataType.INT8, [C], new Int8Array(C));
      this.inits.push(tensor(name, F, dims, v), tensor(`${name}_scale`, F, [C], q.scale), zp);
      this.nodes.push(
        node('QuantizeLinear', [name, `${name}_scale`, `${name}_zp`], [`${name}_q`], [attr.int('axis', axis)], `${name}_q`),
        node('DequantizeLinear', [`${name}_q`, `${name}_scale`, `${name}_zp`], [`${name}_dq`], [attr.int('axis', axis)], `${name}_dq`),
      );
      return `${name}_dq`;
    }
    this.inits.push(
      unsigned ? tensor(name, DataType.UINT8, dims, Uint8Array.from(q.q)) : tensor(name, DataType.INT8, dims, Int8Array.from(q.q)),
      tensor(`${name}_scale`, F, [C], q.scale),
      unsigned ? tensor(`${name}_zp`, DataType.UINT8, [C], Uint8Array.from(q.zp)) : tensor(`${name}_zp`, DataType.INT8, [C], new Int8Array(C)),
    );
    this.nodes.push(node('DequantizeLinear', [name, `${name}_scale`, `${name}_zp`], [`${name}_dq`], [attr.int('axis', axis)], `${name}_dq`));
    return `${name}_dq`;
  }

  /** A Conv / Gemm bias: int32 with per-channel scale = activation scale · weight scale (quantize_static). */
  bias(name: string, v: Float32Array, weightName: string): string {
    if (this.storage === 'fp32' || this.storage === 'fakeq') return this.plain(name, [v.length], v);
    if (this.storage === 'cast') return this.half(name, [v.length], v);
    const ws = this.inits.find((t) => t.name === `${weightName}_scale`);
    const wScale = ws ? new Float32Array(Uint8Array.from(ws.rawData).buffer) : new Float32Array(v.length).fill(1);
    const scale = Float32Array.from(wScale, (s) => s * ACT_SCALE);
    const q = Int32Array.from(v, (x, c) => Math.round(x / scale[c]));
    if (this.twin) return this.plain(name, [v.length], Float32Array.from(q, (x, c) => x * scale[c]));
    this.inits.push(tensor(name, DataType.INT32, [v.length], q), tensor(`${name}_scale`, F, [v.length], scale), tensor(`${name}_zp`, DataType.INT32, [v.length], new Int32Array(v.length)));
    this.nodes.push(node('DequantizeLinear', [name, `${name}_scale`, `${name}_zp`], [`${name}_dq`], [attr.int('axis', 0)], `${name}_dq`));
    return `${name}_dq`;
  }

  /** A per-channel parameter (BN statistics: kept float32 by quantize_static; Add biases: per-tensor uint8). */
  param(name: string, v: Float32Array, quantized: boolean): string {
    if (this.storage === 'fp32' || this.storage === 'fakeq') return this.plain(name, [v.length], v);
    if (this.storage === 'cast') return this.half(name, [v.length], v);
    if (!quantized) return this.plain(name, [v.length], v);
    const lo = Math.min(0, ...v), hi = Math.max(0, ...v);
    const scale = (hi - lo) / 255, zp = Math.round(-lo / scale);
    const q = Uint8Array.from(v, (x) => Math.min(255, Math.max(0, Math.round(x / scale) + zp)));
    if (this.twin) return this.plain(name, [v.length], Float32Array.from(q, (x) => (x - zp) * scale));
    this.inits.push(tensor(name, DataType.UINT8, [v.length], q), tensor(`${name}_scale`, F, [], Float32Array.of(scale)), tensor(`${name}_zp`, DataType.UINT8, [], Uint8Array.of(zp)));
    this.nodes.push(node('DequantizeLinear', [name, `${name}_scale`, `${name}_zp`], [`${name}_dq`], [], `${name}_dq`));
    return `${name}_dq`;
  }

  /** An activation through QuantizeLinear→DequantizeLinear (uint8, scalar scale / zero-point) in QDQ models. */
  act(x: string): string {
    if ((this.storage !== 'qdq' && this.storage !== 'fakeq') || this.twin) return x;
    if (!this.inits.some((t) => t.name === 'act_scale')) {
      this.inits.push(tensor('act_scale', F, [], Float32Array.of(ACT_SCALE)), tensor('act_zp', DataType.UINT8, [], Uint8Array.of(128)));
    }
    this.nodes.push(
      node('QuantizeLinear', [x, 'act_scale', 'act_zp'], [`${x}_q`], [], `${x}_q`),
      node('DequantizeLinear', [`${x}_q`, 'act_scale', 'act_zp'], [`${x}_qdq`], [], `${x}_qdq`),
    );
    return `${x}_qdq`;
  }

  op(opType: string, inputs: string[], output: string, attrs: onnx.AttributeProto[] = []): string {
    this.nodes.push(node(opType, inputs, [output], attrs, output));
    return output;
  }
}

/** Conv(3→16)→BN→Relu→Conv(16→32)→Relu→GlobalAveragePool→Flatten→Gemm(32→10), every op with a bias. */
function cnn(storage: Storage, twin = false): Uint8Array {
  const b = new ModelMaker(storage, twin, 11);
  const pads = [attr.ints('pads', [1, 1, 1, 1])];
  const x = b.act('x');
  const W1 = b.weight('W1', [16, 3, 3, 3], b.values([16, 3, 3, 3], 0, 0.5), 0);
  const B1 = b.bias('B1', b.values([16], 0, 0.2), 'W1');
  const c1 = b.act(b.op('Conv', [x, W1, B1], 'c1', pads));
  const bn = b.op('BatchNormalization', [c1, b.param('bn_s', b.values([16], 0, 0.3, 1), false), b.param('bn_b', b.values([16], 0, 0.2), false),
    b.param('bn_m', b.values([16], 0, 0.1), false), b.param('bn_v', b.values([16], 0, 0.3, 0.7), false)], 'bn');
  const r1 = b.act(b.op('Relu', [b.act(bn)], 'r1'));
  const W2 = b.weight('W2', [32, 16, 3, 3], b.values([32, 16, 3, 3], 0, 0.15), 0);
  const B2 = b.bias('B2', b.values([32], 0, 0.1), 'W2');
  const r2 = b.act(b.op('Relu', [b.act(b.op('Conv', [r1, W2, B2], 'c2', pads))], 'r2'));
  const flat = b.act(b.op('Flatten', [b.act(b.op('GlobalAveragePool', [r2], 'gap'))], 'flat', [attr.int('axis', 1)]));
  const Wfc = b.weight('Wfc', [10, 32], b.values([10, 32], 0, 0.3), 0);
  b.op('Gemm', [flat, Wfc, b.bias('Bfc', b.values([10], 0, 0.1), 'Wfc')], 'y', [attr.int('transB', 1)]);
  return modelBytes(graph({
    name: `cnn_${storage}`, nodes: b.nodes, initializers: b.inits,
    inputs: [valueInfo('x', F, ['N', 3, 12, 12])], outputs: [valueInfo('y', F, ['N', 10])],
  }), { opset: 17 });
}

/**
 * x·W1+b1 → Relu → ·g1 → ·W2+b2 → Relu → ·W3+b3 (16→32→24→8; g1 a per-channel layer scale); in QDQ, W2 is
 * asymmetric uint8 (non-zero zero-points) and the Add biases and g1 are per-tensor uint8.
 */
function mlp(storage: Storage, twin = false): Uint8Array {
  const b = new ModelMaker(storage, twin, 51);
  let h = b.act('x');
  const sizes = [16, 32, 24, 8];
  for (let l = 1; l <= 3; l++) {
    const [k, n] = [sizes[l - 1], sizes[l]];
    const W = b.weight(`W${l}`, [k, n], b.values([k, n], 1, 0.4), 1, l === 2);
    const mm = b.act(b.op('MatMul', [h, W], `mm${l}`));
    const add = b.op('Add', [mm, b.param(`b${l}`, b.values([n], 0, 0.2), true)], l === 3 ? 'y' : `h${l}`);
    if (l < 3) h = b.act(b.op('Relu', [b.act(add)], `r${l}`));
    // A per-channel layer scale (Mul constant) on the first hidden layer.
    if (l === 1) h = b.act(b.op('Mul', [h, b.param('g1', b.values([n], 0, 0.5, 1), true)], 'ls1'));
  }
  return modelBytes(graph({
    name: `mlp_${storage}`, nodes: b.nodes, initializers: b.inits,
    inputs: [valueInfo('x', F, ['batch', 16])], outputs: [valueInfo('y', F, ['batch', 8])],
  }), { opset: 17 });
}

const MODELS = { cnn, mlp };
const STORAGES: Storage[] = ['fp32', 'cast', 'qdq', 'fakeq'];
const CHAINED: Storage[] = ['cast', 'qdq', 'fakeq'];
type ModelName = keyof typeof MODELS;
const file = (m: ModelName, s: Storage) => path.join(tmp, `${m}_${s}.onnx`);

let tmp: string;
beforeAll(() => {
  tmp = mkTmp('onnx-prune-weight-chains-');
  for (const m of Object.keys(MODELS) as ModelName[]) for (const s of STORAGES) fs.writeFileSync(file(m, s), MODELS[m](s));
});
afterAll(() => rmTmp(tmp));

async function groupsJson(f: string): Promise<GroupAnalysis> {
  const r = await runCliInProcess(['groups', f, '--json']);
  expect(r.code).toBe(0);
  return JSON.parse(r.stdout) as GroupAnalysis;
}

/** Chain parameters (per-channel scale / zero-point of a weight's (De)QuantizeLinear). */
const isChainParam = (t: string) => /_(scale|zp)$/.test(t);

/** A group's members without the chain's nodes and parameters: (tensor, axis, role, ranges) sorted. */
function core(g: Group): string[] {
  return g.members.filter((m) => m.kind === 'weight' && !isChainParam(m.tensor))
    .map((m) => JSON.stringify([(m as WeightMember).tensor, (m as WeightMember).axis, (m as WeightMember).role, (m as unknown as { ranges: unknown }).ranges]))
    .sort();
}

test('the real analysis finds the hand-built groups of the fp16Weights fixture (prune-fixtures.ts)', async () => {
  const fx = fp16Weights();
  const a = await analyzeGroups(fx.model, {});
  const strip = (g: Group) => ({ id: g.id, unit: g.unit, size: g.size, members: g.members });
  expect(a.groups.map(strip)).toEqual(fx.analysis.groups.map(strip));
});

describe.each(['cnn', 'mlp'] as ModelName[])('%s', (model) => {
  test.each(CHAINED)('groups of the %s model = groups of the float32 model', async (storage) => {
    const plain = await groupsJson(file(model, 'fp32'));
    const chained = await groupsJson(file(model, storage));
    expect(plain.groups.length).toBe(2);
    expect(chained.groups.map((g) => [g.id, g.unit, g.size])).toEqual(plain.groups.map((g) => [g.id, g.unit, g.size]));
    for (const [i, g] of chained.groups.entries()) expect(core(g)).toEqual(core(plain.groups[i]));
    expect(chained.declined.map((d) => d.reason)).toEqual(plain.declined.map((d) => d.reason));
    // Members name the stored tensor as read by the chain's first op (what edits need). Quantized models keep
    // BN statistics (and, fake-quantized, every bias) in float32, read by their op itself.
    const chainReader = (name: string) => (storage === 'cast' ? `${name}_f` : storage === 'qdq' ? `${name}_dq` : `${name}_q`);
    const onChain = (name: string) => storage === 'cast' || (storage === 'qdq' && !name.startsWith('bn_')) || /^W/.test(name);
    for (const g of chained.groups) {
      for (const m of g.members) {
        if (m.kind !== 'weight' || isChainParam(m.tensor)) continue;
        const plainMember = plain.groups.flatMap((x) => x.members).find((x): x is WeightMember => x.kind === 'weight' && x.tensor === m.tensor && x.role === m.role)!;
        if (onChain(m.tensor)) expect([m.tensor, m.node, m.input]).toEqual([m.tensor, chainReader(m.tensor), 0]);
        else expect([m.tensor, m.node, m.input]).toEqual([m.tensor, plainMember.node, plainMember.input]);
      }
      const params = g.members.filter((m): m is WeightMember => m.kind === 'weight' && isChainParam(m.tensor));
      if (storage === 'cast') expect(params).toEqual([]);
      else {
        // Per-channel scales / zero-points of exactly the producers (quantized along their output axis); the
        // consumers are quantized along the other axis and per-tensor Add biases have scalars: they stay.
        const perChannel = (t: string) => (storage === 'qdq' ? /^[WB]/ : /^W/).test(t);
        const producers = g.members.filter((m): m is WeightMember => m.kind === 'weight' && m.role === 'out' && perChannel(m.tensor));
        const expected = producers.flatMap((p) => [`${p.tensor}_scale`, `${p.tensor}_zp`]).sort();
        expect([...new Set(params.map((p) => p.tensor))].sort()).toEqual(expected);
        // Read by the weight's DequantizeLinear (and, fake-quantized, its QuantizeLinear too).
        const base = (t: string) => t.replace(/_(scale|zp)$/, '');
        const readers = storage === 'qdq' ? ['_dq'] : ['_q', '_dq'];
        expect(params.map((p) => `${p.tensor}@${p.node}`).sort()).toEqual(expected.flatMap((t) => readers.map((r) => `${t}@${base(t)}${r}`)).sort());
        for (const p of params) expect([p.role, p.axis, p.input]).toEqual(['param', 0, p.tensor.endsWith('_scale') ? 1 : 2]);
      }
    }
  });

  test.each(CHAINED)('magnitude importance of the %s model reads the values its ops compute', async (storage) => {
    const chained = loadModel(MODELS[model](storage));
    const twin = loadModel(MODELS[model](storage, true));
    const a = await analyzeGroups(chained, {});
    const at = await analyzeGroups(twin, {});
    for (const method of ['l1', 'l2', 'obs-weights', 'lamp'] as const) {
      const s = scoreGroups(chained, a, { method });
      const st = scoreGroups(twin, at, { method });
      for (const g of a.groups) {
        const got = Array.from(s[g.id]), want = Array.from(st[g.id]);
        got.forEach((v, u) => expect(Math.abs(v - want[u])).toBeLessThanOrEqual(1e-5 * Math.max(...want.map(Math.abs))));
      }
    }
    if (storage === 'qdq') {
      // The test can fail: ranked by the raw int8 codes, the producer rows would order differently.
      const g = a.groups[0];
      const out = g.members.find((m): m is WeightMember => m.kind === 'weight' && m.role === 'out' && !isChainParam(m.tensor) && chained.graph.constant(m.tensor)!.dims.length >= 2)!;
      const t = chained.graph.constant(out.tensor)!;
      const raw = unitSums(axisProfile({ name: out.tensor, data: t.toFloat32(), dims: t.dims }, out.axis, 'l2sq'), out.indices);
      const twinT = twin.graph.constant(out.tensor)!;
      const deq = unitSums(axisProfile({ name: out.tensor, data: twinT.toFloat32(), dims: twinT.dims }, out.axis, 'l2sq'), out.indices);
      const order = (v: Float64Array) => Array.from(v.keys()).sort((x, y) => v[x] - v[y]).join();
      expect(order(raw)).not.toEqual(order(deq));
    }
  });

  test.each(CHAINED)('%s model: --target flops estimates the MACs it gets', async (storage) => {
    const output = path.join(tmp, `${model}_${storage}.flops.pruned.onnx`);
    const r = await runCliInProcess([file(model, storage), output, '--ratio', '0.3', '--target', 'flops', '--json', '--no-protect-defaults']);
    if (r.code !== 0) throw new Error(`exit ${r.code}: ${r.stderr.trim()}`);
    const report = JSON.parse(r.stdout);
    expect(report.verify.passed).toBe(true);
    // The ops after a chain shrink with the stored weight's kept channels: the allocation's estimate is exact.
    expect(report.allocation.flops.after).toBe(report.flops.macsAfter);
    expect(report.flops.macsAfter).toBeLessThan(report.flops.macsBefore * 0.75);
  });

  test.each(CHAINED)('%s model: --save-plan then --plan (wanda, compensated) is byte-identical', async (storage) => {
    const base = path.join(tmp, `${model}_${storage}.plan`);
    const a = await runCliInProcess([file(model, storage), `${base}.a.onnx`, '--ratio', '0.3', '--importance', 'wanda', '--save-plan', `${base}.json`, '--quiet']);
    const b = await runCliInProcess([file(model, storage), `${base}.b.onnx`, '--plan', `${base}.json`, '--quiet']);
    expect([a.code, b.code]).toEqual([0, 0]);
    expect(Buffer.compare(fs.readFileSync(`${base}.a.onnx`), fs.readFileSync(`${base}.b.onnx`))).toBe(0);
  });

  /** Element type of every initializer, by name. */
  const storedTypes = (bytes: Uint8Array) => new Map((onnx.ModelProto.decode(bytes).graph?.initializer ?? []).map((t) => [t.name ?? '', t.dataType ?? 0]));

  test.each(STORAGES.flatMap((s) => ['l2', 'wanda'].map((m) => [s, m] as [Storage, string])))('%s model: --ratio 0.3 --importance %s', async (storage, method) => {
    const input = file(model, storage);
    const output = path.join(tmp, `${model}_${storage}.${method}.pruned.onnx`);
    const r = await runCliInProcess([input, output, '--ratio', '0.3', '--importance', method, '--json', '--no-protect-defaults']);
    if (r.code !== 0) throw new Error(`exit ${r.code}: ${r.stderr.trim()}`);
    const report = JSON.parse(r.stdout);
    expect({ passed: report.verify?.passed, error: report.verify?.error }).toEqual({ passed: true, error: undefined });
    expect(report.verify.skipped).toBeUndefined();
    expect(report.params.after).toBeLessThan(report.params.before);
    const inBytes = fs.readFileSync(input), outBytes = fs.readFileSync(output);
    expect(countParams(outBytes).total).toBeLessThan(countParams(inBytes).total);
    // Every stored tensor keeps its type: float16 stays float16, int8 / uint8 / int32 codes stay codes.
    const before = storedTypes(inBytes), after = storedTypes(outBytes);
    for (const [name, dtype] of after) if (before.has(name)) expect([name, dtype]).toEqual([name, before.get(name)]);
    if (storage !== 'fp32') expect([...after.values()].filter((t) => t !== F && t !== DataType.INT64).length).toBeGreaterThan(0);
    // The pruned model runs in onnxruntime with the dense model's output shape.
    const pruned = loadModel(outBytes);
    const feeds = seededFeeds(pruned);
    const [yp, yd] = [await runOnce(pruned, feeds), await runOnce(loadModel(inBytes), feeds)];
    expect(yp.y.dims).toEqual(yd.y.dims);
    expect(Array.from(yp.y.data as Float32Array).every(Number.isFinite)).toBe(true);
    // Sliced, not masked: some stored weight is smaller along a channel axis.
    const dims = (bytes: Uint8Array, name: string) => (onnx.ModelProto.decode(bytes).graph?.initializer ?? []).find((t) => t.name === name)?.dims.map((d) => toNumber(d));
    expect(dims(outBytes, 'W2')!.reduce((x, y) => x * y, 1)).toBeLessThan(dims(inBytes, 'W2')!.reduce((x, y) => x * y, 1));
    // Bias compensation (on for wanda): float16-stored biases are rewritten in float16; quantized consumers are
    // skipped (their bias would need re-quantizing) and get no float bias.
    const quantized = storage === 'qdq' || storage === 'fakeq';
    if (method === 'wanda' && !quantized) expect(report.compensation?.consumers).toBeGreaterThan(0);
    if (method === 'wanda' && quantized) expect([report.compensation?.consumers, report.compensation?.biasesAdded, report.compensation?.skipped > 0]).toEqual([0, 0, true]);
    if (storage !== 'fp32') expect([...after.keys()].filter((n) => !before.has(n))).toEqual([]);
  });
});

// Default protection (first conv, classifier) must see through the chain: the chained CNN protects the same
// groups, for the same conv / Gemm, as its float32 twin.
test.each(STORAGES)('cnn %s: the default protection names the same first conv and classifier', async (storage) => {
  const input = file('cnn', storage);
  const r = await runCliInProcess([input, path.join(tmp, `cnn_${storage}.protect.onnx`), '--ratio', '0.3', '--json', '--quiet']);
  expect(r.code).toBe(0);
  const reasons = (JSON.parse(r.stdout).allocation.protected as { reason: string }[]).map((p) => p.reason).sort();
  expect(reasons.some((x) => x.startsWith('first conv'))).toBe(true);
  const fp32 = await runCliInProcess([file('cnn', 'fp32'), path.join(tmp, 'cnn_fp32.protect2.onnx'), '--ratio', '0.3', '--json', '--quiet']);
  expect(reasons).toEqual((JSON.parse(fp32.stdout).allocation.protected as { reason: string }[]).map((p) => p.reason).sort());
});
