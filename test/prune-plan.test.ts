/**
 * Plans (validation, JSON, files), uniform selection, L2 importance, byte-level tensor edits and accounting.
 */
import * as fs from 'fs';
import * as path from 'path';
import { DataType, float32ToFloat16 } from '../src/ir/dtype';
import { loadModel } from '../src/ir/io';
import { compareCost, measureModel } from '../src/prune/accounting';
import { applyPlan } from '../src/prune/apply';
import { checkSchema } from '../src/util/json-schema';
import { checkPlanGroups, fingerprintModel, makePlan, planToJson, readPlanFile, validatePlan, writePlanFile } from '../src/prune/plan';
import { selectUniform, unitsToRemove } from '../src/prune/select';
import { removeAlongAxis, subtractAt, zeroAlongAxis } from '../src/prune/tensor-edit';
import { compareOutputs } from '../src/verify/compare';
import { ort } from '../src/ort/session';
import { verificationFeeds } from '../src/verify/verify';
import planSchema from '../schemas/plan.schema.json';
import { mkTmp, rmTmp } from './helpers/cli';
import { convReluConv, gemmMlp, group, sharedInitializer, units, w } from './prune-fixtures';

let tmp: string;
beforeAll(() => { tmp = mkTmp('onnx-prune-plan-'); });
afterAll(() => rmTmp(tmp));

describe('plan validation', () => {
  const fx = convReluConv();
  const analysis = { ...fx.analysis, declined: [{ reason: 'touches a graph output', tensor: 'y', node: 'y', producers: ['y'] }] };

  test.each([
    ['unknown group', { nope: [1] }, /'nope' is not a group of this model/],
    ['declined group', { y: [0] }, /group 'y' was declined by the analysis \(touches a graph output\)/],
    ['index out of range', { conv1: [8] }, /unit index 8 is out of range \(the group has 8 units: 0\.\.7\)/],
    ['negative index', { conv1: [-1] }, /unit index -1 is out of range/],
    ['duplicate index', { conv1: [2, 2] }, /unit index 2 is listed twice/],
    ['all units', { conv1: [0, 1, 2, 3, 4, 5, 6, 7] }, /would remove all 8 of its units; at least one must stay/],
    ['not an integer', { conv1: [1.5] }, /not an integer/],
  ])('%s → one-line UserError', (_name, groups, re) => {
    let err: Error | undefined;
    try {
      checkPlanGroups(groups as Record<string, number[]>, analysis);
    } catch (e) {
      err = e as Error;
    }
    expect(err?.name).toBe('UserError');
    expect(err?.message).toMatch(re);
    expect(err?.message).not.toMatch(/\n/);
  });

  test('valid groups are normalized (sorted, empty dropped)', () => {
    expect(checkPlanGroups({ conv1: [5, 1, 3] }, analysis)).toEqual({ conv1: [1, 3, 5] });
    expect(checkPlanGroups({ conv1: [] }, analysis)).toEqual({});
  });

  test.each([
    ['not an object', 42, /plan: expected object/],
    ['missing groups', { format: 'onnx-prune-plan', version: 1, model: { fingerprint: 'a'.repeat(64) } }, /missing required key 'groups'/],
    ['wrong format', { format: 'x', version: 1, model: { fingerprint: 'a'.repeat(64) }, groups: {} }, /plan\.format: must be "onnx-prune-plan"/],
    ['bad index type', { format: 'onnx-prune-plan', version: 1, model: { fingerprint: 'a'.repeat(64) }, groups: { conv1: ['1'] } }, /plan\.groups\.conv1\[0\]: expected integer/],
    ['unknown key', { format: 'onnx-prune-plan', version: 1, model: { fingerprint: 'a'.repeat(64) }, groups: {}, extra: 1 }, /unknown key 'extra'/],
    ['other model', { format: 'onnx-prune-plan', version: 1, model: { fingerprint: 'a'.repeat(64) }, groups: {} }, /made for a different model/],
  ])('schema / fingerprint: %s', (_name, value, re) => {
    expect(() => validatePlan(value, fx.model, analysis, 'plan')).toThrow(re);
  });

  test('the fingerprint follows the structure, not the weight values', () => {
    const a = fingerprintModel(fx.model).fingerprint;
    const other = loadModel(fx.bytes);
    other.graph.initializers.get('W1')!.setData(new Float32Array(8 * 27).fill(1));
    expect(fingerprintModel(other).fingerprint).toBe(a);
    applyPlan(other, fx.analysis, { conv1: [0] });
    expect(fingerprintModel(other).fingerprint).not.toBe(a);
    expect(fingerprintModel(gemmMlp().model).fingerprint).not.toBe(a);
  });

  test('JSON text round-trips, matches the schema, and is stable', () => {
    const plan = makePlan(fx.model, { conv1: [6, 0, 3] }, { ratio: 0.3 });
    const text = planToJson(plan);
    const back = JSON.parse(text);
    expect(back).toEqual(plan);
    expect(back.groups).toEqual({ conv1: [0, 3, 6] });
    expect(checkSchema(back, planSchema)).toBeUndefined();
    expect(validatePlan(back, fx.model, analysis)).toEqual(plan);
    expect(planToJson(makePlan(fx.model, { conv1: [6, 0, 3] }, { ratio: 0.3 }))).toBe(text);
  });

  test('plan files: write atomically, read back; clear errors for missing / non-JSON files', () => {
    const file = path.join(tmp, 'p.json');
    const plan = makePlan(fx.model, { conv1: [1] });
    writePlanFile(file, plan);
    expect(readPlanFile(file)).toEqual(plan);
    expect(fs.readdirSync(tmp).filter((f) => f.includes('.tmp-'))).toEqual([]);
    expect(() => readPlanFile(path.join(tmp, 'missing.json'))).toThrow(/cannot read plan .*: no such file/);
    fs.writeFileSync(path.join(tmp, 'bad.json'), '{ not json');
    expect(() => readPlanFile(path.join(tmp, 'bad.json'))).toThrow(/is not valid JSON/);
    expect(() => writePlanFile(path.join(tmp, 'no-such-dir', 'p.json'), plan)).toThrow(/does not exist/);
  });
});

