/**
 * Reconstruction math (src/score/refit.ts, src/util/linalg.ts) on seeded random data, checked against
 * independent computations: least squares by Householder QR on the explicit inputs X (not the normal equations),
 * errors as explicit sums over the rows of X, OBS choices by brute force over refits.
 */
import { rng } from '../src/util/rng';
import { choleskyInPlace, choleskySolve, dampedCholesky, inverseFromCholesky } from '../src/util/linalg';
import { blockUnits, NestedRefit, obsPath, obsPathMulti, reconstructionError, refitAffine, refitKept, unitColumns, type ObsConsumer } from '../src/score/refit';

// ---------------------------------------------------------------------------------------------------------
// Test-side helpers (independent of the code under test)

function gaussian(rand: () => number): () => number {
  return () => {
    const u = Math.max(rand(), 1e-300), v = rand();
    return Math.sqrt(-2 * Math.log(u)) * Math.cos(2 * Math.PI * v);
  };
}

interface Data { X: Float64Array; N: number; d: number }

/** N × d inputs; `mix` > 0 correlates the columns (x = z·(I + mix·M)), `mean` shifts every column. */
function randomX(seed: number, N: number, d: number, opts: { mix?: number; mean?: number } = {}): Data {
  const g = gaussian(rng(seed));
  const z = Float64Array.from({ length: N * d }, g);
  const mix = opts.mix ?? 0;
  const M = Float64Array.from({ length: d * d }, (_, i) => (i % (d + 1) === 0 ? 1 : 0) + mix * g());
  const X = new Float64Array(N * d);
  for (let n = 0; n < N; n++) for (let j = 0; j < d; j++) {
    let s = 0;
    for (let k = 0; k < d; k++) s += z[n * d + k] * M[k * d + j];
    X[n * d + j] = s + (opts.mean ?? 0) * (1 + 0.3 * j);
  }
  return { X, N, d };
}

function randomW(seed: number, dOut: number, dIn: number): Float64Array {
  const g = gaussian(rng(seed));
  return Float64Array.from({ length: dOut * dIn }, g);
}

function gramOf({ X, N, d }: Data): { H: Float64Array; sum: Float64Array } {
  const H = new Float64Array(d * d);
  const sum = new Float64Array(d);
  for (let n = 0; n < N; n++) for (let i = 0; i < d; i++) {
    sum[i] += X[n * d + i];
    for (let j = 0; j < d; j++) H[i * d + j] += X[n * d + i] * X[n * d + j];
  }
  return { H, sum };
}

/** Least squares min ‖A·Z − B‖ (A: r × p, B: r × q) by Householder QR; returns Z (p × q). */
function lstsq(A0: Float64Array, r: number, p: number, B0: Float64Array, q: number): Float64Array {
  const A = A0.slice(), B = B0.slice();
  for (let k = 0; k < p; k++) {
    let norm = 0;
    for (let i = k; i < r; i++) norm += A[i * p + k] ** 2;
    norm = Math.sqrt(norm);
    const alpha = A[k * p + k] > 0 ? -norm : norm;
    const v = new Float64Array(r);
    for (let i = k; i < r; i++) v[i] = A[i * p + k];
    v[k] -= alpha;
    let vv = 0;
    for (let i = k; i < r; i++) vv += v[i] * v[i];
    if (vv === 0) continue;
    const reflect = (M: Float64Array, cols: number, from: number): void => {
      for (let c = from; c < cols; c++) {
        let s = 0;
        for (let i = k; i < r; i++) s += v[i] * M[i * cols + c];
        const f = (2 * s) / vv;
        for (let i = k; i < r; i++) M[i * cols + c] -= f * v[i];
      }
    };
    reflect(A, p, k);
    reflect(B, q, 0);
  }
  const Z = new Float64Array(p * q);
  for (let c = 0; c < q; c++) for (let i = p - 1; i >= 0; i--) {
    let s = B[i * q + c];
    for (let k = i + 1; k < p; k++) s -= A[i * p + k] * Z[k * q + c];
    Z[i * q + c] = s / A[i * p + i];
  }
  return Z;
}

/** Y = X·Wᵀ + b (N × dOut) for W d_out × d_in. */
function outputs({ X, N, d }: Data, W: ArrayLike<number>, dOut: number, b?: ArrayLike<number>): Float64Array {
  const Y = new Float64Array(N * dOut);
  for (let n = 0; n < N; n++) for (let o = 0; o < dOut; o++) {
    let s = b ? b[o] : 0;
    for (let j = 0; j < d; j++) s += X[n * d + j] * W[o * d + j];
    Y[n * dOut + o] = s;
  }
  return Y;
}

function sqDist(a: ArrayLike<number>, b: ArrayLike<number>): number {
  let s = 0;
  for (let i = 0; i < a.length; i++) s += (a[i] - b[i]) ** 2;
  return s;
}

function maxRelDiff(a: ArrayLike<number>, b: ArrayLike<number>): number {
  let scale = 0, diff = 0;
  for (let i = 0; i < a.length; i++) { scale = Math.max(scale, Math.abs(b[i])); diff = Math.max(diff, Math.abs(a[i] - b[i])); }
  return diff / (scale || 1);
}

