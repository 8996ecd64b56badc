/**
 * Dense float64 linear algebra for symmetric positive definite (SPD) systems: Cholesky factorization, triangular
 * solves with many right-hand sides, SPD inverse, and a damped factorization that retries with more damping when
 * a matrix is numerically singular. All matrices are row-major Float64Arrays; an n×n matrix has n² entries.
 *
 * Written for the reconstruction math (src/score/refit.ts): n up to a few thousand (a consumer's input width),
 * right-hand sides of a few thousand columns (its output width). The loops work on rows (contiguous memory) and
 * are blocked over rows so that each row read from memory is used by a block of rows held in cache.
 */

/** Rows per block in the factorization (a block of 32 rows of 3072 doubles is 768 KiB). */
const FACTOR_BLOCK = 32;

/** A pivot at or below this fraction of its diagonal entry means the matrix is numerically singular. */
export const PIVOT_REL_TOL = 1e-12;

/**
 * In-place lower Cholesky factorization A = L·Lᵀ of the SPD matrix `a` (n×n, only its lower triangle is read).
 * On success returns -1 and `a` holds L (upper triangle zeroed). On failure returns the index of the first
 * pivot that is not finite or not above `relTol`·A_jj; `a` is then partly overwritten.
 */
export function choleskyInPlace(a: Float64Array, n: number, relTol = PIVOT_REL_TOL): number {
  if (a.length < n * n) throw new RangeError(`cholesky: ${a.length} entries for a ${n}×${n} matrix`);
  // Row-oriented (Cholesky–Banachiewicz): L_ij = (A_ij − Σ_{k<j} L_ik·L_jk) / L_jj. Rows are done in blocks;
  // row j of L is read once per block and dotted with every row of the block. Columns j of earlier blocks are
  // taken two at a time against two rows i at a time (four dots per pass: one load per multiply-add).
  for (let i0 = 0; i0 < n; i0 += FACTOR_BLOCK) {
    const i1 = Math.min(n, i0 + FACTOR_BLOCK);
    let j = 0;
    for (; j + 1 < i0; j += 2) {
      const rj = j * n, rj1 = rj + n;
      const ljj = a[rj + j], lj1j = a[rj1 + j], lj1j1 = a[rj1 + j + 1];
      let i = i0;
      for (; i + 1 < i1; i += 2) {
        const ri = i * n, ri1 = ri + n;
        let s00 = 0, s01 = 0, s10 = 0, s11 = 0;
        for (let k = 0; k < j; k++) {
          const x0 = a[ri + k], x1 = a[ri1 + k], y0 = a[rj + k], y1 = a[rj1 + k];
          s00 += x0 * y0;
          s01 += x0 * y1;
          s10 += x1 * y0;
          s11 += x1 * y1;
        }
        const li = (a[ri + j] - s00) / ljj;
        const li1 = (a[ri1 + j] - s10) / ljj;
        a[ri + j] = li;
        a[ri1 + j] = li1;
        a[ri + j + 1] = (a[ri + j + 1] - s01 - li * lj1j) / lj1j1;
        a[ri1 + j + 1] = (a[ri1 + j + 1] - s11 - li1 * lj1j) / lj1j1;
      }
      for (; i < i1; i++) {
        const ri = i * n;
        let s0 = 0, s1 = 0;
        for (let k = 0; k < j; k++) {
          const x = a[ri + k];
          s0 += x * a[rj + k];
          s1 += x * a[rj1 + k];
        }
        const li = (a[ri + j] - s0) / ljj;
        a[ri + j] = li;
        a[ri + j + 1] = (a[ri + j + 1] - s1 - li * lj1j) / lj1j1;
      }
    }
    for (; j < i1; j++) {
      const rj = j * n;
      for (let i = j < i0 ? i0 : j; i < i1; i++) {
        const ri = i * n;
        let s0 = 0, s1 = 0, s2 = 0, s3 = 0;
        let k = 0;
        for (; k + 3 < j; k += 4) {
          s0 += a[ri + k] * a[rj + k];
          s1 += a[ri + k + 1] * a[rj + k + 1];
          s2 += a[ri + k + 2] * a[rj + k + 2];
          s3 += a[ri + k + 3] * a[rj + k + 3];
        }
        for (; k < j; k++) s0 += a[ri + k] * a[rj + k];
        const aij = a[ri + j];
        const s = aij - ((s0 + s1) + (s2 + s3));
        if (i === j) {
          if (!(s > 0) || !(s > relTol * aij) || !Number.isFinite(s)) return j;
          a[ri + j] = Math.sqrt(s);
        } else {
          a[ri + j] = s / a[rj + j];
        }
      }
    }
  }
  for (let i = 0; i < n; i++) a.fill(0, i * n + i + 1, (i + 1) * n);
  return -1;
}

