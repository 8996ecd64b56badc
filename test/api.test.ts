/**
 * The public API (src/index.ts) in process: prune() is the CLI's pipeline, the stage functions compose to the
 * same model, a programmatic pipeline behaves like the CLI (bias compensation follows the scoring pass, not an
 * option string), the input model is never modified, and errors carry the run's report.
 */
import * as fs from 'fs';
import * as path from 'path';
import {
  Pipeline, allocate, analyzeGroups, applyPlan, cloneModel, encodeModelProto, isUserError, isVerificationError, loadModel,
  newContext, prune, scoreGroups, verifyPruned, type Pass, type RunError,
} from '../src/index';
import { mkTmp, rmTmp, runCliInProcess, SHARED_MODELS } from './helpers/cli';

const ROOT = path.resolve(__dirname, '..');
const TINY = path.join(ROOT, 'models', 'tiny_cnn.onnx');
const LENET = path.join(SHARED_MODELS, 'mnist_lenet_bn.onnx');
const CALIB = { calib: path.join(SHARED_MODELS, 'mnist_calib_x.bin'), calibShape: [512, 1, 28, 28] };
let tmp: string;
beforeAll(() => { tmp = mkTmp('onnx-prune-api-'); });
afterAll(() => rmTmp(tmp));

const bytes = (f: string) => fs.readFileSync(f);

test('prune(path, options) writes what the CLI writes, and returns the model, report and plan', async () => {
  const out = path.join(tmp, 'api.onnx');
  const r = await prune(TINY, { ratio: 0.5, allocation: 'global', output: out });
  const cli = await runCliInProcess([TINY, path.join(tmp, 'cli.onnx'), '--ratio', '0.5', '--allocation', 'global', '--quiet']);
  expect(cli.code).toBe(0);
  expect(bytes(out).equals(bytes(path.join(tmp, 'cli.onnx')))).toBe(true);
  expect(r.report.verify?.passed).toBe(true);
  expect(r.report.params!.removedRatio).toBeCloseTo((r.report.params!.before - r.report.params!.after) / r.report.params!.before, 12);
  expect(Object.keys(r.plan!.groups).length).toBeGreaterThan(0);
  expect(Buffer.from(encodeModelProto(r.model.toProto())).equals(bytes(out))).toBe(true);
});

test('prune(model) leaves the given model as it was and writes nothing without output', async () => {
  const dense = loadModel(TINY);
  const before = Buffer.from(encodeModelProto(dense.toProto()));
  const r = await prune(dense, { ratio: 0.5, importance: 'l1' });
  expect(Buffer.from(encodeModelProto(dense.toProto())).equals(before)).toBe(true);
  expect(r.report.output).toBeUndefined();
  expect(r.report.params!.after).toBeLessThan(r.report.params!.before);
});

test('the stage functions compose to the model prune() makes', async () => {
  const dense = loadModel(TINY);
  const analysis = await analyzeGroups(dense);
  const { scores, info } = await scoreGroups(dense, analysis, { method: 'l2' });
  const { removed } = allocate(analysis, scores, { ratio: 0.5, model: dense, normalized: info.normalized });
  const pruned = cloneModel(dense);
  applyPlan(pruned, analysis, removed);
  const { verify } = await verifyPruned(dense, pruned, analysis, removed);
  expect(verify.passed).toBe(true);
  const r = await prune(TINY, { ratio: 0.5 });
  expect(r.plan!.groups).toEqual(removed);
  expect(Buffer.from(encodeModelProto(pruned.toProto())).equals(Buffer.from(encodeModelProto(r.model.toProto())))).toBe(true);
});

test('a programmatic pipeline with importance-wanda compensates like the CLI, without options.importance', async () => {
  // Without calibration data the default reconstruction follows the scoring pass: bias compensation after wanda.
  const options = { ratio: 0.3, quiet: true };
  const ctx = newContext({ inputPath: LENET, options });
  await Pipeline.fromNames(['load', 'analyze', 'importance-wanda', 'allocate', 'plan', 'compensate', 'prune', 'verify'], options).run(ctx);
  expect(ctx.artifacts.scores?.info.method).toBe('wanda');
  expect(ctx.report.compensation?.from).toBe('calibration');
  expect(ctx.report.compensation!.consumers).toBeGreaterThan(0);
  expect(ctx.report.verify?.passed).toBe(true);
  const out = path.join(tmp, 'wanda-cli.onnx');
  const cli = await runCliInProcess([LENET, out, '--ratio', '0.3', '--importance', 'wanda', '--quiet']);
  expect(cli.code).toBe(0);
  expect(Buffer.from(encodeModelProto(ctx.model!.toProto())).equals(bytes(out))).toBe(true);
});

test('extraPasses run before save and see typed artifacts', async () => {
  const seen: string[] = [];
  const probe: Pass = {
    name: 'probe',
    reads: ['artifacts.plan'],
    writes: [],
    run(ctx) {
      seen.push(`${ctx.artifacts.scores?.info.method} ${Object.keys(ctx.artifacts.plan!.groups).length} ${ctx.options.maxRatio}`);
      ctx.warn('probe ran');
    },
  };
  const warnings: string[] = [];
  const r = await prune(TINY, { ratio: 0.5, extraPasses: [probe], onWarning: (m) => warnings.push(m), output: path.join(tmp, 'probe.onnx') });
  expect(seen).toEqual(['l2 1 0.9']);
  expect(warnings).toEqual(['probe ran']);
  expect(r.report.warnings).toEqual(['probe ran']);
});

test('errors: bad options are UserErrors naming the option; a failed verification carries the run report', async () => {
  await expect(prune(TINY, { ratio: 1.5 })).rejects.toThrow(/^--ratio: must be < 1, got 1\.5$/);
  await expect(prune(TINY, { ratio: 0.5, maxRatio: 0 })).rejects.toThrow(/--max-ratio: must be > 0/);
  await expect(prune(TINY, { importance: 'magic' as never })).rejects.toThrow(/--importance: must be one of "l1"/);
  await expect(prune(TINY, { ratio: 0.5, compensate: true, reconstruct: 'ls' })).rejects.toThrow(/^--compensate \(bias compensation\) contradicts --reconstruct ls$/);
  // A tolerance far below float32 rounding (this prune differs by ~2e-7 of the scale) fails verification.
  const e = await prune(TINY, { ratio: 0.5, tolerance: 1e-30, output: path.join(tmp, 'never.onnx') }).catch((x: unknown) => x);
  expect(isVerificationError(e)).toBe(true);
  expect((e as RunError).runReport?.verify?.passed).toBe(false);
  expect(fs.existsSync(path.join(tmp, 'never.onnx'))).toBe(false);
});

test('--importance bn on a model without unfolded BatchNormalization warns on stderr that it scored by L2', async () => {
  const r = await runCliInProcess([TINY, path.join(tmp, 'bn.onnx'), '--ratio', '0.3', '--importance', 'bn']);
  expect(r.code).toBe(0);
  expect(r.stderr).toMatch(/^onnx-prune: warning: importance bn: no group was scored by bn: no unfolded BatchNormalization: scored by L2 magnitude\n$/);
  const l2 = await runCliInProcess([TINY, path.join(tmp, 'l2.onnx'), '--ratio', '0.3', '--importance', 'l2']);
  expect(l2.stderr).toBe('');
  expect(bytes(path.join(tmp, 'bn.onnx')).equals(bytes(path.join(tmp, 'l2.onnx')))).toBe(true);
});
