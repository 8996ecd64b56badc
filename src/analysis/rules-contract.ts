/**
 * Rules for ops that create or consume channels: a generic contraction (MatMul, Gemm, Einsum) and
 * convolutions. A constant operand is a weight: its contracted axis consumes the other operand's channels
 * ('in' member) and its free axis produces a new space ('out' member). Two activations contracted together
 * (attention q·kᵀ, probs·v) couple their batch axes hyperplane by hyperplane and mix the contracted axis,
 * which is only allowed when it turns whole heads into units.
 */
import type { Node } from '../ir/node';
import { DECLINE } from './decline';
import { type Field, NONE, pickAlong, remapAxes, strides } from './field';
import { declineInputs, dropAxes, id, mixAlong, normAxis, unionFields } from './rule-kit';
import type { State } from './state';

export interface Operand { name: string; input: number; letters: string[] }

/** Labels of each hyperplane `axis = index` of a field, in position order (one pass over the field). */
function hyperplanes(f: Field, axis: number): number[][] {
  const k = f.axes.indexOf(axis);
  const st = strides(f.dims)[k];
  const d = f.dims[k];
  const out: number[][] = Array.from({ length: d }, () => []);
  for (let i = 0; i < f.labels.length; i++) out[Math.floor(i / st) % d].push(f.labels[i]);
  return out;
}

/** Re-expresses an operand's field in output axes (contracted axes dropped; they must be constant by now). */
function project(f: Field, op: Operand, outLetters: string[], outRank: number): Field | undefined {
  const contracted = op.letters.map((l, a) => (outLetters.includes(l) ? -1 : a)).filter((a) => a >= 0);
  const g = dropAxes(f, contracted, false);
  if (!g.axes.length) return undefined;
  const kept = op.letters.map((l, a) => ({ l, a })).filter((x) => outLetters.includes(x.l)).map((x) => x.a);
  return remapAxes(g, (j) => outLetters.indexOf(op.letters[kept[j]]), outRank);
}

/**
 * Generic two-operand contraction. Letters that appear in an operand with size 1 while the output has a
 * larger size are broadcast (the operand does not take part in that letter).
 */
