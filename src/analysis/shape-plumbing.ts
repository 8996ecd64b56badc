/**
 * Shape plumbing: small tensors computed only from `Shape` outputs and constants (the Shape→Gather→Concat
 * subgraphs exporters emit for Reshape/Expand/Slice). Each element is an expression DAG whose leaves are
 * tensor dims (`Dim`) or elements of stored constants (`Const`, identified by the node/input that reads them),
 * so that group analysis can ask: after pruning k units, what does this element evaluate to, and which
 * constant has to change to make it right?
 *
 * Plumbing tensors are recognized by construction, never by name: a tensor is plumbing when its producer is a
 * supported op, every input is plumbing or a small stored constant, and it has at most MAX_ELEMS elements.
 */
import { numel, strides } from '../ir/dims';
import type { Graph } from '../ir/graph';
import type { Node } from '../ir/node';
import { DataType } from '../ir/dtype';
import { ConstTensor } from '../ir/tensor';
import { sliceBounds } from '../ir/shapes/ops-tensor';

export const MAX_ELEMS = 64;

export interface ConstLeaf {
  k: 'const';
  /** Stored constant (initializer or Constant-node output, Identity resolved). */
  tensor: string;
  /** The node reading it (first output name) and the input slot. */
  node: string;
  input: number;
  position: number;
  value: number;
}
export interface DimLeaf { k: 'dim'; tensor: string; axis: number; value: number }
/** A value that no rewrite can change (attribute constants, Shape of plumbing tensors). */
export interface FixedLeaf { k: 'fixed'; value: number }
/**
 * An input slot of a Concat, or a computed one-element integer input of an elementwise op, so that one consumer's
 * copy of a value can be overridden (set to −1 in a Reshape target, or pinned to its original value).
 */
export interface SlotExpr { k: 'slot'; node: string; input: number; position: number; arg: Expr; value: number; elems: number }
export interface OpExpr { k: 'op'; op: string; args: Expr[]; value: number; int: boolean }
export type Expr = ConstLeaf | DimLeaf | FixedLeaf | SlotExpr | OpExpr;

export interface PlumbValue {
  dims: number[];
  elems: Expr[];
  int: boolean;
}

export interface Env {
  dim?(tensor: string, axis: number): number | undefined;
  leaf?(leaf: ConstLeaf): number | undefined;
  slot?(slot: SlotExpr): number | undefined;
}

const INT_TYPES = new Set<number>([DataType.INT64, DataType.INT32, DataType.INT16, DataType.INT8, DataType.UINT8, DataType.UINT16, DataType.UINT32, DataType.UINT64, DataType.BOOL]);

function scalarOp(op: string, a: number[], int: boolean): number {
  const [x, y, z] = a;
  switch (op) {
    case 'Add': return x + y;
    case 'Sub': return x - y;
    case 'Mul': return x * y;
    case 'Div': return int ? (y === 0 ? NaN : Math.trunc(x / y)) : x / y;
    case 'Mod': return y === 0 ? NaN : ((x % y) + y) % y;
    case 'Neg': return -x;
    case 'Abs': return Math.abs(x);
    case 'Min': return Math.min(...a);
    case 'Max': return Math.max(...a);
    case 'Equal': return x === y ? 1 : 0;
    case 'Less': return x < y ? 1 : 0;
    case 'Greater': return x > y ? 1 : 0;
    case 'LessOrEqual': return x <= y ? 1 : 0;
    case 'GreaterOrEqual': return x >= y ? 1 : 0;
    case 'Not': return x ? 0 : 1;
    case 'And': return x && y ? 1 : 0;
    case 'Or': return x || y ? 1 : 0;
    case 'Where': return x ? y : z;
    case 'Sqrt': return Math.sqrt(x);
    case 'Floor': return Math.floor(x);
    case 'Ceil': return Math.ceil(x);
    case 'Reciprocal': return 1 / x;
    case 'Pow': return x ** y;
    case 'CastInt': return Math.trunc(x);
    case 'CastBool': return x ? 1 : 0;
    case 'Id': return x;
    default: return NaN;
  }
}

