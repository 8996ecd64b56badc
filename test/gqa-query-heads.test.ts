/**
 * Grouped-query attention: "query heads within kv-groups" (analysis option `gqaQueryHeads`,
 * src/analysis/gqa-query-heads.ts). Unit r removes query head r of every kv-group (heads g·n_rep + r), the
 * q-projection rows and o-projection columns of those heads, and lowers repeat_kv's repeat count by one; k and v
 * stay. On the shared llama_gqa_s and on a LLaMA-style model built here (8 query heads, 2 kv heads): the groups
 * are found (kv-groups by default, query-head groups with the option), the CLI prunes at ratio 0.3 and 0.5 and
 * verifies, the pruned model runs at two sequence lengths and equals the masked dense model, and a plan removing
 * k query-head units leaves q_proj with (n_rep − k)·n_kv·d rows.
 */
import * as fs from 'fs';
import * as path from 'path';
import { analyzeGroups } from '../src/pipeline/stages';
import type { Group, GroupAnalysis, WeightMember } from '../src/analysis/types';
import { loadModel } from '../src/ir/io';
import type { Model } from '../src/ir/model';
import { cloneModel } from '../src/ir/clone';
import { maskPlan } from '../src/prune/mask';
import { fingerprintModel } from '../src/prune/plan';
import { compareOutputs } from '../src/verify/compare';
import { runModel, verificationFeeds } from '../src/verify/verify';
import { DataType, attr, constantNode, floatTensor, graph, int64Tensor, modelBytes, node, onnx, seededRng, uniform, valueInfo } from './helpers/builder';
import { SHARED_MODELS, mkTmp, rmTmp, runCliInProcess } from './helpers/cli';

const F = DataType.FLOAT;
const OPTS = { rewriteComputedShapes: true, gqaQueryHeads: true };

let tmp: string;
beforeAll(() => { tmp = mkTmp('onnx-prune-gqa-q-'); });
afterAll(() => rmTmp(tmp));

// ---------------------------------------------------------------------------------------------------------
// A LLaMA-style GQA model: RMSNorm, q/k/v projections, rotate_half on q and k, repeat_kv (Unsqueeze → Expand →
// Reshape, sizes computed from Shape), softmax attention, o_proj, SwiGLU MLP.

const M = { vocab: 32, D: 32, H: 8, kv: 2, d: 4, FF: 24, layers: 2 };

