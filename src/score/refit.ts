/**
 * Local reconstruction of a consumer layer after some of its input units are removed, from calibration
 * statistics of its input only (no gradients): reference notes section 4 (/work/shared/docs/
 * search-reconstruction-reference.md), formulas 2–4.
 *
 * Shapes. W is the consumer's weight as a d_out × d_in matrix, row-major (layout 'out-in': Gemm with transB=1,
 * a Conv kernel [C_out, C_in, kh, kw] flattened to C_out × (C_in·kh·kw)), or its transpose (layout 'in-out':
 * MatMul's B, Gemm with transB=0). H = XᵀX (d_in × d_in, float64, any positive scale) is the Gram of the input
 * rows x (for a Conv: im2col patches, columns ordered (c, ky, kx) as the kernel's flattening), Σx the column sums
 * and N the row count. A *unit* (a channel, a head, a neuron) is a list of input columns: a Conv channel is a
 * block of kh·kw columns, a head head_dim columns; units may be scattered (any disjoint column lists).
 *
 * Conventions shared by every function here:
 * - Dead columns (H_jj ≤ 0: the input is zero on all calibration data) are decoupled from the others (their row
 *   and column of H zeroed, H_jj = 1) and, unless `zeroDead: false`, their weights are zeroed (reference §4). They
 *   are reported in `deadColumns`.
 * - Damping: δ = λ·mean(diag H over the live columns) is added to the diagonal (λ = 0.01 by default). A
 *   numerically singular H (e.g. duplicate input columns with λ = 0) is factored again with λ ← max(10λ, 1e-8)
 *   until it works; the λ and δ used and the number of retries are reported.
 * - With damping the refit minimises ‖X·W_denseᵀ − X_K·W_Kᵀ‖² + δ·‖W_K − W_dense,K‖²: a ridge towards the dense
 *   weights (λ = 0 gives the plain least squares).
 * - Results are float64, in the caller's layout; removed columns are exactly zero.
 */
import { addProductRows, axpy, choleskyInPlace, dot, choleskySolve, dampedCholesky, inverseFromCholesky } from '../util/linalg';

export type WeightLayout = 'out-in' | 'in-out';

export type Matrix = Float32Array | Float64Array;

export interface RefitOptions {
  /** Relative damping λ (default 0.01). */
  lambda?: number;
  /** Layout of W in and out (default 'out-in': d_out × d_in). */
  layout?: WeightLayout;
  /** Zero the weights of dead input columns (default true). */
  zeroDead?: boolean;
  /** Damping retries before giving up (default 12). */
  maxRetries?: number;
}

export interface RefitResult {
  /** The refit weight, in the input layout; removed columns are zero. */
  W: Float64Array;
  /** λ used (larger than asked when H was numerically singular). */
  lambda: number;
  /** δ = λ·mean live diag(H) added to the diagonal. */
  damping: number;
  /** Failed factorizations before the one used (0 normally). */
  retries: number;
  /** Input columns with H_jj ≤ 0, ascending. */
  deadColumns: number[];
}

export interface AffineRefitOptions extends RefitOptions {
  /** Keep the kept weights as they are and refit the bias alone (FLAP's compensation b += W_J·μ_J). */
  keepWeights?: boolean;
}

export interface AffineRefitResult extends RefitResult {
  /** New bias − old bias (old bias 0 when the consumer had none), one per output. */
  biasDelta: Float64Array;
}

// ---------------------------------------------------------------------------------------------------------
// Units

/** `count` units of `block` consecutive columns each, starting at column `offset`: unit u = [offset + u·block, …). */
export function blockUnits(count: number, block: number, offset = 0): number[][] {
  return Array.from({ length: count }, (_, u) => Array.from({ length: block }, (_, t) => offset + u * block + t));
}

/** The columns of the selected units, ascending. */
export function unitColumns(units: number[][], selected: Iterable<number>): number[] {
  const out: number[] = [];
  for (const u of selected) {
    if (!units[u]) throw new RangeError(`unit ${u} out of range (${units.length} units)`);
    out.push(...units[u]);
  }
  return out.sort((a, b) => a - b);
}

// ---------------------------------------------------------------------------------------------------------
// Shared helpers

function checkShapes(what: string, W: Matrix, dOut: number, dIn: number, H: Matrix): void {
  if (!(Number.isInteger(dOut) && dOut > 0 && Number.isInteger(dIn) && dIn > 0)) throw new RangeError(`${what}: bad shape ${dOut}×${dIn}`);
  if (W.length !== dOut * dIn) throw new RangeError(`${what}: W has ${W.length} values, expected ${dOut}×${dIn}`);
  if (H.length !== dIn * dIn) throw new RangeError(`${what}: H has ${H.length} values, expected ${dIn}×${dIn}`);
}

/** W as a float64 d_in × d_out matrix (row j = the weights of input column j). */
function toInOut(W: Matrix, dOut: number, dIn: number, layout: WeightLayout, rows = dIn): Float64Array {
  const t = new Float64Array(rows * dOut);
  if (layout === 'in-out') t.set(W);
  else for (let o = 0; o < dOut; o++) for (let j = 0; j < dIn; j++) t[j * dOut + o] = W[o * dIn + j];
  return t;
}

