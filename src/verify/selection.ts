/**
 * Outputs behind selection ops (NonMaxSuppression, TopK, NonZero): detection heads and other data-dependent
 * selections.
 *
 * A selection is discontinuous: two candidates whose scores are tied to within float rounding can be ranked either
 * way, so the pruned and the masked model — which differ by rounding — may list the same detections in another
 * order, or (at a threshold, a k-th place or an IoU limit) select another candidate. Comparing such outputs by
 * position fails correct prunes at some seeds and passes them at others.
 *
 * So for every graph output computed from a selection (the *region*: the selection nodes and every main-graph node
 * downstream of one, back from the output), verification:
 *   - fetches the tensors the region reads from outside it (its *frontier*: the scores, boxes, ... the selections
 *     and the post-processing read; computed tensors only, not constants or graph inputs) and compares them with
 *     the normal strict tolerance (selectionInputs in the report);
 *   - compares the output by position; when that fails, as a set: the items along one axis are matched in any
 *     order within the same tolerance (alignAsSet; `selection-order` in verify.weakened);
 *   - when even the sets differ (other items or another count), accepts the difference only if every frontier
 *     tensor matched strictly and no node of the region is touched by the plan: the region is then the same
 *     computation in both models, applied to inputs that agree within tolerance, so the outputs can only differ
 *     where a selection decision is tied to within that tolerance (`selection-tie` in verify.weakened).
 * A main-graph node whose subgraphs (If / Loop / Scan bodies) contain a selection op counts as a selection.
 */
import type { Model } from '../ir/model';
import type { Node } from '../ir/node';
import type { Graph } from '../ir/graph';
import { implicitInputs } from '../ir/graph';
import { ort } from '../ort/session';
import { asFloat64 } from './compare';

export const SELECTION_OPS = new Set(['NonMaxSuppression', 'TopK', 'NonZero']);

/**
 * Comparisons and boolean logic: a threshold in front of a selection (`scores > t` → NonZero) is a decision of the
 * selection too — a score within rounding of the threshold goes either way — so these ops, when they feed a
 * selection, belong to its region, and the floats they compare are what verification compares strictly.
 */
const DECISION_OPS = new Set(['Greater', 'Less', 'GreaterOrEqual', 'LessOrEqual', 'Equal', 'Not', 'And', 'Or', 'Xor']);

export interface SelectionOutput {
  /** The graph output. */
  output: string;
  /** The selection nodes the output is computed from, as `Op(label)`. */
  ops: string[];
  /** Computed tensors the region behind the output reads from outside it (compared strictly). */
  frontier: string[];
  /** Whether a node of the region is touched by the plan (a pruned group's member). */
  touched: boolean;
}

function isStandard(n: Node): boolean {
  return n.domain === '' || n.domain === 'ai.onnx';
}

/** Whether `n` is a selection op, or holds one in its subgraphs (nested ones too). */
function selects(n: Node): boolean {
  if (isStandard(n) && SELECTION_OPS.has(n.opType)) return true;
  const stack: Graph[] = [...n.subgraphs];
  while (stack.length) {
    const g = stack.pop()!;
    for (const m of g.nodes) {
      if (isStandard(m) && SELECTION_OPS.has(m.opType)) return true;
      stack.push(...m.subgraphs);
    }
  }
  return false;
}

function isTouched(n: Node, touched: Set<string>): boolean {
  return touched.has(n.outputs[0] ?? '') || (!!n.name && touched.has(n.name));
}

/**
 * Graph outputs of `model`'s main graph computed from a selection, with the region's frontier tensors and whether
 * the plan touches the region (`touched`: member node ids, by first output or node name). In graph-output order.
 */
export function selectionOutputs(model: Model, touched: Set<string>): SelectionOutput[] {
  const g = model.graph;
  // The region: selection nodes, the decisions (comparisons, boolean logic) that feed them, and everything
  // downstream of these (consumers include subgraph readers).
  const region = new Set<Node>();
  const stack = g.nodes.filter(selects);
  const decisions: Node[] = [...stack];
  const seenDecision = new Set<Node>();
  while (decisions.length) {
    const n = decisions.pop()!;
    for (const i of n.inputs) {
      const q = i ? g.producer(i) : undefined;
      if (q && isStandard(q) && DECISION_OPS.has(q.opType) && !seenDecision.has(q)) {
        seenDecision.add(q);
        stack.push(q);
        decisions.push(q);
      }
    }
  }
  while (stack.length) {
    const n = stack.pop()!;
    if (region.has(n)) continue;
    region.add(n);
    for (const o of n.outputs) if (o) for (const c of g.consumers(o)) if (!region.has(c)) stack.push(c);
  }
  if (!region.size) return [];
  const out: SelectionOutput[] = [];
  for (const vi of g.outputs) {
    const name = vi.name ?? '';
    const p = g.producer(name);
    if (!p || !region.has(p)) continue;
    const seen = new Set<Node>();
    const frontier: string[] = [];
    const ops: string[] = [];
    let hit = false;
    const todo = [p];
    while (todo.length) {
      const n = todo.pop()!;
      if (seen.has(n)) continue;
      seen.add(n);
      if (selects(n) || seenDecision.has(n)) ops.push(n.name ? `${n.opType}(${n.name})` : n.label);
      if (isTouched(n, touched)) hit = true;
      for (const i of [...n.inputs, ...implicitInputs(n)]) {
        if (!i) continue;
        const q = g.producer(i);
        if (q && region.has(q)) todo.push(q);
        else if (q && !(q.opType === 'Constant' && isStandard(q)) && !g.resolveConstant(i) && !frontier.includes(i)) frontier.push(i);
      }
    }
    out.push({ output: name, ops: ops.reverse(), frontier: frontier.sort(), touched: hit });
  }
  return out;
}

