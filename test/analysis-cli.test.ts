/**
 * `onnx-prune groups MODEL [--json]`, its JSON schema (schemas/groups.schema.json), the ranges encoding, and
 * the `analyze` pipeline pass.
 */
import * as fs from 'fs';
import * as path from 'path';
import { fromGroupsJson, fromRanges, toGroupsJson, toRanges, type GroupsJson } from '../src/analysis/groups-json';
import { Pipeline, newContext } from '../src/pipeline/pipeline';
import { registerBuiltinPasses } from '../passes';
registerBuiltinPasses();
import type { GroupAnalysis } from '../src/analysis/types';
import { SHARED, analyze, sharedModel } from './analysis-kit';
import { checkSchema, type JsonSchema } from '../src/util/json-schema';
const validate = (v: unknown, s: JsonSchema) => checkSchema(v, s);
import { runCliInProcess } from './helpers/cli';

const schema = JSON.parse(fs.readFileSync(path.resolve(__dirname, '../schemas/groups.schema.json'), 'utf8'));

test('ranges encode index lists exactly', () => {
  expect(toRanges([0, 1, 2, 5, 7, 8])).toEqual([[0, 3], [5, 6], [7, 9]]);
  expect(fromRanges(toRanges([3, 4, 10]))).toEqual([3, 4, 10]);
  expect(toRanges([])).toEqual([]);
});

test('JSON round trip restores the analysis', async () => {
  const a = await analyze(sharedModel('mnist_lenet_bn.onnx'));
  const back = fromGroupsJson(JSON.parse(JSON.stringify(toGroupsJson(a))) as GroupsJson);
  expect(back).toEqual(a);
});

test.each(['llama_gqa_s.onnx', 'densenet_s.onnx', 'shufflenet_v2_x0_5.onnx'])('groups %s --json: one JSON object valid against the schema', async (file) => {
  const r = await runCliInProcess(['groups', path.join(SHARED, file), '--json']);
  expect(r.code).toBe(0);
  expect(r.stdout.trim().split('\n')).toHaveLength(1);
  const j = JSON.parse(r.stdout) as GroupsJson;
  expect(validate(j, schema)).toBeUndefined();
  expect(j.groups.length).toBe(j.summary.groups);
  expect(j.summary.prunableFraction).toBeCloseTo(j.summary.prunableParams / j.summary.totalParams, 12);
  expect(j.declined.every((d) => d.reason)).toBe(true);
});

test('the schema rejects what it should (so the validation above means something)', async () => {
  const j = toGroupsJson(await analyze(sharedModel('mnist_resmlp.onnx')));
  expect(validate(j, schema)).toBeUndefined();
  const broken = JSON.parse(JSON.stringify(j));
  delete broken.summary.totalParams;
  expect(validate(broken, schema)).toMatch(/totalParams/);
  const badUnit = JSON.parse(JSON.stringify(j));
  badUnit.groups[0].unit = 'filter';
  expect(validate(badUnit, schema)).toMatch(/unit/);
  const badMember = JSON.parse(JSON.stringify(j));
  badMember.groups[0].members[0].role = 'weird';
  expect(validate(badMember, schema)).toMatch(/members/);
  const noReason = JSON.parse(JSON.stringify(j));
  noReason.declined[0].reason = '';
  expect(validate(noReason, schema)).toMatch(/reason/);
});

test('--rewrite-shapes output (replaceWith members) is valid too', async () => {
  const r = await runCliInProcess(['groups', path.join(SHARED, 'torch_transformer_encoder_s.onnx'), '--json', '--rewrite-shapes', '--dim', 'seq=6']);
  expect(r.code).toBe(0);
  const j = JSON.parse(r.stdout) as GroupsJson;
  expect(validate(j, schema)).toBeUndefined();
  expect(j.groups.some((g) => g.members.some((m) => m.kind === 'shape' && m.replaceWith === -1))).toBe(true);
});