/** Rows of a right-hand side per block so that a block stays in cache (about 256 KiB), between 1 and 64. */
function rhsBlock(m: number): number {
  return Math.max(1, Math.min(64, Math.floor(32768 / Math.max(1, m))));
}

/** x[xo..xo+m) += c·y[yo..yo+m) (unrolled by four). */
export function axpy(x: Float64Array, xo: number, c: number, y: Float64Array, yo: number, m: number): void {
  let t = 0;
  for (; t + 3 < m; t += 4) {
    x[xo + t] += c * y[yo + t];
    x[xo + t + 1] += c * y[yo + t + 1];
    x[xo + t + 2] += c * y[yo + t + 2];
    x[xo + t + 3] += c * y[yo + t + 3];
  }
  for (; t < m; t++) x[xo + t] += c * y[yo + t];
}

/** x[xo..xo+m) −= c·y[yo..yo+m) (x + (−c)·y is x − c·y exactly). */
function axpyNeg(x: Float64Array, xo: number, c: number, y: Float64Array, yo: number, m: number): void {
  axpy(x, xo, -c, y, yo, m);
}

/** x_i −= c00·y_k + c01·y_k1 and x_i1 −= c10·y_k + c11·y_k1 over m entries (two rows updated from two rows). */
function axpy2x2Neg(x: Float64Array, xi: number, xi1: number, c00: number, c01: number, c10: number, c11: number,
  y: Float64Array, yk: number, yk1: number, m: number): void {
  for (let t = 0; t < m; t++) {
    const a = y[yk + t], b = y[yk1 + t];
    x[xi + t] -= c00 * a + c01 * b;
    x[xi1 + t] -= c10 * a + c11 * b;
  }
}

/** x_i −= c0·y_k + c1·y_k1 over m entries. */
function axpy2Neg(x: Float64Array, xi: number, c0: number, c1: number, y: Float64Array, yk: number, yk1: number, m: number): void {
  for (let t = 0; t < m; t++) x[xi + t] -= c0 * y[yk + t] + c1 * y[yk1 + t];
}

/** Solves L·X = B in place (`x` holds B, n×m row-major, and receives X); L is lower triangular n×n. */
export function solveLower(L: Float64Array, n: number, x: Float64Array, m: number): void {
  const bs = rhsBlock(m);
  for (let i0 = 0; i0 < n; i0 += bs) {
    const i1 = Math.min(n, i0 + bs);
    // Contributions of the rows solved before the block: row k of X is read once for the whole block (rows
    // taken two by two).
    let k = 0;
    for (; k + 1 < i0; k += 2) {
      const xk = k * m, xk1 = xk + m;
      let i = i0;
      for (; i + 1 < i1; i += 2) {
        const r = i * n, r1 = r + n;
        axpy2x2Neg(x, i * m, i * m + m, L[r + k], L[r + k + 1], L[r1 + k], L[r1 + k + 1], x, xk, xk1, m);
      }
      if (i < i1) axpy2Neg(x, i * m, L[i * n + k], L[i * n + k + 1], x, xk, xk1, m);
    }
    for (; k < i0; k++) {
      for (let i = i0; i < i1; i++) {
        const l = L[i * n + k];
        if (l !== 0) axpyNeg(x, i * m, l, x, k * m, m);
      }
    }
    for (let i = i0; i < i1; i++) {
      const xi = i * m;
      for (let k = i0; k < i; k++) {
        const l = L[i * n + k];
        if (l !== 0) axpyNeg(x, xi, l, x, k * m, m);
      }
      const inv = 1 / L[i * n + i];
      for (let t = 0; t < m; t++) x[xi + t] *= inv;
    }
  }
}

