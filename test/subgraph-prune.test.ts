/**
 * Channel groups inside control-flow subgraphs (src/analysis/subgraphs.ts), on If models built in code:
 *  - each branch of an If on a sample-rate input `sr` holds its own Conv → Relu → Conv network with Constant-node
 *    weights (Silero VAD v5's layout): one group per branch, pruned in place, verified for both branches
 *    (verification feeds `sr` = 16000 besides its random value, see src/runtime/verify-inputs.ts branchSelectors);
 *  - main-graph initializers read only inside one branch (older exporters): the group prunes them, and apply
 *    moves them into the branch;
 *  - a main-graph weight read in both branches: both groups are declined with a reason.
 * A corrupted group in either branch fails verification, so each branch is really compared.
 */
import * as fs from 'fs';
import * as path from 'path';
import { analyzeGroups } from '../src/pipeline/stages';
import { DECLINE } from '../src/analysis/decline';
import type { Group, GroupAnalysis } from '../src/analysis/types';
import { loadModel } from '../src/ir/io';
import type { Model } from '../src/ir/model';
import { prune } from '../src/pipeline/prune';
import { applyPlan } from '../src/prune/apply';
import { cloneModel } from '../src/ir/clone';
import { maskPlan } from '../src/prune/mask';
import { runModel, verifyPruned } from '../src/verify/verify';
import { verificationFeeds, withInputValue } from '../src/ort/feeds';
import { DataType, attr, constantNode, floatTensor, graph, int64Tensor, modelBytes, node, onnx, seededRng, uniform, valueInfo } from './helpers/builder';
import { mkTmp, rmTmp, runCliInProcess } from './helpers/cli';
import { countParams } from './helpers/params';

let tmp: string;
beforeAll(() => { tmp = mkTmp('onnx-prune-subgraphs-'); });
afterAll(() => rmTmp(tmp));

const F = DataType.FLOAT;
let seed = 700;
const rnd = (name: string, dims: number[]) => floatTensor(name, dims, uniform(seededRng(seed++), dims.reduce((a, b) => a * b, 1), 0.5));
const pads = [attr.ints('pads', [1, 1])];

/** Conv(k=3) → Relu → Conv(k=3) in a branch, x [1, 4, 16] → [1, 3, 16], hidden channels `hidden`. */
function chain(p: string, hidden: number, weights: { w1: string; b1: string; w2: string; b2: string }): onnx.NodeProto[] {
  return [
    node('Conv', ['x', weights.w1, weights.b1], [`${p}_h`], pads, `${p}_conv1`),
    node('Relu', [`${p}_h`], [`${p}_r`]),
    node('Conv', [`${p}_r`, weights.w2, weights.b2], [`${p}_y`], pads, `${p}_conv2`),
  ];
}

/** Branch `p` with Constant-node weights. */
function constBranch(p: string, hidden: number): onnx.GraphProto {
  const names = { w1: `${p}_w1`, b1: `${p}_b1`, w2: `${p}_w2`, b2: `${p}_b2` };
  return graph({
    name: p,
    nodes: [
      constantNode(names.w1, rnd('', [hidden, 4, 3])), constantNode(names.b1, rnd('', [hidden])),
      constantNode(names.w2, rnd('', [3, hidden, 3])), constantNode(names.b2, rnd('', [3])),
      ...chain(p, hidden, names),
    ],
    inputs: [],
    outputs: [valueInfo(`${p}_y`, F, [1, 3, 16])],
  });
}

/** y = If(sr == 16000, then, else); x [1, 4, 16], sr an int64 scalar; main-graph initializers `inits`. */
function ifModel(thenBranch: onnx.GraphProto, elseBranch: onnx.GraphProto, inits: onnx.TensorProto[] = []): Uint8Array {
  return modelBytes(graph({
    nodes: [
      node('Equal', ['sr', 'rate16k'], ['is16k']),
      node('If', ['is16k'], ['y'], [attr.graph('then_branch', thenBranch), attr.graph('else_branch', elseBranch)], 'select'),
    ],
    inputs: [valueInfo('x', F, [1, 4, 16]), valueInfo('sr', DataType.INT64, [])],
    outputs: [valueInfo('y', F, [1, 3, 16])],
    initializers: [int64Tensor('rate16k', [], [16000]), ...inits],
  }), { opset: 17 });
}

function write(name: string, bytes: Uint8Array): string {
  const f = path.join(tmp, `${name}.onnx`);
  fs.writeFileSync(f, bytes);
  return f;
}

