/** Shape rules for contractions and reductions: MatMul, Gemm, Einsum, Reduce*, ArgMax/ArgMin, Det. */
import { DataType } from '../dtype';
import { type Rule, type RuleCtx, normAxis } from './context';
import { axesOf } from './ops-tensor';
import { type Dim, type Shape, addDim, broadcastShapes, maxDim, minDim, mulDim } from './sym';
import { reduceValue } from './values';

/** numpy.matmul output shape (1-D operands promoted and the added dim removed again). */
export function matmulShape(a: Shape | undefined, b: Shape | undefined): Shape | undefined {
  if (!a || !b || a.length === 0 || b.length === 0) return undefined;
  const A = a.length === 1 ? [1, a[0]] : a;
  const B = b.length === 1 ? [b[0], 1] : b;
  const batch = broadcastShapes([A.slice(0, -2), B.slice(0, -2)]);
  if (!batch) return undefined;
  const out: Shape = [...batch];
  if (a.length !== 1) out.push(A[A.length - 2]);
  if (b.length !== 1) out.push(B[B.length - 1]);
  return out;
}

function matmulLike(aIdx: number, bIdx: number, outType?: (c: RuleCtx) => number | undefined): Rule {
  return (c) => c.out(0, outType ? outType(c) : c.dtype(aIdx), matmulShape(c.shape(aIdx), c.shape(bIdx)));
}

const gemm: Rule = (c) => {
  const a = c.shape(0);
  const b = c.shape(1);
  const m = a && a.length === 2 ? (c.attrInt('transA', 0) ? a[1] : a[0]) : undefined;
  const n = b && b.length === 2 ? (c.attrInt('transB', 0) ? b[0] : b[1]) : undefined;
  c.out(0, c.dtype(0), [m, n]);
};

export interface EinsumTerm {
  /** Letters in order; '.' marks where the ellipsis sits (at most once). */
  letters: string[];
}

/** Parses an einsum equation into input terms and the output term (implicit output made explicit). */
export function parseEinsum(eq: string): { inputs: EinsumTerm[]; output: EinsumTerm } | undefined {
  const clean = eq.replace(/\s+/g, '');
  const [lhs, rhs] = clean.split('->');
  const termOf = (t: string): EinsumTerm | undefined => {
    const letters: string[] = [];
    for (let i = 0; i < t.length; i++) {
      if (t.startsWith('...', i)) {
        if (letters.includes('.')) return undefined;
        letters.push('.');
        i += 2;
      } else if (/[A-Za-z]/.test(t[i])) letters.push(t[i]);
      else return undefined;
    }
    return { letters };
  };
  const inputs = lhs.split(',').map(termOf);
  if (inputs.some((t) => !t)) return undefined;
  let output: EinsumTerm | undefined;
  if (rhs !== undefined) output = termOf(rhs);
  else {
    const count = new Map<string, number>();
    for (const t of inputs) for (const l of t!.letters) count.set(l, (count.get(l) ?? 0) + 1);
    const once = [...count.entries()].filter(([l, k]) => k === 1 && l !== '.').map(([l]) => l).sort();
    output = { letters: [...(count.has('.') ? ['.'] : []), ...once] };
  }
  if (!output) return undefined;
  return { inputs: inputs as EinsumTerm[], output };
}

/** Size of every einsum letter (and the broadcast ellipsis dims), from the operand shapes. */
export function einsumDims(terms: EinsumTerm[], shapes: (Shape | undefined)[]): { letter: Map<string, Dim>; ellipsis: Shape } | undefined {
  const letter = new Map<string, Dim>();
  const ells: Shape[] = [];
  for (let k = 0; k < terms.length; k++) {
    const s = shapes[k];
    if (!s) return undefined;
    const t = terms[k].letters;
    const named = t.filter((l) => l !== '.').length;
    const ellRank = s.length - named;
    if (ellRank < 0 || (ellRank > 0 && !t.includes('.'))) return undefined;
    let p = 0;
    for (const l of t) {
      if (l === '.') {
        ells.push(s.slice(p, p + ellRank));
        p += ellRank;
        continue;
      }
      const d = s[p++];
      const prev = letter.get(l);
      // Keep the most informative size: a dim ≠ 1 beats 1 (broadcast), a number beats a symbol or unknown.
      if (prev === undefined || prev === 1) letter.set(l, d ?? prev);
      else if (typeof prev !== 'number' && typeof d === 'number' && d !== 1) letter.set(l, d);
    }
  }
  const ellipsis = broadcastShapes(ells) ?? [];
  return { letter, ellipsis };
}

