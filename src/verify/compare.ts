/**
 * Comparing model outputs: max abs / relative difference, cosine similarity, argmax (top-1) agreement along
 * the last axis, and KL divergence of softmax(last axis) for logits.
 */
import { float16ToFloat32 } from '../ir/dtype';
import { logSoftmaxRow } from '../util/softmax';
import type { ort } from '../ort/session';

/** The half-precision rounding tolerance of a tensor (src/verify/rounding.ts halfTolerance). */
export interface HalfRounding {
  /** Half-precision rounding stages on the longest path from the pruned computation. */
  stages: number;
  /** The tolerance used, relative to the scale. */
  rtol: number;
  /** Σ ε over the stages: the worst case when every stage adds a full rounding step. */
  bound: number;
  /** The measured noise floor (max|noisy − masked| / scale), when measured. */
  noiseFloor?: number;
  /** What set rtol: the measured noise floor, one rounding step (ε), the stage bound or the cap. */
  limitedBy: 'noise' | 'epsilon' | 'stages' | 'cap';
}

export interface OutputComparison {
  name: string;
  dims: number[];
  /** max |reference| (the output's scale). */
  scale: number;
  maxAbsDiff: number;
  /** maxAbsDiff / scale (difference relative to the output's scale), or / toleranceScale when that is set. */
  maxRelDiff: number;
  /**
   * The scale verification measures this output's difference against, when larger than `scale`: for the output
   * of a saturating activation, the activation's Lipschitz constant × its input's scale (src/verify/tolerance.ts).
   */
  toleranceScale?: number;
  /**
   * Set when the output is computed in float16/bfloat16 after the pruned nodes and its tolerance was widened
   * beyond rtol for half-precision rounding (src/verify/rounding.ts): the toleranceScale is then widened so that
   * maxRelDiff ≤ rtol still means "within tolerance".
   */
  rounding?: HalfRounding;
  /** For an activation input compared in place of a saturating output: `Op → output`. */
  activationOf?: string;
  /** For a tensor read by a selection (NonMaxSuppression / TopK / NonZero), compared strictly: `Op(node) → outputs`. */
  selectionOf?: string;
  /**
   * For an output behind a selection that did not match by position (src/verify/selection.ts): `set` when it
   * matched as a set of items along `axis` (the numbers are those of the reordered output), `inputs` when it was
   * accepted because the selection's inputs match (its numbers are by position and count in no summary).
   */
  selection?: { comparedAs: 'set' | 'inputs'; ops: string[]; axis?: number; perRow?: boolean };
  /**
   * Elements that are NaN or ±Infinity in both tensors, of the same kind, and expected there (`expected` in
   * compareOutputs: the dense model has the same non-finite value at that element): not compared.
   */
  nonFinite?: number;
  /**
   * Elements that are NaN or ±Infinity in either tensor and not expected there (see `nonFinite`): the tensors
   * differ (maxAbsDiff is Infinity, cosine NaN). `first` is the first such element: its index and the values of
   * both tensors and of the expected one (as strings: NaN, Infinity, -Infinity or the number).
   */
  unexpectedNonFinite?: { count: number; first: { index: number[]; reference: string; test: string; expected?: string } };
  /** Cosine similarity of the finite elements compared; NaN when an element is unexpectedly non-finite. */
  cosine: number;
  /** Fraction of rows (all axes but the last) whose argmax agrees; absent when the last axis has size 1. */
  argmaxAgreement?: number;
  /** Mean KL(softmax(reference) ‖ softmax(test)) over rows, for float outputs with a last axis > 1. */
  kl?: number;
  /** Set when the outputs cannot be compared (different dims or types). */
  mismatch?: string;
}

/** Output data as float64 numbers (float16 decoded, ints and bools cast). */
export function asFloat64(t: ort.Tensor): Float64Array {
  const d = t.data as ArrayLike<number | bigint>;
  const out = new Float64Array(d.length);
  if (t.type === 'float16') for (let i = 0; i < d.length; i++) out[i] = float16ToFloat32(Number(d[i]));
  else for (let i = 0; i < d.length; i++) out[i] = Number(d[i]);
  return out;
}

function argmaxRows(x: Float64Array, last: number): Int32Array {
  const rows = x.length / last;
  const out = new Int32Array(rows);
  for (let r = 0; r < rows; r++) {
    let best = 0;
    for (let j = 1; j < last; j++) if (x[r * last + j] > x[r * last + best]) best = j;
    out[r] = best;
  }
  return out;
}

/** The multi-index of element `flat` of a tensor of `dims` (row-major). */
function unflatten(flat: number, dims: readonly number[]): number[] {
  const out = new Array<number>(dims.length).fill(0);
  let r = flat;
  for (let k = dims.length - 1; k >= 0; k--) {
    const d = Math.max(1, dims[k]);
    out[k] = r % d;
    r = Math.floor(r / d);
  }
  return out;
}

