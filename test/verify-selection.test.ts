/**
 * Outputs behind NonMaxSuppression / TopK / NonZero (src/verify/selection.ts), on a detection head built in code:
 * a shared conv trunk (the pruned group) feeds a score conv and a box-delta conv; every score s comes twice, as s
 * and as (s + 1) − 1 (equal up to float32 rounding of s's low bits: near-tied by construction, so the pruned
 * model's rounding of s decides their order). Half of the twin boxes coincide with the originals (NMS keeps one of
 * the pair: which one is a near-tie), the other half are far away (NMS keeps both, in near-tied order).
 * Outputs: NMS's selected indices, the boxes and scores gathered with them, TopK values and indices, and the
 * NonZero of `scores > 0`.
 */
import type { Model } from '../src/ir/model';
import { loadModel } from '../src/ir/io';
import { applyPlan } from '../src/prune/apply';
import { cloneModel } from '../src/ir/clone';
import { maskPlan } from '../src/prune/mask';
import { compareOutputs } from '../src/verify/compare';
import { alignAsSet, selectionOutputs } from '../src/verify/selection';
import { runModel, verificationFeeds, verifyPruned } from '../src/verify/verify';
import { ort } from '../src/ort/session';
import { DataType, attr, floatTensor, graph, int64Tensor, modelBytes, node, seededRng, uniform, valueInfo } from './helpers/builder';
import { analysisOf, group, units, w } from './prune-fixtures';

const f = (name: string, dims: number[], seed: number, scale = 0.5) =>
  floatTensor(name, dims, uniform(seededRng(seed), dims.reduce((a, b) => a * b, 1), scale));

const CELLS = 64; // 8 × 8 score map
const TRUNK = 24; // channels of the shared trunk (the pruned group)

/** Anchors [1, 2·CELLS, 4]: unit boxes on the 8 × 8 grid, then the twins (even cells: the same box; odd: far away). */
function anchors(): number[] {
  const out: number[] = [];
  for (let twin = 0; twin < 2; twin++) {
    for (let c = 0; c < CELLS; c++) {
      const y = Math.floor(c / 8), x = c % 8;
      const off = twin && c % 2 ? 100 : 0;
      out.push(y + off, x, y + 1 + off, x + 1);
    }
  }
  return out;
}

function detectionModel(): Model {
  const g = graph({
    nodes: [
      node('Conv', ['x', 'W1', 'B1'], ['c1'], [attr.ints('pads', [1, 1, 1, 1])], 'trunk'),
      node('Relu', ['c1'], ['r1']),
      node('Conv', ['r1', 'Ws', 'Bs'], ['s_map'], [attr.ints('pads', [1, 1, 1, 1])], 'score_conv'),
      node('Reshape', ['s_map', 'shape_s'], ['s']),
      node('Add', ['s', 'one'], ['s_plus']),
      node('Sub', ['s_plus', 'one'], ['s_twin']),
      node('Concat', ['s', 's_twin'], ['scores'], [attr.int('axis', 2)]),
      node('Conv', ['r1', 'Wb', 'Bb'], ['d_map'], [], 'box_conv'),
      node('Reshape', ['d_map', 'shape_d'], ['d']),
      node('Transpose', ['d'], ['dt'], [attr.ints('perm', [0, 2, 1])]),
      node('Concat', ['dt', 'dt'], ['deltas'], [attr.int('axis', 1)]),
      node('Add', ['anchors', 'deltas'], ['boxes']),
      node('NonMaxSuppression', ['boxes', 'scores', 'max_out', 'iou'], ['selected'], [], 'nms'),
      node('Gather', ['selected', 'col2'], ['box_idx'], [attr.int('axis', 1)]),
      node('Squeeze', ['boxes', 'ax0'], ['boxes0']),
      node('Gather', ['boxes0', 'box_idx'], ['det_boxes'], [attr.int('axis', 0)]),
      node('Reshape', ['scores', 'flat'], ['scores_flat']),
      node('Gather', ['scores_flat', 'box_idx'], ['det_scores'], [attr.int('axis', 0)]),
      node('Reshape', ['scores', 'row'], ['scores_row']),
      node('TopK', ['scores_row', 'k'], ['top_values', 'top_indices'], [attr.int('axis', 1)], 'topk'),
      node('Greater', ['scores', 'zero'], ['positive_mask']),
      node('NonZero', ['positive_mask'], ['positive'], [], 'nonzero'),
    ],
    inputs: [valueInfo('x', DataType.FLOAT, [1, 3, 8, 8])],
    outputs: [
      valueInfo('selected', DataType.INT64, ['K', 3]),
      valueInfo('det_boxes', DataType.FLOAT, ['K', 4]),
      valueInfo('det_scores', DataType.FLOAT, ['K']),
      valueInfo('top_values', DataType.FLOAT, [1, 12]),
      valueInfo('top_indices', DataType.INT64, [1, 12]),
      valueInfo('positive', DataType.INT64, [3, 'P']),
    ],
    initializers: [
      f('W1', [TRUNK, 3, 3, 3], 51), f('B1', [TRUNK], 52, 0.1), f('Ws', [1, TRUNK, 3, 3], 53, 0.3), floatTensor('Bs', [1], [0.05]),
      f('Wb', [4, TRUNK, 1, 1], 54, 0.02), f('Bb', [4], 55, 0.01),
      int64Tensor('shape_s', [3], [1, 1, CELLS]), int64Tensor('shape_d', [3], [1, 4, CELLS]),
      floatTensor('one', [], [1]), floatTensor('zero', [], [0]), floatTensor('anchors', [1, 2 * CELLS, 4], anchors()),
      int64Tensor('max_out', [1], [24]), floatTensor('iou', [1], [0.5]), int64Tensor('col2', [], [2]), int64Tensor('ax0', [1], [0]),
      int64Tensor('flat', [1], [-1]), int64Tensor('row', [2], [1, -1]), int64Tensor('k', [1], [12]),
    ],
  });
  return loadModel(modelBytes(g, { opset: 17 }));
}