/** The first dIn rows of a d_in × d_out matrix, back in `layout`. */
function fromInOut(t: Float64Array, dOut: number, dIn: number, layout: WeightLayout): Float64Array {
  if (layout === 'in-out') return t.slice(0, dIn * dOut);
  const w = new Float64Array(dOut * dIn);
  for (let j = 0; j < dIn; j++) for (let o = 0; o < dOut; o++) w[o * dIn + j] = t[j * dOut + o];
  return w;
}

/** Dead columns (H_jj ≤ 0) and the mean diagonal over the live ones (0 when all are dead). */
function gramFacts(H: Matrix, dIn: number): { dead: Uint8Array; deadColumns: number[]; meanDiag: number } {
  const dead = new Uint8Array(dIn);
  const deadColumns: number[] = [];
  let sum = 0;
  for (let j = 0; j < dIn; j++) {
    const h = H[j * dIn + j];
    if (!Number.isFinite(h)) throw new RangeError(`H has a non-finite diagonal entry at column ${j}`);
    if (h <= 0) { dead[j] = 1; deadColumns.push(j); } else sum += h;
  }
  const live = dIn - deadColumns.length;
  return { dead, deadColumns, meanDiag: live ? sum / live : 0 };
}

/** Sorted, distinct, in-range column list; throws otherwise. */
function columnSet(cols: Iterable<number>, dIn: number, what: string): Int32Array {
  const mask = new Uint8Array(dIn);
  for (const c of cols) {
    if (!Number.isInteger(c) || c < 0 || c >= dIn) throw new RangeError(`${what}: column ${c} out of range [0, ${dIn})`);
    mask[c] = 1;
  }
  const out: number[] = [];
  for (let j = 0; j < dIn; j++) if (mask[j]) out.push(j);
  return Int32Array.from(out);
}

/**
 * The Gram of the (possibly augmented) input: indices < dIn are input columns, index dIn (when `aug` is given)
 * is the constant-1 input, whose row is Σx and whose diagonal entry is N. Dead columns are decoupled (their
 * off-diagonal entries read as 0, their diagonal as 1).
 */
class Gram {
  constructor(
    private readonly H: Matrix,
    private readonly dIn: number,
    private readonly dead: Uint8Array,
    private readonly aug?: { sum: Matrix; count: number },
  ) {}

  entry(r: number, c: number): number {
    const { dIn, dead } = this;
    if (r < dIn && dead[r]) return r === c ? 1 : 0;
    if (c < dIn && dead[c]) return 0;
    if (r < dIn && c < dIn) return this.H[r * dIn + c];
    const aug = this.aug!;
    if (r < dIn) return aug.sum[r];
    if (c < dIn) return aug.sum[c];
    return aug.count;
  }

  /** The rows × cols block, row-major. */
  block(rows: Int32Array, cols: Int32Array): Float64Array {
    const out = new Float64Array(rows.length * cols.length);
    const { dIn, dead, H } = this;
    for (let p = 0; p < rows.length; p++) {
      const r = rows[p];
      const o = p * cols.length;
      if (r < dIn && !dead[r]) {
        const hr = r * dIn;
        for (let q = 0; q < cols.length; q++) {
          const c = cols[q];
          out[o + q] = c < dIn ? (dead[c] ? 0 : H[hr + c]) : this.aug!.sum[r];
        }
      } else {
        for (let q = 0; q < cols.length; q++) out[o + q] = this.entry(r, cols[q]);
      }
    }
    return out;
  }
}

/**
 * The refit on the kept set K of the rows of `t` (nV × dOut, row j = weights of input j of the possibly augmented
 * input): t_K ← t_K + (H_KK + δ)⁻¹·H_KJ·t_J, t_J ← 0. `undamped` marks kept positions (in K order) without damping.
 */
function refitRows(t: Float64Array, dOut: number, gram: Gram, kept: Int32Array, removed: Int32Array, meanDiag: number,
  undamped: Uint8Array | undefined, opts: RefitOptions): { lambda: number; damping: number; retries: number } {
  const nk = kept.length, nj = removed.length;
  let facts = { lambda: opts.lambda ?? 0.01, damping: 0, retries: 0 };
  if (nk > 0 && nj > 0) {
    const hkk = gram.block(kept, kept);
    const f = dampedCholesky(hkk, nk, { lambda: opts.lambda, scale: meanDiag, undamped, maxRetries: opts.maxRetries });
    facts = { lambda: f.lambda, damping: f.damping, retries: f.retries };
    solveKept(t, dOut, f.L, gram, kept, removed);
  }
  for (const j of removed) t.fill(0, j * dOut, (j + 1) * dOut);
  return facts;
}

/**
 * t_K += (L·Lᵀ)⁻¹·H_KJ·t_J, with L the Cholesky factor of the damped H_KK: the refit of the kept rows of `t`
 * (nV × dOut, row j = weights of input j), whichever of |J| and d_out right-hand sides is fewer. t_J is left as is.
 */