function gqaModel(): Uint8Array {
  const nodes: onnx.NodeProto[] = [];
  const inits: onnx.TensorProto[] = [];
  const next = seededRng(7);
  let k = 0;
  const fresh = (p: string) => `${p}_${k++}`;
  const op = (type: string, inputs: string[], attrs: onnx.AttributeProto[] = []) => {
    const o = fresh(type.toLowerCase());
    nodes.push(node(type, inputs, [o], attrs, o));
    return o;
  };
  const w = (name: string, dims: number[], scale = 0.3) => {
    inits.push(floatTensor(name, dims, uniform(next, dims.reduce((a, b) => a * b, 1), scale)));
    return name;
  };
  const c = (v: number[], dims?: number[]) => {
    const name = fresh('c');
    nodes.push(constantNode(name, int64Tensor(name, dims ?? [v.length], v)));
    return name;
  };
  const f = (v: number) => {
    const name = fresh('cf');
    nodes.push(constantNode(name, floatTensor(name, [], [v])));
    return name;
  };
  const dim = (x: string, i: number) => op('Unsqueeze', [op('Gather', [op('Shape', [x]), c([i], [])], [attr.int('axis', 0)]), c([0])]);
  const shape = (parts: (string | number)[]) => op('Concat', parts.map((p) => (typeof p === 'number' ? c([p]) : p)), [attr.int('axis', 0)]);
  const rms = (x: string, name: string) => {
    const r = op('Sqrt', [op('Add', [op('ReduceMean', [op('Mul', [x, x]), c([-1])], [attr.int('keepdims', 1)]), f(1e-6)])]);
    const gain = `${name}.weight`;
    inits.push(floatTensor(gain, [M.D], Float32Array.from({ length: M.D }, () => 0.8 + 0.4 * next())));
    return op('Mul', [op('Div', [x, r]), gain]);
  };
  const rotate = (x: string) => {
    const x1 = op('Slice', [x, c([0]), c([M.d / 2]), c([-1])]);
    const x2 = op('Slice', [x, c([M.d / 2]), c([M.d]), c([-1])]);
    const half = op('Concat', [op('Neg', [x2]), x1], [attr.int('axis', -1)]);
    return op('Add', [op('Mul', [x, f(0.8)]), op('Mul', [half, f(0.6)])]);
  };
  const { D, H, kv, d, FF } = M;
  let x = op('Gather', [w('embed.weight', [M.vocab, D], 1), 'input_ids']);
  for (let l = 0; l < M.layers; l++) {
    const p = `layers.${l}`;
    const a = rms(x, `${p}.input_layernorm`);
    const b = dim(a, 0), s = dim(a, 1);
    const heads = (y: string, n: number) => op('Transpose', [op('Reshape', [y, shape([b, s, n, d])])], [attr.ints('perm', [0, 2, 1, 3])]);
    const repeat = (y: string) => op('Reshape', [op('Expand', [op('Unsqueeze', [y, c([2])]), shape([b, kv, H / kv, s, d])]), shape([b, H, s, d])]);
    const q = rotate(heads(op('MatMul', [a, w(`${p}.q_proj.weight`, [D, H * d])]), H));
    const kk = repeat(rotate(heads(op('MatMul', [a, w(`${p}.k_proj.weight`, [D, kv * d])]), kv)));
    const v = repeat(heads(op('MatMul', [a, w(`${p}.v_proj.weight`, [D, kv * d])]), kv));
    const scores = op('Div', [op('MatMul', [q, op('Transpose', [kk], [attr.ints('perm', [0, 1, 3, 2])])]), f(Math.sqrt(d))]);
    const ctx = op('Transpose', [op('MatMul', [op('Softmax', [scores], [attr.int('axis', -1)]), v])], [attr.ints('perm', [0, 2, 1, 3])]);
    x = op('Add', [x, op('MatMul', [op('Reshape', [ctx, shape([b, s, H * d])]), w(`${p}.o_proj.weight`, [H * d, D])])]);
    const m = rms(x, `${p}.post_attention_layernorm`);
    const gate = op('MatMul', [m, w(`${p}.gate_proj.weight`, [D, FF])]);
    const up = op('MatMul', [m, w(`${p}.up_proj.weight`, [D, FF])]);
    const act = op('Mul', [gate, op('Sigmoid', [gate])]);
    x = op('Add', [x, op('MatMul', [op('Mul', [act, up]), w(`${p}.down_proj.weight`, [FF, D])])]);
  }
  nodes.push(node('Identity', [rms(x, 'norm')], ['hidden']));
  const g = graph({ nodes, inputs: [valueInfo('input_ids', DataType.INT64, ['batch', 'seq'])], outputs: [valueInfo('hidden', F, ['batch', 'seq', D])], initializers: inits });
  return modelBytes(g, { opset: 18, irVersion: 8 });
}

// ---------------------------------------------------------------------------------------------------------

const weightMember = (g: Group, re: RegExp, role: string) =>
  g.members.find((m): m is WeightMember => m.kind === 'weight' && m.role === role && re.test(m.tensor));

function qGroups(a: GroupAnalysis): Group[] {
  return a.groups.filter((g) => g.info?.queryHeadsWithinKvGroups === true);
}

async function expectMaskedEqualsPruned(input: string, output: string, plan: Record<string, number[]>): Promise<void> {
  const dense = loadModel(input);
  const pruned = loadModel(output);
  const masked = cloneModel(dense);
  maskPlan(masked, await analyzeGroups(dense, OPTS), plan);
  for (const seq of [5, 11]) {
    const feeds = verificationFeeds(dense, { batch: 2, seq, seed: seq });
    const want = await runModel(masked, feeds);
    const got = await runModel(pruned, feeds);
    for (const o of dense.graph.outputs) {
      const name = o.name ?? '';
      expect(got[name]).toBeDefined();
      const cmp = compareOutputs(name, want[name], got[name]);
      expect({ seq, name, mismatch: cmp.mismatch, close: cmp.maxRelDiff < 1e-4 }).toEqual({ seq, name, mismatch: undefined, close: true });
    }
  }
}

/** Rows of the q projection (MatMul weight [D, H·d]: axis 1) in a model, found through the group's member. */
function qRows(model: Model, g: Group): number {
  const m = weightMember(g, /./, 'out')!;
  return model.graph.constant(m.tensor)!.dims[m.axis];
}