export function contract(st: State, n: Node, A: Operand, B: Operand, outLetters: string[], out: string): void {
  const os = st.shape(out), sa = st.shape(A.name), sb = st.shape(B.name);
  const wa = st.stored(A.name), wb = st.stored(B.name);
  if (wa && wb) return;
  if (!os || !sa || !sb) { declineInputs(st, n, DECLINE.unknownShape); return; }
  // Broadcast letters get private names so they are neither batch nor contracted.
  const fix = (op: Operand, s: number[]): Operand => ({
    ...op,
    letters: op.letters.map((l, a) => {
      const oa = outLetters.indexOf(l);
      return oa >= 0 && s[a] === 1 && os[oa] !== 1 ? `${l}~${op.input}` : l;
    }),
  });
  A = fix(A, sa);
  B = fix(B, sb);
  let fa = st.field(A.name), fb = st.field(B.name);
  const R = os.length;
  const outFields: Field[] = [];

  const weight = (W: Operand, sw: number[], X: Operand, fx: Field | undefined) => {
    let created = false;
    W.letters.forEach((l, wAxis) => {
      const xa = X.letters.indexOf(l), oa = outLetters.indexOf(l);
      const partner = { tensor: W.name, node: id(n), input: W.input, axis: wAxis };
      if (oa < 0 && xa >= 0) st.attach(X.name, xa, partner, 'in');
      else if (oa >= 0 && xa < 0 && sw[wAxis] > 1) {
        outFields.push(st.newSpace(n, out, oa, os[oa], R));
        st.attach(out, oa, partner, 'out');
        created = true;
      } else if (oa >= 0 && xa >= 0 && sw[wAxis] > 1) st.attach(out, oa, partner, 'param');
    });
    if (!fx) return;
    const surviving = fx.axes.filter((a) => outLetters.includes(X.letters[a]));
    if (!surviving.length) return;
    const contractedLabeled = fx.axes.some((a) => !outLetters.includes(X.letters[a]));
    if (created || contractedLabeled) { st.declineField(fx, DECLINE.weightOnBatchAxis, n, X.name); return; }
    const p = project(fx, X, outLetters, R);
    if (p) outFields.push(p);
  };

  if (wb) weight(B, sb, A, fa);
  else if (wa) weight(A, sa, B, fb);
  else {
    // An operand whose labels do not vary along a batch axis that the other operand labels (broadcast from
    // size 1 or repeated by Expand: multi-query attention's single k/v head read by every query head) is
    // shared by all the other's units there: uniting would tie them into one. Its channels become one declined
    // unit (kept whole, so that the tensors it shares with the other operand's units stay regular); the other
    // operand's units stay, and a repeated operand shrinks with them along that axis (attached below).
    const shared = (X: Operand, fx: Field, Y: Operand, fy: Field | undefined) =>
      !!fy && fy.axes.some((a) => {
        const l = Y.letters[a];
        if (!outLetters.includes(l)) return false;
        if (X.letters.includes(`${l}~${X.input}`)) return true;
        const xa = X.letters.indexOf(l);
        return xa >= 0 && !fx.axes.includes(xa);
      });
    const shareA = !!fa && shared(A, fa, B, fb), shareB = !!fb && shared(B, fb, A, fa);
    const declineShared = (f: Field, X: Operand) => {
      st.unionAll([...f.labels].filter((l) => l !== NONE), n);
      st.declineField(f, DECLINE.broadcastShared, n, X.name);
    };
    if (shareA) { declineShared(fa!, A); fa = undefined; }
    if (shareB) { declineShared(fb!, B); fb = undefined; }
    const mixed: (Field | undefined)[] = [fa, fb];
    [A, B].forEach((X, k) => {
      const f = mixed[k];
      if (!f) return;
      const contracted = X.letters.map((l, a) => (outLetters.includes(l) ? -1 : a)).filter((a) => a >= 0);
      mixed[k] = mixAlong(st, n, f, contracted, DECLINE.contraction, true);
    });
    for (const l of outLetters) {
      const ia = A.letters.indexOf(l), ib = B.letters.indexOf(l);
      if (ia < 0 || ib < 0) continue;
      const la = !!fa?.axes.includes(ia), lb = !!fb?.axes.includes(ib);
      if (la && lb) {
        const pa = hyperplanes(fa!, ia), pb = hyperplanes(fb!, ib);
        for (let i = 0; i < sa[ia]; i++) st.unionAll([...(pa[i] ?? []), ...(pb[i] ?? [])], n);
      } else if (la && sb[ib] > 1) st.attach(A.name, ia, { tensor: B.name, node: id(n), input: B.input, axis: ib }, 'param');
      else if (lb && sa[ia] > 1) st.attach(B.name, ib, { tensor: A.name, node: id(n), input: A.input, axis: ia }, 'param');
    }
    if (fa) { const p = project(fa, A, outLetters, R); if (p) outFields.push(p); }
    if (fb) { const p = project(fb, B, outLetters, R); if (p) outFields.push(p); }
  }
  st.setField(out, unionFields(st, n, outFields, os));
}