function meanLiveDiag(H: Float64Array, d: number): number {
  let s = 0, n = 0;
  for (let j = 0; j < d; j++) if (H[j * d + j] > 0) { s += H[j * d + j]; n++; }
  return n ? s / n : 0;
}

/**
 * Brute-force refit: W_K minimising ‖X·W_denseᵀ − X_K·W_Kᵀ‖² + δ‖W_K − W_dense,K‖² (+ a bias column of ones when
 * `affine`), by QR on the explicit rows [X_K (1); √δ·I (0)] against [Y; √δ·W_dense,Kᵀ]. Returns W (d_out × d_in,
 * removed columns 0) and the new bias.
 */
function bruteRefit(data: Data, W: Float64Array, dOut: number, removed: number[], delta: number, affine?: { b?: Float64Array }): { W: Float64Array; b: Float64Array } {
  const { X, N, d } = data;
  const kept = Array.from({ length: d }, (_, j) => j).filter((j) => !removed.includes(j));
  const p = kept.length + (affine ? 1 : 0);
  const extra = delta > 0 ? kept.length : 0;
  const rows = N + extra;
  const A = new Float64Array(rows * p);
  const B = new Float64Array(rows * dOut);
  const Y = outputs(data, W, dOut, affine?.b);
  for (let n = 0; n < N; n++) {
    kept.forEach((j, c) => { A[n * p + c] = X[n * d + j]; });
    if (affine) A[n * p + p - 1] = 1;
    for (let o = 0; o < dOut; o++) B[n * dOut + o] = Y[n * dOut + o];
  }
  const sd = Math.sqrt(delta);
  kept.forEach((j, c) => {
    if (!extra) return;
    A[(N + c) * p + c] = sd;
    for (let o = 0; o < dOut; o++) B[(N + c) * dOut + o] = sd * W[o * d + j];
  });
  const Z = lstsq(A, rows, p, B, dOut);
  const out = new Float64Array(dOut * d);
  kept.forEach((j, c) => { for (let o = 0; o < dOut; o++) out[o * d + j] = Z[c * dOut + o]; });
  const b = new Float64Array(dOut);
  if (affine) for (let o = 0; o < dOut; o++) b[o] = Z[(p - 1) * dOut + o];
  return { W: out, b };
}

function transpose(W: ArrayLike<number>, r: number, c: number): Float64Array {
  const t = new Float64Array(r * c);
  for (let i = 0; i < r; i++) for (let j = 0; j < c; j++) t[j * r + i] = W[i * c + j];
  return t;
}

function randomSubset(seed: number, n: number, k: number): number[] {
  const rand = rng(seed);
  const idx = Array.from({ length: n }, (_, i) => i);
  for (let i = n - 1; i > 0; i--) { const j = Math.floor(rand() * (i + 1)); [idx[i], idx[j]] = [idx[j], idx[i]]; }
  return idx.slice(0, k).sort((a, b) => a - b);
}

function hasNaN(a: ArrayLike<number>): boolean {
  for (let i = 0; i < a.length; i++) if (!Number.isFinite(a[i])) return true;
  return false;
}

// ---------------------------------------------------------------------------------------------------------

describe('linalg', () => {
  const n = 37;
  const data = randomX(1, 80, n, { mix: 0.4 });
  const { H } = gramOf(data);

  test('Cholesky factor reproduces A and solves A·X = B', () => {
    const L = H.slice();
    expect(choleskyInPlace(L, n)).toBe(-1);
    for (let i = 0; i < n; i++) for (let j = i + 1; j < n; j++) expect(L[i * n + j]).toBe(0);
    const LLt = new Float64Array(n * n);
    for (let i = 0; i < n; i++) for (let j = 0; j < n; j++) {
      let s = 0;
      for (let k = 0; k < n; k++) s += L[i * n + k] * L[j * n + k];
      LLt[i * n + j] = s;
    }
    expect(maxRelDiff(LLt, H)).toBeLessThan(1e-13);
    for (const m of [1, 5, 700]) { // 700 columns: several right-hand-side blocks
      const X = randomW(2 + m, n, m);
      const B = new Float64Array(n * m);
      for (let i = 0; i < n; i++) for (let c = 0; c < m; c++) {
        let s = 0;
        for (let k = 0; k < n; k++) s += H[i * n + k] * X[k * m + c];
        B[i * m + c] = s;
      }
      choleskySolve(L, n, B, m);
      expect(maxRelDiff(B, X)).toBeLessThan(1e-9);
    }
  });

  test('Cholesky over several row blocks (n = 100) and the SPD inverse', () => {
    const big = 100;
    const { H: H2 } = gramOf(randomX(3, 300, big, { mix: 0.2 }));
    const L = H2.slice();
    expect(choleskyInPlace(L, big)).toBe(-1);
    const inv = inverseFromCholesky(L, big);
    for (let i = 0; i < big; i++) for (let j = 0; j < big; j++) {
      let s = 0;
      for (let k = 0; k < big; k++) s += H2[i * big + k] * inv[k * big + j];
      expect(Math.abs(s - (i === j ? 1 : 0))).toBeLessThan(1e-9);
    }
  });

  test('a singular matrix fails the factorization; damping retries and reports it', () => {
    // Column 3 duplicates column 2: XᵀX is singular.
    const d = 6, N = 40;
    const base = randomX(4, N, d);
    for (let r = 0; r < N; r++) base.X[r * d + 3] = base.X[r * d + 2];
    const { H: S } = gramOf(base);
    expect(choleskyInPlace(S.slice(), d)).toBeGreaterThanOrEqual(0);
    const f = dampedCholesky(S, d, { lambda: 0, scale: meanLiveDiag(S, d) });
    expect(f.retries).toBeGreaterThan(0);
    expect(f.lambda).toBeGreaterThan(0);
    expect(f.damping).toBeCloseTo(f.lambda * meanLiveDiag(S, d), 12);
    expect(hasNaN(f.L)).toBe(false);
    const ok = dampedCholesky(H, n, { scale: meanLiveDiag(H, n) });
    expect(ok.retries).toBe(0);
    expect(ok.lambda).toBe(0.01);
    const bad = H.slice();
    bad[5] = NaN;
    expect(() => dampedCholesky(bad, n, { scale: 1 })).toThrow(/non-finite/);
  });
});