const ELEMENTWISE = new Set(['Add', 'Sub', 'Mul', 'Div', 'Mod', 'Neg', 'Abs', 'Min', 'Max', 'Equal', 'Less', 'Greater', 'LessOrEqual', 'GreaterOrEqual', 'Not', 'And', 'Or', 'Where', 'Sqrt', 'Floor', 'Ceil', 'Reciprocal', 'Pow']);
const BOOL_OUT = new Set(['Equal', 'Less', 'Greater', 'LessOrEqual', 'GreaterOrEqual', 'Not', 'And', 'Or']);

/** Evaluates an expression under an environment (leaves not overridden keep their values). */
export function evaluate(e: Expr, env: Env, memo = new Map<Expr, number>()): number {
  const stack: Expr[] = [e];
  while (stack.length) {
    const cur = stack[stack.length - 1];
    if (memo.has(cur)) { stack.pop(); continue; }
    switch (cur.k) {
      case 'const': memo.set(cur, env.leaf?.(cur) ?? cur.value); stack.pop(); break;
      case 'dim': memo.set(cur, env.dim?.(cur.tensor, cur.axis) ?? cur.value); stack.pop(); break;
      case 'fixed': memo.set(cur, cur.value); stack.pop(); break;
      case 'slot': {
        const o = env.slot?.(cur);
        if (o !== undefined) { memo.set(cur, o); stack.pop(); break; }
        if (!memo.has(cur.arg)) { stack.push(cur.arg); break; }
        memo.set(cur, memo.get(cur.arg)!);
        stack.pop();
        break;
      }
      case 'op': {
        const missing = cur.args.filter((a) => !memo.has(a));
        if (missing.length) { stack.push(...missing); break; }
        memo.set(cur, scalarOp(cur.op, cur.args.map((a) => memo.get(a)!), cur.int));
        stack.pop();
        break;
      }
    }
  }
  return memo.get(e)!;
}

/** Leaves of an expression DAG (each once). */
export function leaves(e: Expr): (ConstLeaf | DimLeaf | SlotExpr)[] {
  const out: (ConstLeaf | DimLeaf | SlotExpr)[] = [];
  const seen = new Set<Expr>();
  const stack = [e];
  while (stack.length) {
    const cur = stack.pop()!;
    if (seen.has(cur)) continue;
    seen.add(cur);
    if (cur.k === 'const' || cur.k === 'dim') out.push(cur);
    else if (cur.k === 'slot') { out.push(cur); stack.push(cur.arg); } else if (cur.k === 'op') stack.push(...cur.args);
  }
  return out;
}

function bcastIndex(outDims: number[], inDims: number[], flat: number): number {
  // Index into a right-aligned broadcast input for output flat index.
  let rem = flat;
  let idx = 0;
  let mul = 1;
  for (let i = outDims.length - 1, j = inDims.length - 1; i >= 0; i--, j--) {
    const c = rem % outDims[i];
    rem = Math.floor(rem / outDims[i]);
    if (j >= 0) {
      if (inDims[j] !== 1) idx += c * mul;
      mul *= inDims[j];
    }
  }
  return idx;
}

function broadcastDims(all: number[][]): number[] | undefined {
  const r = Math.max(...all.map((d) => d.length));
  const out = new Array<number>(r).fill(1);
  for (const d of all) {
    for (let i = 0; i < d.length; i++) {
      const o = r - d.length + i;
      if (d[i] === 1) continue;
      if (out[o] !== 1 && out[o] !== d[i]) return undefined;
      out[o] = d[i];
    }
  }
  return out;
}

/**
 * Computes plumbing values for a graph given concrete tensor shapes. `shapes` gives the (concrete) shape of
 * every data tensor that a Shape node reads.
 */
export class Plumbing {
  readonly values = new Map<string, PlumbValue>();

  constructor(private graph: Graph, private shapes: Map<string, number[]>, order: Node[]) {
    for (const n of order) {
      try {
        this.visit(n);
      } catch {
        // An op we cannot evaluate is simply not plumbing.
      }
    }
  }

