/**
 * Group analysis of a model whose head outputs are concatenated into one big tensor, and the class phase
 * (src/analysis/classes.ts) that used to rescan such a tensor once per channel grouping.
 *
 *  - A RetinaNet-shaped detector built in code (bench/retinanet-model.ts, small size): every level's
 *    classification / regression output goes through view → permute → reshape and the levels are concatenated
 *    into one graph output. Its groups are the ones of the same network with raw per-level outputs (the
 *    concatenation only ties each head's predictor across levels, declined as a graph output), checked by hand.
 *  - `regularize` and `Occurrences` against a direct position-by-position reference (the former implementation,
 *    kept here) on seeded random label fields: the same unions in the same order (identical union-find roots),
 *    the same declines, the same occurrences; `materialize` (block copies) and the distinct labels of a decline
 *    against direct versions too.
 * Speed is measured by bench/analysis-scale.ts, not here.
 */
import { Occurrences, regularize, type Occurrence } from '../src/analysis/classes';
import { DECLINE } from '../src/analysis/decline';
import { type Field, NONE, makeField, materialize, strides } from '../src/analysis/field';
import { State } from '../src/analysis/state';
import type { GroupAnalysis } from '../src/analysis/types';
import { loadModel } from '../src/ir/io';
import { rng } from '../src/util/rng';
import { RETINA_SMALL, levelSizes, retinaNet } from '../bench/retinanet-model';
import { analyze, expectMaskOk, groupOf, weights } from './analysis-kit';

describe('RetinaNet-like detector (heads concatenated across levels)', () => {
  const retina = loadModel(retinaNet(RETINA_SMALL));
  const twin = loadModel(retinaNet({ ...RETINA_SMALL, concat: false }));
  let a: GroupAnalysis, b: GroupAnalysis;
  beforeAll(async () => {
    a = await analyze(retina);
    b = await analyze(twin);
  });
  const levels = RETINA_SMALL.levels;
  const perLevel = (op: string) => Array.from({ length: levels }, (_, l) => `${op}${l ? `_${l}` : ''}_output_0`);

  test('the model is the torchvision layout: one concatenated [1, Σ H·W·A, K] output per head', () => {
    const locations = levelSizes(RETINA_SMALL).reduce((x, n) => x + n, 0);
    expect(retina.graph.outputs.map((o) => o.name)).toEqual(['cls_logits', 'bbox_regression']);
    const concat = retina.graph.producer('cls_logits')!;
    expect(concat.opType).toBe('Concat');
    expect(concat.inputs).toHaveLength(levels);
    expect(locations * RETINA_SMALL.anchors).toBeGreaterThan(200);
  });

  test('groups: backbone, FPN and every level\'s head tower; each predictor declined as one graph-output group', () => {
    // Backbone: stem + 3 convs per block (one block per stage); the block's conv3 is coupled with its projection.
    const body = '/backbone/body';
    expect(groupOf(a, `${body}/conv1/Conv_output_0`).size).toBe(RETINA_SMALL.width);
    for (let s = 0; s < 4; s++) {
      const L = `${body}/layer${s + 1}/layer${s + 1}.0`;
      const width = RETINA_SMALL.width << s;
      expect(groupOf(a, `${L}/conv3/Conv_output_0`).info?.producers).toEqual([`${L}/conv3/Conv_output_0`, `${L}/downsample/0/Conv_output_0`]);
      expect(groupOf(a, `${L}/conv3/Conv_output_0`).size).toBe(4 * width);
      expect(groupOf(a, `${L}/conv2/Conv_output_0`).size).toBe(width);
    }
    // FPN: the three laterals are added top-down, so they are one group; every output conv is its own.
    const fpn = '/backbone/fpn';
    expect(groupOf(a, `${fpn}/inner_blocks.0/0/Conv_output_0`).info?.producers).toEqual([0, 1, 2].map((i) => `${fpn}/inner_blocks.${i}/0/Conv_output_0`));
    for (const p of [0, 1, 2].map((i) => `${fpn}/layer_blocks.${i}/0/Conv_output_0`).concat(`${fpn}/extra_blocks/p6/Conv_output_0`, `${fpn}/extra_blocks/p7/Conv_output_0`)) {
      expect(groupOf(a, p).size).toBe(RETINA_SMALL.fpn);
    }
    // Head towers: one group per level (the levels share weights but not channels).
    for (const head of ['classification_head', 'regression_head']) {
      for (const t of perLevel(`/head/${head}/conv.0/conv.0.0/Conv`)) {
        const g = groupOf(a, t);
        expect(g.size).toBe(RETINA_SMALL.fpn);
        expect(weights(g, 'in').map((w) => w.tensor)).toEqual([`head.${head}.${head === 'classification_head' ? 'cls_logits' : 'bbox_reg'}.weight`]);
      }
    }
    expect(a.groups).toHaveLength(13 + 6 + 2 * levels);
    // The predictors: every level's A·K (A·4) channels land in the one concatenated output.
    expect(a.declined.map((d) => ({ reason: d.reason, tensor: d.tensor, producers: d.producers }))).toEqual([
      { reason: DECLINE.graphOutput, tensor: 'cls_logits', producers: perLevel('/head/classification_head/cls_logits/Conv') },
      { reason: DECLINE.graphOutput, tensor: 'bbox_regression', producers: perLevel('/head/regression_head/bbox_reg/Conv') },
    ]);
  });

  test('the concatenation changes no group: the twin with raw per-level outputs has the same ones', () => {
    expect(a.groups).toEqual(b.groups);
    expect(b.declined).toHaveLength(2 * levels);
    for (const d of b.declined) expect(d.reason).toBe(DECLINE.graphOutput);
  });

  test('a head tower group and the FPN lateral group are exact (masked vs scrambled in onnxruntime)', async () => {
    await expectMaskOk(retina, groupOf(a, '/head/classification_head/conv.0/conv.0.0/Conv_2_output_0'));
    await expectMaskOk(retina, groupOf(a, '/backbone/fpn/inner_blocks.0/0/Conv_output_0'));
  });
});