describe('refitKept (formula 3)', () => {
  const dIn = 14, N = 90;
  const data = randomX(10, N, dIn, { mix: 0.5, mean: 0.3 });
  const { H } = gramOf(data);

  test.each([
    ['|J| ≤ d_out', 8, [1, 4, 5, 9]],
    ['|J| > d_out', 3, [0, 2, 3, 6, 7, 11, 13]],
  ])('λ = 0 equals the least-squares solution on explicit X (%s)', (_name, dOut, removed) => {
    const W = randomW(11, dOut, dIn);
    const r = refitKept(W, dOut, dIn, H, removed, { lambda: 0 });
    expect(r.retries).toBe(0);
    expect(r.damping).toBe(0);
    const brute = bruteRefit(data, W, dOut, removed, 0);
    expect(maxRelDiff(r.W, brute.W)).toBeLessThan(1e-8);
    for (const j of removed) for (let o = 0; o < dOut; o++) expect(r.W[o * dIn + j]).toBe(0);
    // The in-out layout (MatMul's B) gives the transpose.
    const t = refitKept(transpose(W, dOut, dIn), dOut, dIn, H, removed, { lambda: 0, layout: 'in-out' });
    expect(maxRelDiff(t.W, transpose(brute.W, dOut, dIn))).toBeLessThan(1e-8);
  });

  test.each([[5, 0.01], [2, 0.3]])('damping is a ridge towards the dense weights (d_out = %d, λ = %d)', (dOut, lambda) => {
    const W = randomW(12, dOut, dIn);
    const removed = [0, 3, 4, 8, 12];
    const r = refitKept(Float32Array.from(W), dOut, dIn, H, removed, { lambda });
    const delta = lambda * meanLiveDiag(H, dIn);
    expect(r.damping).toBeCloseTo(delta, 9);
    const brute = bruteRefit(data, Float64Array.from(Float32Array.from(W)), dOut, removed, delta);
    expect(maxRelDiff(r.W, brute.W)).toBeLessThan(1e-8);
    const plain = bruteRefit(data, W, dOut, removed, 0);
    expect(maxRelDiff(r.W, plain.W)).toBeGreaterThan(1e-6); // the damping is really there
  });

  test('the refit never does worse than zeroing, and much better on correlated inputs', () => {
    let strictlyBetter = 0;
    for (let seed = 0; seed < 12; seed++) {
      const d = 10 + (seed % 5), dOut = 1 + (seed % 7);
      const X = randomX(100 + seed, 50, d, { mix: seed % 3 === 0 ? 0 : 0.6, mean: seed % 2 ? 0.5 : 0 });
      const { H: Hs } = gramOf(X);
      const W = randomW(200 + seed, dOut, d);
      const removed = randomSubset(300 + seed, d, 1 + (seed % (d - 1)));
      const zeroed = W.slice();
      for (const j of removed) for (let o = 0; o < dOut; o++) zeroed[o * d + j] = 0;
      const none = reconstructionError(W, zeroed, Hs, dOut, d).error;
      for (const lambda of [0, 0.01, 1]) {
        const r = refitKept(W, dOut, d, Hs, removed, { lambda });
        const e = reconstructionError(W, r.W, Hs, dOut, d).error;
        expect(e).toBeLessThanOrEqual(none * (1 + 1e-12));
        // And it is the error of the outputs on the explicit rows.
        expect(e).toBeCloseTo(sqDist(outputs(X, W, dOut), outputs(X, r.W, dOut)), 6);
        if (seed % 3 !== 0 && lambda === 0.01 && e < 0.9 * none) strictlyBetter++;
      }
    }
    expect(strictlyBetter).toBe(8); // every correlated case
  });

  test('dead columns: weights zeroed, no NaN, the rest equals least squares on the live columns', () => {
    const d = 9, dOut = 4;
    const X = randomX(20, 40, d, { mix: 0.5 });
    for (let n = 0; n < 40; n++) { X.X[n * d + 2] = 0; X.X[n * d + 6] = 0; }
    const { H: Hd } = gramOf(X);
    const W = randomW(21, dOut, d);
    const r = refitKept(W, dOut, d, Hd, [6, 7], { lambda: 0 });
    expect(r.deadColumns).toEqual([2, 6]);
    expect(hasNaN(r.W)).toBe(false);
    for (let o = 0; o < dOut; o++) for (const j of [2, 6, 7]) expect(r.W[o * d + j]).toBe(0);
    const brute = bruteRefit(X, W, dOut, [2, 6, 7], 0); // a dead column carries nothing: removing it is the same
    expect(maxRelDiff(r.W, brute.W)).toBeLessThan(1e-8);
    const kept = refitKept(W, dOut, d, Hd, [6, 7], { lambda: 0, zeroDead: false });
    for (let o = 0; o < dOut; o++) expect(kept.W[o * d + 2]).toBe(W[o * d + 2]);
    // All columns dead: zero weights, no NaN.
    const z = refitKept(W, dOut, d, new Float64Array(d * d), [1], {});
    expect(z.deadColumns.length).toBe(d);
    expect(Array.from(z.W).every((v) => v === 0)).toBe(true);
  });

  test('rank-deficient H (duplicate columns): no NaN, damping raised, still no worse than zeroing', () => {
    const d = 8, dOut = 3;
    const X = randomX(30, 30, d);
    for (let n = 0; n < 30; n++) { X.X[n * d + 5] = X.X[n * d + 1]; X.X[n * d + 6] = X.X[n * d + 1]; }
    const { H: Hr } = gramOf(X);
    const W = randomW(31, dOut, d);
    const r = refitKept(W, dOut, d, Hr, [0, 1], { lambda: 0 });
    expect(r.retries).toBeGreaterThan(0);
    expect(r.lambda).toBeGreaterThan(0);
    expect(hasNaN(r.W)).toBe(false);
    const zeroed = W.slice();
    for (let o = 0; o < dOut; o++) zeroed[o * d] = zeroed[o * d + 1] = 0;
    const e = reconstructionError(W, r.W, Hr, dOut, d).error;
    expect(e).toBeLessThan(0.5 * reconstructionError(W, zeroed, Hr, dOut, d).error);
    // Removing column 1 loses nothing: its duplicates 5 and 6 take its weight.
    const only1 = refitKept(W, dOut, d, Hr, [1], { lambda: 0 });
    expect(reconstructionError(W, only1.W, Hr, dOut, d).relative).toBeLessThan(1e-6);
  });

  test('bad arguments are refused', () => {
    const W = randomW(1, 2, dIn);
    expect(() => refitKept(W, 2, dIn, H, [dIn])).toThrow(/out of range/);
    expect(() => refitKept(W, 3, dIn, H, [1])).toThrow(/values/);
    expect(() => refitKept(W, 2, dIn, H.subarray(1), [1])).toThrow(/H has/);
    const bad = H.slice();
    bad[3] = Infinity;
    expect(() => refitKept(W, 2, dIn, bad, [1])).toThrow(/non-finite/);
  });

  test('no removed column: W unchanged', () => {
    const W = randomW(2, 3, dIn);
    expect(Array.from(refitKept(W, 3, dIn, H, []).W)).toEqual(Array.from(W));
  });
});

