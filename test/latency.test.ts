/**
 * `--measure-latency` (passes/latency.ts): the report carries interleaved medians of the dense and the pruned
 * model (no timing is asserted: only that the measurement ran, on the inputs it names, and is consistent), also
 * with --no-verify; the summary line shows it.
 */
import * as fs from 'fs';
import * as path from 'path';
import { prune } from '../src/index';
import { checkSchema, type JsonSchema } from '../src/util/json-schema';
import reportSchema from '../schemas/report.schema.json';
import { runCliInProcess, mkTmp, rmTmp } from './helpers/cli';

const TINY = path.join(__dirname, '..', 'models', 'tiny_cnn.onnx');
let tmp: string;
beforeAll(() => { tmp = mkTmp('onnx-prune-latency-'); });
afterAll(() => rmTmp(tmp));

test.each([true, false])('report.latency: medians of both models, their ratio, cpu, 1 thread, the inputs (verify %s)', async (verify) => {
  const r = await prune(TINY, { ratio: 0.5, measureLatency: true, verify, quiet: true });
  const l = r.report.latency!;
  expect(l.dense_ms).toBeGreaterThan(0);
  expect(l.pruned_ms).toBeGreaterThan(0);
  expect(l.ratio).toBeCloseTo(l.pruned_ms / l.dense_ms, 12);
  expect([l.ep, l.threads]).toEqual(['cpu', 1]);
  expect(l.rounds).toBeGreaterThanOrEqual(5);
  expect(Object.values(l.inputs)[0][0]).toBe(1);
  expect(checkSchema(JSON.parse(JSON.stringify(r.report)), reportSchema as JsonSchema, 'report')).toBeUndefined();
});

test('the CLI summary line shows the latency; without the flag there is none', async () => {
  const out = path.join(tmp, 'tiny.onnx');
  const r = await runCliInProcess([TINY, out, '--ratio', '0.5', '--measure-latency']);
  expect(r.code).toBe(0);
  expect(r.stdout).toMatch(/latency \d+\.\d+ → \d+\.\d+ ms \(\d+\.\d+×\)/);
  expect(fs.existsSync(out)).toBe(true);
  const plain = await prune(TINY, { ratio: 0.5, quiet: true });
  expect(plain.report.latency).toBeUndefined();
});