  get(name: string): PlumbValue | undefined {
    return this.values.get(name) ?? this.constValue(name);
  }

  /** Concrete values of a plumbing tensor (or small constant), or undefined. */
  numbers(name: string): number[] | undefined {
    const v = this.get(name);
    if (!v) return undefined;
    const memo = new Map<Expr, number>();
    return v.elems.map((e) => evaluate(e, {}, memo));
  }

  private constCache = new Map<string, PlumbValue | null>();

  /** A stored constant as plumbing (leaves read by `reader`/`input`), when small. */
  private constValue(name: string, reader?: Node, input?: number): PlumbValue | undefined {
    const g = this.graph;
    const resolved = g.resolveIdentity(name);
    const t = g.constant(resolved);
    if (!t || t.size > MAX_ELEMS) return undefined;
    const key = `${resolved}|${reader?.outputs[0] ?? ''}|${input ?? -1}`;
    const c = this.constCache.get(key);
    if (c !== undefined) return c ?? undefined;
    let nums: number[];
    try {
      nums = t.toNumbers();
    } catch {
      this.constCache.set(key, null);
      return undefined;
    }
    const isInt = INT_TYPES.has(t.dtype);
    const elems: Expr[] = nums.map((value, position) =>
      reader ? { k: 'const', tensor: resolved, node: reader.outputs[0], input: input!, position, value: bigSafe(t, position, value) } : { k: 'fixed', value: bigSafe(t, position, value) });
    const v = { dims: t.dims, elems, int: isInt };
    this.constCache.set(key, v);
    return v;
  }

  /** Plumbing value of input `i` of node `n` (stored constants become leaves read by n). */
  input(n: Node, i: number): PlumbValue | undefined {
    const name = n.inputs[i];
    if (!name) return undefined;
    return this.values.get(name) ?? this.constValue(name, n, i);
  }

  private set(n: Node, v: PlumbValue, out = 0) {
    if (numel(v.dims) > MAX_ELEMS || v.elems.length !== numel(v.dims)) return;
    this.values.set(n.outputs[out], v);
  }