/** The result of alignAsSet: `got` with its items reordered to match the reference. */
export interface SetAlignment {
  tensor: ort.Tensor;
  /** The axis whose items were matched. */
  axis: number;
  /** True when items were matched within each index of the axes before `axis` separately (per row). */
  perRow: boolean;
  /** How many items changed place. */
  moved: number;
}

/** Items larger than this many (per row) are not matched pairwise (quadratic work): no alignment. */
const MAX_PAIRWISE_ITEMS = 4096;

/** Total order on values for sorting: NaN last. */
function order(p: number, q: number): number {
  if (p === q || (Number.isNaN(p) && Number.isNaN(q))) return 0;
  if (Number.isNaN(p)) return 1;
  if (Number.isNaN(q)) return -1;
  return p < q ? -1 : 1;
}

/**
 * A permutation p with |a[i] − b[p[i]]| ≤ tol on every element of every item, or undefined. Items are `count`
 * vectors of `len` values read by `at(side, item, k)`; equal non-finite values match. Both sides are sorted
 * lexicographically first (exact values, e.g. index tuples, match in that one pass); otherwise each reference item
 * takes the closest unused item within tolerance (greedy).
 */
function matchItems(count: number, len: number, at: (side: 0 | 1, item: number, k: number) => number, tol: number): number[] | undefined {
  const lex = (side: 0 | 1) => (x: number, y: number) => {
    for (let k = 0; k < len; k++) {
      const d = order(at(side, x, k), at(side, y, k));
      if (d !== 0) return d;
    }
    return x - y;
  };
  const sa = Array.from({ length: count }, (_, i) => i).sort(lex(0));
  const sb = Array.from({ length: count }, (_, i) => i).sort(lex(1));
  /** max |a_i − b_j| over the item, Infinity as soon as one element is off by more than tol. */
  const dist = (i: number, j: number) => {
    let m = 0;
    for (let k = 0; k < len; k++) {
      const x = at(0, i, k), y = at(1, j, k);
      if (order(x, y) === 0) continue;
      const d = Math.abs(x - y);
      if (!(d <= tol)) return Infinity;
      if (d > m) m = d;
    }
    return m;
  };
  const perm = new Array<number>(count);
  let sorted = true;
  for (let r = 0; r < count && sorted; r++) {
    if (dist(sa[r], sb[r]) <= tol) perm[sa[r]] = sb[r];
    else sorted = false;
  }
  if (sorted) return perm;
  if (count > MAX_PAIRWISE_ITEMS) return undefined;
  const used = new Uint8Array(count);
  for (const i of sa) {
    let best = -1;
    let bestD = Infinity;
    for (const j of sb) {
      if (used[j]) continue;
      const d = dist(i, j);
      if (d < bestD) {
        best = j;
        bestD = d;
      }
    }
    if (best < 0) return undefined;
    used[best] = 1;
    perm[i] = best;
  }
  return perm;
}

/**
 * `got` reordered along one axis so that it matches `ref` element-wise within `tol` (absolute), if such an order
 * exists (found greedily): the comparison of a selection's output as a multiset of items. An item is the slice at
 * one index of the axis — either across all other axes (one order shared by the whole tensor: rows of
 * NonMaxSuppression's selected indices, boxes [K, 4], NonZero's index columns) or, per row, the block of the
 * axes after it (TopK along the last axis of [batch, k], each row in its own order). Axes are tried from the
 * first; undefined when the dims or types differ, the tensor is empty, or no order matches.
 */
export function alignAsSet(ref: ort.Tensor, got: ort.Tensor, tol: number): SetAlignment | undefined {
  const dims = ref.dims.map(Number);
  if (ref.type !== got.type || dims.join(',') !== got.dims.map(Number).join(',')) return undefined;
  const a = asFloat64(ref);
  const b = asFloat64(got);
  if (a.length === 0) return undefined;
  for (let axis = 0; axis < dims.length; axis++) {
    const n = dims[axis];
    if (n < 2) continue;
    const lead = dims.slice(0, axis).reduce((x, y) => x * y, 1);
    const trail = dims.slice(axis + 1).reduce((x, y) => x * y, 1);
    for (const perRow of axis === 0 ? [false] : [false, true]) {
      const rows = perRow ? lead : 1;
      const len = perRow ? trail : lead * trail;
      // Flat offset of element k of item i (in row `row` when perRow).
      const offset = (row: number, item: number, k: number) => (perRow
        ? (row * n + item) * trail + k
        : (Math.floor(k / trail) * n + item) * trail + (k % trail));
      const perms: number[][] = [];
      for (let row = 0; row < rows; row++) {
        const perm = matchItems(n, len, (side, item, k) => (side === 0 ? a : b)[offset(row, item, k)], tol);
        if (!perm) break;
        perms.push(perm);
      }
      if (perms.length < rows) continue;
      const src = got.data as unknown as { length: number; [i: number]: number | bigint };
      const data = new (src.constructor as new (n: number) => typeof src)(src.length);
      let moved = 0;
      perms.forEach((perm, row) => {
        for (let i = 0; i < n; i++) {
          if (perm[i] !== i) moved++;
          for (let k = 0; k < len; k++) data[offset(row, i, k)] = src[offset(row, perm[i], k)];
        }
      });
      const tensor = new ort.Tensor(got.type as 'float32', data as unknown as Float32Array, dims);
      return { tensor, axis, perRow, moved };
    }
  }
  return undefined;
}
