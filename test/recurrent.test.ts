/**
 * Recurrent layers (LSTM, GRU, RNN): the hidden units are a group (gate rows of W, R, B; R's columns; the
 * hidden_size attribute; Y / Y_h), built here the way torch exports them (X [T, B, I] → LSTM → Squeeze → MatMul):
 *  - the group is found, prunes physically (every gate block, R's columns, hidden_size) and verifies against the
 *    masked model, in onnxruntime;
 *  - the layer's input channels (a Gemm before it) are a group whose consumer is W's columns;
 *  - an initial state the caller passes (a graph input) declines the hidden group with that reason; a stored
 *    initial state is sliced with it; Y_h as a graph output declines it (the output's shape would change).
 */
import * as fs from 'fs';
import * as path from 'path';
import { loadModel, prune } from '../src/index';
import { DataType } from '../src/ir/dtype';
import { analyzeGroups } from '../src/pipeline/stages';
import { attr, floatTensor, graph, int64Tensor, modelBytes, node, seededRng, uniform, valueInfo } from './helpers/builder';
import { mkTmp, rmTmp } from './helpers/cli';

let tmp: string;
beforeAll(() => { tmp = mkTmp('onnx-prune-recurrent-'); });
afterAll(() => rmTmp(tmp));

const T = 5, I = 6, E = 12, H = 10, OUT = 4;

function rnnModel(op: 'LSTM' | 'GRU' | 'RNN', opts: { dirs?: 1 | 2; h0?: 'input' | 'stored'; yhOut?: boolean; peep?: boolean } = {}): Uint8Array {
  const gates = op === 'LSTM' ? 4 : op === 'GRU' ? 3 : 1;
  const dirs = opts.dirs ?? 1;
  const r = (s: number, n: number, k: number) => uniform(seededRng(s), n, k);
  // A stored initial state fixes the batch size (ORT checks its shape).
  const inputs = [valueInfo('x', DataType.FLOAT, [T, opts.h0 === 'stored' ? 1 : 'B', I])];
  const inits = [
    floatTensor('E', [E, I], r(1, E * I, 0.6)), floatTensor('Eb', [E], r(2, E, 0.1)),
    floatTensor('W', [dirs, gates * H, E], r(3, dirs * gates * H * E, 0.4)),
    floatTensor('R', [dirs, gates * H, H], r(4, dirs * gates * H * H, 0.4)),
    floatTensor('Bi', [dirs, 2 * gates * H], r(5, dirs * 2 * gates * H, 0.2)),
    floatTensor('F', [dirs * H, OUT], r(6, dirs * H * OUT, 0.5)),
  ];
  const lstmIn = ['e', 'W', 'R', 'Bi', '', ''];
  if (opts.h0 === 'input') { inputs.push(valueInfo('h0', DataType.FLOAT, [dirs, 'B', H])); lstmIn[5] = 'h0'; }
  if (opts.h0 === 'stored') { inits.push(floatTensor('h0', [dirs, 1, H], r(7, dirs * H, 0.3))); lstmIn[5] = 'h0'; }
  if (opts.peep) { lstmIn.push('', 'P'); inits.push(floatTensor('P', [dirs, 3 * H], r(8, dirs * 3 * H, 0.2))); }
  const nodes = [
    node('Gemm', ['x2', 'E', 'Eb'], ['e2'], [attr.int('transB', 1)]),
    node('Reshape', ['x', 'flat'], ['x2']),
    node('Relu', ['e2'], ['e2r']),
    node('Reshape', ['e2r', 'back'], ['e']),
    node(op, lstmIn, ['y', 'yh'], [attr.int('hidden_size', H), ...(dirs === 2 ? [attr.string('direction', 'bidirectional')] : [])]),
    node('Transpose', ['y'], ['yt'], [attr.ints('perm', [0, 2, 1, 3])]),
    node('Reshape', ['yt', 'seq'], ['ys']),
    node('MatMul', ['ys', 'F'], ['out']),
  ];
  inits.push(int64Tensor('flat', [2], [-1, I]), int64Tensor('back', [3], [T, -1, E]), int64Tensor('seq', [3], [T, -1, dirs * H]));
  const outputs = [valueInfo('out', DataType.FLOAT, [T, 'B', OUT]), ...(opts.yhOut ? [valueInfo('yh', DataType.FLOAT, [dirs, 'B', H])] : [])];
  return modelBytes(graph({ nodes, inputs, outputs, initializers: inits }));
}

function write(name: string, bytes: Uint8Array): string {
  const f = path.join(tmp, name);
  fs.writeFileSync(f, bytes);
  return f;
}

test.each([
  ['LSTM', 1, false], ['LSTM', 2, false], ['GRU', 1, false], ['GRU', 2, false], ['RNN', 1, false], ['LSTM', 1, true],
] as const)('%s (%d direction(s), peepholes %s): the hidden units are a group that prunes and verifies', async (op, dirs, peep) => {
  const f = write(`${op}${dirs}${peep}.onnx`, rnnModel(op, { dirs, peep }));
  const a = await analyzeGroups(loadModel(f));
  const hidden = a.groups.find((g) => g.members.some((m) => m.kind === 'attr' && m.attr === 'hidden_size'));
  expect(hidden?.size).toBe(H);
  // The Gemm before it: its output channels are read by W's columns.
  expect(a.groups.some((g) => g.size === E && g.members.some((m) => m.kind === 'weight' && m.tensor === 'W' && m.role === 'in'))).toBe(true);
  const r = await prune(f, { ratio: 0.3, quiet: true, protectDefaults: false });
  expect(r.report.verify?.passed).toBe(true);
  expect(r.report.verify?.weakened ?? []).toEqual([]);
  expect(r.report.fidelity!.cosine).toBeLessThan(0.9999);
  const n = r.model.graph.nodes.find((x) => x.opType === op)!;
  const kept = n.attrInt('hidden_size', 0);
  expect(kept).toBeLessThan(H);
  const gates = op === 'LSTM' ? 4 : op === 'GRU' ? 3 : 1;
  expect(r.model.graph.constant('R')!.dims).toEqual([dirs, gates * kept, kept]);
  expect(r.model.graph.constant('Bi')!.dims).toEqual([dirs, 2 * gates * kept]);
  if (peep) expect(r.model.graph.constant('P')!.dims).toEqual([dirs, 3 * kept]);
});

