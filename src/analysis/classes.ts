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

/**
 * A field's labels never change once propagation is over, while classes keep growing: where each label lives is
 * indexed once per field (linear in the field), and every pass works on labels and their coordinates, never on
 * the field's positions again.
 */
interface LabelIndex {
  /** Distinct labels (NONE excluded) in the order of their first position. */
  labels: number[];
  /** Number of positions holding each label. */
  counts: Int32Array;
  /**
   * Per axis k, for label i: its distinct coordinates along k, coords[k][start[k][i] .. start[k][i + 1]), and the
   * first position of label i in each of those hyperplanes (firsts[k], same range).
   */
  start: Int32Array[];
  coords: Int32Array[];
  firsts: Int32Array[];
  /** Per axis: which coordinates hold a NONE position (undefined: none do). */
  none: (Uint8Array | undefined)[];
  /** Per axis: its hyperplanes (built when an extension first needs them). */
  planes: (Hyperplanes | undefined)[];
}

/** The hyperplanes {p : p[k] = c} of a field along one axis, inverted from the label index. */
interface Hyperplanes {
  /** The distinct labels of hyperplane c and the first position of each there: [start[c], start[c + 1]). */
  start: Int32Array;
  labels: Int32Array;
  first: Int32Array;
  /** Every label of hyperplane c is in one class already (an extension united them; unions never split). */
  united: Uint8Array;
}

const indexes = new WeakMap<Field, LabelIndex>();

/** Scratch map element id → small int, all −1 between uses (element ids are dense). */
let slots = new Int32Array(0);
function scratch(n: number): Int32Array {
  if (slots.length < n) slots = new Int32Array(Math.max(n, 2 * slots.length)).fill(-1);
  return slots;
}

/** Scratch marks: an entry is marked when it holds the returned stamp (unique per call). */
let stamps = new Int32Array(0);
let serial = 0;
function stamped(n: number): { marks: Int32Array; stamp: number } {
  if (stamps.length < n) stamps = new Int32Array(Math.max(n, 2 * stamps.length));
  if (++serial >= 0x7fffffff) { stamps.fill(0); serial = 1; }
  return { marks: stamps, stamp: serial };
}

const trim = (a: Int32Array, m: number) => (m === a.length ? a : a.slice(0, m));

function labelIndex(st: State, f: Field): LabelIndex {
  let idx = indexes.get(f);
  if (idx) return idx;
  const n = f.labels.length;
  const R = f.dims.length;
  const str = strides(f.dims);
  const slot = scratch(st.uf.count);
  const labels: number[] = [];
  const counts: number[] = [];
  const none: (Uint8Array | undefined)[] = f.dims.map(() => undefined);
  for (let i = 0; i < n; i++) {
    const l = f.labels[i];
    if (l === NONE) {
      for (let k = 0; k < R; k++) (none[k] ??= new Uint8Array(f.dims[k]))[((i / str[k]) | 0) % f.dims[k]] = 1;
      continue;
    }
    let s = slot[l];
    if (s < 0) { s = slot[l] = labels.length; labels.push(l); counts.push(0); }
    counts[s]++;
  }
  // Positions grouped by label (ascending within a label).
  const L = labels.length;
  const pStart = new Int32Array(L + 1);
  for (let s = 0; s < L; s++) pStart[s + 1] = pStart[s] + counts[s];
  const pos = new Int32Array(pStart[L]);
  const cur = pStart.slice(0, L);
  for (let i = 0; i < n; i++) {
    const l = f.labels[i];
    if (l !== NONE) pos[cur[slot[l]]++] = i;
  }
  for (const l of labels) slot[l] = -1;
  const start: Int32Array[] = [], coords: Int32Array[] = [], firsts: Int32Array[] = [];
  if (R === 2) {
    // The common big field (e.g. [rows, classes]): both coordinates from one division; the row of a label's
    // ascending positions never decreases.
    const d0 = f.dims[0], d1 = f.dims[1];
    const n0 = Math.min(pos.length, L * d0), n1 = Math.min(pos.length, L * d1);
    const c0 = new Int32Array(n0), p0 = new Int32Array(n0), c1 = new Int32Array(n1), p1 = new Int32Array(n1);
    const s0 = new Int32Array(L + 1), s1 = new Int32Array(L + 1);
    const seen = new Int32Array(d1).fill(-1);
    let m0 = 0, m1 = 0;
    for (let s = 0; s < L; s++) {
      let last = -1;
      for (let j = pStart[s]; j < pStart[s + 1]; j++) {
        const p = pos[j];
        const a = (p / d1) | 0;
        const b = p - a * d1;
        if (a !== last) { last = a; c0[m0] = a; p0[m0++] = p; }
        if (seen[b] !== s) { seen[b] = s; c1[m1] = b; p1[m1++] = p; }
      }
      s0[s + 1] = m0;
      s1[s + 1] = m1;
    }
    start.push(s0, s1);
    coords.push(trim(c0, m0), trim(c1, m1));
    firsts.push(trim(p0, m0), trim(p1, m1));
  } else {
    for (let k = 0; k < R; k++) {
      const d = f.dims[k], sk = str[k];
      const cs = new Int32Array(L + 1);
      const size = Math.min(pos.length, L * d);
      const cOut = new Int32Array(size), pOut = new Int32Array(size);
      const seen = new Int32Array(d).fill(-1);
      let m = 0;
      for (let s = 0; s < L; s++) {
        for (let j = pStart[s]; j < pStart[s + 1]; j++) {
          const c = ((pos[j] / sk) | 0) % d;
          if (seen[c] !== s) { seen[c] = s; cOut[m] = c; pOut[m++] = pos[j]; }
        }
        cs[s + 1] = m;
      }
      start.push(cs);
      coords.push(trim(cOut, m));
      firsts.push(trim(pOut, m));
    }
  }
  idx = { labels, counts: Int32Array.from(counts), start, coords, firsts, none, planes: f.dims.map(() => undefined) };
  indexes.set(f, idx);
  return idx;
}

