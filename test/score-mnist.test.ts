/**
 * Quality on the shared MNIST models (trained; calibrated on the 512 training digits, evaluated on the 2004
 * held-out digits): accuracy dense vs pruned at 30 % and 50 % params for random (mean of 3 seeds), L2, Wanda
 * and FLAP + bias compensation, uniform and global. Printed as a table; FLAP + bias must beat random clearly.
 */
import * as fs from 'fs';
import * as path from 'path';
import { accuracy, denseStats, loadDigits, mnistCalib, pruneVariant, SHARED, variantName, type Variant } from '../bench/quality-lib';
import { loadModel } from '../src/ir/io';
import { lenetGroups, resmlpGroups } from './mnist-groups';

const have = fs.existsSync(path.join(SHARED, 'mnist_test_x.bin'));

describe('MNIST quality', () => {
  if (!have) throw new Error(`shared models missing at ${SHARED}`);
  const digits = loadDigits(path.join(SHARED, 'mnist_test_x.bin'), path.join(SHARED, 'mnist_test_y.bin'));
  const lines: string[] = [];
  afterAll(() => process.stdout.write(`\n${lines.join('\n')}\n`));

  test.each([
    ['mnist_lenet_bn', lenetGroups, 0.966],
    ['mnist_resmlp', resmlpGroups, 0.956],
  ] as const)('%s', async (name, groups, denseAcc) => {
    const dense = loadModel(path.join(SHARED, `${name}.onnx`));
    const analysis = groups();
    expect(await accuracy(dense, digits)).toBeCloseTo(denseAcc, 3);
    const stats = await denseStats(dense, analysis, mnistCalib(dense));
    for (const mode of ['uniform', 'global'] as const) {
      for (const ratio of [0.3, 0.5]) {
        const acc: Record<string, number> = {};
        let rnd = 0;
        for (const seed of [0, 1, 2]) {
          const r = pruneVariant(dense, analysis, stats, { method: 'random', mode }, ratio, seed);
          expect(Math.abs(r.achieved.achieved - ratio)).toBeLessThan(0.01);
          rnd += (await accuracy(r.model, digits)) / 3;
        }
        acc.random = rnd;
        const variants: Variant[] = [{ method: 'l2', mode }, { method: 'wanda', mode }, { method: 'fluctuation', compensate: true, mode }];
        for (const v of variants) {
          const r = pruneVariant(dense, analysis, stats, v, ratio);
          expect(Math.abs(r.achieved.achieved - ratio)).toBeLessThan(0.01);
          acc[variantName({ ...v, mode: undefined })] = await accuracy(r.model, digits);
        }
        lines.push(`${name} ${mode} ${ratio * 100}% params: dense ${denseAcc} | ${Object.entries(acc).map(([k, v]) => `${k} ${v.toFixed(3)}`).join(' | ')}`);
        if (ratio === 0.5) expect(acc['flap+bias']).toBeGreaterThan(acc.random + 0.02);
      }
    }
  });
});