const trunk = (wrong = false) => analysisOf([group('trunk', TRUNK, [
  w('W1', 'c1', 1, 0, 'out', units(TRUNK)), w('B1', 'c1', 2, 0, 'out', units(TRUNK)),
  w('Ws', 's_map', 1, 1, 'in', wrong ? units(TRUNK).reverse() : units(TRUNK)), w('Wb', 'd_map', 1, 1, 'in', units(TRUNK)),
])]);
const PLAN = { trunk: [0, 3, 5, 8, 13, 17, 21] };

function pruned(model: Model, analysis = trunk()): Model {
  const p = cloneModel(model);
  applyPlan(p, analysis, PLAN);
  return p;
}

test('the outputs behind a selection, and the tensors the selections read', () => {
  const model = detectionModel();
  const sel = selectionOutputs(model, new Set(['c1', 's_map', 'd_map']));
  expect(sel.map((s) => [s.output, s.ops, s.frontier, s.touched])).toEqual([
    ['selected', ['NonMaxSuppression(nms)'], ['boxes', 'scores'], false],
    // The gathers after NMS read the boxes and scores (reshaped) too.
    ['det_boxes', ['NonMaxSuppression(nms)'], ['boxes', 'boxes0', 'scores'], false],
    ['det_scores', ['NonMaxSuppression(nms)'], ['boxes', 'scores', 'scores_flat'], false],
    ['top_values', ['TopK(topk)'], ['scores_row'], false],
    ['top_indices', ['TopK(topk)'], ['scores_row'], false],
    // The threshold in front of NonZero is part of the decision: the scores it compares are checked.
    ['positive', ['Greater(positive_mask)', 'NonZero(nonzero)'], ['scores'], false],
  ]);
  // A pruned node between the selection and the output: no near-tie can be accepted there.
  expect(selectionOutputs(model, new Set(['det_boxes'])).find((s) => s.output === 'det_boxes')?.touched).toBe(true);
});