  private visit(n: Node): void {
    if (n.domain !== '' && n.domain !== 'ai.onnx') return;
    const op = n.opType;
    if (op === 'Shape') {
      const s = this.shapes.get(n.inputs[0]);
      if (!s) return;
      const r = s.length;
      let start = n.attrInt('start', 0);
      let end = n.attrInt('end', r);
      if (start < 0) start += r;
      if (end < 0) end += r;
      start = Math.max(0, Math.min(r, start));
      end = Math.max(start, Math.min(r, end));
      const isPlumb = this.values.has(n.inputs[0]);
      const elems: Expr[] = [];
      for (let a = start; a < end; a++) elems.push(isPlumb ? { k: 'fixed', value: s[a] } : { k: 'dim', tensor: n.inputs[0], axis: a, value: s[a] });
      this.set(n, { dims: [elems.length], elems, int: true });
      return;
    }
    if (op === 'Size') {
      const s = this.shapes.get(n.inputs[0]);
      if (!s) return;
      const elems: Expr[] = s.map((value, axis) => ({ k: 'dim', tensor: n.inputs[0], axis, value }) as Expr);
      const e = elems.reduce((a, b) => ({ k: 'op', op: 'Mul', args: [a, b], value: a.value * b.value, int: true }) as Expr, { k: 'fixed', value: 1 } as Expr);
      this.set(n, { dims: [], elems: [e], int: true });
      return;
    }
    if (op === 'Constant') return; // read through constValue
    const ins: (PlumbValue | undefined)[] = n.inputs.map((_, i) => this.input(n, i));
    const needAll = (k: number) => ins.slice(0, k).every((v) => v !== undefined);
    const mk = (opName: string, args: Expr[], int: boolean): Expr => {
      const memo = new Map<Expr, number>();
      const value = scalarOp(opName, args.map((a) => evaluate(a, {}, memo)), int);
      return { k: 'op', op: opName, args, value, int };
    };
    switch (op) {
      case 'Identity':
        if (ins[0]) this.set(n, ins[0]);
        return;
      case 'Cast': {
        if (!ins[0]) return;
        const to = n.attrInt('to', 0);
        const int = INT_TYPES.has(to);
        const conv = to === DataType.BOOL ? 'CastBool' : int && !ins[0].int ? 'CastInt' : 'Id';
        this.set(n, { dims: ins[0].dims, elems: conv === 'Id' ? ins[0].elems : ins[0].elems.map((e) => mk(conv, [e], int)), int });
        return;
      }
      case 'Unsqueeze': case 'Squeeze': case 'Reshape': case 'Flatten': {
        if (!ins[0]) return;
        const s = this.shapes.get(n.outputs[0]);
        if (!s || numel(s) !== ins[0].elems.length) return;
        this.set(n, { dims: s, elems: ins[0].elems, int: ins[0].int });
        return;
      }
      case 'Concat': {
        if (!ins.every((v) => v)) return;
        const vals = ins as PlumbValue[];
        if (!vals.every((v) => v.dims.length === 1)) return;
        const elems: Expr[] = [];
        vals.forEach((v, i) => v.elems.forEach((e, position) => elems.push({ k: 'slot', node: n.outputs[0], input: i, position, arg: e, value: e.value, elems: v.elems.length })));
        this.set(n, { dims: [elems.length], elems, int: vals.every((v) => v.int) });
        return;
      }
      case 'Gather': {
        if (!needAll(2)) return;
        const [data, idx] = ins as PlumbValue[];
        if (data.dims.length !== 1) return;
        const memo = new Map<Expr, number>();
        const picks = idx.elems.map((e) => {
          let v = evaluate(e, {}, memo);
          if (v < 0) v += data.dims[0];
          return v;
        });
        if (picks.some((p) => !(p >= 0 && p < data.dims[0]))) return;
        this.set(n, { dims: idx.dims, elems: picks.map((p) => data.elems[p]), int: data.int });
        return;
      }
      case 'Slice': {
        // Any rank (torch's F.pad flips its pads as Reshape(-1, 2) → Slice(step −1) → Transpose → Reshape).
        if (!ins[0]) return;
        const num = (i: number) => (ins[i] ? ins[i]!.elems.map((e) => evaluate(e, {})) : undefined);
        const starts = num(1), ends = num(2);
        if (!starts || !ends) return;
        const dims = ins[0].dims;
        const R = dims.length;
        const axes = (num(3) ?? starts.map((_, i) => i)).map((x) => (x < 0 ? x + R : x));
        const steps = num(4) ?? starts.map(() => 1);
        const sel = dims.map((d) => Array.from({ length: d }, (_, i) => i));
        axes.forEach((ax, j) => { if (ax >= 0 && ax < R) sel[ax] = sliceIndices(dims[ax], starts[j], ends[j], steps[j]); });
        this.set(n, { dims: sel.map((l) => l.length), elems: gatherGrid(ins[0].elems, dims, sel), int: ins[0].int });
        return;
      }
      case 'Transpose': {
        if (!ins[0]) return;
        const dims = ins[0].dims;
        const perm = n.attrInts('perm') ?? dims.map((_, i) => dims.length - 1 - i);
        const od = perm.map((p) => dims[p]);
        const ist = strides(dims);
        const elems: Expr[] = [];
        for (let f = 0; f < numel(od); f++) {
          let rem = f, off = 0;
          for (let k = od.length - 1; k >= 0; k--) { off += (rem % od[k]) * ist[perm[k]]; rem = Math.floor(rem / od[k]); }
          elems.push(ins[0].elems[off]);
        }
        this.set(n, { dims: od, elems, int: ins[0].int });
        return;
      }
      case 'ConstantOfShape': {
        if (!ins[0]) return;
        const dims = ins[0].elems.map((e) => evaluate(e, {}));
        if (numel(dims) > MAX_ELEMS) return;
        const t = n.attrTensor('value');
        let value = 0;
        let int = false;
        if (t) {
          const ct = new ConstTensor(t);
          value = ct.toNumbers()[0] ?? 0;
          int = INT_TYPES.has(ct.dtype);
        }
        this.set(n, { dims, elems: new Array(numel(dims)).fill(0).map(() => ({ k: 'fixed', value }) as Expr), int });
        return;
      }
      case 'Range': {
        if (!needAll(3)) return;
        const [s, l, dl] = (ins as PlumbValue[]).map((v) => v.elems[0]);
        const sv = evaluate(s, {}), lv = evaluate(l, {}), dv = evaluate(dl, {});
        const cnt = Math.max(0, Math.ceil((lv - sv) / dv));
        if (!(cnt <= MAX_ELEMS)) return;
        const int = ins[0]!.int;
        const elems: Expr[] = [];
        for (let i = 0; i < cnt; i++) elems.push(mk('Add', [s, mk('Mul', [dl, { k: 'fixed', value: i }], int)], int));
        this.set(n, { dims: [cnt], elems, int });
        return;
      }
      case 'Expand': case 'Tile': {
        if (!needAll(2)) return;
        const s = this.shapes.get(n.outputs[0]);
        if (!s || numel(s) > MAX_ELEMS) return;
        const src = ins[0]!;
        if (op === 'Expand') {
          const elems = new Array(numel(s)).fill(0).map((_, f) => src.elems[bcastIndex(s, src.dims, f)]);
          this.set(n, { dims: s, elems, int: src.int });
        } else if (src.dims.length === 1) {
          const elems = new Array(numel(s)).fill(0).map((_, f) => src.elems[f % src.dims[0]]);
          this.set(n, { dims: s, elems, int: src.int });
        }
        return;
      }
      default: break;
    }
    if (ELEMENTWISE.has(op)) {
      if (!ins.every((v) => v)) return;
      const vals = ins as PlumbValue[];
      const dims = broadcastDims(vals.map((v) => v.dims));
      if (!dims || numel(dims) > MAX_ELEMS) return;
      const int = BOOL_OUT.has(op) || (op === 'Where' ? vals[1].int && vals[2].int : vals.every((v) => v.int));
      // A computed one-element integer input is a slot: one reader's copy of it can be pinned to a constant (a
      // head size computed from a pruned hidden size, say, that must keep its value).
      const args = vals.map((v, i) => (v.elems.length === 1 && v.int && this.values.has(n.inputs[i])
        ? [{ k: 'slot', node: n.outputs[0], input: i, position: 0, arg: v.elems[0], value: v.elems[0].value, elems: 1 } as Expr] : v.elems));
      const elems: Expr[] = [];
      for (let f = 0; f < numel(dims); f++) elems.push(mk(op, vals.map((v, i) => args[i][bcastIndex(dims, v.dims, f)]), int));
      this.set(n, { dims, elems, int });
    }
  }
}