describe('refitAffine (formula 4)', () => {
  const dIn = 12, N = 70, dOut = 5;
  const data = randomX(40, N, dIn, { mix: 0.4, mean: 0.8 });
  const { H, sum } = gramOf(data);
  const W = randomW(41, dOut, dIn);
  const b = randomW(42, 1, dOut);
  const removed = [1, 2, 7, 10];
  const affineError = (Wn: Float64Array, delta?: Float64Array): number =>
    reconstructionError(W, Wn, H, dOut, dIn, { affine: { sum, count: N, bias: b, biasDelta: delta } }).error;

  test('with the kept weights fixed it is FLAP: b += W_J·μ_J', () => {
    const r = refitAffine(W, b, dOut, dIn, H, sum, N, removed, { keepWeights: true });
    for (let o = 0; o < dOut; o++) {
      let flap = 0;
      for (const j of removed) flap += W[o * dIn + j] * (sum[j] / N);
      expect(r.biasDelta[o]).toBeCloseTo(flap, 12);
      for (let j = 0; j < dIn; j++) expect(r.W[o * dIn + j]).toBe(removed.includes(j) ? 0 : W[o * dIn + j]);
    }
    // FLAP is the best bias for fixed weights: a perturbed bias does worse, no bias change does worse.
    const zeroed = r.W;
    const e = affineError(zeroed, r.biasDelta);
    expect(e).toBeLessThan(affineError(zeroed));
    expect(e).toBeLessThan(affineError(zeroed, r.biasDelta.map((v) => v * 1.05)));
  });

  test('λ = 0 equals least squares on [X_K, 1] against X·Wᵀ + b', () => {
    const r = refitAffine(W, b, dOut, dIn, H, sum, N, removed, { lambda: 0 });
    const brute = bruteRefit(data, W, dOut, removed, 0, { b });
    expect(maxRelDiff(r.W, brute.W)).toBeLessThan(1e-8);
    const newBias = b.map((v, o) => v + r.biasDelta[o]);
    expect(maxRelDiff(newBias, brute.b)).toBeLessThan(1e-8);
    // Without a bias the delta is the bias to add.
    const nb = refitAffine(W, undefined, dOut, dIn, H, sum, N, removed, { lambda: 0 });
    const bruteNb = bruteRefit(data, W, dOut, removed, 0, { b: new Float64Array(dOut) });
    expect(maxRelDiff(nb.biasDelta, bruteNb.b)).toBeLessThan(1e-8);
  });

  test('with damping: ridge on the weights only (the constant input is not damped)', () => {
    const r = refitAffine(W, b, dOut, dIn, H, sum, N, removed, { lambda: 0.05 });
    const delta = 0.05 * meanLiveDiag(H, dIn);
    // Brute force with the ridge rows on the kept columns and none on the bias column.
    const brute = bruteRefit(data, W, dOut, removed, delta, { b });
    expect(maxRelDiff(r.W, brute.W)).toBeLessThan(1e-8);
    expect(maxRelDiff(b.map((v, o) => v + r.biasDelta[o]), brute.b)).toBeLessThan(1e-8);
  });

  test('never worse than the plain refit or FLAP, on random data', () => {
    let better = 0;
    for (let seed = 0; seed < 10; seed++) {
      const d = 8 + (seed % 4), m = 2 + (seed % 3), n = 40;
      const X = randomX(500 + seed, n, d, { mix: 0.5, mean: seed % 2 ? 1 : -0.4 });
      const g = gramOf(X);
      const Ws = randomW(600 + seed, m, d);
      const bs = randomW(700 + seed, 1, m);
      const rem = randomSubset(800 + seed, d, 2 + (seed % 4));
      for (const lambda of [0, 0.01]) {
        const err = (Wn: Float64Array, delta?: Float64Array): number =>
          reconstructionError(Ws, Wn, g.H, m, d, { affine: { sum: g.sum, count: n, bias: bs, biasDelta: delta } }).error;
        const plain = refitKept(Ws, m, d, g.H, rem, { lambda });
        const flap = refitAffine(Ws, bs, m, d, g.H, g.sum, n, rem, { lambda, keepWeights: true });
        const aff = refitAffine(Ws, bs, m, d, g.H, g.sum, n, rem, { lambda });
        const ea = err(aff.W, aff.biasDelta);
        // The explicit rows agree with the Gram form.
        expect(ea).toBeCloseTo(sqDist(outputs(X, Ws, m, bs), outputs(X, aff.W, m, bs.map((v, o) => v + aff.biasDelta[o]))), 6);
        expect(ea).toBeLessThanOrEqual(err(plain.W) * (1 + 1e-12));
        expect(ea).toBeLessThanOrEqual(err(flap.W, flap.biasDelta) * (1 + 1e-12));
        if (ea < 0.9 * err(plain.W)) better++;
      }
    }
    expect(better).toBeGreaterThan(10); // non-centred inputs: the bias helps in most cases
  });

  test('centred inputs (Σx = 0): no bias change, the same weights as the plain refit', () => {
    const X = randomX(50, 60, dIn, { mix: 0.4 });
    for (let j = 0; j < dIn; j++) {
      let m = 0;
      for (let n = 0; n < 60; n++) m += X.X[n * dIn + j];
      for (let n = 0; n < 60; n++) X.X[n * dIn + j] -= m / 60;
    }
    const g = gramOf(X);
    const aff = refitAffine(W, b, dOut, dIn, g.H, g.sum, 60, removed, {});
    const plain = refitKept(W, dOut, dIn, g.H, removed, {});
    expect(maxRelDiff(aff.W, plain.W)).toBeLessThan(1e-10);
    for (const v of aff.biasDelta) expect(Math.abs(v)).toBeLessThan(1e-10);
  });

  test('dead and duplicate columns: no NaN', () => {
    const X = randomX(60, 30, dIn, { mean: 1 });
    for (let n = 0; n < 30; n++) { X.X[n * dIn + 4] = 0; X.X[n * dIn + 8] = X.X[n * dIn + 9]; }
    const g = gramOf(X);
    const r = refitAffine(W, b, dOut, dIn, g.H, g.sum, 30, [9, 4], { lambda: 0 });
    expect(r.deadColumns).toEqual([4]);
    expect(hasNaN(r.W) || hasNaN(r.biasDelta)).toBe(false);
    expect(() => refitAffine(W, b, dOut, dIn, g.H, g.sum, 0, [1])).toThrow(/count/);
  });
});