/** Whether `a` and `b` are the same non-finite value (both NaN, both +Infinity or both −Infinity). */
function sameNonFinite(a: number, b: number): boolean {
  return Number.isNaN(a) ? Number.isNaN(b) : !Number.isFinite(a) && a === b;
}

export interface CompareOptions {
  /** Also KL divergence of softmax(last axis), for float outputs. */
  kl?: boolean;
  /**
   * Where non-finite values are expected: the tensor of the same element count whose non-finite elements (NaN,
   * +Infinity, −Infinity) may appear identically in `reference` and `test` (the dense model's, on the same
   * inputs), or `'reference'` when the reference itself is that model's output. Such elements are counted in
   * `nonFinite` and not compared; every other non-finite element makes the tensors differ. Without it, no
   * non-finite value is expected.
   */
  expected?: ort.Tensor | 'reference';
}

export function compareOutputs(name: string, reference: ort.Tensor, test: ort.Tensor, opts: CompareOptions = {}): OutputComparison {
  const dims = reference.dims.slice();
  const base: OutputComparison = { name, dims, scale: 0, maxAbsDiff: Infinity, maxRelDiff: Infinity, cosine: 0 };
  if (reference.dims.join(',') !== test.dims.join(',')) return { ...base, mismatch: `dims [${reference.dims}] vs [${test.dims}]` };
  if (reference.type !== test.type) return { ...base, mismatch: `type ${reference.type} vs ${test.type}` };
  const a = asFloat64(reference);
  const b = asFloat64(test);
  const e = opts.expected === 'reference' ? a : opts.expected && opts.expected.dims.join(',') === reference.dims.join(',') ? asFloat64(opts.expected) : undefined;
  let scale = 0, maxAbs = 0, dot = 0, na = 0, nb = 0;
  let skipped = 0;
  let unexpected = 0, firstBad = -1;
  for (let i = 0; i < a.length; i++) {
    const x = a[i], y = b[i];
    if (!Number.isFinite(x) || !Number.isFinite(y)) {
      if (sameNonFinite(x, y) && e && sameNonFinite(x, e[i])) skipped++;
      else if (unexpected++ === 0) firstBad = i;
      continue;
    }
    scale = Math.max(scale, Math.abs(x));
    maxAbs = Math.max(maxAbs, Math.abs(x - y));
    dot += x * y;
    na += x * x;
    nb += y * y;
  }
  if (unexpected) maxAbs = Infinity;
  const cosine = unexpected ? NaN : na === 0 && nb === 0 ? 1 : na === 0 || nb === 0 ? 0 : dot / Math.sqrt(na * nb);
  const out: OutputComparison = {
    name, dims, scale, maxAbsDiff: maxAbs,
    maxRelDiff: scale > 0 ? maxAbs / scale : maxAbs === 0 ? 0 : Infinity,
    cosine,
  };
  if (skipped) out.nonFinite = skipped;
  if (unexpected) {
    const first: NonNullable<OutputComparison['unexpectedNonFinite']>['first'] = { index: unflatten(firstBad, dims.map(Number)), reference: String(a[firstBad]), test: String(b[firstBad]) };
    if (e) first.expected = String(e[firstBad]);
    out.unexpectedNonFinite = { count: unexpected, first };
    // Agreement and KL of tensors with unexpected NaN / Infinity mean nothing.
    return out;
  }
  const last = dims.length ? dims[dims.length - 1] : 1;
  if (last > 1 && a.length > 0) {
    const ra = argmaxRows(a, last);
    const rb = argmaxRows(b, last);
    let agree = 0;
    for (let r = 0; r < ra.length; r++) if (ra[r] === rb[r]) agree++;
    out.argmaxAgreement = agree / ra.length;
    const isFloat = reference.type === 'float32' || reference.type === 'float16' || reference.type === 'float64';
    if (opts.kl && isFloat) {
      const rows = a.length / last;
      const la = new Float64Array(last), lb = new Float64Array(last);
      let kl = 0;
      for (let r = 0; r < rows; r++) {
        logSoftmaxRow(a, r * last, last, la);
        logSoftmaxRow(b, r * last, last, lb);
        for (let j = 0; j < last; j++) kl += Math.exp(la[j]) * (la[j] - lb[j]);
      }
      out.kl = Math.max(0, kl / rows); // ≥ 0 in exact arithmetic; clamp float rounding
    }
  }
  return out;
}

/** Whether `t` has 2 or more elements and all are equal (NaN equal to NaN): a constant output. */
export function isConstant(t: ort.Tensor): boolean {
  const d = t.type === 'float16' ? asFloat64(t) : (t.data as ArrayLike<number | bigint | boolean>);
  if (d.length < 2) return false;
  const first = d[0];
  const nan = typeof first === 'number' && Number.isNaN(first);
  for (let i = 1; i < d.length; i++) if (d[i] !== first && !(nan && Number.isNaN(d[i] as number))) return false;
  return true;
}