/** Solves Lᵀ·X = B in place (`x` holds B, n×m row-major, and receives X); L is lower triangular n×n. */
export function solveLowerT(L: Float64Array, n: number, x: Float64Array, m: number): void {
  const bs = rhsBlock(m);
  for (let i1 = n; i1 > 0; i1 -= bs) {
    const i0 = Math.max(0, i1 - bs);
    // X_i = (B_i − Σ_{k>i} L_ki·X_k) / L_ii; first the rows solved before the block (k ≥ i1).
    let k = i1;
    for (; k + 1 < n; k += 2) {
      const xk = k * m, xk1 = xk + m, rk = k * n, rk1 = rk + n;
      let i = i0;
      for (; i + 1 < i1; i += 2) axpy2x2Neg(x, i * m, i * m + m, L[rk + i], L[rk1 + i], L[rk + i + 1], L[rk1 + i + 1], x, xk, xk1, m);
      if (i < i1) axpy2Neg(x, i * m, L[rk + i], L[rk1 + i], x, xk, xk1, m);
    }
    for (; k < n; k++) {
      const rk = k * n;
      for (let i = i0; i < i1; i++) {
        const l = L[rk + i];
        if (l !== 0) axpyNeg(x, i * m, l, x, k * m, m);
      }
    }
    for (let i = i1 - 1; i >= i0; i--) {
      const xi = i * m;
      for (let k = i + 1; k < i1; k++) {
        const l = L[k * n + i];
        if (l !== 0) axpyNeg(x, xi, l, x, k * m, m);
      }
      const inv = 1 / L[i * n + i];
      for (let t = 0; t < m; t++) x[xi + t] *= inv;
    }
  }
}

/** Solves A·X = B in place given the Cholesky factor L of A (`x` holds B, n×m row-major). */
export function choleskySolve(L: Float64Array, n: number, x: Float64Array, m: number): void {
  solveLower(L, n, x, m);
  solveLowerT(L, n, x, m);
}

/** Σ x[xo+k]·y[yo+k] over k < m (four partial sums). */
export function dot(x: Float64Array, xo: number, y: Float64Array, yo: number, m: number): number {
  let s0 = 0, s1 = 0, s2 = 0, s3 = 0;
  let k = 0;
  for (; k + 3 < m; k += 4) {
    s0 += x[xo + k] * y[yo + k];
    s1 += x[xo + k + 1] * y[yo + k + 1];
    s2 += x[xo + k + 2] * y[yo + k + 2];
    s3 += x[xo + k + 3] * y[yo + k + 3];
  }
  for (; k < m; k++) s0 += x[xo + k] * y[yo + k];
  return (s0 + s1) + (s2 + s3);
}