describe('obsPath (formula 2)', () => {
  /** Damped-H error of W' against W (what the OBS scores add up). */
  function dampedError(W: Float64Array, Wn: ArrayLike<number>, H: Float64Array, dOut: number, d: number, delta: number): number {
    const Hd = H.slice();
    for (let j = 0; j < d; j++) Hd[j * d + j] += delta;
    return reconstructionError(W, Float64Array.from(Wn), Hd, dOut, d).error;
  }

  function checkPath(seed: number, dOut: number, d: number, units: number[][], mix: number): void {
    const X = randomX(seed, 3 * d, d, { mix, mean: 0.2 });
    const { H } = gramOf(X);
    const W = randomW(seed + 1, dOut, d);
    const levels = Array.from({ length: units.length + 1 }, (_, k) => k);
    const path = obsPath(W, dOut, d, H, units, { levels });
    const delta = path.damping;
    expect(delta).toBeCloseTo(0.01 * meanLiveDiag(H, d), 9);
    expect(path.order.length).toBe(units.length);
    expect([...path.order].sort((a, b) => a - b)).toEqual(units.map((_, u) => u));
    const removed: number[] = [];
    for (let k = 0; k < units.length; k++) {
      // Brute force: the score of a unit is the damped error its removal adds to the refit of the current set.
      const base = refitKept(W, dOut, d, H, unitColumns(units, removed), {});
      const baseErr = dampedError(W, base.W, H, dOut, d, delta);
      const added = units.map((_, u) => {
        if (removed.includes(u)) return Infinity;
        const r = refitKept(W, dOut, d, H, unitColumns(units, [...removed, u]), {});
        return dampedError(W, r.W, H, dOut, d, delta) - baseErr;
      });
      const best = added.indexOf(Math.min(...added));
      expect(path.order[k]).toBe(best);
      expect(path.scores[k]).toBeCloseTo(added[best], 6);
      if (k === 0) for (let u = 0; u < units.length; u++) expect(path.firstScores[u]).toBeCloseTo(added[u], 6);
      removed.push(best);
      // The OBS-updated W equals the LS refit on the remaining columns (same damping).
      const snap = path.snapshots[k + 1];
      expect(snap.removed).toBe(k + 1);
      const ls = refitKept(W, dOut, d, H, unitColumns(units, removed), {});
      expect(maxRelDiff(snap.W, ls.W)).toBeLessThan(1e-8);
      // The loss is half the damped error so far.
      expect(2 * path.loss[k]).toBeCloseTo(dampedError(W, snap.W, H, dOut, d, delta), 6);
      // Nested: every column zero at level k is zero at level k+1, and the removed units' columns are exactly 0.
      for (const c of unitColumns(units, removed)) for (let o = 0; o < dOut; o++) expect(snap.W[o * d + c]).toBe(0);
    }
    expect(Array.from(path.snapshots[0].W)).toEqual(Array.from(W));
  }

  test('single columns: brute-force argmin, OBS = LS refit, loss = ½Σ scores', () => {
    checkPath(70, 4, 9, blockUnits(9, 1), 0.6);
  });

  test('blocks of 3 columns (conv channels with kh·kw = 3), a column in no unit', () => {
    // 4 units of 3 columns + column 12 never removed.
    checkPath(80, 5, 13, blockUnits(4, 3), 0.5);
  });

  test('scattered multi-column units of different sizes', () => {
    const units = [[0, 7], [3, 9, 1], [4], [2, 8, 10, 5], [6, 11]];
    checkPath(90, 3, 12, units, 0.7);
  });

  test('the path is deterministic and its prefix does not depend on the number of steps', () => {
    const d = 12;
    const X = randomX(95, 40, d, { mix: 0.5 });
    const { H } = gramOf(X);
    const W = randomW(96, 6, d);
    const full = obsPath(W, 6, d, H, blockUnits(6, 2));
    const part = obsPath(W, 6, d, H, blockUnits(6, 2), { levels: [2, 3] });
    expect(part.order).toEqual(full.order.slice(0, 3));
    expect(part.scores).toEqual(full.scores.slice(0, 3));
    expect(part.snapshots.map((s) => s.removed)).toEqual([2, 3]);
    const f32 = obsPath(W, 6, d, H, blockUnits(6, 2), { levels: [3], float32: true });
    expect(f32.snapshots[0].W).toBeInstanceOf(Float32Array);
    expect(maxRelDiff(f32.snapshots[0].W, part.snapshots[1].W)).toBeLessThan(1e-6);
    const none = obsPath(W, 6, d, H, blockUnits(6, 2), { steps: 0 });
    expect(Array.from(none.firstScores)).toEqual(Array.from(full.firstScores));
  });

  test('a dead unit goes first with score 0; duplicate columns do not produce NaN', () => {
    const d = 8, dOut = 3;
    const X = randomX(97, 30, d);
    for (let n = 0; n < 30; n++) { X.X[n * d + 6] = X.X[n * d + 7] = 0; X.X[n * d + 1] = X.X[n * d + 2]; }
    const { H } = gramOf(X);
    const W = randomW(98, dOut, d);
    const path = obsPath(W, dOut, d, H, blockUnits(4, 2), { lambda: 0, levels: [4] });
    expect(path.deadColumns).toEqual([6, 7]);
    expect(path.order[0]).toBe(3);
    expect(path.scores[0]).toBe(0);
    expect(path.retries).toBeGreaterThan(0);
    expect(hasNaN(path.scores) || hasNaN(path.snapshots[0].W)).toBe(false);
    expect(Array.from(path.snapshots[0].W).every((v) => v === 0)).toBe(true);
  });

  test('the in-out layout gives the transposed snapshots', () => {
    const d = 10, dOut = 4;
    const { H } = gramOf(randomX(99, 30, d, { mix: 0.3 }));
    const W = randomW(100, dOut, d);
    const a = obsPath(W, dOut, d, H, blockUnits(5, 2), { levels: [3] });
    const b = obsPath(transpose(W, dOut, d), dOut, d, H, blockUnits(5, 2), { levels: [3], layout: 'in-out' });
    expect(b.order).toEqual(a.order);
    expect(maxRelDiff(b.snapshots[0].W, transpose(a.snapshots[0].W, dOut, d))).toBeLessThan(1e-12);
  });

  test('bad units and levels are refused', () => {
    const d = 6;
    const { H } = gramOf(randomX(1, 20, d));
    const W = randomW(2, 2, d);
    expect(() => obsPath(W, 2, d, H, [[0, 1], [1, 2]])).toThrow(/units 0 and 1/);
    expect(() => obsPath(W, 2, d, H, [[0], [6]])).toThrow(/out of range/);
    expect(() => obsPath(W, 2, d, H, [[0], []])).toThrow(/no columns/);
    expect(() => obsPath(W, 2, d, H, [[0], [1]], { levels: [3] })).toThrow(/level 3/);
    expect(() => obsPath(W, 2, d, H, [[0], [1]], { steps: 1, levels: [2] })).toThrow(/beyond/);
  });
});

