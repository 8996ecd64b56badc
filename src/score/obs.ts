/**
 * `obs`: the greedy group OBS path from calibration Grams (ZipLM / DarwinLM; reference notes §4 formula 2), so
 * that the units chosen and a later refit come from the same criterion.
 *
 * Per group: its *consumers* are the 'in' members (weights that read the group's channels) whose op has a Gram
 * request (src/ort/gram.ts gramRequestFor: MatMul, Gemm, Conv with group 1; the op after a Cast /
 * DequantizeLinear weight chain). Each consumer's weight is a d_out × d_in matrix W (its values as used), H = XᵀX
 * the Gram of its input (im2col patches for a Conv), and unit u owns the columns of its positions along the
 * weight's input axis (a Conv position c is columns c·k … c·k+k−1, k = kh·kw…). One greedy path over the group's
 * units (src/score/refit.ts obsPathMulti) removes at each step the unit with the smallest Σ over consumers of
 * tr(W_G·(H⁻¹_GG)⁻¹·W_Gᵀ) — the output error its removal adds when the other inputs are refit by least squares —
 * and updates every consumer's W and H⁻¹. Consumers that read the same activation with the same Gram and the same
 * unit columns are stacked into one W (the same path, fewer H⁻¹ updates).
 *
 * Scores. The unit removed at step t scores E_t / E_n: the path's cumulative error after t removals over its
 * total after all n (Σ of the step scores). So (a) scores increase along the path (strictly: an equal value is
 * nudged up by one ulp), hence removing a group's lowest scores removes a prefix of the path; and (b) a score is
 * the fraction of the consumers' (damped) output energy lost at that point, comparable across groups: the method
 * is `normalized` and global allocation ranks these fractions as they are.
 *
 * Fallback (named, with the reason in ScoreInfo.fallbacks): a group inside a control-flow subgraph, or without a
 * consumer with a full Gram (no 'in' member, ops without a Gram request, a Gram over the memory cap), is scored by
 * `obs-weights` (src/score/obs-weights.ts) put on the same scale: units in ascending obs-weights order, each
 * scored by the cumulative share of the obs-weights scores up to it. A group with some consumers measurable and
 * others not uses the measurable ones (as wanda does).
 *
 * Cost per group: per consumer a d_in³ inverse and, along the full path, O(d_in³ + n·d_in·d_out) more.
 */
import type { Group, WeightMember } from '../analysis/types';
import type { Graph } from '../ir/graph';
import { UserError } from '../ir/errors';
import { DEFAULT_MAX_GRAM_BYTES, gramDim, type GramRequest } from '../ort/gram';
import { memberConsumer } from './consumers';
import type { ScoreContext } from './context';
import { obsWeightsScores } from './obs-weights';
import { obsPathMulti, type ObsConsumer } from './refit';
import { inSubgraph, weightMembers } from './tensor-math';

/** The key of a Gram request: requests with equal keys have the same statistics. */
export function gramKey(r: GramRequest): string {
  return r.kind === 'conv'
    ? JSON.stringify(['conv', r.tensor, r.channels, r.kernel, r.pads ?? null, r.strides ?? null, r.dilations ?? null, r.autoPad ?? null])
    : JSON.stringify(['matmul', r.tensor, r.axis, r.channels, r.rank ?? null, r.block ?? null]);
}

/** Where one consumer of a group meets its Gram. */
export interface ObsSite {
  member: WeightMember;
  request: GramRequest;
  key: string;
  /** Columns per input position (a Conv's kh·kw…, else 1). */
  block: number;
  /** The weight's input axis is its last (W is d_out × d_in as stored) or not (d_in × d_out: MatMul's B, Gemm's B without transB). */
  layout: 'out-in' | 'in-out';
}

/**
 * The consumers of `group` that have a Gram request, and why the other 'in' members have none (reasons without names, so that groups share them). `dims` gives a
 * stored weight's dims. Requests whose full Gram would exceed `maxGramBytes` are declined (the capture would
 * give a block-diagonal approximation, which the path cannot use).
 */
export function obsSites(graph: Graph, group: Group, maxGramBytes = DEFAULT_MAX_GRAM_BYTES): { sites: ObsSite[]; declined: string[] } {
  const sites: ObsSite[] = [];
  const declined: string[] = [];
  for (const m of weightMembers(group)) {
    if (m.role !== 'in') continue;
    // The consumer as a matrix with its Gram request (src/score/consumers.ts, shared with reconstruction).
    const c = memberConsumer(graph, m);
    if ('reason' in c) { declined.push(c.reason); continue; }
    const D = gramDim(c.request);
    if (D * D * 8 > maxGramBytes) { declined.push(`a Gram of ${D}×${D} is over the memory cap`); continue; }
    sites.push({ member: m, request: c.request, key: gramKey(c.request), block: c.columnsPerChannel, layout: c.layout });
  }
  return { sites, declined };
}

/** The Gram requests of `group`'s consumers (what `obs` needs captured before scoring it). */
export function obsGramRequests(graph: Graph, group: Group): GramRequest[] {
  if (inSubgraph(graph, group)) return [];
  const seen = new Map<string, GramRequest>();
  for (const s of obsSites(graph, group).sites) if (!seen.has(s.key)) seen.set(s.key, s.request);
  return [...seen.values()];
}

