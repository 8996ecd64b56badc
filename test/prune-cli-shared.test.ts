/**
 * The CLI with the real analysis on shared models: --json report (schema), --save-plan / --plan byte identity,
 * same seed → same bytes, and the pruned file running in onnxruntime with the dense model's I/O.
 */
import * as fs from 'fs';
import * as path from 'path';
import { analyzeGroups } from '../src/pipeline/stages';
import { loadModel } from '../src/ir/io';
import { checkSchema } from '../src/util/json-schema';
import { runModel, verificationFeeds } from '../src/verify/verify';
import reportSchema from '../schemas/report.schema.json';
import { SHARED_MODELS, mkTmp, rmTmp, runCliInProcess } from './helpers/cli';

let tmp: string;
beforeAll(() => { tmp = mkTmp('onnx-prune-cli-shared-'); });
afterAll(() => rmTmp(tmp));
const p = (f: string) => path.join(tmp, f);

describe.each(['mnist_lenet_bn', 'llama_s', 'gpt2_s'])('%s', (name) => {
  const model = path.join(SHARED_MODELS, `${name}.onnx`);

  test('--ratio 0.5 --json: valid report, verified, smaller; plan re-applied and same seed give identical bytes', async () => {
    const r1 = await runCliInProcess([model, p(`${name}-a.onnx`), '--ratio', '0.5', '--json', '--save-plan', p(`${name}.plan.json`), '--verify-batch', '1']);
    expect(r1.stderr).toBe('');
    expect(r1.code).toBe(0);
    const rep = JSON.parse(r1.stdout);
    expect(checkSchema(rep, reportSchema)).toBeUndefined();
    expect(rep.verify.passed).toBe(true);
    expect(rep.params.after).toBeLessThan(rep.params.before);
    expect(rep.flops.after).toBeLessThan(rep.flops.before);
    expect(rep.groups.pruned).toBeGreaterThan(0);
    expect(rep.layers.length).toBeGreaterThan(0);

    const r2 = await runCliInProcess([model, p(`${name}-b.onnx`), '--ratio', '0.5', '--quiet']);
    const r3 = await runCliInProcess([model, p(`${name}-c.onnx`), '--plan', p(`${name}.plan.json`), '--quiet']);
    expect([r2.code, r3.code]).toEqual([0, 0]);
    const a = fs.readFileSync(p(`${name}-a.onnx`));
    expect(a.equals(fs.readFileSync(p(`${name}-b.onnx`)))).toBe(true);
    expect(a.equals(fs.readFileSync(p(`${name}-c.onnx`)))).toBe(true);
    expect(a.length).toBeLessThan(fs.statSync(model).size);

    const dense = loadModel(model);
    const out = loadModel(p(`${name}-a.onnx`));
    const y = await runModel(out, verificationFeeds(out, { batch: 2, seq: 8 }));
    const yd = await runModel(dense, verificationFeeds(dense, { batch: 2, seq: 8 }));
    for (const o of dense.graph.outputs) expect(y[o.name!].dims).toEqual(yd[o.name!].dims);
  });
});

test('a plan naming a group the analysis declined is refused with its reason', async () => {
  const model = path.join(SHARED_MODELS, 'vit_s.onnx');
  // The analysis the command line runs (rewriting computed shapes): only the classifier's output is declined.
  const analysis = await analyzeGroups(loadModel(model), { rewriteComputedShapes: true });
  const declined = analysis.declined.find((d) => d.producers?.length)!;
  const r0 = await runCliInProcess([model, p('vit-a.onnx'), '--ratio', '0.3', '--save-plan', p('vit.plan.json'), '--quiet']);
  expect(r0.code).toBe(0);
  const plan = JSON.parse(fs.readFileSync(p('vit.plan.json'), 'utf8'));
  plan.groups[declined.producers![0]] = [0];
  fs.writeFileSync(p('vit-bad.plan.json'), JSON.stringify(plan));
  const r = await runCliInProcess([model, p('vit-bad.onnx'), '--plan', p('vit-bad.plan.json')]);
  expect(r.code).toBe(1);
  expect(r.stderr).toMatch(new RegExp(`was declined by the analysis \\(${declined.reason}\\)`));
  expect(fs.existsSync(p('vit-bad.onnx'))).toBe(false);
});

