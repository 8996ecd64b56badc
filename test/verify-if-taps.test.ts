/**
 * Activation taps behind a main-graph If (src/runtime/inline-if.ts): onnxruntime cannot fetch a tensor computed
 * inside an If branch, so verification compares each run on masked/pruned copies with the branch that run takes
 * inlined, and taps the logits there. The model: a shared hidden layer in the main graph, then If(sr == 16000)
 * whose branches each end in Gemm → Sigmoid → ReduceMean with logits around −8 (an output of ~3e-4, like Silero
 * VAD's head). The branches hold their weights as a branch initializer and a Constant node, which inlining moves up.
 */
import { loadModel } from '../src/ir/io';
import type { Model } from '../src/ir/model';
import { applyPlan } from '../src/prune/apply';
import { cloneModel } from '../src/ir/clone';
import { conditionValue, inlineIfs } from '../src/verify/inline-if';
import { activationTaps, ifTapSites } from '../src/verify/tolerance';
import { runModel, verifyPruned } from '../src/verify/verify';
import { verificationFeeds, withInputValue } from '../src/ort/feeds';
import { DataType, attr, constantNode, floatTensor, graph, int64Tensor, modelBytes, node, seededRng, uniform, valueInfo } from './helpers/builder';
import { analysisOf, group, units, w } from './prune-fixtures';

const f = (name: string, dims: number[], seed: number, scale = 0.5) =>
  floatTensor(name, dims, uniform(seededRng(seed), dims.reduce((a, b) => a * b, 1), scale));

/** One branch: h = Gemm(x) (16 units), logit = Gemm(Relu(h)) (≈ −8), y = ReduceMean(Sigmoid(logit)) over the batch. */
function branch(p: string, seed: number) {
  return graph({
    name: p,
    nodes: [
      constantNode(`${p}_B1`, f('', [16], seed + 1)),
      constantNode(`${p}_B`, floatTensor('', [1], [-8])),
      node('Gemm', ['x', `${p}_W1`, `${p}_B1`], [`${p}_h`], [attr.int('transB', 1)], `${p}_fc1`),
      node('Relu', [`${p}_h`], [`${p}_r`]),
      node('Gemm', [`${p}_r`, `${p}_W`, `${p}_B`], [`${p}_logit`], [attr.int('transB', 1)], `${p}_fc`),
      node('Sigmoid', [`${p}_logit`], [`${p}_p`]),
      node('ReduceMean', [`${p}_p`], [`${p}_y`], [attr.ints('axes', [0]), attr.int('keepdims', 0)]),
    ],
    inputs: [],
    outputs: [valueInfo(`${p}_y`, DataType.FLOAT, [1])],
    initializers: [f(`${p}_W1`, [16, 8], seed + 2), f(`${p}_W`, [1, 16], seed)],
  });
}

function ifModel(): Model {
  const g = graph({
    nodes: [
      node('Equal', ['sr', 'rate16k'], ['is16k']),
      node('If', ['is16k'], ['y'], [attr.graph('then_branch', branch('t', 13)), attr.graph('else_branch', branch('e', 14))], 'select'),
    ],
    inputs: [valueInfo('x', DataType.FLOAT, ['batch', 8]), valueInfo('sr', DataType.INT64, [])],
    outputs: [valueInfo('y', DataType.FLOAT, [1])],
    initializers: [int64Tensor('rate16k', [], [16000])],
  });
  return loadModel(modelBytes(g, { opset: 17 }));
}

/** The hidden units of branch `p` (reversed consumer indices when `wrong`: a wrong group that still loads). */
const hidden = (p: string, wrong = false) => group(`${p}h`, 16, [
  w(`${p}_W1`, `${p}_h`, 1, 0, 'out', units(16)), w(`${p}_B1`, `${p}_h`, 2, 0, 'out', units(16)),
  w(`${p}_W`, `${p}_logit`, 1, 1, 'in', wrong ? units(16).reverse() : units(16)),
]);
const plan = { th: [0, 3, 7, 9], eh: [1, 2, 8] };