interface Case { name: string; file: () => string; H: number; kv: number; d: number; layers: number }

const cases: Case[] = [
  { name: 'llama_gqa_s', file: () => path.join(SHARED_MODELS, 'llama_gqa_s.onnx'), H: 8, kv: 2, d: 16, layers: 2 },
  {
    name: 'built',
    file: () => {
      const p = path.join(tmp, 'gqa_built.onnx');
      if (!fs.existsSync(p)) fs.writeFileSync(p, gqaModel());
      return p;
    },
    H: M.H, kv: M.kv, d: M.d, layers: M.layers,
  },
];

describe.each(cases)('$name (query heads within kv-groups)', ({ name, file, H, kv, d, layers }) => {
  const nRep = H / kv;

  test('default: kv-group groups; with gqaQueryHeads: one query-head group per layer instead', async () => {
    const model = loadModel(file());
    const base = await analyzeGroups(model, { rewriteComputedShapes: true });
    const kvg = base.groups.filter((g) => g.unit === 'kv-group');
    expect(kvg.map((g) => [g.size, g.unitSize, g.info?.queriesPerKv])).toEqual(Array(layers).fill([kv, d, nRep]));
    expect(qGroups(base)).toEqual([]);

    const a = await analyzeGroups(model, OPTS);
    const qg = qGroups(a);
    expect(a.groups.filter((g) => g.unit === 'kv-group')).toEqual([]);
    expect(qg.map((g) => [g.unit, g.size, g.unitSize, g.info?.headsPerUnit])).toEqual(Array(layers).fill(['head', nRep, d, kv]));
    // Every other group is unchanged.
    expect(a.groups.filter((g) => !qg.includes(g))).toEqual(base.groups.filter((g) => g.unit !== 'kv-group'));
    for (const g of qg) {
      expect(g.id).toBe(`${kvg[qg.indexOf(g)].id}#query-heads`);
      // Only the q projection (out) and the o projection (in): k and v stay whole.
      const ws = g.members.filter((m): m is WeightMember => m.kind === 'weight');
      expect(ws.map((m) => m.role).sort()).toEqual(['in', 'out']);
      for (const m of ws) {
        for (let r = 0; r < nRep; r++) {
          // Unit r = query head r of every kv-group: heads g·n_rep + r.
          const want = Array.from({ length: kv }, (_, gi) => Array.from({ length: d }, (_, j) => (gi * nRep + r) * d + j)).flat();
          expect(m.indices[r]).toEqual(want);
        }
      }
      // Shapes: the repeat count of repeat_kv's Expand (k and v) drops by one per unit.
      expect(g.members.filter((m) => m.kind === 'shape' && m.perUnit === 1)).toHaveLength(2);
      // q rows and o columns of n_kv heads: 2 · n_kv · d · hidden.
      const o = weightMember(g, /./, 'in')!;
      expect(g.paramsPerUnit).toBe(2 * kv * d * model.graph.constant(o.tensor)!.dims[1 - o.axis]);
    }
    expect(a.summary.prunableParams).toBeLessThan(base.summary.prunableParams);
  });

  test.each(['0.3', '0.5'])('CLI --ratio %s prunes query heads, verifies, runs at two sequence lengths', async (ratio) => {
    const input = file();
    const output = path.join(tmp, `${name}-${ratio}.onnx`);
    const planFile = path.join(tmp, `${name}-${ratio}.plan.json`);
    const r = await runCliInProcess([input, output, '--ratio', ratio, '--gqa-query-heads', '--json', '--save-plan', planFile, '--verify-batch', '1']);
    const report = r.stdout.trim() ? JSON.parse(r.stdout) : {};
    expect({ code: r.code, stderr: r.stderr, error: report.verify?.error }).toEqual({ code: 0, stderr: '', error: undefined });
    expect(report.verify.passed).toBe(true);
    expect(report.params.after).toBeLessThan(report.params.before);
    const plan = JSON.parse(fs.readFileSync(planFile, 'utf8')).groups as Record<string, number[]>;
    const a = await analyzeGroups(loadModel(input), OPTS);
    const qg = qGroups(a);
    expect(qg.some((g) => (plan[g.id] ?? []).length > 0)).toBe(true);
    const pruned = loadModel(output);
    for (const g of qg) expect(qRows(pruned, g)).toBe((nRep - (plan[g.id] ?? []).length) * kv * d);
    await expectMaskedEqualsPruned(input, output, plan);
  });

  test.each([1, 2, 3])('a plan removing %i query-head unit(s) per layer: q_proj rows = (n_rep − k)·n_kv·d', async (k) => {
    const input = file();
    const a = await analyzeGroups(loadModel(input), OPTS);
    const qg = qGroups(a);
    // Different units per layer (not just the first ones).
    const plan: Record<string, number[]> = {};
    qg.forEach((g, i) => { plan[g.id] = Array.from({ length: k }, (_, j) => (i + j) % nRep).sort((x, y) => x - y); });
    const planFile = path.join(tmp, `${name}-k${k}.plan.json`);
    fs.writeFileSync(planFile, JSON.stringify({ format: 'onnx-prune-plan', version: 1, model: fingerprintModel(loadModel(input)), groups: plan }));
    const output = path.join(tmp, `${name}-k${k}.onnx`);
    const r = await runCliInProcess([input, output, '--plan', planFile, '--gqa-query-heads', '--json', '--verify-batch', '1']);
    const report = r.stdout.trim() ? JSON.parse(r.stdout) : {};
    expect({ code: r.code, stderr: r.stderr, error: report.verify?.error }).toEqual({ code: 0, stderr: '', error: undefined });
    expect(report.verify.passed).toBe(true);
    const dense = loadModel(input), pruned = loadModel(output);
    for (const g of qg) expect(qRows(pruned, g)).toBe((nRep - k) * kv * d);
    // The k and v projections (the kv-group groups' other producers) are untouched.
    const base = await analyzeGroups(dense, { rewriteComputedShapes: true });
    const qOut = new Set(qg.map((g) => weightMember(g, /./, 'out')!.tensor));
    const kvOut = base.groups.filter((g) => g.unit === 'kv-group')
      .flatMap((g) => g.members.filter((m): m is WeightMember => m.kind === 'weight' && m.role === 'out' && !qOut.has(m.tensor)));
    expect(kvOut).toHaveLength(2 * layers);
    for (const m of kvOut) expect(pruned.graph.constant(m.tensor)!.dims).toEqual(dense.graph.constant(m.tensor)!.dims);
    await expectMaskedEqualsPruned(input, output, plan);
  });
});