/** A⁻¹ from the Cholesky factor L of A (a new full symmetric n×n matrix). About n³/3 multiply-adds. */
export function inverseFromCholesky(L: Float64Array, n: number): Float64Array {
  // Z = L⁻¹ is lower triangular: Z_i = (e_i − Σ_{k<i} L_ik·Z_k) / L_ii, where row Z_k is nonzero up to column k.
  // Rows in blocks: a finished row Z_k is read once per block.
  const z = new Float64Array(n * n);
  const bs = FACTOR_BLOCK;
  for (let i0 = 0; i0 < n; i0 += bs) {
    const i1 = Math.min(n, i0 + bs);
    for (let i = i0; i < i1; i++) z[i * n + i] = 1;
    // Rows k, k+1 of Z are nonzero up to columns k, k+1: a 2×2 update over k+1 columns, then column k+1.
    let k = 0;
    for (; k + 1 < i0; k += 2) {
      const zk = k * n, zk1 = zk + n, zkk = z[zk1 + k + 1];
      let i = i0;
      for (; i + 1 < i1; i += 2) {
        const r = i * n, r1 = r + n;
        const c01 = L[r + k + 1], c11 = L[r1 + k + 1];
        axpy2x2Neg(z, r, r1, L[r + k], c01, L[r1 + k], c11, z, zk, zk1, k + 1);
        z[r + k + 1] -= c01 * zkk;
        z[r1 + k + 1] -= c11 * zkk;
      }
      if (i < i1) {
        const r = i * n, c1 = L[r + k + 1];
        axpy2Neg(z, r, L[r + k], c1, z, zk, zk1, k + 1);
        z[r + k + 1] -= c1 * zkk;
      }
    }
    for (; k < i0; k++) {
      for (let i = i0; i < i1; i++) {
        const l = L[i * n + k];
        if (l !== 0) axpyNeg(z, i * n, l, z, k * n, k + 1);
      }
    }
    for (let i = i0; i < i1; i++) {
      const zi = i * n;
      for (let k = i0; k < i; k++) {
        const l = L[zi + k];
        if (l !== 0) axpyNeg(z, zi, l, z, k * n, k + 1);
      }
      const inv = 1 / L[zi + i];
      for (let t = 0; t <= i; t++) z[zi + t] *= inv;
    }
  }
  // U = Zᵀ (upper: row a nonzero from column a), then (A⁻¹)_ab = Σ_{k ≥ a} U_ak·U_bk for b ≤ a: dots of rows,
  // rows a in blocks so that row b is read once per block. The result reuses z's memory.
  const u = new Float64Array(n * n);
  for (let k = 0; k < n; k++) for (let a = 0; a <= k; a++) u[a * n + k] = z[k * n + a];
  const out = z;
  for (let a0 = 0; a0 < n; a0 += bs) {
    const a1 = Math.min(n, a0 + bs);
    // Columns b of earlier blocks two at a time against rows a two at a time (U_{a+1,a} = 0, so both rows'
    // dots start at column a); then the rest one by one.
    let b = 0;
    for (; b + 1 < a0; b += 2) {
      const ub = b * n, ub1 = ub + n;
      let a = a0;
      for (; a + 1 < a1; a += 2) {
        const ua = a * n, ua1 = ua + n;
        let s00 = 0, s01 = 0, s10 = 0, s11 = 0;
        for (let k = a; k < n; k++) {
          const x0 = u[ua + k], x1 = u[ua1 + k], y0 = u[ub + k], y1 = u[ub1 + k];
          s00 += x0 * y0;
          s01 += x0 * y1;
          s10 += x1 * y0;
          s11 += x1 * y1;
        }
        out[ua + b] = s00;
        out[ua + b + 1] = s01;
        out[ua1 + b] = s10;
        out[ua1 + b + 1] = s11;
      }
      if (a < a1) {
        out[a * n + b] = dot(u, a * n + a, u, ub + a, n - a);
        out[a * n + b + 1] = dot(u, a * n + a, u, ub1 + a, n - a);
      }
    }
    for (; b < a1; b++) {
      for (let a = b > a0 ? b : a0; a < a1; a++) out[a * n + b] = dot(u, a * n + a, u, b * n + a, n - a);
    }
  }
  for (let a = 0; a < n; a++) for (let b = 0; b < a; b++) out[b * n + a] = out[a * n + b];
  return out;
}