describe('uniform selection', () => {
  const g = (id: string, size: number) => group(id, size, []);

  test('removes round(ratio·size) lowest scores, keeps at least one, ties by index', () => {
    expect(unitsToRemove(8, 0.5)).toBe(4);
    expect(unitsToRemove(4, 0.3)).toBe(1);
    expect(unitsToRemove(1, 0.9)).toBe(0);
    expect(unitsToRemove(2, 0.99)).toBe(1);
    const plan = selectUniform([g('a', 6), g('b', 4), g('c', 1)], {
      a: [5, 1, 1, 9, 0, 1],
      b: Float64Array.from([2, 2, 2, 2]),
      c: [0],
    }, 0.5);
    expect(plan).toEqual({ a: [1, 2, 4], b: [0, 1] });
  });

  test('NaN scores count as most important; a missing score list is an error', () => {
    expect(selectUniform([g('a', 4)], { a: [NaN, 3, 1, 2] }, 0.5)).toEqual({ a: [2, 3] });
    expect(() => selectUniform([g('a', 4)], {}, 0.5)).toThrow(/0 scores for 4 units/);
    expect(() => selectUniform([g('a', 4)], { a: [1, 2, 3, 4] }, 1)).toThrow(/ratio must be in \[0, 1\)/);
  });
});

describe('byte-level tensor edits', () => {
  const raw = (dtype: number, dims: number[], a: ArrayBufferView) => ({ dtype, dims, bytes: new Uint8Array(a.buffer, a.byteOffset, a.byteLength) });

  test('int64 and bool slicing along inner and outer axes', () => {
    const t = raw(DataType.INT64, [2, 3], BigInt64Array.from([1n, 2n, 3n, 4n, 5n, 6n]));
    const r = removeAlongAxis(t, 1, [1]);
    expect(r.dims).toEqual([2, 2]);
    expect(Array.from(new BigInt64Array(r.bytes.slice().buffer))).toEqual([1n, 3n, 4n, 6n]);
    const b = removeAlongAxis(raw(DataType.BOOL, [3, 2], Uint8Array.from([1, 0, 0, 1, 1, 1])), 0, [0, 2]);
    expect(Array.from(b.bytes)).toEqual([0, 1]);
  });

  test('word-wise copies: long and short blocks, unaligned input bytes', () => {
    const f = Float32Array.from({ length: 3 * 20 }, (_, i) => i);
    const unaligned = new Uint8Array(f.byteLength + 1).subarray(1);
    unaligned.set(new Uint8Array(f.buffer));
    const t = { dtype: DataType.FLOAT, dims: [3, 20], bytes: unaligned };
    const rows = removeAlongAxis(t, 0, [1]);
    expect(Array.from(new Float32Array(rows.bytes.slice().buffer))).toEqual([...Array.from(f.subarray(0, 20)), ...Array.from(f.subarray(40, 60))]);
    const cols = removeAlongAxis(t, 1, [0, 19]);
    expect(cols.dims).toEqual([3, 18]);
    expect(Array.from(new Float32Array(cols.bytes.slice().buffer)).slice(0, 3)).toEqual([1, 2, 3]);
    const z = zeroAlongAxis(t, 0, [2]);
    expect(Array.from(new Float32Array(z.bytes.slice().buffer)).slice(38, 42)).toEqual([38, 39, 0, 0]);
  });

  test('float16 zeroing writes +0 half bits', () => {
    const h = Uint16Array.from([1, -2, 3, -4].map((x) => float32ToFloat16(x)));
    const z = zeroAlongAxis(raw(DataType.FLOAT16, [2, 2], h), 0, [1]);
    expect(Array.from(new Uint16Array(z.bytes.slice().buffer))).toEqual([h[0], h[1], 0, 0]);
  });

  test('shape element edits: int64/int32, refuse special values and negative results', () => {
    const s = raw(DataType.INT64, [4], BigInt64Array.from([1n, -1n, 4n, 32n]));
    expect(Array.from(new BigInt64Array(subtractAt(s, 2, 3).bytes.slice().buffer))).toEqual([1n, -1n, 1n, 32n]);
    expect(() => subtractAt(s, 1, 1)).toThrow(/special value/);
    expect(() => subtractAt(s, 2, 5)).toThrow(/would become -1/);
    const s32 = raw(DataType.INT32, [2], Int32Array.from([6, 6]));
    expect(Array.from(new Int32Array(subtractAt(s32, 0, 2).bytes.slice().buffer))).toEqual([4, 6]);
    expect(() => subtractAt(raw(DataType.FLOAT, [1], Float32Array.of(1)), 0, 1)).toThrow(/integer tensor/);
  });

  test('out-of-range axis or position is an internal error', () => {
    const t = raw(DataType.FLOAT, [2, 2], new Float32Array(4));
    expect(() => removeAlongAxis(t, 2, [0])).toThrow(/axis 2 is out of range/);
    expect(() => removeAlongAxis(t, 0, [2])).toThrow(/position 2 is out of range/);
  });
});