interface CliReport {
  params: { before: number; after: number };
  groups: { pruned: number };
  verify: { passed: boolean; maxRelDiff: number; rtol: number; inputs: { branches?: { input: string; value: number; maxRelDiff?: number; skipped?: string }[] } };
}

async function pruneCli(file: string, out: string, ratio = '0.5'): Promise<CliReport> {
  const r = await runCliInProcess([file, out, '--ratio', ratio, '--no-protect-defaults', '--json']);
  expect(r.stderr).toBe('');
  expect(r.code).toBe(0);
  return JSON.parse(r.stdout) as CliReport;
}

/** The pruned file runs for both branches and keeps the output shape. */
async function runsForBothRates(file: string): Promise<void> {
  const m = loadModel(file);
  const feeds = verificationFeeds(m, { batch: 1, seq: 8 });
  for (const sr of [16000, 8000]) {
    const y = await runModel(m, withInputValue(feeds, 'sr', sr));
    expect(y.y.dims).toEqual([1, 3, 16]);
  }
}

/** The group with its consumers' indices reversed: a wrong group that still loads. */
function corrupt(g: Group): Group {
  return { ...g, members: g.members.map((m) => (m.kind === 'weight' && m.role === 'in' ? { ...m, indices: [...m.indices].reverse() } : m)) };
}

async function verifyCorrupted(dense: Model, analysis: GroupAnalysis, id: string): Promise<string | undefined> {
  const bad = analysis.groups.find((g) => g.id === id)!;
  const broken: GroupAnalysis = { ...analysis, groups: analysis.groups.map((g) => (g === bad ? corrupt(g) : g)) };
  const plan = { [id]: [0, 1] };
  const pruned = cloneModel(dense);
  applyPlan(pruned, broken, plan);
  const r = await verifyPruned(dense, pruned, broken, plan, { batch: 1, seq: 8 });
  return r.verify.passed ? undefined : r.verify.error;
}

describe('Constant-node weights inside both If branches (Silero VAD v5 layout)', () => {
  const bytes = () => ifModel(constBranch('t', 8), constBranch('e', 6));

  test('--allocation search: no group can be fed to the search model, so the uniform allocation is used, with a warning', async () => {
    const file = write('const-branches-search', bytes());
    const warnings: string[] = [];
    const r = await prune(file, { ratio: 0.5, protectDefaults: false, allocation: 'search', quiet: true, onWarning: (w) => warnings.push(w) });
    const u = await prune(file, { ratio: 0.5, protectDefaults: false, quiet: true });
    expect(r.report.search).toBeUndefined();
    expect(warnings.some((w) => /no group can be searched .*control-flow subgraph.*uniform allocation is used/.test(w))).toBe(true);
    expect(r.plan!.groups).toEqual(u.plan!.groups);
    expect(r.report.verify?.passed).toBe(true);
  });

  test('one group per branch, ids = tensor names', async () => {
    const a = await analyzeGroups(loadModel(bytes()));
    expect(a.groups.map((g) => [g.id, g.size])).toEqual([['t_h', 8], ['e_h', 6]]);
    const t = a.groups[0];
    expect(t.members.filter((m) => m.kind === 'weight').map((m) => m.kind === 'weight' && `${m.tensor}:${m.role}`))
      .toEqual(['t_w1:out', 't_b1:out', 't_w2:in']);
    // The branch outputs are pinned like graph outputs.
    expect(a.declined.map((d) => [d.producers?.[0], d.reason])).toEqual([['t_y', DECLINE.graphOutput], ['e_y', DECLINE.graphOutput]]);
  });

  test('prunes both branches, verified for sr = 16000 and the random sr; the output runs for both', async () => {
    const file = write('const-branches', bytes());
    const out = path.join(tmp, 'const-branches.pruned.onnx');
    const rep = await pruneCli(file, out);
    expect(rep.groups.pruned).toBe(2);
    expect(rep.verify.passed).toBe(true);
    expect(rep.verify.maxRelDiff).toBeLessThanOrEqual(rep.verify.rtol);
    const branches = rep.verify.inputs.branches ?? [];
    expect(branches.map((b) => b.value === 16000)).toEqual([false, true]);
    for (const b of branches) expect(b.maxRelDiff).toBeLessThanOrEqual(rep.verify.rtol);
    const before = countParams(fs.readFileSync(file)).total, after = countParams(fs.readFileSync(out)).total;
    expect(rep.params).toMatchObject({ before, after });
    expect(after).toBeLessThan(before);
    // The hidden width of each branch shrank in place (Constant nodes of the branch).
    const pruned = loadModel(out);
    const [thenG, elseG] = pruned.graph.nodes.find((n) => n.opType === 'If')!.subgraphs;
    expect(thenG.constant('t_w1')!.dims[0]).toBeLessThan(8);
    expect(elseG.constant('e_w1')!.dims[0]).toBeLessThan(6);
    expect(thenG.constant('t_w2')!.dims[1]).toBe(thenG.constant('t_w1')!.dims[0]);
    await runsForBothRates(out);
  });

  test('a wrong group in either branch fails verification (each branch is compared)', async () => {
    const dense = loadModel(bytes());
    const a = await analyzeGroups(dense);
    expect(await verifyCorrupted(dense, a, 't_h')).toMatch(/with sr=16000: output 'y' differs from the masked model/);
    const e = await verifyCorrupted(dense, a, 'e_h');
    expect(e).toMatch(/output 'y' differs from the masked model/);
    expect(e).not.toMatch(/with sr=16000/);
  });

  test('wanda: branch groups fall back to magnitude (activations inside If cannot be captured)', async () => {
    const file = write('const-wanda', bytes());
    const r = await runCliInProcess([file, path.join(tmp, 'const-wanda.pruned.onnx'), '--ratio', '0.5', '--no-protect-defaults', '--importance', 'wanda', '--json']);
    expect(r.code).toBe(0);
    const rep = JSON.parse(r.stdout) as CliReport & { importance: { fallbacks: number } };
    expect(rep.importance.fallbacks).toBe(2);
    expect(rep.verify.passed).toBe(true);
  });
});