describe('obsPathMulti (formula 2 over the consumers of a group)', () => {
  function dampedError(W: Float64Array, Wn: ArrayLike<number>, H: Float64Array, dOut: number, d: number, delta: number): number {
    const Hd = H.slice();
    for (let j = 0; j < d; j++) Hd[j * d + j] += delta;
    return reconstructionError(W, Float64Array.from(Wn), Hd, dOut, d).error;
  }

  /** Three consumers of 5 shared units: different inputs, widths and unit → column maps; the third reads units 1–3 only. */
  function consumers(seed: number): ObsConsumer[] {
    const specs: { dOut: number; d: number; units: number[][]; mix: number }[] = [
      { dOut: 3, d: 6, units: blockUnits(5, 1), mix: 0.8 }, // column 5 in no unit
      { dOut: 4, d: 11, units: [[0, 1], [2, 3], [4, 5], [6, 7], [8, 9]], mix: 0.5 }, // conv-like blocks of 2, column 10 kept
      { dOut: 2, d: 4, units: [[], [3], [0, 2], [1], []], mix: 0.9 },
    ];
    return specs.map((s, i) => {
      const X = randomX(seed + 10 * i, 3 * s.d, s.d, { mix: s.mix, mean: 0.3 });
      return { W: randomW(seed + 10 * i + 1, s.dOut, s.d), dOut: s.dOut, dIn: s.d, H: gramOf(X).H, units: s.units };
    });
  }

  test('brute force: each step removes the unit whose removal adds the least summed damped error; every W is its LS refit', () => {
    const cs = consumers(301);
    const n = 5;
    const path = obsPathMulti(cs, n, { levels: Array.from({ length: n + 1 }, (_, k) => k) });
    expect([...path.order].sort()).toEqual([0, 1, 2, 3, 4]);
    const removed: number[] = [];
    const errorOf = (set: number[]): number => cs.reduce((t, c, i) => {
      const r = refitKept(c.W, c.dOut, c.dIn, c.H, unitColumns(c.units, set), {});
      return t + dampedError(c.W as Float64Array, r.W, c.H as Float64Array, c.dOut, c.dIn, path.consumers[i].damping);
    }, 0);
    let total = 0;
    for (let k = 0; k < n; k++) {
      const base = errorOf(removed);
      const added = Array.from({ length: n }, (_, u) => (removed.includes(u) ? Infinity : errorOf([...removed, u]) - base));
      const best = added.indexOf(Math.min(...added));
      expect(path.order[k]).toBe(best);
      expect(path.scores[k]).toBeCloseTo(added[best], 6);
      if (k === 0) for (let u = 0; u < n; u++) expect(path.firstScores[u]).toBeCloseTo(added[u], 6);
      removed.push(best);
      total += path.scores[k];
      expect(path.loss[k]).toBeCloseTo(total / 2, 9);
      cs.forEach((c, i) => {
        const snap = path.consumers[i].snapshots[k + 1];
        expect(snap.removed).toBe(k + 1);
        expect(maxRelDiff(snap.W, refitKept(c.W, c.dOut, c.dIn, c.H, unitColumns(c.units, removed), {}).W)).toBeLessThan(1e-8);
      });
    }
    // The path is not the one any single consumer would take (the test would not see a consumer being ignored).
    const alone = cs.map((c) => obsPathMulti([c], n).order.join());
    expect(alone).not.toContain(path.order.join());
  });

  test('one consumer gives exactly obsPath', () => {
    const c = consumers(310)[1];
    const units = c.units;
    const a = obsPathMulti([c], units.length, { levels: [0, 2, 5] });
    const b = obsPath(c.W, c.dOut, c.dIn, c.H, units, { levels: [0, 2, 5] });
    expect(a.order).toEqual(b.order);
    expect(a.scores).toEqual(b.scores);
    expect(a.loss).toEqual(b.loss);
    expect(Array.from(a.firstScores)).toEqual(Array.from(b.firstScores));
    expect(a.consumers[0].snapshots.map((s) => Array.from(s.W))).toEqual(b.snapshots.map((s) => Array.from(s.W)));
    expect(a.consumers[0].damping).toBe(b.damping);
  });

  test('consumers sharing one H may be stacked into one W: the same path', () => {
    const [c0] = consumers(320);
    const W2 = randomW(999, 5, c0.dIn);
    const sep = obsPathMulti([c0, { ...c0, W: W2, dOut: 5 }], 5);
    const stacked = new Float64Array((c0.dOut + 5) * c0.dIn);
    stacked.set(c0.W);
    stacked.set(W2, c0.W.length);
    const one = obsPathMulti([{ ...c0, W: stacked, dOut: c0.dOut + 5 }], 5);
    expect(one.order).toEqual(sep.order);
    one.scores.forEach((s, k) => expect(s).toBeCloseTo(sep.scores[k], 9));
  });

  test('deterministic; the consumers\' order does not matter; a unit no consumer reads goes first with score 0', () => {
    const cs = consumers(330);
    const a = obsPathMulti(cs, 5), b = obsPathMulti(cs, 5);
    expect(a).toEqual(b);
    const r = obsPathMulti([cs[2], cs[0], cs[1]], 5);
    expect(r.order).toEqual(a.order);
    r.scores.forEach((s, k) => expect(s).toBeCloseTo(a.scores[k], 9));
    const unread = obsPathMulti([cs[2]], 5);
    expect(unread.order.slice(0, 2)).toEqual([0, 4]);
    expect(unread.scores.slice(0, 2)).toEqual([0, 0]);
    expect(Array.from(unread.consumers[0].snapshots)).toEqual([]);
  });

  test('bad unit lists are refused', () => {
    const cs = consumers(340);
    expect(() => obsPathMulti(cs, 4)).toThrow(/5 unit lists for 4 units/);
    expect(() => obsPathMulti([{ ...cs[0], units: [[0, 1], [1], [2], [3], [4]] }], 5)).toThrow(/units 0 and 1/);
    expect(() => obsPathMulti([{ ...cs[0], units: [[0], [1], [2], [3], [6]] }], 5)).toThrow(/out of range/);
    expect(() => obsPathMulti(cs, 5, { steps: 6 })).toThrow(/steps 6/);
  });
});