/** MatMul letters with numpy batch broadcasting (1-D operands are vectors). */
export function matmulRule(st: State, n: Node): void {
  const sa = st.shape(n.inputs[0]), sb = st.shape(n.inputs[1]);
  if (!sa || !sb) { declineInputs(st, n, DECLINE.unknownShape); return; }
  const ra = sa.length, rb = sb.length;
  let la: string[], lb: string[], lo: string[];
  if (ra === 1 && rb === 1) { la = ['k']; lb = ['k']; lo = []; }
  else if (ra === 1) {
    const nb = rb - 2;
    const bl = Array.from({ length: nb }, (_, i) => `b${i}`);
    la = ['k']; lb = [...bl, 'k', 'n']; lo = [...bl, 'n'];
  } else if (rb === 1) {
    const nb = ra - 2;
    const bl = Array.from({ length: nb }, (_, i) => `b${i}`);
    la = [...bl, 'm', 'k']; lb = ['k']; lo = [...bl, 'm'];
  } else {
    const nb = Math.max(ra, rb) - 2;
    const bl = Array.from({ length: nb }, (_, i) => `b${i}`);
    la = [...bl.slice(nb - (ra - 2)), 'm', 'k'];
    lb = [...bl.slice(nb - (rb - 2)), 'k', 'n'];
    lo = [...bl, 'm', 'n'];
  }
  contract(st, n, { name: n.inputs[0], input: 0, letters: la }, { name: n.inputs[1], input: 1, letters: lb }, lo, n.outputs[0]);
}

export function gemmRule(st: State, n: Node): void {
  const la = n.attrInt('transA', 0) ? ['k', 'm'] : ['m', 'k'];
  const lb = n.attrInt('transB', 0) ? ['n', 'k'] : ['k', 'n'];
  const out = n.outputs[0];
  contract(st, n, { name: n.inputs[0], input: 0, letters: la }, { name: n.inputs[1], input: 1, letters: lb }, ['m', 'n'], out);
  const c = n.inputs[2];
  if (!c) return;
  if (st.field(c)) { st.declineField(st.field(c), DECLINE.unknownOp + ': Gemm with a computed C', n, c); return; }
  const sc = st.shape(c), os = st.shape(out);
  if (!sc || !os) return;
  const cAxis = sc.length - 1;
  if (cAxis >= 0 && sc[cAxis] > 1) st.attach(out, 1, { tensor: c, node: id(n), input: 2, axis: cAxis }, st.stored(c) ? 'out' : 'param');
  if (sc.length === 2 && sc[0] > 1) st.attach(out, 0, { tensor: c, node: id(n), input: 2, axis: 0 }, 'param');
}

/** Einsum with one or two operands and explicit output ('ij,jk->ik', 'bhqd,bhkd->bhqk', 'ij->ji'). */
export function einsumRule(st: State, n: Node): void {
  const eq = (n.attrString('equation') ?? '').replace(/\s+/g, '');
  const m = /^([a-zA-Z]*)(?:,([a-zA-Z]*))?->([a-zA-Z]*)$/.exec(eq);
  if (!m) { declineInputs(st, n, `${DECLINE.unknownOp}: Einsum '${eq}'`); return; }
  const [, a, b, o] = m;
  if (b === undefined) {
    const f = st.field(n.inputs[0]);
    if (!f) return;
    const reduced = [...a].map((l, ax) => (o.includes(l) ? -1 : ax)).filter((x) => x >= 0);
    const g = mixAlong(st, n, f, reduced, DECLINE.reduction);
    const h = dropAxes(g, reduced, false);
    const kept = [...a].filter((l) => o.includes(l));
    st.setField(n.outputs[0], remapAxes(h, (j) => o.indexOf(kept[j]), o.length));
    return;
  }
  contract(st, n, { name: n.inputs[0], input: 0, letters: [...a] }, { name: n.inputs[1], input: 1, letters: [...b] }, [...o], n.outputs[0]);
}

