/**
 * The prune path end to end through the CLI (in process) on tiny models with hand-written groups: a stand-in
 * `analyze` pass hands the fixture's groups to the real importance-l2 → plan → prune → verify → save passes.
 * (test/prune-shared.test.ts runs the same path with the real analysis on the shared models.)
 */
import * as fs from 'fs';
import * as path from 'path';
import type { GroupAnalysis } from '../src/analysis/types';
import { loadModel } from '../src/ir/io';
import { registerPass } from '../src/pipeline/registry';
import { registerBuiltinPasses } from '../passes';
registerBuiltinPasses();
import { checkSchema } from '../src/util/json-schema';
import { runModel, verificationFeeds } from '../src/verify/verify';
import reportSchema from '../schemas/report.schema.json';
import { lines, mkTmp, rmTmp, runCliInProcess } from './helpers/cli';
import { convReluConv, layerNormCoupled, sharedInitializer, type Fixture } from './prune-fixtures';

const fixtures: Record<string, Fixture> = {
  'conv.onnx': convReluConv(),
  'shared.onnx': sharedInitializer(),
  'ln.onnx': layerNormCoupled(),
};
let tmp: string;
const p = (f: string) => path.join(tmp, f);

beforeAll(() => {
  tmp = mkTmp('onnx-prune-cli-');
  for (const [f, fx] of Object.entries(fixtures)) fs.writeFileSync(p(f), fx.bytes);
  // Stand-in for the analysis: the fixture's hand-written groups for the model file being pruned.
  registerPass('analyze', () => ({
    name: 'analyze',
    reads: ['model'],
    writes: ['artifacts.groups'],
    run(ctx) {
      ctx.artifacts.groups = fixtures[path.basename(ctx.inputPath ?? '')].analysis satisfies GroupAnalysis;
    },
  }));
});
afterAll(() => rmTmp(tmp));

const bytesOf = (f: string) => fs.readFileSync(p(f));
// The issue-4 pipeline: a uniform ratio per group over L2 scores (no budgeted allocation, which would protect
// these one-group fixtures' first conv by default and read --ratio as a fraction of all params).
const UNIFORM = ['--passes', 'load,analyze,importance-l2,plan,prune,verify,save'];
const UNIFORM_NO_VERIFY = ['--passes', 'load,analyze,importance-l2,plan,prune,save'];