/** The classes of a field now: each as the indices (into idx.labels) of its labels, in order of first position. */
function classesOf(st: State, idx: LabelIndex): { root: number; members: number[] }[] {
  const byRoot = new Map<number, number[]>();
  for (let s = 0; s < idx.labels.length; s++) {
    const r = st.uf.find(idx.labels[s]);
    let list = byRoot.get(r);
    if (!list) byRoot.set(r, (list = []));
    list.push(s);
  }
  return [...byRoot].map(([root, members]) => ({ root, members }));
}

function classSize(idx: LabelIndex, members: number[]): number {
  let size = 0;
  for (const s of members) size += idx.counts[s];
  return size;
}

/** Number of distinct coordinates along axis k of a class, counted up to `limit` + 1 at most. */
function coordCount(f: Field, idx: LabelIndex, members: number[], k: number, limit = Infinity): number {
  const start = idx.start[k];
  if (members.length === 1) return start[members[0] + 1] - start[members[0]];
  const coords = idx.coords[k];
  const { marks, stamp } = stamped(f.dims[k]);
  let m = 0;
  for (const s of members) {
    for (let j = start[s]; j < start[s + 1]; j++) {
      if (marks[coords[j]] !== stamp) {
        marks[coords[j]] = stamp;
        if (++m > limit) return m;
      }
    }
  }
  return m;
}

/** Distinct coordinates along axis k of a class. */
function coordList(f: Field, idx: LabelIndex, members: number[], k: number): number[] {
  const start = idx.start[k], coords = idx.coords[k];
  const { marks, stamp } = stamped(f.dims[k]);
  const out: number[] = [];
  for (const s of members) {
    for (let j = start[s]; j < start[s + 1]; j++) {
      if (marks[coords[j]] !== stamp) { marks[coords[j]] = stamp; out.push(coords[j]); }
    }
  }
  return out;
}

/**
 * Index k of the first axis along which the class is regular (its positions are whole hyperplanes along k:
 * size = coordinates · positions per hyperplane), or -1. A class has at least size / (positions per hyperplane)
 * coordinates along k, so counting stops past that; a class on every position is regular along the first axis.
 */
function regularAxis(f: Field, idx: LabelIndex, members: number[], size: number): number {
  const total = f.labels.length;
  if (size === total) return 0;
  for (let k = 0; k < f.dims.length; k++) {
    const per = total / f.dims[k];
    if (size % per !== 0) continue;
    if (coordCount(f, idx, members, k, size / per) === size / per) return k;
  }
  return -1;
}