const einsum: Rule = (c) => {
  const parsed = parseEinsum(c.node.attrString('equation', ''));
  const shapes = Array.from({ length: c.nIn }, (_, i) => c.shape(i));
  if (!parsed || parsed.inputs.length !== c.nIn) return c.out(0, c.dtype(0));
  const dims = einsumDims(parsed.inputs, shapes);
  if (!dims) {
    if (!parsed.output.letters.includes('.')) return c.out(0, c.dtype(0), parsed.output.letters.map(() => undefined));
    return c.out(0, c.dtype(0));
  }
  const out: Shape = [];
  for (const l of parsed.output.letters) {
    if (l === '.') out.push(...dims.ellipsis);
    else out.push(dims.letter.get(l));
  }
  c.out(0, c.dtype(0), out);
};

/** ReduceX: `fold` combines two elements when the value is tracked (ReduceSum / Prod / Max / Min). */
function reduce(axesInputSince: number, fold?: (a: Dim, b: Dim) => Dim): Rule {
  return (c) => {
    const x = c.shape(0);
    const dtype = c.dtype(0);
    const keep = c.attrInt('keepdims', 1) === 1;
    const axes = axesOf(c, 1, axesInputSince);
    if (!x) return c.out(0, dtype);
    if (axes === 'unknown') return c.out(0, dtype, keep ? x.map(() => undefined) : undefined);
    const r = x.length;
    let red: number[];
    if (!axes || axes.length === 0) {
      if (c.opset >= axesInputSince && c.attrInt('noop_with_empty_axes', 0) === 1) {
        return c.out(0, dtype, x, c.value(0));
      }
      red = x.map((_, i) => i);
    } else {
      const n = axes.map((a) => normAxis(a, r));
      if (n.some((a) => a === undefined)) return c.out(0, dtype);
      red = [...new Set(n as number[])].sort((p, q) => p - q);
    }
    const set = new Set(red);
    const out = keep ? x.map((d, i) => (set.has(i) ? 1 : d)) : x.filter((_, i) => !set.has(i));
    const v = c.value(0);
    c.out(0, dtype, out, v && fold && v.dims.length === r ? reduceValue(v, red, keep, fold) : undefined);
  };
}

const argReduce: Rule = (c) => {
  const x = c.shape(0);
  if (!x) return c.out(0, DataType.INT64);
  const a = normAxis(c.attrInt('axis', 0), x.length);
  const keep = c.attrInt('keepdims', 1) === 1;
  c.out(0, DataType.INT64, keep ? x.map((d, i) => (i === a ? 1 : d)) : x.filter((_, i) => i !== a));
};

/** The shape rules of contractions and reductions, by behaviour (src/ir/ops names the rule of each op). */
export const MATH_SHAPES = {
  matmul: matmulLike(0, 1),
  matmulInteger: matmulLike(0, 1, () => DataType.INT32),
  qlinearMatmul: matmulLike(0, 3, (c) => c.dtype(7) ?? c.dtype(0)),
  gemm,
  einsum,
  /** ReduceSum took `axes` as an input from opset 13, the other reductions from opset 18. */
  reduceSum: reduce(13, addDim),
  reduceProd: reduce(18, mulDim),
  reduceMax: reduce(18, maxDim),
  reduceMin: reduce(18, minDim),
  /** Reductions whose value is not tracked (ReduceMean, ReduceL1, ReduceL2, ReduceLogSum, ReduceLogSumExp, ReduceSumSquare). */
  reduce: reduce(18),
  argReduce,
  det: ((c) => c.out(0, c.dtype(0), c.shape(0)?.slice(0, -2))) as Rule,
} satisfies Record<string, Rule>;
