/**
 * Issue 2 "done when": for every .onnx in ../shared/models, `onnx-prune IN OUT --ratio 0` writes a model whose
 * onnxruntime outputs on seeded random inputs are bit-identical to the input's, and `inspect --json` reports
 * the parameter count computed independently from the protobuf.
 */
import * as fs from 'fs';
import * as path from 'path';
import { DataType } from '../src/ir/dtype';
import { loadModel } from '../src/ir/io';
import { decodeModelProto, encodeModelProto } from '../src/ir/proto';
import { lines, mkTmp, rmTmp, runBuiltCli, runCliInProcess, sharedModels } from './helpers/cli';
import { bitDifference, runOnce, seededFeeds } from './helpers/ort-run';
import { countParams } from './helpers/params';

const MODELS = sharedModels();

/** Decode + re-encode: equal results mean the two files hold the same ModelProto. */
function normalized(bytes: Uint8Array): Buffer {
  return Buffer.from(encodeModelProto(decodeModelProto(bytes)));
}

let tmp: string;
beforeAll(() => { tmp = mkTmp('onnx-prune-roundtrip-'); });
afterAll(() => rmTmp(tmp));

test('the shared model folder has the development models', () => {
  expect(MODELS.length).toBeGreaterThanOrEqual(17);
});

describe.each(MODELS.map((m) => [path.basename(m), m]))('%s', (name, input) => {
  test('--ratio 0 round-trip is lossless and runs bit-identically in onnxruntime', async () => {
    const dir = path.join(tmp, name.replace(/\.onnx$/, ''));
    fs.mkdirSync(dir);
    const output = path.join(dir, name);
    const r = await runCliInProcess([input, output, '--ratio', '0', '--quiet']);
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    expect(fs.readdirSync(dir)).toEqual([name]);

    const inBytes = fs.readFileSync(input);
    const outBytes = fs.readFileSync(output);
    expect(normalized(outBytes).equals(normalized(inBytes))).toBe(true);

    const feeds = seededFeeds(input, 7);
    const expected = await runOnce(input, feeds);
    const actual = await runOnce(output, feeds);
    expect(Object.keys(expected).length).toBeGreaterThan(0);
    expect(bitDifference(expected, actual)).toBeUndefined();
  });

  test('inspect --json params equals the sum of initializer and Constant-node elements', async () => {
    const want = countParams(fs.readFileSync(input));
    expect(want.total).toBeGreaterThan(0);
    const r = await runCliInProcess(['inspect', input, '--json']);
    expect(r.code).toBe(0);
    const s = JSON.parse(r.stdout) as { params: number; paramsBySource: { initializer: number; constantNode: number } };
    expect(s.params).toBe(want.total);
    expect(s.paramsBySource.initializer).toBe(want.initializer);
    expect(s.paramsBySource.constantNode).toBe(want.constantNode);
  });
});

test('token models get seq 8 and ids in [0, 256) as inputs', () => {
  const input = MODELS.find((m) => path.basename(m) === 'llama_s.onnx')!;
  const feeds = seededFeeds(input, 7);
  const ids = Object.values(feeds)[0];
  expect(ids.type).toBe('int64');
  expect(ids.dims).toEqual([2, 8]);
  const v = Array.from(ids.data as BigInt64Array, Number);
  expect(Math.min(...v)).toBeGreaterThanOrEqual(0);
  expect(Math.max(...v)).toBeLessThan(256);
  expect(Math.max(...v)).toBeGreaterThan(16);
});

test('the bit-exact comparison detects a one-ulp change of a weight tensor', async () => {
  const input = MODELS.find((m) => path.basename(m) === 'mnist_lenet_bn.onnx')!;
  const model = loadModel(input);
  const w = [...model.graph.initializers.values()].find((t) => t.dtype === DataType.FLOAT && t.size > 100)!;
  const data = w.data() as Float32Array;
  const bits = new Uint32Array(data.buffer);
  for (let i = 0; i < bits.length; i++) bits[i] += 1;
  w.setData(data);
  const feeds = seededFeeds(input, 7);
  const before = await runOnce(input, feeds);
  const after = await runOnce(model, feeds);
  expect(bitDifference(before, after)).toMatch(/bytes differ/);
});

describe('the built CLI (node dist/src/cli/main.js)', () => {
  test.each(['mnist_lenet_bn.onnx', 'llama_s.onnx'])('%s: --ratio 0 and inspect --json', async (name) => {
    const input = MODELS.find((m) => path.basename(m) === name);
    expect(input).toBeDefined();
    const dir = path.join(tmp, `built-${name}`);
    fs.mkdirSync(dir);
    const output = path.join(dir, 'out.onnx');
    const r = runBuiltCli([input!, output, '--ratio', '0']);
    expect(r.code).toBe(0);
    expect(r.stdout).toBe('');
    expect(fs.readdirSync(dir)).toEqual(['out.onnx']);
    expect(normalized(fs.readFileSync(output)).equals(normalized(fs.readFileSync(input!)))).toBe(true);

    const feeds = seededFeeds(input!, 11);
    expect(bitDifference(await runOnce(input!, feeds), await runOnce(output, feeds))).toBeUndefined();

    const ins = runBuiltCli(['inspect', output, '--json']);
    expect(ins.code).toBe(0);
    expect(lines(ins.stderr)).toEqual([]);
    expect((JSON.parse(ins.stdout) as { params: number }).params).toBe(countParams(fs.readFileSync(input!)).total);
  });
});