test('alignAsSet matches items along an axis, per row or shared, within the tolerance', () => {
  const t = (data: number[], dims: number[]) => new ort.Tensor('float32', Float32Array.from(data), dims);
  // Rows [K, 2] in another order, one value off by 1e-3.
  const a = alignAsSet(t([1, 2, 3, 4, 5, 6], [3, 2]), t([5, 6, 1, 2, 3, 4.001], [3, 2]), 2e-3)!;
  expect([a.axis, a.perRow, a.moved, Array.from(a.tensor.data as Float32Array)]).toEqual([0, false, 3, [1, 2, 3, 4.001, 5, 6].map(Math.fround)]);
  expect(alignAsSet(t([1, 2, 3, 4, 5, 6], [3, 2]), t([5, 6, 1, 2, 3, 4.01], [3, 2]), 2e-3)).toBeUndefined();
  // TopK-like [2, 3]: each row in its own order (per row along axis 1).
  const r = alignAsSet(t([9, 8, 7, 3, 2, 1], [2, 3]), t([8, 9, 7, 3, 1, 2], [2, 3]), 0)!;
  expect([r.axis, r.perRow, r.moved]).toEqual([1, true, 4]);
  // Another count: no alignment.
  expect(alignAsSet(t([1, 2], [1, 2]), t([1, 2, 3, 4], [2, 2]), 1)).toBeUndefined();
  // Index tuples (int64) match exactly or not at all.
  const i = (data: number[]) => new ort.Tensor('int64', BigInt64Array.from(data.map(BigInt)), [2, 3]);
  expect(alignAsSet(i([0, 0, 5, 0, 0, 7]), i([0, 0, 7, 0, 0, 5]), 0)?.moved).toBe(2);
  expect(alignAsSet(i([0, 0, 5, 0, 0, 7]), i([0, 0, 7, 0, 0, 6]), 0)).toBeUndefined();
});

describe('a correct prune of a detection head', () => {
  const model = detectionModel();
  const p = pruned(model);
  const masked = cloneModel(model);
  maskPlan(masked, trunk(), PLAN);

  test('differs by position from the masked model at some seeds (near-tied scores swap), verifies at every seed 0..9', async () => {
    let positional = 0;
    const kinds = new Set<string>();
    for (let seed = 0; seed < 10; seed++) {
      const feeds = verificationFeeds(model, { seed });
      const [m, q] = [await runModel(masked, feeds), await runModel(p, feeds)];
      // What verification by position saw before: any NMS / TopK index differing at its position fails.
      const byPosition = ['selected', 'top_indices', 'positive'].some((o) => {
        const c = compareOutputs(o, m[o], q[o]);
        return !!c.mismatch || c.maxAbsDiff > 0;
      });
      if (byPosition) positional++;
      const r = await verifyPruned(model, p, trunk(), PLAN, { seed });
      expect({ seed, passed: r.verify.passed, error: r.verify.error }).toEqual({ seed, passed: true, error: undefined });
      expect(r.verify.maxRelDiff).toBeLessThanOrEqual(r.verify.rtol);
      // The scores and boxes in front of the selections were compared strictly.
      expect(r.verify.selectionInputs?.map((c) => c.name)).toEqual(['boxes', 'scores', 'boxes0', 'scores_flat', 'scores_row']);
      for (const e of r.verify.weakened) kinds.add(e.kind);
      if (byPosition) expect(r.verify.weakened.some((e) => e.kind === 'selection-order' || e.kind === 'selection-tie')).toBe(true);
    }
    // The near-ties are real: by position, verification would have failed at some of these seeds.
    expect(positional).toBeGreaterThan(0);
    // Both remedies were needed: other orders (compared as sets) and other picks among twins (near-ties).
    expect([...kinds].filter((k) => k.startsWith('selection')).sort()).toEqual(['selection-order', 'selection-tie']);
  });

  test('a wrong prune still fails: a corrupted score weight, and a wrong group', async () => {
    const bad = pruned(model);
    const ws = bad.graph.initializers.get('Ws')!;
    const data = ws.toFloat32();
    data[4] *= 1.5;
    ws.setData(data);
    const r = await verifyPruned(model, bad, trunk(), PLAN);
    expect(r.verify.passed).toBe(false);
    expect(r.verify.error).toMatch(/'scores' \(read by NonMaxSuppression\(nms\).*\) differs from the masked model/);
    expect(r.verify.weakened.map((e) => e.kind)).not.toContain('selection-tie');
    const wrong = pruned(model, trunk(true));
    const rw = await verifyPruned(model, wrong, trunk(), PLAN);
    expect(rw.verify.passed).toBe(false);
    expect(rw.verify.error).toMatch(/'scores' \(read by .*\) differs from the masked model/);
  });
});
