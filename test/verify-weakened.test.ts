/**
 * verify.weakened (src/verify/weakened.ts): checks that compared nothing are listed — an empty output, a constant
 * one (a zero-initialized head), elements infinite in both models, a verification where every output is empty or
 * constant — and printed as warnings by the verify pass. Tiny models built in code; the float16 tolerance and the
 * If taps have their own tests (fp16-models, verify-if-taps), the selections too (verify-selection).
 */
import * as fs from 'fs';
import * as path from 'path';
import { loadModel } from '../src/ir/io';
import { applyPlan } from '../src/prune/apply';
import { cloneModel } from '../src/ir/clone';
import { checkSchema } from '../src/util/json-schema';
import { verifyPruned } from '../src/verify/verify';
import { weakenedWarnings } from '../src/verify/weakened';
import reportSchema from '../schemas/report.schema.json';
import { mkTmp, rmTmp, runCliInProcess } from './helpers/cli';
import { DataType, attr, floatTensor, graph, int64Tensor, modelBytes, node, seededRng, uniform, valueInfo } from './helpers/builder';
import { analysisOf, group, units, w } from './prune-fixtures';

const f = (name: string, dims: number[], seed: number, scale = 0.5) =>
  floatTensor(name, dims, uniform(seededRng(seed), dims.reduce((a, b) => a * b, 1), scale));

/**
 * x[batch, 8] → Gemm(16) → Relu → a zero-initialized head Gemm(W2 = 0, bias 0.5) → y (every element 0.5).
 * `more`: also e = y[:, 0:0] (empty) and z = Log(Relu(Gemm(r))) (−Infinity where the Relu is 0, in both models).
 */
function zeroHead(more: boolean) {
  const g = graph({
    nodes: [
      node('Gemm', ['x', 'W1', 'B1'], ['h'], [attr.int('transB', 1)], 'fc1'),
      node('Relu', ['h'], ['r']),
      node('Gemm', ['r', 'W2', 'B2'], ['y'], [attr.int('transB', 1)], 'head'),
      ...(more ? [
        node('Slice', ['y', 'zero', 'zero', 'one'], ['e']),
        node('Gemm', ['r', 'W3'], ['z0'], [attr.int('transB', 1)], 'side'),
        node('Relu', ['z0'], ['z1']),
        node('Log', ['z1'], ['z']),
      ] : []),
    ],
    inputs: [valueInfo('x', DataType.FLOAT, ['batch', 8])],
    outputs: [
      valueInfo('y', DataType.FLOAT, ['batch', 4]),
      ...(more ? [valueInfo('e', DataType.FLOAT, ['batch', 0]), valueInfo('z', DataType.FLOAT, ['batch', 6])] : []),
    ],
    initializers: [
      f('W1', [16, 8], 61), f('B1', [16], 62), floatTensor('W2', [4, 16], new Array(64).fill(0)), floatTensor('B2', [4], [0.5, 0.5, 0.5, 0.5]),
      ...(more ? [f('W3', [6, 16], 63), int64Tensor('zero', [1], [0]), int64Tensor('one', [1], [1])] : []),
    ],
  });
  const bytes = modelBytes(g, { opset: 17 });
  const members = [w('W1', 'h', 1, 0, 'out', units(16)), w('B1', 'h', 2, 0, 'out', units(16)), w('W2', 'y', 1, 1, 'in', units(16))];
  if (more) members.push(w('W3', 'z0', 1, 1, 'in', units(16)));
  return { bytes, model: loadModel(bytes), analysis: analysisOf([group('fc1', 16, members, 'neuron')]) };
}

const plan = { fc1: [2, 5, 11] };