test('text output lists groups, declined groups with reasons and the summary line', async () => {
  const r = await runCliInProcess(['groups', path.join(SHARED, 'llama_s.onnx')]);
  expect(r.code).toBe(0);
  expect(r.stdout).toMatch(/4 × head of 32/);
  expect(r.stdout).toMatch(/352 × neuron/);
  expect(r.stdout).toMatch(/128 × channel, .*, 5 norm statistics over kept — \/embed_tokens\/Gather \(\+4 coupled\)/);
  expect(r.stdout).toMatch(/reaches a graph output/);
  expect(r.stdout).toMatch(/^summary: prunable params \d+ \/ 491756 \(\d+\.\d%\), 5 groups, 1 declined$/m);
  const off = await runCliInProcess(['groups', path.join(SHARED, 'llama_s.onnx'), '--no-prune-hidden']);
  expect(off.stdout).toMatch(/reduction over the pruned axis/);
  expect(off.stdout).toMatch(/^summary: prunable params \d+ \/ 491756 \(\d+\.\d%\), 4 groups, 2 declined$/m);
});

test('bad input: one-line errors, exit 1', async () => {
  const missing = await runCliInProcess(['groups', '/nonexistent/model.onnx']);
  expect(missing.code).toBe(1);
  expect(missing.stderr.trim().split('\n')).toHaveLength(1);
  const dim = await runCliInProcess(['groups', path.join(SHARED, 'llama_s.onnx'), '--dim', 'seq=zero']);
  expect(dim.code).toBe(1);
  expect(dim.stderr).toMatch(/--dim 'seq=zero'/);
});

test('the analyze pass puts the analysis in ctx.artifacts.groups', async () => {
  const p = Pipeline.fromNames(['load', 'analyze'], {});
  const ctx = await p.run(newContext({ inputPath: path.join(SHARED, 'mnist_resmlp.onnx') }));
  const a = ctx.artifacts.groups as GroupAnalysis;
  expect(a.groups).toHaveLength(2);
  expect(ctx.report.groups).toMatchObject({ found: 2, declined: 1 });
});

test('groups --json accounts for every parameter: group members, declined producers\' weights, or `unaccounted` with readers; blocks listed', async () => {
  for (const name of ['llama_py', 'torch_transformer_encoder_s', 'mobilenet_v2_050']) {
    const r = await runCliInProcess(['groups', path.join(SHARED, `${name}.onnx`), '--json']);
    expect(r.code).toBe(0);
    const j = JSON.parse(r.stdout) as GroupsJson;
    expect(validate(j, schema)).toBeUndefined();
    const model = sharedModel(`${name}.onnx`);
    const covered = new Set<string>();
    for (const g of j.groups) for (const m of g.members) if (m.kind === 'weight') covered.add(m.tensor);
    for (const d of j.declined) {
      for (const p of d.producers ?? []) for (const i of model.graph.findNode(p)?.inputs ?? []) if (i && model.graph.constant(model.graph.resolveIdentity(i))) covered.add(model.graph.resolveIdentity(i));
    }
    for (const u of j.unaccounted ?? []) {
      expect(covered.has(u.tensor)).toBe(false);
      covered.add(u.tensor);
    }
    const params = model.graph.weights(true).filter((w) => w.tensor.size >= 2 && w.tensor.dtype === 1);
    expect(params.filter((w) => !covered.has(w.name)).map((w) => w.name)).toEqual([]);
  }
  const llama = JSON.parse((await runCliInProcess(['groups', path.join(SHARED, 'llama_py.onnx'), '--json'])).stdout) as GroupsJson;
  expect(llama.unaccounted!.map((u) => u.tensor).sort()).toEqual(['causal', 'cos', 'sin']);
  expect(llama.blocks!.map((b) => b.kind)).toEqual(['attention', 'mlp', 'attention', 'mlp', 'attention', 'mlp']);
});
