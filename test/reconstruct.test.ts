/**
 * Least-squares reconstruction (--reconstruct ls) through the public API, on graphs built here whose hidden units
 * are strongly correlated (so that the kept ones can stand in for the removed ones):
 *  - ls repairs far more of the output than bias compensation, which repairs more than nothing, on held-out inputs;
 *  - the refit model is still proven: the pruned model equals the masked refit dense model (verification passes);
 *  - sequential and one-shot capture differ on a two-stage chain, and sequential is not worse;
 *  - --save-plan writes the sidecar; --plan replays byte for byte without calibration; a changed or missing
 *    sidecar is a one-line error; --reconstruct none ignores the plan's reconstruction;
 *  - a weight read by two consumers gets a private refit copy for each;
 *  - float16 weights stored behind a Cast are rewritten in float16;
 *  - the option rules: default ls with --calib or after obs, bias for wanda without, none for l2 without;
 *    contradictions refused.
 */
import * as fs from 'fs';
import * as path from 'path';
import { isUserError, loadModel, prune, type PruneRunOptions } from '../src/index';
import { DataType } from '../src/ir/dtype';
import type { Model } from '../src/ir/model';
import { formatNpy } from '../src/ort/npy';
import { createSession, modelBytes as bytesOf, ort } from '../src/ort/session';
import { attr, floatTensor, graph, modelBytes, node, seededRng, uniform, valueInfo } from './helpers/builder';
import { mkTmp, rmTmp } from './helpers/cli';
import { analyzeGroups } from '../src/pipeline/stages';
import { calibFromArrays } from '../src/ort/calib';
import { captureStats } from '../src/ort/capture';
import { activationRequests } from '../src/score/sites';
import { planCompensation } from '../src/score/compensate';
import { planReconstruction } from '../src/prune/reconstruct';
import { checkSchema, type JsonSchema } from '../src/util/json-schema';
import reportSchema from '../schemas/report.schema.json';

let tmp: string;
beforeAll(() => { tmp = mkTmp('onnx-prune-reconstruct-'); });
afterAll(() => rmTmp(tmp));

const IN = 8;
const HID = 16;
const OUT = 4;

/** Gaussian-ish samples [n, IN] whose features share 3 latent factors (correlated, like real activations). */
function inputs(n: number, seed: number): Float32Array {
  const r = seededRng(seed);
  const g = () => (r() + r() + r() - 1.5) * 2;
  const mix = uniform(seededRng(99), 3 * IN, 1);
  const x = new Float32Array(n * IN);
  for (let s = 0; s < n; s++) {
    const z = [g(), g(), g()];
    for (let i = 0; i < IN; i++) x[s * IN + i] = z[0] * mix[i] + z[1] * mix[IN + i] + z[2] * mix[2 * IN + i] + 0.1 * g();
  }
  return x;
}

/**
 * x[N, 8] → Gemm(16) → Relu → Gemm(16) → Relu → Gemm(4): two hidden groups, each read by the next Gemm.
 * `fp16`: the middle weight is stored as float16 behind a Cast. `shared`: the last layer's weight is also read
 * by a second output head (a shared weight).
 */