function hyperplanes(st: State, f: Field, idx: LabelIndex, k: number): Hyperplanes {
  const known = idx.planes[k];
  if (known) return known;
  const d = f.dims[k], sk = strides(f.dims)[k];
  const src = idx.start[k], coords = idx.coords[k], firsts = idx.firsts[k];
  const E = coords.length;
  const start = new Int32Array(d + 1);
  const labels = new Int32Array(E), first = new Int32Array(E);
  if (k === 0) {
    // Along the outermost axis a hyperplane is a block of positions: read in place (first positions ascending).
    let m = 0;
    for (let c = 0; c < d; c++) {
      const { marks, stamp } = stamped(st.uf.count);
      for (let i = c * sk; i < (c + 1) * sk; i++) {
        const l = f.labels[i];
        if (l !== NONE && marks[l] !== stamp) { marks[l] = stamp; labels[m] = l; first[m++] = i; }
      }
      start[c + 1] = m;
    }
  } else {
    for (let j = 0; j < E; j++) start[coords[j] + 1]++;
    for (let c = 0; c < d; c++) start[c + 1] += start[c];
    const cur = start.slice(0, d);
    for (let s = 0; s < idx.labels.length; s++) {
      for (let j = src[s]; j < src[s + 1]; j++) {
        const at = cur[coords[j]]++;
        labels[at] = idx.labels[s];
        first[at] = firsts[j];
      }
    }
  }
  return (idx.planes[k] = { start, labels, first, united: new Uint8Array(d) });
}

/**
 * Unites every label of the hyperplanes `cs` along axis k, with the same unions in the same order as uniting
 * them position by position in ascending order (so the union-find roots come out as they always did): the
 * label of the first position with the label of each other's first position there, a hyperplane already
 * united by its first label alone. Each hyperplane's labels are read once per regularize.
 */
function extend(st: State, f: Field, h: Hyperplanes, k: number, cs: number[]): void {
  const sk = strides(f.dims)[k];
  const pos: number[] = [], lab: number[] = [];
  for (const c of cs) {
    if (h.united[c]) { pos.push(c * sk); lab.push(f.labels[c * sk]); continue; }
    for (let j = h.start[c]; j < h.start[c + 1]; j++) { pos.push(h.first[j]); lab.push(h.labels[j]); }
  }
  const order = pos.map((_, i) => i).sort((a, b) => pos[a] - pos[b]);
  const first = lab[order[0]];
  for (const i of order) st.uf.union(first, lab[i]);
  for (const c of cs) h.united[c] = 1;
}

/** Grows classes until every class is regular in every field (fixpoint). */
export function regularize(st: State): void {
  const declined = new Set<number>();
  for (let iter = 0; iter < 1000; iter++) {
    let changed = false;
    for (const [name, f] of st.fields) {
      if (f.axes.length < 2) continue;
      const idx = labelIndex(st, f);
      for (const { root, members } of classesOf(st, idx)) {
        if (declined.has(st.uf.find(root))) continue;
        if (regularAxis(f, idx, members, classSize(idx, members)) >= 0) continue;
        // Cheapest extension: all positions whose coordinate along axis k is one of the class's.
        let best = 0, bestSize = Infinity;
        for (let k = 0; k < f.dims.length; k++) {
          const ext = coordCount(f, idx, members, k) * (f.labels.length / f.dims[k]);
          if (ext < bestSize) { best = k; bestSize = ext; }
        }
        const cs = coordList(f, idx, members, best);
        const none = idx.none[best];
        if (none && cs.some((c) => none[c] === 1)) {
          st.decline([root], DECLINE.irregular, undefined, name);
          declined.add(st.uf.find(root));
          continue;
        }
        extend(st, f, hyperplanes(st, f, idx, best), best, cs);
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
    if (f && f.axes.length < 2) {
      // One labeled axis (most tensors): every class lives at its own positions; none (a scalar field): nowhere.
      const uf = this.st.uf;
      for (let i = 0; i < f.labels.length; i++) {
        if (f.labels[i] === NONE) continue;
        const r = uf.find(f.labels[i]);
        const o = m.get(r);
        if (o) o.positions.push(i);
        else m.set(r, f.axes.length ? { axis: f.axes[0], positions: [i] } : { axis: -1, positions: [] });
      }
    } else if (f) {
      const idx = labelIndex(this.st, f);
      for (const { root, members } of classesOf(this.st, idx)) {
        const size = classSize(idx, members);
        const k = regularAxis(f, idx, members, size);
        const positions = k < 0 ? [] : size === f.labels.length ? Array.from({ length: f.dims[0] }, (_, c) => c)
          : coordList(f, idx, members, k).sort((a, b) => a - b);
        m.set(root, { axis: k < 0 ? -1 : f.axes[k], positions });
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