test('`groups --gqa-query-heads` offers the query-head groups; without the flag, whole kv-groups', async () => {
  const model = path.join(SHARED_MODELS, 'llama_gqa_s.onnx');
  const on = JSON.parse((await runCliInProcess(['groups', model, '--gqa-query-heads', '--json'])).stdout) as GroupAnalysis;
  const off = JSON.parse((await runCliInProcess(['groups', model, '--json'])).stdout) as GroupAnalysis;
  expect(on.groups.filter((g) => g.id.endsWith('#query-heads')).length).toBe(2);
  expect(off.groups.some((g) => g.id.endsWith('#query-heads'))).toBe(false);
  expect(off.groups.filter((g) => g.unit === 'kv-group').length).toBe(2);
});

test('the config file key "gqa-query-heads" is the same as the flag', async () => {
  const model = path.join(SHARED_MODELS, 'llama_gqa_s.onnx');
  const cfg = path.join(tmp, 'gqa.json');
  fs.writeFileSync(cfg, JSON.stringify({ 'gqa-query-heads': true, ratio: 0.3 }));
  const a = await runCliInProcess([model, path.join(tmp, 'cfg.onnx'), '--config', cfg, '--quiet']);
  const b = await runCliInProcess([model, path.join(tmp, 'flag.onnx'), '--ratio', '0.3', '--gqa-query-heads', '--quiet']);
  const c = await runCliInProcess([model, path.join(tmp, 'plain.onnx'), '--ratio', '0.3', '--quiet']);
  expect([a.code, b.code, c.code]).toEqual([0, 0, 0]);
  expect(fs.readFileSync(path.join(tmp, 'cfg.onnx')).equals(fs.readFileSync(path.join(tmp, 'flag.onnx')))).toBe(true);
  expect(fs.readFileSync(path.join(tmp, 'cfg.onnx')).equals(fs.readFileSync(path.join(tmp, 'plain.onnx')))).toBe(false);
});