// The former implementation, position by position (one scan of the whole field per irregular class).
namespace reference {
  function classPositions(st: State, f: Field): Map<number, number[]> {
    const m = new Map<number, number[]>();
    for (let i = 0; i < f.labels.length; i++) {
      const l = f.labels[i];
      if (l === NONE) continue;
      const r = st.uf.find(l);
      let list = m.get(r);
      if (!list) m.set(r, (list = []));
      list.push(i);
    }
    return m;
  }
  function coordSets(f: Field, flat: number[]): Set<number>[] {
    const s = strides(f.dims);
    const sets = f.dims.map(() => new Set<number>());
    for (const i of flat) for (let k = 0; k < f.dims.length; k++) sets[k].add(Math.floor(i / s[k]) % f.dims[k]);
    return sets;
  }
  function regularAxis(f: Field, flat: number[], sets: Set<number>[]): number {
    for (let k = 0; k < f.dims.length; k++) if (flat.length === sets[k].size * (f.labels.length / f.dims[k])) return k;
    return -1;
  }
  export function regularize(st: State): void {
    const declined = new Set<number>();
    for (let iter = 0; iter < 1000; iter++) {
      let changed = false;
      for (const [name, f] of st.fields) {
        if (f.axes.length < 2) continue;
        for (const [root, flat] of classPositions(st, f)) {
          if (declined.has(st.uf.find(root))) continue;
          const sets = coordSets(f, flat);
          if (regularAxis(f, flat, sets) >= 0) continue;
          let best = 0, bestSize = Infinity;
          for (let k = 0; k < f.dims.length; k++) {
            const size = sets[k].size * (f.labels.length / f.dims[k]);
            if (size < bestSize) { best = k; bestSize = size; }
          }
          const sk = strides(f.dims)[best];
          const ext: number[] = [];
          let sawNone = false;
          for (let i = 0; i < f.labels.length; i++) {
            if (!sets[best].has(Math.floor(i / sk) % f.dims[best])) continue;
            if (f.labels[i] === NONE) sawNone = true;
            else ext.push(f.labels[i]);
          }
          if (sawNone) {
            st.decline([root], DECLINE.irregular, undefined, name);
            declined.add(st.uf.find(root));
            continue;
          }
          st.unionAll(ext);
          changed = true;
        }
      }
      if (!changed) return;
    }
  }
  export function occurrences(st: State, f: Field): Map<number, Occurrence> {
    const m = new Map<number, Occurrence>();
    for (const [root, flat] of classPositions(st, f)) {
      if (!f.axes.length) { m.set(root, { axis: -1, positions: [] }); continue; }
      const sets = coordSets(f, flat);
      const k = regularAxis(f, flat, sets);
      m.set(root, k < 0 ? { axis: -1, positions: [] } : { axis: f.axes[k], positions: [...sets[k]].sort((x, y) => x - y) });
    }
    return m;
  }
}

/**
 * Random fields over a few elements: labels per position from a small pool, from one axis's coordinate (regular),
 * from a product of two axes, or repeated blocks; some NONE positions, some elements united beforehand.
 */
function randomState(seed: number): State {
  const r = rng(seed);
  const int = (n: number) => Math.floor(r() * n);
  const st = new State(undefined as never, new Map(), undefined as never, 17);
  const count = 2 + int(14);
  st.uf.add(count);
  for (let u = int(3); u > 0; u--) st.uf.union(int(count), int(count));
  const fields = 1 + int(3);
  for (let t = 0; t < fields; t++) {
    const rank = int(4);
    const axes = Array.from({ length: rank }, (_, a) => a).filter(() => r() < 0.8);
    const dims = axes.map(() => 1 + int(5));
    const n = dims.reduce((x, y) => x * y, 1);
    const s = strides(dims);
    const coord = (i: number, k: number) => Math.floor(i / s[k]) % dims[k];
    const pool = Array.from({ length: 1 + int(5) }, () => int(count));
    const kind = int(4);
    const k0 = int(Math.max(1, axes.length)), k1 = int(Math.max(1, axes.length));
    const noneRate = r() < 0.5 ? 0 : 0.15;
    const labels = new Int32Array(n);
    for (let i = 0; i < n; i++) {
      if (r() < noneRate) { labels[i] = NONE; continue; }
      if (!axes.length || kind === 0) labels[i] = pool[int(pool.length)];
      else if (kind === 1) labels[i] = pool[coord(i, k0) % pool.length];
      else if (kind === 2) labels[i] = pool[(coord(i, k0) * 3 + coord(i, k1)) % pool.length];
      else labels[i] = (pool[coord(i, k0) % pool.length] + coord(i, k1)) % count;
    }
    st.fields.set(`t${t}`, makeField(rank + int(2), axes.length ? axes : [], dims, labels));
  }
  return st;
}