function solveKept(t: Float64Array, dOut: number, L: Float64Array, gram: Gram, kept: Int32Array, removed: Int32Array): void {
  const nk = kept.length, nj = removed.length;
  const hkj = gram.block(kept, removed);
  const keptRows = Int32Array.from(kept, (j) => j * dOut);
  const removedRows = Int32Array.from(removed, (j) => j * dOut);
  if (nj <= dOut) {
    // Z = H_KK⁻¹·H_KJ (|K|×|J|), then t_K += Z·t_J.
    choleskySolve(L, nk, hkj, nj);
    addProductRows(t, keptRows, hkj, t, removedRows, dOut);
  } else {
    // R = H_KJ·t_J (|K|×d_out), then t_K += H_KK⁻¹·R.
    const r = new Float64Array(nk * dOut);
    addProductRows(r, Int32Array.from(kept, (_, p) => p * dOut), hkj, t, removedRows, dOut);
    choleskySolve(L, nk, r, dOut);
    for (let p = 0; p < nk; p++) {
      const dst = kept[p] * dOut;
      for (let o = 0; o < dOut; o++) t[dst + o] += r[p * dOut + o];
    }
  }
}

function zeroDeadRows(t: Float64Array, dOut: number, deadColumns: number[], opts: RefitOptions): void {
  if (opts.zeroDead === false) return;
  for (const j of deadColumns) t.fill(0, j * dOut, (j + 1) * dOut);
}

// ---------------------------------------------------------------------------------------------------------
// Formula 3: least-squares refit on the kept set

/**
 * Least-squares refit of the kept input columns after removing `removedCols` (formula 3):
 *   W_K* = W_K + W_J·H_JK·(H_KK + δI)⁻¹,  W_J* = 0,
 * i.e. the W_K that minimises ‖X·W_denseᵀ − X_K·W_Kᵀ‖² (+ δ‖W_K − W_dense,K‖²) on the calibration inputs.
 * Cost: one Cholesky of |K| and a solve with min(|J|, d_out) right-hand sides.
 */
export function refitKept(W: Matrix, dOut: number, dIn: number, H: Matrix, removedCols: Iterable<number>, opts: RefitOptions = {}): RefitResult {
  checkShapes('refitKept', W, dOut, dIn, H);
  const layout = opts.layout ?? 'out-in';
  const { dead, deadColumns, meanDiag } = gramFacts(H, dIn);
  const removed = columnSet(removedCols, dIn, 'refitKept');
  const isRemoved = new Uint8Array(dIn);
  for (const j of removed) isRemoved[j] = 1;
  const kept = new Int32Array(dIn - removed.length);
  let p = 0;
  for (let j = 0; j < dIn; j++) if (!isRemoved[j]) kept[p++] = j;
  const t = toInOut(W, dOut, dIn, layout);
  zeroDeadRows(t, dOut, deadColumns, opts);
  const facts = refitRows(t, dOut, new Gram(H, dIn, dead), kept, removed, meanDiag, undefined, opts);
  return { W: fromInOut(t, dOut, dIn, layout), ...facts, deadColumns };
}

// ---------------------------------------------------------------------------------------------------------
// Formula 4: affine refit (weights and bias together)

/**
 * Refit of the kept columns and the bias together (formula 4): the input is augmented with a constant 1, whose
 * Gram row is Σx and diagonal N (H̃ = [[XᵀX, Σx], [Σxᵀ, N]]), and the bias is the weight of that input, always
 * kept. Minimises ‖X·W_denseᵀ + b − (X_K·W_Kᵀ + b')‖² (+ δ‖W_K − W_dense,K‖²); the constant input is not damped,
 * so `keepWeights: true` (refit the bias alone) is exactly FLAP's compensation b' = b + W_J·μ_J, μ = Σx / N.
 * `b` may be undefined (a consumer without bias: the delta is the bias to add).
 */