describe('reconstructionError', () => {
  test('equals the explicit output error, with and without biases', () => {
    const d = 7, dOut = 3, N = 25;
    const X = randomX(7, N, d, { mean: 0.5 });
    const { H, sum } = gramOf(X);
    const W = randomW(8, dOut, d), W2 = randomW(9, dOut, d);
    const b = randomW(10, 1, dOut), db = randomW(11, 1, dOut);
    const e = reconstructionError(W, W2, H, dOut, d);
    expect(e.error).toBeCloseTo(sqDist(outputs(X, W, dOut), outputs(X, W2, dOut)), 8);
    expect(e.reference).toBeCloseTo(sqDist(outputs(X, W, dOut), new Float64Array(N * dOut)), 8);
    expect(e.relative).toBeCloseTo(e.error / e.reference, 12);
    const a = reconstructionError(W, W2, H, dOut, d, { affine: { sum, count: N, bias: b, biasDelta: db } });
    expect(a.error).toBeCloseTo(sqDist(outputs(X, W, dOut, b), outputs(X, W2, dOut, b.map((v, o) => v + db[o]))), 8);
    expect(a.reference).toBeCloseTo(sqDist(outputs(X, W, dOut, b), new Float64Array(N * dOut)), 8);
    expect(reconstructionError(W, W, H, dOut, d).relative).toBe(0);
  });
});

