/**
 * `obs-weights`: a data-free OBS-style score from a weight-covariance model (no calibration data; the data-aware
 * greedy OBS path is `obs`, src/score/obs.ts). Optimal Brain Surgeon's cost of removing input unit u from a consumer with weights
 * W, letting the other units compensate, is ‖W_{:,u}‖² / [H⁻¹]_uu where H is the covariance of the consumer's
 * input. Without data we model that covariance from the weights alone: if the producers see white inputs,
 * their outputs have covariance R Rᵀ (R = the producer rows of the group's channels). So:
 *   E_u = consumer energy of unit u (Σ‖W_{:,j}‖² over its positions, member-reduced; producer energy when the
 *         group has no consumer weight),
 *   H   = Σ_producers (R Rᵀ / mean diag), at unit level (for multi-channel units, positions are matched in
 *         order: H_uv = Σ_t r_{u,t}·r_{v,t}), plus 1 % damping,
 *   score_u = E_u / [H⁻¹]_uu.
 * A unit that its siblings can reproduce gets a large [H⁻¹]_uu and so a low score. Groups over OBS_MAX_UNITS
 * units use the diagonal of H only (score_u = E_u · H_uu).
 */
import type { Group, WeightMember } from '../analysis/types';
import type { ScoreContext } from './context';
import { axisProfile, learnedMembers, reduceMembers, unitSums, weightMembers, type DenseWeight } from './tensor-math';

export const OBS_MAX_UNITS = 1024;
const DAMPING = 0.01;

/** Rows of `w` along `axis`: row j is the slice at position j, flattened. */
function rowsAlong(w: DenseWeight, axis: number): Float32Array[] {
  const dims = w.dims;
  const n = dims[axis];
  let inner = 1;
  for (let i = axis + 1; i < dims.length; i++) inner *= dims[i];
  const rest = w.data.length / n;
  const rows = Array.from({ length: n }, () => new Float32Array(rest));
  const fill = new Int32Array(n);
  for (let i = 0; i < w.data.length; i++) {
    const pos = Math.floor(i / inner) % n;
    rows[pos][fill[pos]++] = w.data[i];
  }
  return rows;
}

function dot(a: Float32Array, b: Float32Array): number {
  let s = 0;
  for (let i = 0; i < a.length; i++) s += a[i] * b[i];
  return s;
}

/** Unit-level Gram of one producer member. */
function unitGram(w: DenseWeight, m: WeightMember, size: number, diagOnly: boolean): Float64Array {
  const rows = rowsAlong(w, m.axis < 0 ? m.axis + w.dims.length : m.axis);
  const h = new Float64Array(diagOnly ? size : size * size);
  for (let u = 0; u < size; u++) {
    for (let v = diagOnly ? u : u; v < (diagOnly ? u + 1 : size); v++) {
      let s = 0;
      const iu = m.indices[u], iv = m.indices[v];
      for (let t = 0; t < iu.length; t++) s += dot(rows[iu[t]], rows[iv[t]]);
      if (diagOnly) h[u] = s;
      else h[u * size + v] = h[v * size + u] = s;
    }
  }
  return h;
}

/** Diagonal of the inverse of a symmetric positive definite matrix (Cholesky, then L⁻¹). */
export function inverseDiagonal(h: Float64Array, n: number): Float64Array {
  const L = new Float64Array(n * n);
  for (let j = 0; j < n; j++) {
    let d = h[j * n + j];
    for (let k = 0; k < j; k++) d -= L[j * n + k] ** 2;
    if (!(d > 0)) d = 1e-12;
    const ljj = Math.sqrt(d);
    L[j * n + j] = ljj;
    for (let i = j + 1; i < n; i++) {
      let s = h[i * n + j];
      for (let k = 0; k < j; k++) s -= L[i * n + k] * L[j * n + k];
      L[i * n + j] = s / ljj;
    }
  }
  // Z = L⁻¹ (lower triangular), column by column; diag(H⁻¹)_u = Σ_k Z_ku².
  const out = new Float64Array(n);
  const z = new Float64Array(n);
  for (let c = 0; c < n; c++) {
    z.fill(0);
    z[c] = 1 / L[c * n + c];
    let acc = z[c] * z[c];
    for (let i = c + 1; i < n; i++) {
      let s = 0;
      for (let k = c; k < i; k++) s -= L[i * n + k] * z[k];
      z[i] = s / L[i * n + i];
      acc += z[i] * z[i];
    }
    out[c] = acc;
  }
  return out;
}

export function obsWeightsScores(ctx: ScoreContext, group: Group): Float64Array {
  const size = group.size;
  const consumers: Float64Array[] = [];
  for (const m of weightMembers(group)) {
    if (m.role !== 'in') continue;
    const w = ctx.weights.get(m.tensor);
    if (w && w.dims.length >= 2) consumers.push(unitSums(axisProfile(w, m.axis, 'l2sq'), m.indices));
  }
  const producers = learnedMembers(ctx.graph, group, ctx.weights).filter((m) => m.role === 'out' && ctx.weights.get(m.tensor)!.dims.length >= 2);
  let energy: Float64Array;
  if (consumers.length) energy = reduceMembers(consumers, size, ctx.reduce);
  else {
    ctx.fallback(group, 'no consumer weight: OBS uses producer energy');
    energy = reduceMembers(producers.map((m) => unitSums(axisProfile(ctx.weights.get(m.tensor)!, m.axis, 'l2sq'), m.indices)), size, ctx.reduce);
  }
  if (producers.length === 0) return energy;
  const diagOnly = size > OBS_MAX_UNITS;
  const h = new Float64Array(diagOnly ? size : size * size);
  for (const m of producers) {
    const g = unitGram(ctx.weights.get(m.tensor)!, m, size, diagOnly);
    let md = 0;
    for (let u = 0; u < size; u++) md += diagOnly ? g[u] : g[u * size + u];
    md /= size;
    if (!(md > 0)) continue;
    for (let i = 0; i < g.length; i++) h[i] += g[i] / md;
  }
  let meanDiag = 0;
  for (let u = 0; u < size; u++) meanDiag += diagOnly ? h[u] : h[u * size + u];
  meanDiag /= size;
  if (!(meanDiag > 0)) return energy;
  const damp = DAMPING * meanDiag;
  if (diagOnly) return energy.map((e, u) => e * (h[u] + damp));
  for (let u = 0; u < size; u++) h[u * size + u] += damp;
  const inv = inverseDiagonal(h, size);
  return energy.map((e, u) => e / inv[u]);
}