export function refitAffine(W: Matrix, b: Matrix | undefined, dOut: number, dIn: number, H: Matrix, sum: Matrix, count: number,
  removedCols: Iterable<number>, opts: AffineRefitOptions = {}): AffineRefitResult {
  checkShapes('refitAffine', W, dOut, dIn, H);
  if (b && b.length !== dOut) throw new RangeError(`refitAffine: bias has ${b.length} values, expected ${dOut}`);
  if (sum.length !== dIn) throw new RangeError(`refitAffine: Σx has ${sum.length} values, expected ${dIn}`);
  if (!(count > 0) || !Number.isFinite(count)) throw new RangeError(`refitAffine: bad count N = ${count}`);
  for (let j = 0; j < dIn; j++) if (!Number.isFinite(sum[j])) throw new RangeError(`refitAffine: non-finite Σx at column ${j}`);
  const layout = opts.layout ?? 'out-in';
  const { dead, deadColumns, meanDiag } = gramFacts(H, dIn);
  const removed = columnSet(removedCols, dIn, 'refitAffine');
  const isRemoved = new Uint8Array(dIn);
  for (const j of removed) isRemoved[j] = 1;
  // Row dIn of t is the bias (starts at 0: the delta is read off directly).
  const t = toInOut(W, dOut, dIn, layout, dIn + 1);
  zeroDeadRows(t, dOut, deadColumns, opts);
  const biasRow = dIn * dOut;
  let facts = { lambda: opts.lambda ?? 0.01, damping: 0, retries: 0 };
  if (opts.keepWeights) {
    for (const j of removed) {
      if (dead[j]) continue;
      const mu = sum[j] / count;
      if (mu !== 0) axpy(t, biasRow, mu, t, j * dOut, dOut);
    }
    for (const j of removed) t.fill(0, j * dOut, (j + 1) * dOut);
  } else {
    const keptList: number[] = [];
    for (let j = 0; j < dIn; j++) if (!isRemoved[j]) keptList.push(j);
    keptList.push(dIn);
    const kept = Int32Array.from(keptList);
    const undamped = new Uint8Array(kept.length);
    undamped[kept.length - 1] = 1;
    facts = refitRows(t, dOut, new Gram(H, dIn, dead, { sum, count }), kept, removed, meanDiag, undamped, opts);
  }
  const biasDelta = t.slice(biasRow, biasRow + dOut);
  return { W: fromInOut(t, dOut, dIn, layout), biasDelta, ...facts, deadColumns };
}

// ---------------------------------------------------------------------------------------------------------
// Nested removals: one factorization for every level

/**
 * The least-squares refits (formula 3, or 4 with `affine`) of a nested family of removals: the units of `units` go
 * in that order, and level r removes the first r. The Gram is factored once with its columns in keep order (the
 * columns of no unit and the constant input first, then the units from the last removed to the first); the factor
 * of every level's kept set is a leading block of that factor, so a level costs a solve instead of a Cholesky.
 * Same damping and dead-column conventions as refitKept / refitAffine (the damping is the one the whole Gram
 * needed: a level whose own block would have factored with less differs from refitAffine by that).
 */
export class NestedRefit {
  private readonly perm: Int32Array;
  private readonly L: Float64Array;
  private readonly n: number;
  private readonly t0: Float64Array;
  private readonly gram: Gram;
  /** Kept-set size after r removals: sizes[r]. */
  private readonly sizes: number[];
  readonly lambda: number;
  readonly deadColumns: number[];

  constructor(W: Matrix, private readonly dOut: number, private readonly dIn: number, H: Matrix, units: number[][],
    private readonly opts: RefitOptions & { affine?: { sum: Matrix; count: number } } = {}) {
    checkShapes('NestedRefit', W, dOut, dIn, H);
    const { dead, deadColumns, meanDiag } = gramFacts(H, dIn);
    this.deadColumns = deadColumns;
    const inUnit = new Uint8Array(dIn);
    for (const u of units) for (const j of u) {
      if (!Number.isInteger(j) || j < 0 || j >= dIn || inUnit[j]) throw new RangeError(`NestedRefit: column ${j} out of range or in two units`);
      inUnit[j] = 1;
    }
    const order: number[] = [];
    for (let j = 0; j < dIn; j++) if (!inUnit[j]) order.push(j);
    const affine = opts.affine;
    if (affine) order.push(dIn);
    for (let u = units.length - 1; u >= 0; u--) order.push(...units[u].slice().sort((a, b) => a - b));
    this.perm = Int32Array.from(order);
    this.n = order.length;
    this.sizes = [this.n];
    for (const u of units) this.sizes.push(this.sizes[this.sizes.length - 1] - u.length);
    this.gram = new Gram(H, dIn, dead, affine ? { sum: affine.sum, count: affine.count } : undefined);
    const undamped = new Uint8Array(this.n);
    if (affine) undamped[order.indexOf(dIn)] = 1;
    const f = dampedCholesky(this.gram.block(this.perm, this.perm), this.n, { lambda: opts.lambda, scale: meanDiag, undamped, maxRetries: opts.maxRetries });
    this.L = f.L;
    this.lambda = f.lambda;
    this.t0 = toInOut(W, dOut, dIn, opts.layout ?? 'out-in', dIn + (affine ? 1 : 0));
    zeroDeadRows(this.t0, dOut, deadColumns, opts);
  }

  /** W (the caller's layout; removed columns zero) and, when affine, the bias delta, after the first r units go. */
  level(r: number): { W: Float64Array; biasDelta?: Float64Array } {
    const { dOut, dIn, n } = this;
    const m = this.sizes[r];
    if (m === undefined) throw new RangeError(`NestedRefit: level ${r} of ${this.sizes.length - 1}`);
    const t = this.t0.slice();
    const kept = this.perm.subarray(0, m), removed = this.perm.subarray(m);
    if (m > 0 && removed.length > 0) {
      const Lm = new Float64Array(m * m);
      for (let i = 0; i < m; i++) Lm.set(this.L.subarray(i * n, i * n + i + 1), i * m);
      solveKept(t, dOut, Lm, this.gram, kept, removed);
    }
    for (const j of removed) t.fill(0, j * dOut, (j + 1) * dOut);
    const out: { W: Float64Array; biasDelta?: Float64Array } = { W: fromInOut(t, dOut, dIn, this.opts.layout ?? 'out-in') };
    if (this.opts.affine) out.biasDelta = t.slice(dIn * dOut, (dIn + 1) * dOut);
    return out;
  }
}

