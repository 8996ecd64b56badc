/** Budgeted allocation on a hand-built 3-layer MLP (exact param/MAC accounting) and a tiny CNN (default protection). */
import type { Group, GroupAnalysis, WeightMember } from '../src/analysis/types';
import { allocate, roundedKept } from '../src/allocate/allocate';
import { CostModel } from '../src/allocate/cost';
import { defaultProtectedNodes } from '../src/allocate/protect';
import { loadModel } from '../src/ir/io';
import { attr, DataType, floatTensor, graph, modelBytes, node, seededRng, uniform, valueInfo } from './helpers/builder';

const units = (n: number) => Array.from({ length: n }, (_, u) => [u]);
const wm = (tensor: string, nodeId: string, input: number, axis: number, role: WeightMember['role'], n: number): WeightMember =>
  ({ kind: 'weight', tensor, node: nodeId, input, axis, role, indices: units(n) });

/** x[8] → Gemm(Wa[8,16]) → Relu → Gemm(Wb[16,32]) → Relu → Gemm(Wc[32,10]) → y. */
function mlp() {
  const f = (name: string, dims: number[], seed: number) => floatTensor(name, dims, uniform(seededRng(seed), dims.reduce((a, b) => a * b, 1)));
  const g = graph({
    nodes: [
      node('Gemm', ['x', 'Wa', 'ba'], ['h1'], [], 'fc1'), node('Relu', ['h1'], ['r1']),
      node('Gemm', ['r1', 'Wb', 'bb'], ['h2'], [], 'fc2'), node('Relu', ['h2'], ['r2']),
      node('Gemm', ['r2', 'Wc', 'bc'], ['y'], [], 'fc3'),
    ],
    inputs: [valueInfo('x', DataType.FLOAT, ['batch', 8])],
    outputs: [valueInfo('y', DataType.FLOAT, ['batch', 10])],
    initializers: [f('Wa', [8, 16], 1), f('ba', [16], 2), f('Wb', [16, 32], 3), f('bb', [32], 4), f('Wc', [32, 10], 5), f('bc', [10], 6)],
  });
  const model = loadModel(modelBytes(g));
  const g1: Group = { id: 'g1', label: 'fc1', unit: 'neuron', unitSize: 1, size: 16, paramsPerUnit: 8 + 1 + 32,
    members: [wm('Wa', 'h1', 1, 1, 'out', 16), wm('ba', 'h1', 2, 0, 'out', 16), wm('Wb', 'h2', 1, 0, 'in', 16)] };
  const g2: Group = { id: 'g2', label: 'fc2', unit: 'neuron', unitSize: 1, size: 32, paramsPerUnit: 16 + 1 + 10,
    members: [wm('Wb', 'h2', 1, 1, 'out', 32), wm('bb', 'h2', 2, 0, 'out', 32), wm('Wc', 'y', 1, 0, 'in', 32)] };
  const analysis: GroupAnalysis = { groups: [g1, g2], declined: [], summary: { totalParams: 1018, prunableParams: 0, groups: 2, declined: 0 } };
  return { model, analysis };
}

/** Exact params removed when k1 units of g1 and k2 of g2 go. */
const paramsRemoved = (k1: number, k2: number) => 1018 - (8 * (16 - k1) + (16 - k1) + (16 - k1) * (32 - k2) + (32 - k2) + (32 - k2) * 10 + 10);
const flat = (s: number, n: number) => Float64Array.from({ length: n }, (_, u) => s + u * 1e-3);

