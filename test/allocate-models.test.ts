/**
 * Allocation on real exports with the real group analysis: `--target flops --ratio 0.5` removes 50 % ± 2 % of
 * the MACs measured on the pruned model (countMacs after applyPlan), `--round-to 8` holds in every pruned
 * group, and the params estimate equals the params actually removed.
 */
import * as path from 'path';
import { analyzeGroups } from '../src/analysis/analyze';
import { countMacs } from '../src/analysis/flops';
import { allocate } from '../src/allocate/allocate';
import { loadModel } from '../src/ir/io';
import type { Model } from '../src/ir/model';
import { applyPlan } from '../src/prune/apply';
import { scoreGroups } from '../src/score';

const SHARED = path.resolve(__dirname, '../../shared/models');
const params = (m: Model) => m.graph.weights(true).reduce((a, w) => a + w.tensor.size, 0);

describe.each(['resnet50_b', 'mobilenet_v2_050'])('%s', (name) => {
  const file = path.join(SHARED, `${name}.onnx`);
  test.each([
    ['uniform', 1], ['uniform', 8], ['global', 1], ['global', 8],
  ] as const)('flops 0.5, %s, round-to %d', async (mode, roundTo) => {
    const dense = loadModel(file);
    const analysis = await analyzeGroups(dense);
    const scores = scoreGroups(dense, analysis, { method: 'l2' });
    const { removed, achieved } = allocate(analysis, scores, { ratio: 0.5, target: 'flops', mode, roundTo, model: dense });
    const pruned = loadModel(file);
    applyPlan(pruned, analysis, removed);
    const before = countMacs(loadModel(file)).macs!;
    const after = countMacs(pruned).macs!;
    expect(Math.abs(1 - after / before - 0.5)).toBeLessThanOrEqual(0.02);
    expect(achieved.flops!.after).toBeCloseTo(after, -1);
    expect(params(dense) - params(pruned)).toBe(achieved.params.before - achieved.params.after);
    for (const g of analysis.groups) {
      const r = removed[g.id];
      if (r && roundTo > 1) expect((g.size - r.length) % roundTo).toBe(0);
      if (r) expect(r.length).toBeLessThan(g.size);
    }
  });
});