// ---------------------------------------------------------------------------------------------------------
// Errors in numbers

export interface ReconstructionError {
  /** tr((W − W')·H·(W − W')ᵀ) (+ the bias terms of the affine form). */
  error: number;
  /** tr(W·H·Wᵀ) (+ bias terms): the output energy of the dense layer on the calibration data. */
  reference: number;
  /** error / reference (0 when both are 0). */
  relative: number;
}

export interface AffineStats {
  sum: Matrix;
  count: number;
  /** Dense bias (absent = 0). */
  bias?: Matrix;
  /** New bias − dense bias (absent = 0). */
  biasDelta?: Matrix;
}

/**
 * Reconstruction error of W' against the dense W on the calibration statistics: tr((W − W')·H·(W − W')ᵀ), i.e.
 * Σ over calibration rows of ‖x·Wᵀ − x·W'ᵀ‖², with H the undamped Gram. With `affine`, the biases count too
 * (Σ‖x·Wᵀ + b − x·W'ᵀ − b'‖² via H̃).
 */
export function reconstructionError(Wdense: Matrix, Wnew: Matrix, H: Matrix, dOut: number, dIn: number,
  opts: { layout?: WeightLayout; affine?: AffineStats } = {}): ReconstructionError {
  checkShapes('reconstructionError', Wdense, dOut, dIn, H);
  if (Wnew.length !== Wdense.length) throw new RangeError(`reconstructionError: W' has ${Wnew.length} values, expected ${Wdense.length}`);
  const layout = opts.layout ?? 'out-in';
  const aug = opts.affine;
  const rows = aug ? dIn + 1 : dIn;
  const wd = toInOut(Wdense, dOut, dIn, layout, rows);
  const d = toInOut(Wnew, dOut, dIn, layout, rows);
  for (let i = 0; i < dIn * dOut; i++) d[i] = wd[i] - d[i];
  if (aug) {
    const o = dIn * dOut;
    for (let k = 0; k < dOut; k++) {
      wd[o + k] = aug.bias ? aug.bias[k] : 0;
      d[o + k] = aug.biasDelta ? -aug.biasDelta[k] : 0;
    }
  }
  // Σ_ij h_ij·⟨m_i, m_j⟩ over the lower triangle, rows i in blocks so that each row j is read once per block.
  const quad = (m: Float64Array): number => {
    let s = 0;
    const BS = 16;
    for (let i0 = 0; i0 < rows; i0 += BS) {
      const i1 = Math.min(rows, i0 + BS);
      for (let j = 0; j < i1; j++) {
        const rj = j * dOut;
        for (let i = Math.max(i0, j); i < i1; i++) {
          const h = i < dIn && j < dIn ? H[i * dIn + j] : i < dIn ? aug!.sum[i] : j < dIn ? aug!.sum[j] : aug!.count;
          if (h === 0) continue;
          const v = dot(m, i * dOut, m, rj, dOut);
          s += i === j ? h * v : 2 * h * v;
        }
      }
    }
    return s;
  };
  const error = quad(d);
  const reference = quad(wd);
  return { error, reference, relative: reference === 0 ? (error === 0 ? 0 : Infinity) : error / reference };
}

// ---------------------------------------------------------------------------------------------------------
// Formula 2: the greedy group OBS path

export interface ObsPathOptions extends RefitOptions {
  /** Units to remove along the path (default: max(levels), or all units). */
  steps?: number;
  /** Numbers of removed units at which to keep a copy of W (0 = before any removal). */
  levels?: number[];
  /** Store snapshots as Float32Array (default Float64Array). */
  float32?: boolean;
}

export interface ObsPathResult {
  /** Unit indices in removal order. */
  order: number[];
  /** Score of each removal, tr(W_G·(H⁻¹_GG)⁻¹·W_Gᵀ) at that step: the error it adds (in the damped H). */
  scores: number[];
  /** Loss after each removal: ½·Σ of the scores so far (the reference's convention). */
  loss: number[];
  /** Every unit's score before any removal (a one-shot OBS importance; lower = less important). */
  firstScores: Float64Array;
  /** W (caller's layout) after the first `removed` units of `order` are removed and compensated. */
  snapshots: { removed: number; W: Float64Array | Float32Array }[];
  lambda: number;
  damping: number;
  retries: number;
  deadColumns: number[];
}

/** One consumer of the units of a multi-consumer OBS path. */
export interface ObsConsumer {
  /** The consumer's weight, d_out × d_in in `layout` (default 'out-in'). */
  W: Matrix;
  dOut: number;
  dIn: number;
  /** Gram of its input, d_in × d_in. */
  H: Matrix;
  /**
   * One entry per shared unit: the consumer's columns that the unit owns; empty when this consumer does not read
   * the unit. Disjoint, in [0, d_in). Columns in no unit are never removed but take part in the compensation.
   */
  units: number[][];
  layout?: WeightLayout;
}