describe('onnx-prune IN OUT --ratio R', () => {
  test('--json report has the documented keys and the output is smaller and runs', async () => {
    const r = await runCliInProcess([p('conv.onnx'), p('conv-50.onnx'), '--ratio', '0.5', '--json', ...UNIFORM]);
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    const rep = JSON.parse(r.stdout);
    expect(checkSchema(rep, reportSchema)).toBeUndefined();
    expect(rep.params.before).toBeGreaterThan(rep.params.after);
    expect(rep.groups).toMatchObject({ total: 1, pruned: 1, declined: 0, unitsRemoved: 4 });
    expect(rep.verify.passed).toBe(true);
    expect(rep.verify.maxAbsDiff).toBeLessThanOrEqual(1e-4 * rep.verify.outputs[0].scale);
    expect(rep.fidelity.cosine).toBeGreaterThan(0);
    expect(rep.fidelity.cosine).toBeLessThan(1);
    expect(typeof rep.fidelity.top1).toBe('number');
    expect('before' in rep.flops && 'after' in rep.flops).toBe(true);
    const out = loadModel(p('conv-50.onnx'));
    expect(out.graph.constant('W1')!.dims).toEqual([4, 3, 3, 3]);
    const y = await runModel(out, verificationFeeds(out, { batch: 1 }));
    expect(y.y.dims).toEqual([1, 4, 8, 8]);
  });

  test('--verbose --json: pass timings on stderr, only the report on stdout', async () => {
    const r = await runCliInProcess([p('conv.onnx'), p('conv-v.onnx'), '--ratio', '0.5', '--json', '--verbose', ...UNIFORM]);
    expect(r.code).toBe(0);
    expect(JSON.parse(r.stdout).verify.passed).toBe(true);
    expect(lines(r.stderr)).toEqual(expect.arrayContaining([expect.stringMatching(/^pass analyze: \d+ ms$/), expect.stringMatching(/^pass verify: \d+ ms$/)]));
  });

  test('without --json: one summary line on stdout, nothing on stderr', async () => {
    const r = await runCliInProcess([p('conv.onnx'), p('conv-30.onnx'), '--ratio', '0.3', ...UNIFORM]);
    expect(r.code).toBe(0);
    expect(r.stderr).toBe('');
    expect(lines(r.stdout)).toHaveLength(1);
    expect(r.stdout).toMatch(/^pruned 1\/1 groups \(2 units; 0 declined\); params .* verified/);
  });

  test('--save-plan then --plan gives a byte-identical model; the same seed twice too', async () => {
    expect((await runCliInProcess([p('shared.onnx'), p('s1.onnx'), '--ratio', '0.4', '--seed', '3', '--save-plan', p('plan.json'), ...UNIFORM])).code).toBe(0);
    expect((await runCliInProcess([p('shared.onnx'), p('s2.onnx'), '--ratio', '0.4', '--seed', '3', ...UNIFORM])).code).toBe(0);
    const r = await runCliInProcess([p('shared.onnx'), p('s3.onnx'), '--plan', p('plan.json'), '--json']);
    expect(r.code).toBe(0);
    expect(JSON.parse(r.stdout).prune.plan).toBe(p('plan.json'));
    expect(bytesOf('s1.onnx').equals(bytesOf('s2.onnx'))).toBe(true);
    expect(bytesOf('s1.onnx').equals(bytesOf('s3.onnx'))).toBe(true);
    const plan = JSON.parse(fs.readFileSync(p('plan.json'), 'utf8'));
    expect(Object.keys(plan.groups)).toEqual(['branch1', 'branch2']);
    expect(plan.groups.branch1).toHaveLength(3);
  });

  test('a hand-edited plan pruning the shared weight differently gives a private copy and verifies', async () => {
    const plan = JSON.parse(fs.readFileSync(p('plan.json'), 'utf8'));
    plan.groups = { branch1: [0, 1], branch2: [6] };
    fs.writeFileSync(p('plan2.json'), JSON.stringify(plan));
    const r = await runCliInProcess([p('shared.onnx'), p('s4.onnx'), '--plan', p('plan2.json'), '--json']);
    expect(r.code).toBe(0);
    const rep = JSON.parse(r.stdout);
    expect(rep.prune.copies).toHaveLength(1);
    expect(rep.verify.passed).toBe(true);
  });

  test.each([
    ['unknown group', { nope: [0] }, /'nope' is not a group of this model/],
    ['index out of range', { branch1: [8] }, /unit index 8 is out of range/],
    ['all units', { branch1: [0, 1, 2, 3, 4, 5, 6, 7] }, /at least one must stay/],
  ])('a bad plan (%s): exit 1, one line, no output', async (_n, groups, re) => {
    const plan = JSON.parse(fs.readFileSync(p('plan.json'), 'utf8'));
    plan.groups = groups;
    fs.writeFileSync(p('bad-plan.json'), JSON.stringify(plan));
    const r = await runCliInProcess([p('shared.onnx'), p('bad.onnx'), '--plan', p('bad-plan.json')]);
    expect(r.code).toBe(1);
    expect(lines(r.stderr)).toHaveLength(1);
    expect(r.stderr).toMatch(re);
    expect(fs.existsSync(p('bad.onnx'))).toBe(false);
  });

  test('a plan for another model is refused', async () => {
    const r = await runCliInProcess([p('conv.onnx'), p('bad.onnx'), '--plan', p('plan.json')]);
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/made for a different model/);
    expect(fs.existsSync(p('bad.onnx'))).toBe(false);
  });

  test('--plan with --ratio, bad --seed / --tolerance are user errors', async () => {
    for (const args of [['--plan', p('plan.json'), '--ratio', '0.3'], ['--ratio', '0.3', '--seed', '1.5'], ['--ratio', '0.3', '--tolerance', '0']]) {
      const r = await runCliInProcess([p('shared.onnx'), p('bad.onnx'), ...args]);
      expect(r.code).toBe(1);
      expect(lines(r.stderr)).toHaveLength(1);
    }
  });
});

describe('verification failure', () => {
  test('a group that breaks equivalence: exit ≠ 0, no output, the group is named', async () => {
    const r = await runCliInProcess([p('ln.onnx'), p('ln-out.onnx'), '--ratio', '0.5', '--json', ...UNIFORM]);
    expect(r.code).not.toBe(0);
    expect(r.code).not.toBe(1);
    expect(lines(r.stderr)).toHaveLength(1);
    expect(r.stderr).toMatch(/verification failed: output 'y' differs from the masked model.*failing groups: through_ln/);
    expect(fs.existsSync(p('ln-out.onnx'))).toBe(false);
    const rep = JSON.parse(r.stdout);
    expect(rep.verify.passed).toBe(false);
    expect(rep.verify.failingGroups[0].group).toBe('through_ln');
    expect(checkSchema(rep, reportSchema)).toBeUndefined();
  });

  test('--keep-invalid writes the output but still exits non-zero', async () => {
    const r = await runCliInProcess([p('ln.onnx'), p('ln-kept.onnx'), '--ratio', '0.5', '--keep-invalid', ...UNIFORM]);
    expect(r.code).not.toBe(0);
    expect(fs.existsSync(p('ln-kept.onnx'))).toBe(true);
    expect(r.stderr).toMatch(/verification failed/);
  });

  test('--no-verify skips the check (and writes the output)', async () => {
    const r = await runCliInProcess([p('ln.onnx'), p('ln-nov.onnx'), '--ratio', '0.5', '--no-verify', '--json', ...UNIFORM_NO_VERIFY]);
    expect(r.code).toBe(0);
    expect(JSON.parse(r.stdout).verify).toBeUndefined();
    expect(fs.existsSync(p('ln-nov.onnx'))).toBe(true);
  });
});