describe.each(['mnist_lenet_bn', 'llama_s'])('%s: bias compensation with data-aware importances', (name) => {
  const model = path.join(SHARED_MODELS, `${name}.onnx`);

  test('on by default for wanda and fluctuation, carried by the saved plan, re-applied by --plan, off with --no-compensate', async () => {
    const planFile = p(`${name}-wanda.plan.json`);
    const r1 = await runCliInProcess([model, p(`${name}-wanda.onnx`), '--ratio', '0.4', '--importance', 'wanda', '--json', '--quiet', '--save-plan', planFile]);
    expect(r1.code).toBe(0);
    const rep = JSON.parse(r1.stdout);
    expect(rep.verify.passed).toBe(true);
    expect(rep.compensation.consumers).toBeGreaterThan(0);
    const plan = JSON.parse(fs.readFileSync(planFile, 'utf8'));
    expect(plan.compensation.length).toBe(rep.compensation.consumers);
    for (const c of plan.compensation) expect(c.delta.some((d: number) => d !== 0)).toBe(true);

    // The plan alone (no calibration) reproduces the compensated model byte for byte.
    const r2 = await runCliInProcess([model, p(`${name}-replay.onnx`), '--plan', planFile, '--json', '--quiet']);
    expect(r2.code).toBe(0);
    expect(JSON.parse(r2.stdout).compensation).toMatchObject({ consumers: rep.compensation.consumers, from: 'plan' });
    const a = fs.readFileSync(p(`${name}-wanda.onnx`));
    expect(a.equals(fs.readFileSync(p(`${name}-replay.onnx`)))).toBe(true);

    // --no-compensate: same units removed, biases untouched (a different, still verified model).
    const r3 = await runCliInProcess([model, p(`${name}-nocomp.onnx`), '--plan', planFile, '--no-compensate', '--json', '--quiet']);
    const r4 = await runCliInProcess([model, p(`${name}-nocomp2.onnx`), '--ratio', '0.4', '--importance', 'wanda', '--no-compensate', '--json', '--quiet', '--save-plan', p(`${name}-nocomp.plan.json`)]);
    expect([r3.code, r4.code]).toEqual([0, 0]);
    for (const r of [r3, r4]) {
      const j = JSON.parse(r.stdout);
      expect(j.compensation).toBeUndefined();
      expect(j.verify.passed).toBe(true);
    }
    expect(a.equals(fs.readFileSync(p(`${name}-nocomp.onnx`)))).toBe(false);
    expect(fs.readFileSync(p(`${name}-nocomp.onnx`)).equals(fs.readFileSync(p(`${name}-nocomp2.onnx`)))).toBe(true);
    expect(JSON.parse(fs.readFileSync(p(`${name}-nocomp.plan.json`), 'utf8')).compensation).toBeUndefined();

    const r5 = await runCliInProcess([model, p(`${name}-flap.onnx`), '--ratio', '0.4', '--importance', 'fluctuation', '--json', '--quiet']);
    expect(r5.code).toBe(0);
    expect(JSON.parse(r5.stdout).compensation.consumers).toBeGreaterThan(0);
  });

  test('a plan whose compensation does not fit the model is refused, nothing written', async () => {
    const plan = JSON.parse(fs.readFileSync(p(`${name}-wanda.plan.json`), 'utf8'));
    const bad = [
      { ...plan, compensation: [{ ...plan.compensation[0], delta: plan.compensation[0].delta.slice(1) }] },
      { ...plan, compensation: [{ ...plan.compensation[0], node: 'no-such-node' }] },
      { ...plan, compensation: [{ node: plan.compensation[0].node, input: 1 }] },
    ];
    const expected = [/bias deltas for \d+ output channels/, /node 'no-such-node' has no compensable weight/, /not a valid plan/];
    for (let i = 0; i < bad.length; i++) {
      fs.writeFileSync(p(`${name}-bad${i}.plan.json`), JSON.stringify(bad[i]));
      const r = await runCliInProcess([model, p(`${name}-bad${i}.onnx`), '--plan', p(`${name}-bad${i}.plan.json`)]);
      expect(r.code).toBe(1);
      expect(r.stderr.trim().split('\n')).toHaveLength(1);
      expect(r.stderr).toMatch(expected[i]);
      expect(fs.existsSync(p(`${name}-bad${i}.onnx`))).toBe(false);
    }
  });
});