describe('cost model', () => {
  test('params are exact when groups share a weight (Wb is sliced by both)', () => {
    const { model, analysis } = mlp();
    const cost = new CostModel(analysis, model);
    expect(cost.paramsRemoved({ g1: [0, 1, 2], g2: [5, 6] }, analysis.groups)).toBe(paramsRemoved(3, 2));
    expect(cost.paramsRemoved({}, analysis.groups)).toBe(0);
    // Without the model: paramsPerUnit, which double counts the shared Wb slice.
    expect(new CostModel(analysis).paramsRemoved({ g1: [0, 1, 2], g2: [5, 6] }, analysis.groups)).toBe(3 * 41 + 2 * 27);
  });

  test('MACs scale with the kept fraction of each node\'s main weight', () => {
    const { model, analysis } = mlp();
    const flops = { macs: 960, unknown: [], perNode: [{ node: 'h1', opType: 'Gemm', macs: 128 }, { node: 'h2', opType: 'Gemm', macs: 512 }, { node: 'y', opType: 'Gemm', macs: 320 }] };
    const cost = new CostModel(analysis, model, flops);
    const k1 = 4, k2 = 8;
    const expected = 128 * (k1 / 16) + 512 * (1 - ((16 - k1) * (32 - k2)) / (16 * 32)) + 320 * (k2 / 32);
    expect(cost.macsRemoved({ g1: [0, 1, 2, 3], g2: [0, 1, 2, 3, 4, 5, 6, 7] })).toBeCloseTo(expected, 9);
  });
});