/** The smallest double above x (x ≥ 0 finite). */
function nextUp(x: number): number {
  if (x === 0) return Number.MIN_VALUE;
  const b = new Float64Array([x]);
  const i = new BigInt64Array(b.buffer);
  i[0] += 1n;
  return b[0];
}

/**
 * Scores from a removal order and each removal's (non-negative) cost: the unit removed t-th gets the cumulative
 * cost up to it over the total, strictly increasing along the order (ties nudged up by one ulp). Units not in
 * `order` are not allowed (every unit is removed once).
 */
export function cumulativeScores(order: number[], costs: ArrayLike<number>, size: number): Float64Array {
  if (order.length !== size) throw new Error(`cumulativeScores: ${order.length} removals for ${size} units`);
  let total = 0;
  for (let t = 0; t < size; t++) total += Math.max(0, costs[t]);
  const out = new Float64Array(size);
  let cum = 0, prev = -1;
  for (let t = 0; t < size; t++) {
    cum += Math.max(0, costs[t]);
    let s = total > 0 && Number.isFinite(total) ? cum / total : 0;
    if (t > 0 && !(s > prev)) s = nextUp(prev);
    out[order[t]] = s;
    prev = s;
  }
  return out;
}

/** The obs-weights scores on the `obs` scale (see the file comment). */
function fallbackScores(ctx: ScoreContext, group: Group): Float64Array {
  const s = obsWeightsScores(ctx, group);
  const order = Array.from({ length: group.size }, (_, u) => u).sort((a, b) => s[a] - s[b] || a - b);
  return cumulativeScores(order, order.map((u) => (Number.isFinite(s[u]) ? s[u] : 0)), group.size);
}

/** The consumers as obsPathMulti takes them, float64 out-in; those sharing a Gram and unit columns stacked. */
function pathConsumers(ctx: ScoreContext, group: Group, sites: ObsSite[]): { consumers: ObsConsumer[]; skipped: string[] } {
  const skipped: string[] = [];
  const stacks = new Map<string, { rows: Float64Array[]; dOut: number; dIn: number; H: Float64Array; units: number[][] }>();
  for (const s of sites) {
    const g = ctx.grams!.get(s.key);
    const w = ctx.weights.get(s.member.tensor);
    if (!g || !w) { skipped.push('no Gram captured'); continue; }
    if (g.blockDiagonal) { skipped.push('block-diagonal Gram'); continue; }
    const rank = w.dims.length;
    const axis = s.member.axis < 0 ? s.member.axis + rank : s.member.axis;
    const positions = w.dims[axis];
    const dIn = positions * s.block;
    const dOut = w.data.length / dIn;
    if (g.dim !== dIn || !Number.isInteger(dOut)) { skipped.push('a Gram that does not fit the weight'); continue; }
    // W as float64 d_out × d_in (a Conv kernel [O, C, k…] is already O × C·k; a d_in × d_out matrix is transposed).
    const W = new Float64Array(dOut * dIn);
    if (s.layout === 'out-in') W.set(w.data);
    else for (let j = 0; j < dIn; j++) for (let o = 0; o < dOut; o++) W[o * dIn + j] = w.data[j * dOut + o];
    const units = s.member.indices.map((pos) => pos.flatMap((p) => Array.from({ length: s.block }, (_, t) => p * s.block + t)));
    const key = `${s.key}|${JSON.stringify(units)}`;
    const st = stacks.get(key);
    if (st) { st.rows.push(W); st.dOut += dOut; } else stacks.set(key, { rows: [W], dOut, dIn, H: g.gram, units });
  }
  const consumers: ObsConsumer[] = [];
  for (const st of stacks.values()) {
    let W = st.rows[0];
    if (st.rows.length > 1) {
      W = new Float64Array(st.dOut * st.dIn);
      let o = 0;
      for (const r of st.rows) { W.set(r, o); o += r.length; }
    }
    consumers.push({ W, dOut: st.dOut, dIn: st.dIn, H: st.H, units: st.units });
  }
  return { consumers, skipped };
}

export function obsScores(ctx: ScoreContext, group: Group): Float64Array {
  if (!ctx.grams) throw new UserError("importance 'obs' needs Gram statistics of the consumers' inputs (calibration)");
  if (inSubgraph(ctx.graph, group)) {
    ctx.fallback(group, 'inside a control-flow subgraph (its activations cannot be captured): scored by obs-weights');
    return fallbackScores(ctx, group);
  }
  const { sites, declined } = obsSites(ctx.graph, group);
  const { consumers, skipped } = pathConsumers(ctx, group, sites);
  if (!consumers.length) {
    const why = [...new Set([...declined, ...skipped])];
    ctx.fallback(group, `no consumer with a full Gram${why.length ? ` (${why.join('; ')})` : ' (no \'in\' member)'}: scored by obs-weights`);
    return fallbackScores(ctx, group);
  }
  const path = obsPathMulti(consumers, group.size);
  return cumulativeScores(path.order, path.scores, group.size);
}