export interface DampingOptions {
  /** Relative damping λ: δ = λ·scale is added to the damped diagonal entries. Default 0.01. */
  lambda?: number;
  /** The scale δ is relative to (usually the mean diagonal). */
  scale: number;
  /** Diagonal entries that get no damping (1 = not damped); default: all damped. */
  undamped?: Uint8Array;
  /** Retries with λ ← max(10·λ, 1e-8) after a failed factorization. Default 12. */
  maxRetries?: number;
}

export interface DampedFactor {
  /** Cholesky factor of A + δ·I (over the damped entries). */
  L: Float64Array;
  /** λ finally used (larger than asked when retries were needed). */
  lambda: number;
  /** δ = λ·scale finally added. */
  damping: number;
  /** Failed factorizations before the one that succeeded. */
  retries: number;
}

/**
 * Cholesky factor of A + λ·scale·I, with λ raised (×10, at least 1e-8) and the factorization retried while the
 * matrix is numerically singular (a pivot at or below 1e-12 of its diagonal entry). `a` is not modified.
 * Throws when A holds a non-finite value or no damping up to the retry limit makes it factorizable.
 */
export function dampedCholesky(a: Float64Array, n: number, opts: DampingOptions): DampedFactor {
  for (let i = 0; i < n * n; i++) if (!Number.isFinite(a[i])) throw new RangeError(`dampedCholesky: non-finite entry at (${Math.floor(i / n)}, ${i % n})`);
  const scale = opts.scale;
  if (!(scale >= 0) || !Number.isFinite(scale)) throw new RangeError(`dampedCholesky: bad scale ${scale}`);
  let lambda = opts.lambda ?? 0.01;
  if (!(lambda >= 0)) throw new RangeError(`dampedCholesky: bad lambda ${lambda}`);
  const maxRetries = opts.maxRetries ?? 12;
  const L = new Float64Array(n * n);
  for (let retries = 0; ; retries++) {
    const damping = lambda * scale;
    L.set(a.subarray(0, n * n));
    if (damping > 0) for (let i = 0; i < n; i++) if (!opts.undamped?.[i]) L[i * n + i] += damping;
    if (choleskyInPlace(L, n) < 0) return { L, lambda, damping, retries };
    // Scale 0 (nothing to be relative to): damping cannot help.
    if (retries >= maxRetries || scale === 0) {
      throw new RangeError(`dampedCholesky: matrix not positive definite (n = ${n}, λ up to ${lambda}, ${retries} retries)`);
    }
    lambda = Math.max(10 * lambda, 1e-8);
  }
}

/**
 * Row-wise matrix product update: dst row p (at dst[dstRows[p]…+m)) += Σ_q C[p, q]·(src row q at src[srcRows[q]…+m)),
 * C row-major |dstRows| × |srcRows|. Destination rows are taken in cache-sized blocks, source and destination
 * rows two by two. Destination and source rows must not overlap (they may live in the same array).
 */
export function addProductRows(dst: Float64Array, dstRows: ArrayLike<number>, c: Float64Array, src: Float64Array,
  srcRows: ArrayLike<number>, m: number): void {
  const np = dstRows.length, nq = srcRows.length;
  const bs = rhsBlock(m);
  for (let p0 = 0; p0 < np; p0 += bs) {
    const p1 = Math.min(np, p0 + bs);
    let q = 0;
    for (; q + 1 < nq; q += 2) {
      const s0 = srcRows[q], s1 = srcRows[q + 1];
      let p = p0;
      for (; p + 1 < p1; p += 2) {
        const r = p * nq + q, r1 = r + nq;
        axpy2x2Neg(dst, dstRows[p], dstRows[p + 1], -c[r], -c[r + 1], -c[r1], -c[r1 + 1], src, s0, s1, m);
      }
      if (p < p1) axpy2Neg(dst, dstRows[p], -c[p * nq + q], -c[p * nq + q + 1], src, s0, s1, m);
    }
    if (q < nq) for (let p = p0; p < p1; p++) axpyNeg(dst, dstRows[p], -c[p * nq + q], src, srcRows[q], m);
  }
}