describe('main-graph initializers read inside one branch only (older exporters)', () => {
  const inits = () => [rnd('W1', [8, 4, 3]), rnd('B1', [8]), rnd('W2', [3, 8, 3]), rnd('B2', [3])];
  const bytes = () => {
    const thenBranch = graph({ name: 'then', nodes: chain('t', 8, { w1: 'W1', b1: 'B1', w2: 'W2', b2: 'B2' }), inputs: [], outputs: [valueInfo('t_y', F, [1, 3, 16])] });
    return ifModel(thenBranch, constBranch('e', 6), inits());
  };

  test('the group prunes them; apply moves them into the branch', async () => {
    const dense = loadModel(bytes());
    const a = await analyzeGroups(dense);
    const g = a.groups.find((x) => x.id === 't_h')!;
    expect(g.members.filter((m) => m.kind === 'weight').map((m) => m.kind === 'weight' && m.tensor)).toEqual(['W1', 'B1', 'W2']);
    const pruned = cloneModel(dense);
    applyPlan(pruned, a, { t_h: [1, 4, 6] });
    const thenG = pruned.graph.nodes.find((n) => n.opType === 'If')!.subgraphs[0];
    expect(pruned.graph.initializers.has('W1')).toBe(false);
    expect(thenG.initializers.get('W1')!.dims).toEqual([5, 4, 3]);
    expect(thenG.initializers.get('W2')!.dims).toEqual([3, 5, 3]);
    // B2 was no member: it stays in the main graph.
    expect(pruned.graph.initializers.has('B2')).toBe(true);
    // The masked model keeps the function of the dense one on the else branch and matches the pruned one on both.
    const masked = cloneModel(dense);
    maskPlan(masked, a, { t_h: [1, 4, 6] });
    const feeds = verificationFeeds(dense, { batch: 1, seq: 8 });
    for (const sr of [16000, 8000]) {
      const f = withInputValue(feeds, 'sr', sr);
      const [ym, yp] = [await runModel(masked, f), await runModel(pruned, f)];
      const dm = ym.y.data as Float32Array, dp = yp.y.data as Float32Array;
      const scale = Math.max(...Array.from(dm, Math.abs));
      expect(Math.max(...Array.from(dm, (v, i) => Math.abs(v - dp[i])))).toBeLessThanOrEqual(1e-5 * scale);
    }
  });

  test('the CLI prunes and verifies both branches', async () => {
    const file = write('outer-inits', bytes());
    const out = path.join(tmp, 'outer-inits.pruned.onnx');
    const rep = await pruneCli(file, out);
    expect(rep.groups.pruned).toBe(2);
    expect(rep.verify.passed).toBe(true);
    expect(rep.verify.inputs.branches?.map((b) => b.value)).toContain(16000);
    expect(countParams(fs.readFileSync(out)).total).toBeLessThan(countParams(fs.readFileSync(file)).total);
    await runsForBothRates(out);
  });
});