/** What the path did to one consumer (the per-consumer fields of ObsPathResult). */
export interface ObsConsumerResult {
  /** W (this consumer's layout) after the first `removed` units of `order` are removed and compensated. */
  snapshots: { removed: number; W: Float64Array | Float32Array }[];
  lambda: number;
  damping: number;
  retries: number;
  deadColumns: number[];
}

export interface ObsPathMultiResult {
  /** Unit indices in removal order. */
  order: number[];
  /** Score of each removal: Σ over consumers of tr(W_G·(H⁻¹_GG)⁻¹·W_Gᵀ) at that step. */
  scores: number[];
  /** Loss after each removal: ½·Σ of the scores so far. */
  loss: number[];
  /** Every unit's summed score before any removal. */
  firstScores: Float64Array;
  /** Per consumer, in input order. */
  consumers: ObsConsumerResult[];
}

/**
 * Cholesky of a small SPD block in place; a non-positive pivot (only possible through rounding, the block being a
 * principal block of the inverse of an SPD matrix) is clamped to 1e-12 of the block's largest diagonal entry.
 */
function smallCholesky(a: Float64Array, m: number): void {
  if (m === 1) { a[0] = Math.sqrt(a[0] > 0 ? a[0] : 1e-300); return; }
  let maxDiag = 0;
  for (let i = 0; i < m; i++) maxDiag = Math.max(maxDiag, a[i * m + i]);
  const floor = 1e-12 * (maxDiag > 0 ? maxDiag : 1);
  if (choleskyInPlace(a, m, 0) < 0) return;
  // Rebuild with clamped pivots (rare path).
  const b = a.slice();
  for (let j = 0; j < m; j++) {
    let s = b[j * m + j];
    for (let k = 0; k < j; k++) s -= a[j * m + k] ** 2;
    a[j * m + j] = Math.sqrt(s > floor ? s : floor);
    for (let i = j + 1; i < m; i++) {
      let r = b[i * m + j];
      for (let k = 0; k < j; k++) r -= a[i * m + k] * a[j * m + k];
      a[i * m + j] = r / a[j * m + j];
    }
    for (let i = 0; i < j; i++) a[i * m + j] = 0;
  }
}

/**
 * The OBS state of one consumer along a path: its weights t (d_in × d_out, row j = input column j) and the inverse
 * of its damped Gram restricted to the columns not yet removed.
 */
class ObsState {
  readonly t: Float64Array;
  /** The inverse over the active columns, compact (na × na, row stride na); act[p] = column at position p. */
  private hinv: Float64Array;
  private na: number;
  private act: Int32Array;
  private readonly pos: Int32Array;
  readonly facts: { lambda: number; damping: number; retries: number; deadColumns: number[] };

  constructor(readonly c: ObsConsumer, opts: RefitOptions) {
    const { W, dOut, dIn, H } = c;
    const { dead, deadColumns, meanDiag } = gramFacts(H, dIn);
    this.t = toInOut(W, dOut, dIn, c.layout ?? 'out-in');
    zeroDeadRows(this.t, dOut, deadColumns, opts);
    const all = Int32Array.from({ length: dIn }, (_, j) => j);
    const f = dampedCholesky(new Gram(H, dIn, dead).block(all, all), dIn, { lambda: opts.lambda, scale: meanDiag, maxRetries: opts.maxRetries });
    this.hinv = inverseFromCholesky(f.L, dIn);
    this.na = dIn;
    this.act = all.slice();
    this.pos = all.slice();
    this.facts = { lambda: f.lambda, damping: f.damping, retries: f.retries, deadColumns };
  }

  /** W in the consumer's layout. */
  weights(float32?: boolean): Float64Array | Float32Array {
    const w = fromInOut(this.t, this.c.dOut, this.c.dIn, this.c.layout ?? 'out-in');
    return float32 ? Float32Array.from(w) : w;
  }

  /** tr(W_G·(H⁻¹_GG)⁻¹·W_Gᵀ) for the active columns `cols` (0 for none). */
  score(cols: number[]): number {
    const m = cols.length;
    if (m === 0) return 0;
    const { t, hinv, na, pos } = this;
    const dOut = this.c.dOut;
    if (m === 1) {
      const c = cols[0], p = pos[c];
      const d = hinv[p * na + p];
      return dot(t, c * dOut, t, c * dOut, dOut) / (d > 0 ? d : 1e-300);
    }
    const blk = new Float64Array(m * m);
    for (let a = 0; a < m; a++) for (let b = 0; b < m; b++) blk[a * m + b] = hinv[pos[cols[a]] * na + pos[cols[b]]];
    smallCholesky(blk, m);
    // ‖L⁻¹·W_G‖² over the outputs, W_G = the unit's rows of t (m × d_out).
    const y = new Float64Array(m * dOut);
    for (let a = 0; a < m; a++) y.set(t.subarray(cols[a] * dOut, (cols[a] + 1) * dOut), a * dOut);
    let s = 0;
    for (let a = 0; a < m; a++) {
      const ya = a * dOut;
      for (let k = 0; k < a; k++) {
        const l = blk[a * m + k];
        if (l !== 0) for (let o = 0; o < dOut; o++) y[ya + o] -= l * y[k * dOut + o];
      }
      const inv = 1 / blk[a * m + a];
      for (let o = 0; o < dOut; o++) { const v = y[ya + o] * inv; y[ya + o] = v; s += v * v; }
    }
    return s;
  }

