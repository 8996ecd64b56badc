/**
 * The whole prune path with the real group analysis on every shared model at ratios 0.3 and 0.5:
 * analyze → importance-l2 → plan → prune → verify. The pruned model must load and run in onnxruntime, match the
 * masked dense model within tolerance (1e-4 of each output's scale), and have fewer parameters unless no group
 * could lose a unit (which the report must explain). Small inputs (batch 1, seq 8) keep it fast.
 * A failure lists the groups that break equivalence with their members (the op path), for the analysis.
 */
import * as fs from 'fs';
import * as path from 'path';
import { loadModel } from '../src/ir/io';
import { saveModel } from '../src/ir/io';
import { Pipeline, newContext } from '../src/pipeline/pipeline';
import { registerBuiltinPasses } from '../passes';
registerBuiltinPasses();
import { analyzeGroups } from '../src/pipeline/stages';
import type { Group, GroupAnalysis } from '../src/analysis/types';
import { applyPlan } from '../src/prune/apply';
import { cloneModel } from '../src/ir/clone';
import { findFailingGroups, runModel, verificationFeeds, verifyPruned, type GroupFailure, type VerifyReport } from '../src/verify/verify';
import { mkTmp, rmTmp, sharedModels } from './helpers/cli';

const MODELS = sharedModels().map((f) => path.basename(f));
let tmp: string;
beforeAll(() => { tmp = mkTmp('onnx-prune-shared-'); });
afterAll(() => rmTmp(tmp));

interface Report {
  params: { before: number; after: number };
  groups: { total: number; pruned: number; declined: number; note?: string };
  verify: VerifyReport & { failingGroups?: GroupFailure[] };
}

async function prune(file: string, ratio: number) {
  const options = { ratio, seed: 0, verifyBatch: 1, verifySeq: 8, keepInvalid: true };
  const ctx = newContext({ inputPath: file, options });
  await Pipeline.fromNames(['load', 'analyze', 'importance-l2', 'plan', 'prune', 'verify'], options).run(ctx);
  return { ctx, report: ctx.report as unknown as Report };
}

/**
 * Prunes at 0.3 with `--reconstruct ls` (random calibration) and checks that verification passes — its reference is
 * the masked *refit* dense model, so the physical pruning of refit weights is exact — that every consumer found was
 * refit, and that the refit repaired part of the calibration error of plain pruning.
 */
async function checkReconstructed(file: string, name: string, sequential: boolean): Promise<void> {
  const options = { ratio: 0.3, seed: 0, verifyBatch: 1, verifySeq: 8, keepInvalid: true, reconstruct: 'ls' as const, sequential, calibSamples: 4, quiet: true };
  const ctx = newContext({ inputPath: file, options });
  await Pipeline.fromNames(['load', 'analyze', 'importance-l2', 'plan', 'reconstruct', 'prune', 'verify'], options).run(ctx);
  const report = ctx.report as unknown as Report;
  const failing = (report.verify.failingGroups ?? []).map((f) => `${name} ${f.group}: ${f.error}\n    ${f.members.join('\n    ')}`);
  expect({ error: report.verify.error, failing }).toEqual({ error: undefined, failing: [] });
  expect(report.verify.passed).toBe(true);
  const rec = ctx.report.reconstruction;
  if (report.groups.pruned > 0) {
    expect(rec).toBeDefined();
    expect({ skipped: rec!.skippedReasons, refit: rec!.refit! > 0, sequential: rec!.sequential }).toEqual({ skipped: {}, refit: true, sequential });
    expect(rec!.errorRefit!).toBeLessThan(rec!.errorZeroed!);
  }
}

// Sequential reconstruction (a calibration pass per stage, from the model with earlier stages pruned and refit) on
// a CNN with residual stages, a transformer LM, a residual MLP and a ConvNeXt.
describe.each(['resnet50_b.onnx', 'llama_py.onnx', 'mnist_resmlp.onnx', 'convnext_s.onnx'].filter((m) => MODELS.includes(m)))('%s sequential', (name) => {
  test('ratio 0.3, sequential least-squares reconstruction: proven, every consumer refit', async () => {
    await checkReconstructed(path.join(path.dirname(sharedModels()[0]), name), name, true);
  }, 300_000);
});

describe.each(MODELS)('%s', (name) => {
  const file = path.join(path.dirname(sharedModels()[0]), name);

  test('ratio 0.3 with least-squares reconstruction from random calibration: the refit model is proven too', async () => {
    // One-shot (one calibration pass) on every model to keep the suite's time; sequential on a few below.
    await checkReconstructed(file, name, false);
  }, 300_000);

  test.each([0.3, 0.5])('ratio %f: runs in ORT, equals the masked model, fewer params', async (ratio) => {
    const { ctx, report } = await prune(file, ratio);
    const failing = (report.verify.failingGroups ?? []).map((f) => `${name} ${f.group}: ${f.error}\n    ${f.members.join('\n    ')}`);
    expect({ error: report.verify.error, failing }).toEqual({ error: undefined, failing: [] });
    expect(report.verify.passed).toBe(true);
    if (report.groups.pruned > 0) expect(report.params.after).toBeLessThan(report.params.before);
    else expect(report.groups.note).toMatch(/nothing to prune/);
    if (ratio === 0.5) {
      // Saved to disk and loaded back, it still runs with the original input/output names and ranks.
      const out = path.join(tmp, `${name}`);
      saveModel(ctx.model!, out);
      const reloaded = loadModel(out);
      const y = await runModel(reloaded, verificationFeeds(reloaded, { batch: 1, seq: 8 }));
      const dense = loadModel(file);
      for (const o of dense.graph.outputs) expect(y[o.name ?? '']?.dims.length).toBe(o.type?.tensorType?.shape?.dim?.length);
      fs.unlinkSync(out);
    }
  });
});

describe('verification is not vacuous on real models', () => {
  /** The group with its consumers' indices reversed: the pruned model still loads but reads the wrong channels. */
  function corrupt(g: Group): Group {
    return { ...g, members: g.members.map((m) => (m.kind === 'weight' && m.role === 'in' ? { ...m, indices: [...m.indices].reverse() } : m)) };
  }

  test.each(['resnet50_b.onnx', 'llama_s.onnx'])('%s: a corrupted group fails and is the one named', async (name) => {
    const dense = loadModel(path.join(path.dirname(sharedModels()[0]), name));
    const analysis = await analyzeGroups(dense);
    const [bad, good] = analysis.groups.filter((g) => g.members.some((m) => m.kind === 'weight' && m.role === 'in'));
    const broken: GroupAnalysis = { ...analysis, groups: analysis.groups.map((g) => (g === bad ? corrupt(g) : g)) };
    const plan = { [bad.id]: [0], [good.id]: [0] };
    const pruned = cloneModel(dense);
    applyPlan(pruned, broken, plan);
    const r = await verifyPruned(dense, pruned, broken, plan, { batch: 1, seq: 8 });
    expect(r.verify.passed).toBe(false);
    expect(r.verify.maxRelDiff).toBeGreaterThan(1e-3);
    const failing = await findFailingGroups(dense, broken, plan, { batch: 1, seq: 8 });
    expect(failing.map((f) => f.group)).toEqual([bad.id]);
    // The same plan with the true groups passes.
    const ok = cloneModel(dense);
    applyPlan(ok, analysis, plan);
    expect((await verifyPruned(dense, ok, analysis, plan, { batch: 1, seq: 8 })).verify.passed).toBe(true);
  });
});