test('empty, constant and partly infinite outputs are listed; verification still passes or fails as before', async () => {
  const { model, analysis } = zeroHead(true);
  const pruned = cloneModel(model);
  applyPlan(pruned, analysis, plan);
  const r = await verifyPruned(model, pruned, analysis, plan);
  expect(r.verify.passed).toBe(true);
  const byKind = Object.fromEntries(r.verify.weakened.map((e) => [e.kind, e]));
  expect(Object.keys(byKind).sort()).toEqual(['constant-output', 'empty-output', 'non-finite']);
  expect(byKind['constant-output']).toEqual({ kind: 'constant-output', output: 'y', detail: 'all 8 elements equal (0.5) in the masked model: a wrong prune before it may not show' });
  expect(byKind['empty-output']).toEqual({ kind: 'empty-output', output: 'e', detail: 'no elements (dims [2, 0]): nothing compared' });
  const inf = r.verify.outputs.find((o) => o.name === 'z')!;
  expect(inf.nonFinite).toBeGreaterThan(0);
  expect(byKind['non-finite']).toEqual({ kind: 'non-finite', output: 'z', detail: `${inf.nonFinite} element(s) NaN or infinite in the dense, masked and pruned models alike were not compared` });

  // A wrong prune is still caught through z (the output that varies).
  const bad = cloneModel(model);
  applyPlan(bad, analysis, { fc1: [2, 5, 12] });
  const rb = await verifyPruned(model, bad, analysis, plan);
  expect(rb.verify.passed).toBe(false);
  expect(rb.verify.error).toMatch(/output 'z'/);
});

test('every output constant: the verification says it is vacuous (and a wrong prune passes, as it must then)', async () => {
  const { model, analysis } = zeroHead(false);
  const bad = cloneModel(model);
  applyPlan(bad, analysis, { fc1: [2, 5, 12] }); // not the plan verified: undetectable behind a zero head
  const r = await verifyPruned(model, bad, analysis, plan);
  expect(r.verify.passed).toBe(true);
  expect(r.verify.weakened.map((e) => e.kind)).toEqual(['constant-output', 'vacuous']);
  expect(r.verify.weakened[1].detail).toBe("every output ('y') is empty or constant on the verification inputs; nothing that varies was compared (try another --seed or --verify-seq)");
  const lines = weakenedWarnings(r.verify.weakened);
  expect(lines[0]).toMatch(/^verification of the outputs is vacuous: every output \('y'\)/);
  expect(lines[1]).toBe("verification weakened (constant-output 'y'): all 8 elements equal (0.5) in the masked model: a wrong prune before it may not show");
});

test('warning lines: the vacuous entry first, at most `max` lines', () => {
  const many = Array.from({ length: 12 }, (_, i) => ({ kind: 'empty-output' as const, output: `o${i}`, detail: 'no elements' }));
  const lines = weakenedWarnings([...many, { kind: 'vacuous', detail: 'every output is empty' }], 8);
  expect(lines).toHaveLength(8);
  expect(lines[0]).toBe('verification of the outputs is vacuous: every output is empty');
  expect(lines[7]).toBe('verification weakened in 6 more checks (see verify.weakened in the report)');
});

describe('the verify pass prints them as warnings', () => {
  let tmp: string;
  beforeAll(() => { tmp = mkTmp('onnx-prune-weakened-'); });
  afterAll(() => rmTmp(tmp));
  const PASSES = ['--passes', 'load,analyze,importance-l2,plan,prune,verify,save'];

  test('stderr without --json, report.warnings and verify.weakened with it (valid against the schema)', async () => {
    const input = path.join(tmp, 'zero-head.onnx');
    fs.writeFileSync(input, zeroHead(false).bytes);
    const plain = await runCliInProcess([input, path.join(tmp, 'out.onnx'), '--ratio', '0.5', ...PASSES]);
    expect(plain.code).toBe(0);
    expect(plain.stderr).toMatch(/^onnx-prune: warning: verification of the outputs is vacuous: every output \('y'\) is empty or constant .*\nonnx-prune: warning: verification weakened \(constant-output 'y'\): all \d+ elements equal \(0\.5\)/);
    const r = await runCliInProcess([input, path.join(tmp, 'out2.onnx'), '--ratio', '0.5', '--json', ...PASSES]);
    expect(r.code).toBe(0);
    expect(r.stderr).toBe('');
    const rep = JSON.parse(r.stdout);
    expect(checkSchema(rep, reportSchema)).toBeUndefined();
    expect(rep.verify.weakened.map((e: { kind: string }) => e.kind)).toEqual(['constant-output', 'vacuous']);
    expect(rep.warnings).toEqual(weakenedWarnings(rep.verify.weakened));
  });
});