  /**
   * Removes the active columns g with the OBS update:
   *   W   −= W_G·(H⁻¹_GG)⁻¹·H⁻¹[G,:]          (W_G becomes 0)
   *   H⁻¹ −= H⁻¹[:,G]·(H⁻¹_GG)⁻¹·H⁻¹[G,:]     (then G's rows and columns are dropped)
   */
  remove(g: number[]): void {
    const m = g.length;
    if (m === 0) return;
    const { t, pos } = this;
    const dOut = this.c.dOut;
    const na = this.na, hinv = this.hinv, act = this.act;
    // Q = H⁻¹[G, active] (m × na), P = (H⁻¹_GG)⁻¹·Q.
    const q = new Float64Array(m * na);
    for (let a = 0; a < m; a++) q.set(hinv.subarray(pos[g[a]] * na, (pos[g[a]] + 1) * na), a * na);
    const blk = new Float64Array(m * m);
    for (let a = 0; a < m; a++) for (let b = 0; b < m; b++) blk[a * m + b] = q[a * na + pos[g[b]]];
    smallCholesky(blk, m);
    const pm = q.slice();
    choleskySolve(blk, m, pm, na);
    // W: t[col] −= Σ_a P[a, pos(col)]·t[g_a] for every active column (the unit's own rows become 0).
    const wg = new Float64Array(m * dOut);
    for (let a = 0; a < m; a++) wg.set(t.subarray(g[a] * dOut, (g[a] + 1) * dOut), a * dOut);
    const negPt = new Float64Array(na * m);
    for (let a = 0; a < m; a++) for (let p = 0; p < na; p++) negPt[p * m + a] = -pm[a * na + p];
    addProductRows(t, Int32Array.from(act, (c) => c * dOut), negPt, wg, Int32Array.from({ length: m }, (_, a) => a * dOut), dOut);
    for (const c of g) t.fill(0, c * dOut, (c + 1) * dOut);
    // H⁻¹ −= Qᵀ·P over the active columns (row by row: contiguous), then G's rows and columns are dropped by
    // compacting in place (a target never passes its source).
    const negQt = new Float64Array(na * m);
    for (let a = 0; a < m; a++) for (let r = 0; r < na; r++) negQt[r * m + a] = -q[a * na + r];
    addProductRows(hinv, Int32Array.from({ length: na }, (_, r) => r * na), negQt, pm, Int32Array.from({ length: m }, (_, a) => a * na), na);
    const inG = new Uint8Array(na);
    for (const c of g) inG[pos[c]] = 1;
    const keep: number[] = [];
    for (let p = 0; p < na; p++) if (!inG[p]) keep.push(p);
    const nn = keep.length;
    for (let r = 0; r < nn; r++) {
      const src = keep[r] * na, dst = r * nn;
      for (let c = 0; c < nn; c++) hinv[dst + c] = hinv[src + keep[c]];
    }
    this.act = Int32Array.from(keep, (p) => act[p]);
    this.na = nn;
    for (let p = 0; p < nn; p++) pos[this.act[p]] = p;
  }
}

/** Checks one consumer's unit lists (disjoint columns in range) against the number of shared units. */
function checkUnits(what: string, units: number[][], nUnits: number, dIn: number, allowEmpty: boolean): void {
  if (units.length !== nUnits) throw new RangeError(`${what}: ${units.length} unit lists for ${nUnits} units`);
  const owner = new Int32Array(dIn).fill(-1);
  units.forEach((cols, u) => {
    if (!cols.length && !allowEmpty) throw new RangeError(`${what}: unit ${u} has no columns`);
    for (const c of cols) {
      if (!Number.isInteger(c) || c < 0 || c >= dIn) throw new RangeError(`${what}: unit ${u}: column ${c} out of range [0, ${dIn})`);
      if (owner[c] >= 0) throw new RangeError(`${what}: column ${c} is in units ${owner[c]} and ${u}`);
      owner[c] = u;
    }
  });
}

/** The levels (sorted, distinct) and the number of steps of a path over `nUnits` units. */
function pathSteps(what: string, nUnits: number, opts: ObsPathOptions): { levels: number[]; steps: number } {
  const levels = [...new Set(opts.levels ?? [])].sort((a, b) => a - b);
  for (const l of levels) if (!Number.isInteger(l) || l < 0 || l > nUnits) throw new RangeError(`${what}: level ${l} out of range [0, ${nUnits}]`);
  const steps = opts.steps ?? (opts.levels ? (levels.length ? levels[levels.length - 1] : 0) : nUnits);
  if (!Number.isInteger(steps) || steps < 0 || steps > nUnits) throw new RangeError(`${what}: steps ${steps} out of range [0, ${nUnits}]`);
  if (levels.length && levels[levels.length - 1] > steps) throw new RangeError(`${what}: level ${levels[levels.length - 1]} beyond ${steps} steps`);
  return { levels, steps };
}