test('the If is found behind the output, and inlining a branch computes what the If computes', async () => {
  const model = ifModel();
  expect(activationTaps(model)).toEqual([]);
  expect(ifTapSites(model).map((n) => n.name)).toEqual(['select']);
  const feeds = verificationFeeds(model);
  for (const [sr, then] of [[16000, true], [1, false]] as const) {
    const fd = withInputValue(feeds, 'sr', sr);
    const run = await runModel(model, fd, ['is16k']);
    expect(conditionValue(model, 'is16k', run, fd)).toBe(then);
    const inlined = inlineIfs(model, [{ ifOutput: 'y', then }])!;
    expect(inlined.graph.nodes.some((n) => n.opType === 'If')).toBe(false);
    const p = then ? 't' : 'e';
    expect(inlined.graph.initializers.has(`${p}_W`)).toBe(true);
    expect(inlined.graph.producer(`${p}_B1`)?.opType).toBe('Constant');
    expect(activationTaps(inlined)).toEqual([{ output: 'y', input: `${p}_logit`, op: 'Sigmoid', gain: 0.25 }]);
    const got = await runModel(inlined, fd);
    expect(Array.from(got.y.data as Float32Array)).toEqual(Array.from(run.y.data as Float32Array));
    // The output is tiny: a Sigmoid of logits around −8.
    expect(Math.abs((got.y.data as Float32Array)[0])).toBeLessThan(2e-3);
  }
  expect(model.graph.nodes.some((n) => n.opType === 'If')).toBe(true); // the model itself is untouched
});

test('a branch name defined elsewhere in the model is not inlined', () => {
  const model = ifModel();
  // The Equal in the main graph now defines 't_logit' too: moving the branch up would define it twice.
  const eq = model.graph.nodes.find((n) => n.opType === 'Equal')!;
  eq.outputs[0] = 't_logit';
  model.graph.nodes.find((n) => n.opType === 'If')!.inputs[0] = 't_logit';
  model.graph.invalidate();
  expect(inlineIfs(model, [{ ifOutput: 'y', then: true }])).toBeUndefined();
  expect(inlineIfs(model, [{ ifOutput: 'y', then: false }])).toBeDefined();
});

test('a harmless prune passes with the logits of the taken branch tapped, in both branches', async () => {
  const model = ifModel();
  const analysis = analysisOf([hidden('t'), hidden('e')]);
  const pruned = cloneModel(model);
  applyPlan(pruned, analysis, plan);
  const r = await verifyPruned(model, pruned, analysis, plan);
  expect(r.verify.passed).toBe(true);
  // The random sr takes the else branch, the branch run (sr = 16000) the then branch.
  expect(r.verify.inputs.branches?.map((b) => [b.value, b.maxRelDiff! <= r.verify.rtol])).toEqual([[Number((r.feeds!.sr.data as BigInt64Array)[0]), true], [16000, true]]);
  expect(r.verify.activationInputs?.map((a) => [a.name, a.activationOf])).toEqual([['e_logit', 'Sigmoid → y']]);
  expect(r.verify.outputs[0].toleranceScale).toBeGreaterThan(r.verify.outputs[0].scale);
  // Given feeds run once, with the branch they select.
  const feeds = withInputValue(r.feeds!, 'sr', 16000);
  const t = await verifyPruned(model, pruned, analysis, plan, { feeds });
  expect(t.verify.passed).toBe(true);
  expect(t.verify.activationInputs?.map((a) => a.name)).toEqual(['t_logit']);
  expect(t.verify.outputs[0].scale).toBeLessThan(2e-3);
  expect(t.verify.activationInputs![0].scale).toBeGreaterThan(5);
  // The saved model keeps its If.
  expect(pruned.graph.nodes.filter((n) => n.opType === 'If').length).toBe(1);
});