test('a caller-passed initial state or a state output declines the hidden group; a stored one is sliced', async () => {
  for (const [opts, reason] of [[{ h0: 'input' as const }, /recurrent state passed in by the caller/], [{ yhOut: true }, /reaches a graph output/]] as const) {
    const a = await analyzeGroups(loadModel(write(`decl${reason.source.length}.onnx`, rnnModel('LSTM', opts))));
    expect(a.groups.some((g) => g.members.some((m) => m.kind === 'attr' && m.attr === 'hidden_size'))).toBe(false);
    expect(a.declined.some((d) => reason.test(d.reason))).toBe(true);
  }
  const f = write('stored-h0.onnx', rnnModel('GRU', { h0: 'stored' }));
  const r = await prune(f, { ratio: 0.3, quiet: true, protectDefaults: false });
  expect(r.report.verify?.passed).toBe(true);
  const kept = r.model.graph.nodes.find((x) => x.opType === 'GRU')!.attrInt('hidden_size', 0);
  expect(kept).toBeLessThan(H);
  expect(r.model.graph.constant('h0')!.dims).toEqual([1, 1, kept]);
});

test('every importance method, and the search, prune an LSTM and verify', async () => {
  const { IMPORTANCE_METHODS } = await import('../src/index');
  const f = write('lstm-methods.onnx', rnnModel('LSTM', { dirs: 2 }));
  for (const m of IMPORTANCE_METHODS) {
    for (const allocation of ['uniform', 'search'] as const) {
      const r = await prune(f, { ratio: 0.3, importance: m.name as 'l2', allocation, quiet: true, protectDefaults: false, searchGenerations: 2, calibSamples: 8 });
      expect([m.name, allocation, r.report.verify?.passed]).toEqual([m.name, allocation, true]);
    }
  }
});

test('torch-style exports: Y squeezed, or only Y_h used; a layer without Y is not grouped', async () => {
  const r = (s: number, n: number, k: number) => uniform(seededRng(s), n, k);
  const build = (variant: 'squeeze' | 'yh'): Uint8Array => {
    const inits = [
      floatTensor('W', [1, 4 * H, I], r(3, 4 * H * I, 0.4)), floatTensor('R', [1, 4 * H, H], r(4, 4 * H * H, 0.4)),
      floatTensor('Bi', [1, 8 * H], r(5, 8 * H, 0.2)), floatTensor('F', [H, OUT], r(6, H * OUT, 0.5)), int64Tensor('ax', [1], [1]),
    ];
    const lstm = (outs: string[]) => node('LSTM', ['x', 'W', 'R', 'Bi'], outs, [attr.int('hidden_size', H)]);
    if (variant === 'squeeze') {
      // Y [T, 1, B, H] → Squeeze(1) → [T, B, H] → MatMul.
      const nodes = [lstm(['y']), node('Squeeze', ['y', 'ax'], ['ys']), node('MatMul', ['ys', 'F'], ['out'])];
      return modelBytes(graph({ nodes, inputs: [valueInfo('x', DataType.FLOAT, [T, 'B', I])], outputs: [valueInfo('out', DataType.FLOAT, [T, 'B', OUT])], initializers: inits }));
    }
    {
      // 'yh': only the last hidden state: Y_h [1, B, H] → Squeeze(0) → MatMul (Y produced, unused).
      inits.push(int64Tensor('ax0', [1], [0]));
      const nodes = [lstm(['y', 'yh']), node('Squeeze', ['yh', 'ax0'], ['hs']), node('MatMul', ['hs', 'F'], ['out'])];
      return modelBytes(graph({ nodes, inputs: [valueInfo('x', DataType.FLOAT, [T, 'B', I])], outputs: [valueInfo('out', DataType.FLOAT, ['B', OUT])], initializers: inits }));
    }
  };
  // A layer that omits Y (its first output) cannot be named by its members (they name a node by its first output).
  {
    const m = loadModel(build('yh'));
    m.graph.nodes.find((n) => n.opType === 'LSTM')!.outputs[0] = '';
    m.graph.invalidate();
    const a = await analyzeGroups(m);
    expect(a.groups.some((g) => g.members.some((x) => x.kind === 'attr' && x.attr === 'hidden_size'))).toBe(false);
  }
  // (layout = 1 is not tested: onnxruntime 1.30 refuses batch-first recurrent ops on CPU.)
  for (const variant of ['squeeze', 'yh'] as const) {
    const f = write(`torch-${variant}.onnx`, build(variant));
    const res = await prune(f, { ratio: 0.3, quiet: true, protectDefaults: false });
    expect([variant, res.report.verify?.passed]).toEqual([variant, true]);
    expect([variant, res.model.graph.nodes.find((n) => n.opType === 'LSTM')!.attrInt('hidden_size', 0) < H]).toEqual([variant, true]);
  }
});