/** int64 sentinels (INT64_MAX/MIN) do not fit a double exactly; keep them as +-Infinity-like big numbers. */
function bigSafe(t: ConstTensor, position: number, value: number): number {
  if (t.dtype !== DataType.INT64) return value;
  if (Math.abs(value) < 2 ** 53) return value;
  const v = (t.data() as BigInt64Array)[position];
  return v > 0n ? Number.MAX_SAFE_INTEGER : -Number.MAX_SAFE_INTEGER;
}

/** The elements at the cross product of per-axis position lists (row-major). */
function gatherGrid<T>(elems: T[], dims: number[], sel: number[][]): T[] {
  const st = strides(dims);
  let offs = [0];
  sel.forEach((l, a) => { offs = offs.flatMap((o) => l.map((i) => o + i * st[a])); });
  return offs.map((o) => elems[o]);
}

/** Positions selected by a 1-D slice (ONNX semantics: negative and out-of-range bounds clamp). */
export function sliceIndices(dim: number, start: number, end: number, step: number): number[] {
  const [s, e] = effectiveBounds(dim, start, end, step);
  const out: number[] = [];
  if (step > 0) for (let i = s; i < e; i += step) out.push(i);
  else for (let i = s; i > e; i += step) out.push(i);
  return out;
}

/** Effective (normalized, clamped) start and end of a slice: slice bounds clamped as the ONNX spec says (shared with shape inference). */
export const effectiveBounds = sliceBounds;