/**
 * The greedy group OBS path (formula 2) over `nUnits` units shared by several consumers (the consumers of one
 * coupled group: removing a unit removes its columns from every consumer that reads it). Each consumer's H is
 * damped (δ = λ·mean live diag, its own) and inverted once; then repeat: pick the remaining unit G with the
 * smallest summed score Σ_consumers tr(W_G·(H⁻¹_GG)⁻¹·W_Gᵀ) (ties: the lower unit index; a consumer that does
 * not read G adds 0), and apply the OBS update to each consumer that reads it (ObsState.remove). Each consumer's
 * W after k steps is its least-squares refit (formula 3, same damping) on the columns not yet removed, so the
 * summed score of a step is exactly the summed damped error it adds and the levels are nested.
 * A unit that no consumer reads scores 0 (it goes first).
 * Cost per consumer: d_in³ for the inverse, then per step O(d_in·d_out) for the scores and W and O(|G|·d_in²) for H⁻¹.
 */
export function obsPathMulti(consumers: ObsConsumer[], nUnits: number, opts: ObsPathOptions = {}): ObsPathMultiResult {
  if (!Number.isInteger(nUnits) || nUnits < 0) throw new RangeError(`obsPathMulti: bad unit count ${nUnits}`);
  consumers.forEach((c, i) => {
    checkShapes(`obsPathMulti consumer ${i}`, c.W, c.dOut, c.dIn, c.H);
    checkUnits(`obsPathMulti consumer ${i}`, c.units, nUnits, c.dIn, true);
  });
  const { levels, steps } = pathSteps('obsPathMulti', nUnits, opts);
  return runPath(consumers, nUnits, levels, steps, opts);
}

function runPath(consumers: ObsConsumer[], nUnits: number, levels: number[], steps: number, opts: ObsPathOptions): ObsPathMultiResult {
  const states = consumers.map((c) => new ObsState(c, opts));
  const snapshots: ObsConsumerResult['snapshots'][] = consumers.map(() => []);
  const snap = (removed: number): void => states.forEach((s, i) => snapshots[i].push({ removed, W: s.weights(opts.float32) }));
  const unitScore = (u: number): number => {
    let s = 0;
    for (let i = 0; i < states.length; i++) if (consumers[i].units[u].length) s += states[i].score(consumers[i].units[u]);
    return s;
  };

  const alive = new Uint8Array(nUnits).fill(1);
  const order: number[] = [];
  const scores: number[] = [];
  const loss: number[] = [];
  let firstScores = new Float64Array(0);
  let total = 0;
  let nextLevel = 0;
  if (levels[0] === 0) { snap(0); nextLevel++; }
  for (let step = 0; step < steps; step++) {
    let best = -1, bestScore = Infinity;
    const now = step === 0 ? new Float64Array(nUnits) : undefined;
    for (let u = 0; u < nUnits; u++) {
      if (!alive[u]) continue;
      const s = unitScore(u);
      if (now) now[u] = s;
      if (best < 0 || s < bestScore) { best = u; bestScore = s; }
    }
    if (now) firstScores = now;
    for (let i = 0; i < states.length; i++) states[i].remove(consumers[i].units[best]);
    alive[best] = 0;
    order.push(best);
    scores.push(bestScore);
    total += bestScore;
    loss.push(total / 2);
    while (nextLevel < levels.length && levels[nextLevel] === step + 1) { snap(step + 1); nextLevel++; }
  }
  if (steps === 0 && nUnits) {
    firstScores = new Float64Array(nUnits);
    for (let u = 0; u < nUnits; u++) firstScores[u] = unitScore(u);
  }
  return { order, scores, loss, firstScores, consumers: states.map((s, i) => ({ snapshots: snapshots[i], ...s.facts })) };
}

/**
 * The greedy group OBS path (formula 2) for one consumer: obsPathMulti with a single consumer. Units must be
 * disjoint, non-empty lists of columns in [0, d_in).
 */
export function obsPath(W: Matrix, dOut: number, dIn: number, H: Matrix, units: number[][], opts: ObsPathOptions = {}): ObsPathResult {
  checkShapes('obsPath', W, dOut, dIn, H);
  checkUnits('obsPath', units, units.length, dIn, false);
  const { levels, steps } = pathSteps('obsPath', units.length, opts);
  const r = runPath([{ W, dOut, dIn, H, units, layout: opts.layout }], units.length, levels, steps, opts);
  const c = r.consumers[0];
  return { order: r.order, scores: r.scores, loss: r.loss, firstScores: r.firstScores, snapshots: c.snapshots, lambda: c.lambda, damping: c.damping, retries: c.retries, deadColumns: c.deadColumns };
}
