/**
 * Phase 2a: from coupled labels to removable units.
 *
 * A class (union-find set of producer channels) is a candidate unit. Removing it must remove whole rows of
 * every tensor it appears in: in each field, its positions must be the hyperplanes {p : p[axis] ∈ I} for one
 * axis ("regular"). `regularize` grows classes until that holds (choosing the cheapest axis, e.g. a channel
 * shuffle pairs the two channels that land in one row), and `occurrences` reports, per tensor, on which axis
 * and at which positions each class lives.
 */
import { DECLINE } from './decline';
import { type Field, NONE, strides } from './field';
import type { State } from './state';

export interface Occurrence {
  /** Axis the class shrinks in this tensor (-1: the class covers the whole tensor, or is irregular). */
  axis: number;
  /** Sorted positions along `axis`. */
  positions: number[];
}

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

/** Distinct coordinates along each field axis of a set of flat positions. */
function coordSets(f: Field, flat: number[]): Set<number>[] {
  const st = strides(f.dims);
  const sets = f.dims.map(() => new Set<number>());
  for (const i of flat) for (let k = 0; k < f.dims.length; k++) sets[k].add(Math.floor(i / st[k]) % f.dims[k]);
  return sets;
}

/** Index k of the axis along which the class is regular, or -1. */
function regularAxis(f: Field, flat: number[], sets: Set<number>[]): number {
  const total = f.labels.length;
  for (let k = 0; k < f.dims.length; k++) if (flat.length === sets[k].size * (total / f.dims[k])) return k;
  return -1;
}

/** Grows classes until every class is regular in every field (fixpoint). */
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
        // Cheapest extension: all positions whose coordinate along axis k is one of the class's.
        let best = 0, bestSize = Infinity;
        for (let k = 0; k < f.dims.length; k++) {
          const size = sets[k].size * (f.labels.length / f.dims[k]);
          if (size < bestSize) { best = k; bestSize = size; }
        }
        const stK = strides(f.dims)[best];
        const ext: number[] = [];
        let sawNone = false;
        for (let i = 0; i < f.labels.length; i++) {
          if (!sets[best].has(Math.floor(i / stK) % f.dims[best])) continue;
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

/** Per tensor: where each class lives (cached; call after regularize, when classes are final). */
export class Occurrences {
  private cache = new Map<string, Map<number, Occurrence>>();

  constructor(private st: State) {}

  of(tensor: string): Map<number, Occurrence> {
    let m = this.cache.get(tensor);
    if (m) return m;
    m = new Map();
    const f = this.st.fields.get(tensor);
    if (f) {
      for (const [root, flat] of classPositions(this.st, f)) {
        if (!f.axes.length) { m.set(root, { axis: -1, positions: [] }); continue; }
        const sets = coordSets(f, flat);
        const k = regularAxis(f, flat, sets);
        m.set(root, k < 0 ? { axis: -1, positions: [] } : { axis: f.axes[k], positions: [...sets[k]].sort((a, b) => a - b) });
      }
    }
    this.cache.set(tensor, m);
    return m;
  }
}

/** Connected components of spaces linked by classes: each component is one group. */
export function components(st: State): { spaces: number[]; roots: number[] }[] {
  const parent = st.spaces.map((_, i) => i);
  const find = (x: number): number => {
    while (parent[x] !== x) { parent[x] = parent[parent[x]]; x = parent[x]; }
    return x;
  };
  const firstSpaceOfRoot = new Map<number, number>();
  for (const sp of st.spaces) {
    for (let e = sp.first; e < sp.first + sp.size; e++) {
      const r = st.uf.find(e);
      const s0 = firstSpaceOfRoot.get(r);
      if (s0 === undefined) firstSpaceOfRoot.set(r, sp.id);
      else {
        const a = find(s0), b = find(sp.id);
        if (a !== b) parent[Math.max(a, b)] = Math.min(a, b);
      }
    }
  }
  const byComp = new Map<number, { spaces: number[]; roots: number[] }>();
  for (const sp of st.spaces) {
    const c = find(sp.id);
    let g = byComp.get(c);
    if (!g) byComp.set(c, (g = { spaces: [], roots: [] }));
    g.spaces.push(sp.id);
  }
  // Roots in order of their smallest element (unit order follows the first producer's channel order).
  const seen = new Set<number>();
  for (const sp of st.spaces) {
    for (let e = sp.first; e < sp.first + sp.size; e++) {
      const r = st.uf.find(e);
      if (seen.has(r)) continue;
      seen.add(r);
      byComp.get(find(sp.id))!.roots.push(r);
    }
  }
  return [...byComp.values()].sort((a, b) => a.spaces[0] - b.spaces[0]);
}