test('a wrong group in the then branch is caught through its tapped logits, in the run that takes it', async () => {
  const model = ifModel();
  // The then-branch consumer's indices reversed: the wrong inputs of t_W are removed.
  const broken = analysisOf([hidden('t', true), hidden('e')]);
  const pruned = cloneModel(model);
  applyPlan(pruned, broken, plan);
  const r = await verifyPruned(model, pruned, broken, plan);
  expect(r.verify.passed).toBe(false);
  expect(r.verify.error).toMatch(/^with sr=16000: 't_logit' \(input of Sigmoid → y\) differs from the masked model/);
  expect(r.verify.error).not.toMatch(/e_logit|output 'y'/);
  const feeds = withInputValue(r.feeds!, 'sr', 16000);
  const t = await verifyPruned(model, pruned, broken, plan, { feeds });
  expect(t.verify.passed).toBe(false);
  // Judged at the logits' scale, the ~3e-4 output moves by less than the tolerance: only the logits show it.
  expect(t.verify.outputs[0].maxRelDiff).toBeLessThan(t.verify.rtol);
  expect(t.verify.activationInputs![0].maxRelDiff).toBeGreaterThan(100 * t.verify.rtol);
});

test('a tap that cannot be taken is listed in verify.weakened (tap-failed), and so are branch values not tried', async () => {
  // Two Ifs on the same condition whose then branches are copies (the same tensor names, valid in separate
  // subgraphs): inlining either then branch would define those names twice, so runs that take it are not tapped.
  const g = graph({
    nodes: [
      node('Equal', ['sr', 'rate16k'], ['is16k']),
      node('If', ['is16k'], ['y'], [attr.graph('then_branch', branch('t', 13)), attr.graph('else_branch', branch('e', 14))], 'select'),
      node('If', ['is16k'], ['y2'], [attr.graph('then_branch', branch('t', 13)), attr.graph('else_branch', branch('e2', 15))], 'select2'),
    ],
    inputs: [valueInfo('x', DataType.FLOAT, ['batch', 8]), valueInfo('sr', DataType.INT64, [])],
    outputs: [valueInfo('y', DataType.FLOAT, [1]), valueInfo('y2', DataType.FLOAT, [1])],
    initializers: [int64Tensor('rate16k', [], [16000])],
  });
  const model = loadModel(modelBytes(g, { opset: 17 }));
  const analysis = analysisOf([hidden('t'), hidden('e')]);
  const pruned = cloneModel(model);
  applyPlan(pruned, analysis, plan);
  const r = await verifyPruned(model, pruned, analysis, plan);
  expect(r.verify.passed).toBe(true);
  // The random run (else branches) was tapped; the run with sr = 16000 compared y and y2 at their own scale only.
  expect(r.verify.activationInputs?.map((a) => a.name)).toEqual(['e_logit', 'e2_logit']);
  const failed = (o: string) => ({
    kind: 'tap-failed', output: o,
    detail: expect.stringMatching(new RegExp(`^the activation inside the If producing '${o}' was not tapped: the If cannot be inlined .*; compared at its own scale only \\(with sr=16000\\)$`)),
  });
  expect(r.verify.weakened).toEqual([failed('y'), failed('y2')]);
  // Given inputs run once: the branch value they do not take is listed as not tried.
  const given = await verifyPruned(model, pruned, analysis, plan, { feeds: r.feeds });
  expect(given.verify.weakened).toEqual([{ kind: 'branch-skipped', detail: 'the inputs were given: sr = 16000 (other If branches) not tried' }]);
  // Both branches tapped (the model of the previous tests): nothing weakened.
  const fine = ifModel();
  const ok = await verifyPruned(fine, (() => { const p = cloneModel(fine); applyPlan(p, analysis, plan); return p; })(), analysis, plan);
  expect(ok.verify.weakened).toEqual([]);
  expect(ok.verify.rescaled?.map((x) => [x.output, x.input, x.op, x.toleranceScale > x.scale])).toEqual([['y', 'e_logit', 'Sigmoid', true]]);
});