describe('NestedRefit (one factorization for nested removals)', () => {
  test.each([false, true])('level r equals refitKept / refitAffine of the first r units (affine %s)', (affine) => {
    const d = 24, dOut = 5, N = 200;
    const data = randomX(71, N, d, { mix: 0.6, mean: 0.4 });
    const { H, sum } = gramOf(data);
    // Columns 0–3 belong to no unit; units of 2–4 columns, scattered.
    const units = [[4, 9], [5, 6, 20], [7, 8, 21, 23], [10, 11], [12, 13, 22], [14, 15], [16, 17, 18, 19]];
    const removalOrder = [3, 0, 6, 1, 5, 2, 4];
    const W = randomW(72, dOut, d);
    const n = new NestedRefit(W, dOut, d, H, removalOrder.map((u) => units[u]), affine ? { affine: { sum, count: N } } : {});
    for (let r = 0; r <= removalOrder.length; r++) {
      const cols = removalOrder.slice(0, r).flatMap((u) => units[u]);
      const ref = affine ? refitAffine(W, undefined, dOut, d, H, sum, N, cols) : refitKept(W, dOut, d, H, cols);
      const got = n.level(r);
      expect(maxRelDiff(got.W, ref.W)).toBeLessThan(1e-9);
      if (affine) expect(maxRelDiff(got.biasDelta!, (ref as unknown as { biasDelta: Float64Array }).biasDelta)).toBeLessThan(1e-9);
      for (const j of cols) for (let o = 0; o < dOut; o++) expect(got.W[o * d + j]).toBe(0);
    }
  });
});