/** Conv / ConvTranspose: plain, depthwise (group = C_in, any channel multiplier) or grouped (whole groups; declined for ConvTranspose). */
export function convRule(st: State, n: Node, transposed: boolean): void {
  const x = n.inputs[0], w = n.inputs[1], bias = n.inputs[2], out = n.outputs[0];
  const sx = st.shape(x), sw = st.shape(w), os = st.shape(out);
  const fx = st.field(x);
  if (!sx || !sw || !os) { declineInputs(st, n, DECLINE.unknownShape); return; }
  if (!st.stored(w)) { declineInputs(st, n, `${DECLINE.unknownOp}: ${n.opType} with a computed weight`); return; }
  const g = n.attrInt('group', 1);
  const cin = sx[1];
  const cout = os[1];
  const R = os.length;
  const wOut = transposed ? 1 : 0, wIn = transposed ? 0 : 1;
  if (fx && fx.axes.some((a) => a !== 1)) { st.declineField(fx, DECLINE.irregular, n, x); return; }
  if (g === 1) {
    if (fx) st.attach(x, 1, { tensor: w, node: id(n), input: 1, axis: wIn }, 'in');
    st.setField(out, st.newSpace(n, out, 1, cout, R));
    st.attach(out, 1, { tensor: w, node: id(n), input: 1, axis: wOut }, 'out');
    if (bias) st.attach(out, 1, { tensor: bias, node: id(n), input: 2, axis: 0 }, 'out');
    return;
  }
  if (g === cin && cout % cin === 0) {
    // Depthwise: output channel o reads input channel floor(o / mult).
    if (!fx) return;
    const mult = cout / cin;
    const picks = Array.from({ length: cout }, (_, o) => Math.floor(o / mult));
    st.setField(out, pickAlong(fx, 1, picks));
    if (transposed) st.attach(x, 1, { tensor: w, node: id(n), input: 1, axis: 0 }, 'param');
    else st.attach(out, 1, { tensor: w, node: id(n), input: 1, axis: 0 }, 'param');
    if (bias) st.attach(out, 1, { tensor: bias, node: id(n), input: 2, axis: 0 }, 'param');
    st.attrs.push({ node: id(n), attr: 'group', field: x, axis: 1, divisor: 1 });
    return;
  }
  if (!transposed && g > 1 && cin % g === 0 && cout % g === 0 && fx && fx.axes.length === 1 && fx.dims[0] === cin) {
    // Grouped: a unit is one whole conv group — its input block (cin/g channels of the producer upstream), its
    // output block (cout/g rows of W, the bias) — and the group count drops by one per unit. Output channel o
    // reads only its own block's inputs, so a kept output never reads a removed input: W's input axis (the
    // position within a group) is not touched, and the masked model needs only the consumers downstream zeroed.
    const ci = cin / g, co = cout / g;
    const f = st.newSpace(n, out, 1, cout, R);
    for (let b = 0; b < g; b++) {
      const labels: number[] = [];
      for (let i = 0; i < ci; i++) labels.push(fx.labels[b * ci + i]);
      for (let o = 0; o < co; o++) labels.push(f.labels[b * co + o]);
      st.unionAll(labels, n);
    }
    st.setField(out, f);
    st.attach(out, 1, { tensor: w, node: id(n), input: 1, axis: 0 }, 'out');
    if (bias) st.attach(out, 1, { tensor: bias, node: id(n), input: 2, axis: 0 }, 'out');
    st.attrs.push({ node: id(n), attr: 'group', field: out, axis: 1, divisor: co });
    return;
  }
  if (fx) st.declineField(fx, DECLINE.groupedConv, n, x);
}

/** Gather on a stored table with data-dependent indices: an embedding lookup produces the table's columns. */
export function embeddingRule(st: State, n: Node): boolean {
  const data = n.inputs[0];
  const w = st.stored(data);
  if (!w || w.tensor.dims.length !== 2 || normAxis(n.attrInt('axis', 0), 2) !== 0) return false;
  if (st.plumb.get(n.inputs[1])) return false;
  const os = st.shape(n.outputs[0]);
  if (!os || w.tensor.dims[1] <= 1) return true;
  const last = os.length - 1;
  st.setField(n.outputs[0], st.newSpace(n, n.outputs[0], last, os[last], os.length));
  st.attach(n.outputs[0], last, { tensor: data, node: id(n), input: 0, axis: 1 }, 'out');
  return true;
}