describe('classes: regularize and occurrences match the position-by-position reference', () => {
  test('500 seeded random states: same roots, same declines, same occurrences', () => {
    let irregular = 0, declines = 0;
    for (let seed = 1; seed <= 500; seed++) {
      const fast = randomState(seed), ref = randomState(seed);
      regularize(fast);
      reference.regularize(ref);
      const roots = (st: State) => Array.from({ length: st.uf.count }, (_, e) => st.uf.find(e));
      expect({ seed, roots: roots(fast) }).toEqual({ seed, roots: roots(ref) });
      expect({ seed, declines: fast.declines }).toEqual({ seed, declines: ref.declines });
      const occ = new Occurrences(fast);
      for (const [name, f] of ref.fields) {
        const want = reference.occurrences(ref, f);
        expect({ seed, name, occ: [...occ.of(name)] }).toEqual({ seed, name, occ: [...want] });
        for (const o of want.values()) if (o.axis < 0 && f.axes.length) irregular++;
      }
      declines += ref.declines.length;
    }
    // The random fields do exercise the irregular paths (declines and classes left irregular).
    expect(declines).toBeGreaterThan(20);
    expect(irregular).toBeGreaterThan(20);
  });

  test('a concatenated detector-head field: classes grow along the cheapest axis, as the reference does', () => {
    // [rows, K] with rows = Σ levels H·W·A, label (level, anchor, k): the shape of a concatenated RetinaNet head.
    const build = () => {
      const st = new State(undefined as never, new Map(), undefined as never, 17);
      const A = 3, K = 7, HW = [16, 4, 1];
      st.uf.add(HW.length * A * K);
      const rows = HW.reduce((x, n) => x + n * A, 0);
      const labels = new Int32Array(rows * K);
      let row = 0;
      HW.forEach((hw, l) => {
        for (let p = 0; p < hw; p++) for (let a = 0; a < A; a++, row++) for (let k = 0; k < K; k++) labels[row * K + k] = (l * A + a) * K + k;
      });
      st.fields.set('head', makeField(3, [1, 2], [rows, K], labels));
      return st;
    };
    const fast = build(), ref = build();
    regularize(fast);
    reference.regularize(ref);
    const roots = (st: State) => Array.from({ length: st.uf.count }, (_, e) => st.uf.find(e));
    expect(roots(fast)).toEqual(roots(ref));
    // Every column class of the large levels absorbed the small level's rows: one class over the whole field.
    expect(new Set(roots(fast)).size).toBe(1);
    expect([...new Occurrences(fast).of('head')]).toEqual([...reference.occurrences(ref, ref.fields.get('head')!)]);
  });
});

describe('field helpers against direct versions', () => {
  test('materialize: labels repeated along the new axes, for seeded random fields and targets', () => {
    for (let seed = 1; seed <= 300; seed++) {
      const r = rng(seed);
      const int = (n: number) => Math.floor(r() * n);
      const rank = 1 + int(4);
      const target = Array.from({ length: rank }, (_, a) => a);
      const dims = target.map(() => 1 + int(4));
      const axes = target.filter(() => r() < 0.6);
      const fd = axes.map((a) => dims[a]);
      const labels = Int32Array.from({ length: fd.reduce((x, y) => x * y, 1) }, () => int(50) - 1);
      const f = makeField(rank, axes, fd, labels);
      const ts = strides(dims), fs = strides(fd);
      const want = Int32Array.from({ length: dims.reduce((x, y) => x * y, 1) }, (_, i) =>
        labels[axes.reduce((off, a, k) => off + (Math.floor(i / ts[a]) % dims[a]) * fs[k], 0)]);
      expect({ seed, got: [...materialize(f, target, dims)] }).toEqual({ seed, got: [...want] });
    }
  });

  test('a decline over a large field lists its distinct labels in order of first appearance', () => {
    const st = new State(undefined as never, new Map(), undefined as never, 17);
    st.uf.add(1000);
    const r = rng(3);
    const labels = Int32Array.from({ length: 20000 }, () => (r() < 0.1 ? NONE : Math.floor(r() * r() * 1000)));
    st.decline(labels, DECLINE.graphOutput);
    st.decline([...labels.subarray(0, 100)], DECLINE.graphOutput);
    expect(st.declines.map((d) => d.labels)).toEqual([
      [...new Set([...labels].filter((l) => l !== NONE))],
      [...new Set([...labels.subarray(0, 100)].filter((l) => l !== NONE))],
    ]);
  });
});