function mlp(opts: { fp16?: boolean; shared?: boolean } = {}): Uint8Array {
  const w1 = uniform(seededRng(1), HID * IN, 0.6);
  const w2 = uniform(seededRng(2), HID * HID, 0.4);
  const w3 = uniform(seededRng(3), OUT * HID, 0.5);
  const nodes = [
    node('Gemm', ['x', 'W1', 'B1'], ['h1'], [attr.int('transB', 1)]),
    node('Relu', ['h1'], ['r1']),
    ...(opts.fp16 ? [node('Cast', ['W2h'], ['W2'], [attr.int('to', DataType.FLOAT)])] : []),
    node('Gemm', ['r1', 'W2', 'B2'], ['h2'], [attr.int('transB', 1)]),
    node('Relu', ['h2'], ['r2']),
    node('Gemm', ['r2', 'W3'], ['y'], [attr.int('transB', 1)]),
    ...(opts.shared ? [node('Gemm', ['r2', 'W3'], ['y2'], [attr.int('transB', 1), attr.float('alpha', 0.5)])] : []),
  ];
  const inits = [
    floatTensor('W1', [HID, IN], w1), floatTensor('B1', [HID], uniform(seededRng(4), HID, 0.2)),
    floatTensor('B2', [HID], uniform(seededRng(5), HID, 0.2)), floatTensor('W3', [OUT, HID], w3),
  ];
  if (opts.fp16) {
    const h = new Uint16Array(w2.length);
    const { float32ToFloat16 } = require('../src/ir/dtype') as typeof import('../src/ir/dtype');
    for (let i = 0; i < w2.length; i++) h[i] = float32ToFloat16(w2[i]);
    inits.push({ ...floatTensor('W2h', [HID, HID], new Float32Array(0)), dataType: DataType.FLOAT16, rawData: new Uint8Array(h.buffer), floatData: [] } as never);
  } else {
    inits.push(floatTensor('W2', [HID, HID], w2));
  }
  const outputs = [valueInfo('y', DataType.FLOAT, ['N', OUT]), ...(opts.shared ? [valueInfo('y2', DataType.FLOAT, ['N', OUT])] : [])];
  return modelBytes(graph({ nodes, inputs: [valueInfo('x', DataType.FLOAT, ['N', IN])], outputs, initializers: inits }));
}

function writeModel(name: string, bytes: Uint8Array): string {
  const f = path.join(tmp, name);
  fs.writeFileSync(f, bytes);
  return f;
}

let calibFile: string;
beforeAll(() => {
  calibFile = path.join(tmp, 'calib.npy');
  fs.writeFileSync(calibFile, formatNpy({ dtype: DataType.FLOAT, dims: [256, IN], data: inputs(256, 7) }));
});

/** Mean squared difference of the first output between two models on 512 held-out inputs. */
async function heldOutError(a: Model, b: Model): Promise<number> {
  const x = new ort.Tensor('float32', inputs(512, 12345), [512, IN]);
  const run = async (m: Model) => {
    const s = await createSession(bytesOf(m));
    try {
      return (await s.run({ x }))[s.outputNames[0]].data as Float32Array;
    } finally {
      await s.release();
    }
  };
  const [ya, yb] = [await run(a), await run(b)];
  let e = 0;
  for (let i = 0; i < ya.length; i++) e += (ya[i] - yb[i]) ** 2;
  return e / ya.length;
}

const base = (extra: Partial<PruneRunOptions> = {}): PruneRunOptions => ({ ratio: 0.4, importance: 'l2', protectDefaults: false, quiet: true, ...extra });

test('ls repairs far more of the output than bias compensation, which repairs more than none (held-out inputs)', async () => {
  const file = writeModel('mlp.onnx', mlp());
  const dense = loadModel(file);
  const runs: Record<string, number> = {};
  for (const reconstruct of ['none', 'bias', 'ls'] as const) {
    const r = await prune(file, base({ reconstruct, calib: calibFile }));
    expect(r.report.verify?.passed).toBe(true);
    runs[reconstruct] = await heldOutError(dense, r.model);
  }
  expect(runs.bias).toBeLessThan(runs.none);
  expect(runs.ls).toBeLessThan(runs.bias * 0.5);
});

test('the report: consumers refit, stages, and the calibration error of zeroing vs refit', async () => {
  const file = writeModel('mlp-report.onnx', mlp());
  const r = await prune(file, base({ calib: calibFile }));
  const rec = r.report.reconstruction!;
  expect(rec.mode).toBe('ls');
  expect(rec.refit).toBe(2);
  expect(rec.stages).toBe(2);
  expect(rec.sequential).toBe(true);
  expect(rec.errorRefit!).toBeLessThan(rec.errorZeroed! * 0.5);
  expect(checkSchema(JSON.parse(JSON.stringify(r.report)), reportSchema as JsonSchema, 'report')).toBeUndefined();
  const one = await prune(file, base({ calib: calibFile, sequential: false }));
  expect(one.report.reconstruction!.stages).toBe(1);
});

test('sequential capture gives other weights than one-shot, and is not worse on held-out inputs', async () => {
  const file = writeModel('mlp-seq.onnx', mlp());
  const dense = loadModel(file);
  const seq = await prune(file, base({ calib: calibFile, ratio: 0.5 }));
  const one = await prune(file, base({ calib: calibFile, ratio: 0.5, sequential: false }));
  const eSeq = await heldOutError(dense, seq.model);
  const eOne = await heldOutError(dense, one.model);
  expect(eSeq).not.toBe(eOne);
  expect(eSeq).toBeLessThanOrEqual(eOne * 1.05);
});