describe('allocate', () => {
  const scores = { g1: flat(1, 16), g2: flat(1, 32) };

  test('uniform: the same fraction of every group, close to the requested params ratio', () => {
    const { model, analysis } = mlp();
    for (const ratio of [0.2, 0.4, 0.6]) {
      const { removed, achieved } = allocate(analysis, scores, { ratio, model, protectDefaults: false });
      const k1 = removed.g1.length, k2 = removed.g2.length;
      expect(achieved.params.before - achieved.params.after).toBe(paramsRemoved(k1, k2));
      expect(Math.abs(k1 / 16 - k2 / 32)).toBeLessThanOrEqual(1 / 16 + 1e-9);
      expect(Math.abs(achieved.achieved - ratio)).toBeLessThan(0.03);
      // Lowest scores go first: here the lowest unit indices.
      expect(removed.g1).toEqual(Array.from({ length: k1 }, (_, u) => u));
    }
  });

  test('global: units ranked together by score / group mean', () => {
    const { model, analysis } = mlp();
    // g1: eight near-useless units, eight strong ones (normalized ≈ 0.01 and ≈ 1.99); g2: all ≈ 1 after dividing
    // by its mean, but 100× larger raw scores, so that ranking raw scores would take g1's strong units first.
    const s1 = Float64Array.from({ length: 16 }, (_, u) => (u % 2 ? 1.99 : 0.01));
    const s2 = flat(100, 32);
    const { removed, achieved } = allocate(analysis, { g1: s1, g2: s2 }, { ratio: 0.35, model, mode: 'global', protectDefaults: false });
    expect(removed.g1).toEqual([0, 2, 4, 6, 8, 10, 12, 14]);
    expect(removed.g2.length).toBeGreaterThan(0);
    expect(Math.abs(achieved.achieved - 0.35)).toBeLessThan(0.02);
    const uni = allocate(analysis, { g1: s1, g2: s2 }, { ratio: 0.35, model, mode: 'uniform', protectDefaults: false });
    expect(uni.removed.g1.length).not.toBe(8);
    // Scores that say they are comparable already (LAMP) are ranked raw: g1's strong units then go before g2's.
    const raw = allocate(analysis, { g1: s1, g2: s2 }, { ratio: 0.35, model, mode: 'global', protectDefaults: false, normalized: true });
    expect(raw.removed.g1.length).toBeGreaterThan(8);
  });

  test('round-to: kept counts are multiples of N; max-ratio caps every group', () => {
    const { model, analysis } = mlp();
    for (const mode of ['uniform', 'global'] as const) {
      const { removed } = allocate(analysis, scores, { ratio: 0.45, model, mode, roundTo: 8, protectDefaults: false });
      for (const g of analysis.groups) if (removed[g.id]) expect((g.size - removed[g.id].length) % 8).toBe(0);
      const capped = allocate(analysis, scores, { ratio: 0.3, model, mode, maxRatio: 0.5, protectDefaults: false });
      for (const g of analysis.groups) expect(capped.removed[g.id]?.length ?? 0).toBeLessThanOrEqual(g.size / 2);
    }
    expect(roundedKept(100, 0, 8, 8)).toBe(100);
    expect(roundedKept(100, 1, 8, 8)).toBe(96);
    expect(roundedKept(100, 50, 8, 8)).toBe(48);
    expect(roundedKept(16, 1, 8, 8)).toBe(16);
    expect(roundedKept(16, 15, 8, 8)).toBe(8);
  });

  test('impossible budgets and unknown names are user errors', () => {
    const { model, analysis } = mlp();
    expect(() => allocate(analysis, scores, { ratio: 0.95, model, protectDefaults: false })).toThrow(/cannot remove 95\.0 % of params: at most \d+\.\d % is removable/);
    expect(() => allocate(analysis, scores, { ratio: 0.1, model, protect: ['Wb'], protectDefaults: false })).toThrow(/cannot remove .* 2 group\(s\) protected/);
    expect(() => allocate(analysis, scores, { ratio: 0.1, model, protect: ['nope'] })).toThrow(/--protect 'nope' matches no group/);
    expect(() => allocate(analysis, scores, { ratio: 1.5, model })).toThrow(/ratio must be in \[0, 1\)/);
    expect(() => allocate(analysis, scores, { ratio: 0.1, model, excludeOp: ['Gemm'] })).toThrow(/cannot remove/);
  });

  test('protection by group id, node name and the default classifier rule', () => {
    const { model, analysis } = mlp();
    expect(Object.keys(allocate(analysis, scores, { ratio: 0.1, model, protect: ['g1'], protectDefaults: false }).removed)).toEqual(['g2']);
    expect(Object.keys(allocate(analysis, scores, { ratio: 0.1, model, protect: ['fc1'], protectDefaults: false }).removed)).toEqual(['g2']);
    // fc3 writes the graph output: it is the classifier; its output group (g3, as an analysis that sees through
    // the output would make it) stays whole by default, the features it reads (g2) do not.
    const g3: Group = { id: 'g3', label: 'fc3', unit: 'neuron', unitSize: 1, size: 10, paramsPerUnit: 33, members: [wm('Wc', 'y', 1, 1, 'out', 10), wm('bc', 'y', 2, 0, 'out', 10)] };
    const withOut = { ...analysis, groups: [...analysis.groups, g3] };
    const d = allocate(withOut, { ...scores, g3: flat(1, 10) }, { ratio: 0.1, model });
    expect(Object.keys(d.removed).sort()).toEqual(['g1', 'g2']);
    expect(d.achieved.protected).toEqual([{ group: 'g3', reason: "classifier 'y'" }]);
  });

  test('ratio 0 removes nothing; a FLOPs target is met on the MAC estimate', () => {
    const { model, analysis } = mlp();
    expect(allocate(analysis, scores, { ratio: 0, model }).removed).toEqual({});
    const flops = { macs: 960, unknown: [], perNode: [{ node: 'h1', opType: 'Gemm', macs: 128 }, { node: 'h2', opType: 'Gemm', macs: 512 }, { node: 'y', opType: 'Gemm', macs: 320 }] };
    const r = allocate(analysis, scores, { ratio: 0.5, target: 'flops', flops, model, protectDefaults: false });
    expect(Math.abs(r.achieved.achieved - 0.5)).toBeLessThan(0.03);
    expect(r.achieved.flops!.before).toBe(960);
  });
});

describe('default protection', () => {
  test('first conv = no weighted layer upstream; classifier = no weighted layer downstream', () => {
    const f = (name: string, dims: number[]) => floatTensor(name, dims, uniform(seededRng(1), dims.reduce((a, b) => a * b, 1)));
    const g = graph({
      nodes: [
        node('Conv', ['x', 'W1'], ['c1']), node('Relu', ['c1'], ['r1']),
        node('Conv', ['r1', 'W2'], ['c2']), node('GlobalAveragePool', ['c2'], ['p']),
        node('Flatten', ['p'], ['f']), node('Gemm', ['f', 'W3'], ['logits'], [attr.int('transB', 1)]), node('Softmax', ['logits'], ['prob']),
      ],
      inputs: [valueInfo('x', DataType.FLOAT, ['batch', 3, 8, 8])],
      outputs: [valueInfo('prob', DataType.FLOAT, ['batch', 5])],
      initializers: [f('W1', [4, 3, 3, 3]), f('W2', [6, 4, 3, 3]), f('W3', [5, 6])],
    });
    expect(defaultProtectedNodes(loadModel(modelBytes(g)))).toEqual({ firstConv: ['c1'], classifier: ['logits'] });
  });
});