describe('accounting', () => {
  test('params and MACs before/after, per layer', () => {
    const fx = convReluConv();
    const before = measureModel(fx.model);
    const pruned = loadModel(fx.bytes);
    applyPlan(pruned, fx.analysis, { conv1: [0, 1, 2, 3] });
    const after = measureModel(pruned);
    const c = compareCost(before, after);
    expect(c.params.before).toBe(8 * 27 + 8 + 4 * 72 + 4);
    expect(c.params.after).toBe(4 * 27 + 4 + 4 * 36 + 4);
    expect(c.params.removed).toBe(c.params.before - c.params.after);
    const byNode = Object.fromEntries(c.layers.map((l) => [l.node, l]));
    expect(byNode.c1).toMatchObject({ opType: 'Conv', paramsBefore: 224, paramsAfter: 112 });
    expect(byNode.y).toMatchObject({ opType: 'Conv', paramsBefore: 292, paramsAfter: 148 });
    if (c.flops.macsBefore !== null) {
      // Conv MACs = out elements × (in channels / group) × kernel area, batch taken as 1.
      expect(c.flops.macsBefore).toBe(8 * 64 * 27 + 4 * 64 * 72);
      expect(c.flops.macsAfter).toBe(4 * 64 * 27 + 4 * 64 * 36);
      expect(byNode.c1.macsAfter).toBe(4 * 64 * 27);
    } else {
      expect(c.flops.note).toMatch(/MACs unknown/);
    }
  });
});

describe('output comparison and verification inputs', () => {
  const t = (data: number[], dims: number[]) => new ort.Tensor('float32', Float32Array.from(data), dims);

  test('max abs/rel diff, cosine, argmax agreement, KL of softmax over the last axis', () => {
    const c = compareOutputs('y', t([0, 0, 2, 1], [2, 2]), t([0, Math.log(3), 2, 1.5], [2, 2]), { kl: true });
    expect(c.scale).toBe(2);
    expect(c.maxAbsDiff).toBeCloseTo(Math.log(3), 6);
    expect(c.maxRelDiff).toBeCloseTo(Math.log(3) / 2, 6);
    expect(c.argmaxAgreement).toBe(0.5);
    const kl0 = 0.5 * Math.log(4 / 3);
    const sm = (a: number, b: number) => [Math.exp(a) / (Math.exp(a) + Math.exp(b)), Math.exp(b) / (Math.exp(a) + Math.exp(b))];
    const [p1, p2] = sm(2, 1);
    const [q1, q2] = sm(2, 1.5);
    expect(c.kl).toBeCloseTo((kl0 + p1 * Math.log(p1 / q1) + p2 * Math.log(p2 / q2)) / 2, 6);
    const dot = 0 * 0 + 0 * Math.log(3) + 4 + 1.5;
    expect(c.cosine).toBeCloseTo(dot / Math.sqrt(5 * (Math.log(3) ** 2 + 4 + 2.25)), 6);
  });

  test('mismatched dims and non-finite values are reported, not hidden', () => {
    expect(compareOutputs('y', t([1, 2], [2]), t([1, 2], [1, 2])).mismatch).toMatch(/dims/);
    expect(compareOutputs('y', t([1, 2], [2]), t([1, NaN], [2])).maxAbsDiff).toBe(Infinity);
  });

  test('token inputs are drawn below the embedding table size; symbolic dims get batch / seq', () => {
    const m = loadModel(path.resolve(__dirname, '../../shared/models/llama_s.onnx'));
    const feeds = verificationFeeds(m, { batch: 3, seq: 5, seed: 1 });
    const ids = Array.from(feeds.input_ids.data as BigInt64Array, Number);
    expect(feeds.input_ids.dims).toEqual([3, 5]);
    expect(Math.max(...ids)).toBeLessThan(256);
    expect(Math.max(...ids)).toBeGreaterThan(2);
  });
});