test('--save-plan writes the refit weights beside the plan; --plan replays them byte for byte without calibration', async () => {
  const file = writeModel('mlp-plan.onnx', mlp());
  const planFile = path.join(tmp, 'p.json');
  const out1 = path.join(tmp, 'p1.onnx');
  const out2 = path.join(tmp, 'p2.onnx');
  await prune(file, base({ calib: calibFile, savePlan: planFile, output: out1 }));
  const side = path.join(tmp, 'p.refit.npz');
  expect(fs.existsSync(side)).toBe(true);
  const plan = JSON.parse(fs.readFileSync(planFile, 'utf8'));
  expect(plan.reconstruction.file).toBe('p.refit.npz');
  expect(plan.reconstruction.weights).toHaveLength(2);
  const replay = await prune(file, { plan: planFile, output: out2, quiet: true });
  expect(replay.report.verify?.passed).toBe(true);
  expect(fs.readFileSync(out1).equals(fs.readFileSync(out2))).toBe(true);
  // Without the reconstruction the replay differs (the refit is what the sidecar carries).
  const bare = await prune(file, { plan: planFile, reconstruct: 'none', quiet: true });
  expect(Buffer.from(bytesOf(bare.model)).equals(fs.readFileSync(out1))).toBe(false);
});

test('--plan with --reconstruct ls and --calib reconstructs from the data (a plan made without calibration)', async () => {
  const file = writeModel('mlp-plan-ls.onnx', mlp());
  const planFile = path.join(tmp, 'plain.json');
  const plain = await prune(file, base({ savePlan: planFile }));
  expect(plain.report.reconstruction).toBeUndefined();
  const replay = await prune(file, { plan: planFile, quiet: true });
  expect(replay.report.reconstruction).toBeUndefined();
  const ls = await prune(file, { plan: planFile, reconstruct: 'ls', calib: calibFile, quiet: true });
  expect(ls.report.reconstruction).toMatchObject({ mode: 'ls', from: 'calibration', refit: 2 });
  expect(ls.report.verify?.passed).toBe(true);
  const dense = loadModel(file);
  expect(await heldOutError(dense, ls.model)).toBeLessThan(await heldOutError(dense, replay.model));
});