describe('a main-graph weight read in both branches', () => {
  test('both branch groups are declined, naming the shared weight', async () => {
    const branch = (p: string) => graph({
      name: p,
      nodes: [constantNode(`${p}_w1`, rnd('', [8, 4, 3])), constantNode(`${p}_b1`, rnd('', [8])), ...chain(p, 8, { w1: `${p}_w1`, b1: `${p}_b1`, w2: 'W2', b2: 'B2' })],
      inputs: [],
      outputs: [valueInfo(`${p}_y`, F, [1, 3, 16])],
    });
    const dense = loadModel(ifModel(branch('t'), branch('e'), [rnd('W2', [3, 8, 3]), rnd('B2', [3])]));
    const a = await analyzeGroups(dense);
    expect(a.groups).toEqual([]);
    const shared = a.declined.filter((d) => d.reason === DECLINE.outerScope);
    expect(shared.map((d) => [d.producers, d.tensor])).toEqual([[['t_h'], 'W2'], [['e_h'], 'W2']]);
    // The CLI leaves the model unchanged, with the reason in the note.
    const file = write('shared-w2', modelBytes(dense.toProto().graph!, { opset: 17 }));
    const r = await runCliInProcess([file, path.join(tmp, 'shared-w2.pruned.onnx'), '--ratio', '0.3', '--no-protect-defaults', '--json']);
    expect(r.code).toBe(0);
    expect(JSON.parse(r.stdout).groups.note).toMatch(/weight read outside its control-flow subgraph/);
  });
});

describe('tensor names must be unique across scopes', () => {
  test('a branch that redefines a main-graph name: no subgraph groups, one declined entry naming it', async () => {
    const thenBranch = constBranch('t', 8);
    // The branch's first Constant node now defines 'rate16k', which the main graph defines too.
    thenBranch.node[0].output[0] = 'rate16k';
    thenBranch.node.find((n) => n.opType === 'Conv')!.input[1] = 'rate16k';
    const a = await analyzeGroups(loadModel(ifModel(thenBranch, constBranch('e', 6))));
    expect(a.groups).toEqual([]);
    expect(a.declined).toEqual([{ reason: DECLINE.scopeNames, reasons: [DECLINE.scopeNames], tensor: 'rate16k' }]);
  });
});

describe('a Loop body', () => {
  test('a Conv → Relu → Conv chain inside the body is a group; the carried value stays whole', async () => {
    // y = Loop(2 iterations) { v ← Conv(Relu(Conv(v))) } with v [1, 4, 16] carried; the body reads its weights
    // from Constant nodes of its own.
    const body = graph({
      name: 'body',
      nodes: [
        node('Identity', ['cond_in'], ['cond_out']),
        constantNode('l_w1', rnd('', [6, 4, 3])), constantNode('l_b1', rnd('', [6])),
        constantNode('l_w2', rnd('', [4, 6, 3])), constantNode('l_b2', rnd('', [4])),
        node('Conv', ['v_in', 'l_w1', 'l_b1'], ['l_h'], pads, 'l_conv1'),
        node('Relu', ['l_h'], ['l_r']),
        node('Conv', ['l_r', 'l_w2', 'l_b2'], ['v_out'], pads, 'l_conv2'),
      ],
      inputs: [valueInfo('iter', DataType.INT64, []), valueInfo('cond_in', DataType.BOOL, []), valueInfo('v_in', F, [1, 4, 16])],
      outputs: [valueInfo('cond_out', DataType.BOOL, []), valueInfo('v_out', F, [1, 4, 16])],
    });
    const bytes = modelBytes(graph({
      nodes: [node('Loop', ['trips', '', 'x'], ['y'], [attr.graph('body', body)], 'loop')],
      inputs: [valueInfo('x', F, [1, 4, 16])],
      outputs: [valueInfo('y', F, [1, 4, 16])],
      initializers: [int64Tensor('trips', [], [2])],
    }), { opset: 17 });
    const a = await analyzeGroups(loadModel(bytes));
    expect(a.groups.map((g) => [g.id, g.size])).toEqual([['l_h', 6]]);
    const file = write('loop', bytes);
    const out = path.join(tmp, 'loop.pruned.onnx');
    const rep = await pruneCli(file, out);
    expect(rep.groups.pruned).toBe(1);
    expect(rep.verify.passed).toBe(true);
    expect(countParams(fs.readFileSync(out)).total).toBeLessThan(countParams(fs.readFileSync(file)).total);
  });
});