test('a changed or missing sidecar is a one-line user error, and nothing is written', async () => {
  const file = writeModel('mlp-side.onnx', mlp());
  const planFile = path.join(tmp, 'q.json');
  await prune(file, base({ calib: calibFile, savePlan: planFile }));
  const side = path.join(tmp, 'q.refit.npz');
  const good = fs.readFileSync(side);
  const bad = Buffer.from(good);
  bad[bad.length - 100] ^= 0xff;
  fs.writeFileSync(side, bad);
  const out = path.join(tmp, 'q.onnx');
  const e1 = await prune(file, { plan: planFile, output: out, quiet: true }).catch((e) => e);
  expect(isUserError(e1)).toBe(true);
  expect(String(e1.message)).toMatch(/does not match the plan \(sha256/);
  fs.rmSync(side);
  const e2 = await prune(file, { plan: planFile, output: out, quiet: true }).catch((e) => e);
  expect(isUserError(e2)).toBe(true);
  expect(String(e2.message).split('\n')).toHaveLength(1);
  expect(fs.existsSync(out)).toBe(false);
});

test('a weight shared by two consumers (an exporter deduplicating equal weights) gets a private refit copy per consumer', async () => {
  const file = writeModel('mlp-shared.onnx', mlp({ shared: true }));
  const dense = loadModel(file);
  const r = await prune(file, base({ calib: calibFile }));
  expect(r.report.verify?.passed).toBe(true);
  const rec = r.report.reconstruction!;
  expect(rec.refit).toBe(3);
  expect(rec.skipped).toBe(0);
  const readers = r.model.graph.nodes.filter((n) => n.opType === 'Gemm' && (n.outputs[0] === 'y' || n.outputs[0] === 'y2')).map((n) => n.inputs[1]);
  expect(new Set(readers).size).toBe(2);
  const none = await prune(file, base({ calib: calibFile, reconstruct: 'none' }));
  expect(await heldOutError(dense, r.model)).toBeLessThan(await heldOutError(dense, none.model));
});

test('a float16 weight behind a Cast is refit and stored in float16', async () => {
  const file = writeModel('mlp-fp16.onnx', mlp({ fp16: true }));
  const dense = loadModel(file);
  const r = await prune(file, base({ calib: calibFile }));
  expect(r.report.verify?.passed).toBe(true);
  expect(r.report.reconstruction!.refit).toBe(2);
  const w = r.model.graph.initializers.get('W2h')!;
  expect(w.dtype).toBe(DataType.FLOAT16);
  const none = await prune(file, base({ calib: calibFile, reconstruct: 'none' }));
  const plain = none.model.graph.initializers.get('W2h')!;
  expect(plain.dims).toEqual(w.dims);
  expect(Buffer.from(plain.bytes()).equals(Buffer.from(w.bytes()))).toBe(false);
  expect(await heldOutError(dense, r.model)).toBeLessThan(await heldOutError(dense, none.model));
});

test('defaults: ls with --calib, bias after wanda without it, none after l2 without it; contradictions are refused', async () => {
  const file = writeModel('mlp-defaults.onnx', mlp());
  const withCalib = await prune(file, base({ calib: calibFile }));
  expect(withCalib.report.reconstruction!.mode).toBe('ls');
  const wanda = await prune(file, base({ importance: 'wanda' }));
  expect(wanda.report.reconstruction).toBeUndefined();
  expect(wanda.report.compensation).toBeDefined();
  // OBS ranks units by the error left after the refit: without --reconstruct it reconstructs by least squares.
  const obs = await prune(file, base({ importance: 'obs' }));
  expect(obs.report.reconstruction!.mode).toBe('ls');
  expect(obs.report.compensation).toBeUndefined();
  const l2 = await prune(file, base());
  expect(l2.report.reconstruction).toBeUndefined();
  expect(l2.report.compensation).toBeUndefined();
  // Bias compensation after a data-free importance captures its own statistics.
  const bias = await prune(file, base({ reconstruct: 'bias', calib: calibFile }));
  expect(bias.report.compensation!.consumers).toBeGreaterThan(0);
  for (const bad of [{ compensate: true, reconstruct: 'ls' }, { compensate: false, reconstruct: 'bias' }] as const) {
    const e = await prune(file, base(bad)).catch((x) => x);
    expect(isUserError(e)).toBe(true);
    expect(String(e.message)).toMatch(/contradicts/);
  }
});

test('a Gram over the memory cap is block-diagonal: only the bias is refit, by the removed inputs\' mean (FLAP), no D×D matrix', async () => {
  const file = writeModel('mlp-blockdiag.onnx', mlp());
  const model = loadModel(file);
  const analysis = await analyzeGroups(model);
  const removed: Record<string, number[]> = {};
  for (const g of analysis.groups) removed[g.id] = [0, 3, 5, 9];
  const calib = calibFromArrays(model, [{ dtype: DataType.FLOAT, dims: [256, IN], data: inputs(256, 7) }], 'test inputs');
  // A cap below one 16×16 float64 Gram (2 KiB): every consumer's Gram is block-diagonal.
  const plan = await planReconstruction(model, analysis, removed, calib, { sequential: false, maxGramBytes: 1024, quiet: true });
  expect(plan.report.refit).toBe(0);
  expect(plan.report.biasOnly).toHaveLength(2);
  expect(plan.weights).toEqual([]);
  // The same bias changes as bias compensation from the consumers' input means.
  const stats = await captureStats(model, calib, activationRequests(model.graph, analysis), { quiet: true });
  const { adjustments } = planCompensation(model, analysis, removed, stats);
  expect(adjustments).toHaveLength(2);
  const byNode = new Map(plan.biases.map((b) => [b.node, b.delta]));
  for (const a of adjustments) {
    const d = byNode.get(a.node)!;
    expect(d).toHaveLength(a.delta.length);
    d.forEach((v, o) => expect(v).toBeCloseTo(a.delta[o], 4));
  }
});

