/**
 * Recurrent layers (ONNX LSTM, GRU, RNN): the hidden units are channels. A unit h owns, per direction, row h of
 * every gate block of W [dirs, gates·H, I], R [dirs, gates·H, H] and B [dirs, 2·gates·H] (role 'out'), column h
 * of R (its own recurrent input: role 'in'), position h of a stored initial state and of LSTM's peepholes
 * P [dirs, 3·H] ('param'), the `hidden_size` attribute, and position h of the last axis of Y, Y_h and Y_c.
 * The layer's input channels are W's columns (axis 2, role 'in').
 *
 * Gate blocks are expressed as fields on names of their own (`<node>#W`, …): a field position carries one label,
 * and W's rows are gates × H positions for H units (each unit owns `gates` of them).
 * Declined: a labeled state or bias input (computed from another group), computed weights, an initial state that
 * is not a stored constant (the caller passes it: its shape would change), and layouts the rule does not know.
 */
import type { Node } from '../ir/node';
import { DECLINE } from './decline';
import { makeField } from './field';
import { declineInputs } from './rule-kit';
import { State } from './state';

const id = State.id;

/** `labels` repeated `times` times, one block after the other. */
function repeated(labels: Int32Array, times: number): Int32Array {
  const out = new Int32Array(labels.length * times);
  for (let t = 0; t < times; t++) out.set(labels, t * labels.length);
  return out;
}

export function rnnRule(st: State, n: Node): void {
  const gates = n.opType === 'LSTM' ? 4 : n.opType === 'GRU' ? 3 : 1;
  // Members name their node by its first output: a layer that omits Y cannot be named.
  if (!n.outputs[0]) { declineInputs(st, n, `${DECLINE.unknownOp}: ${n.opType} without its Y output`); return; }
  const [x, w, r, b, , h0, c0, p] = n.inputs;
  const sx = st.shape(x), sw = st.shape(w), sr = st.shape(r);
  if (!sx || !sw || !sr || sw.length !== 3 || sr.length !== 3) { declineInputs(st, n, DECLINE.unknownShape); return; }
  if (!st.stored(w) || !st.stored(r)) { declineInputs(st, n, `${DECLINE.unknownOp}: ${n.opType} with computed weights`); return; }
  const H = sr[2];
  if (!(H >= 1) || sw[1] !== gates * H || sr[1] !== gates * H) { declineInputs(st, n, DECLINE.irregular); return; }
  // Labels on the state, bias or peephole inputs come from another group: not modelled.
  for (let i = 3; i < n.inputs.length; i++) if (n.inputs[i]) st.declineField(st.field(n.inputs[i]), DECLINE.recurrent, n, n.inputs[i]);
  // Input channels: X [T, B, I] (layout 0) or [B, T, I] (layout 1): axis 2 either way, W's columns.
  const fx = st.field(x);
  if (fx) {
    if (fx.axes.some((a) => a !== 2)) st.declineField(fx, DECLINE.irregular, n, x);
    else st.attach(x, 2, { tensor: w, node: id(n), input: 1, axis: 2 }, 'in');
  }
  // Hidden units: a space on the first output present (Y's last axis, or Y_h's / Y_c's).
  const outs = n.outputs.map((o, i) => ({ o, i })).filter((x) => x.o);
  if (!outs.length) return;
  const rankOf = (i: number) => (i === 0 ? 4 : 3);
  const first = outs[0];
  const space = st.newSpace(n, first.o, rankOf(first.i) - 1, H, rankOf(first.i));
  const labels = space.labels;
  for (const { o, i } of outs) st.setField(o, makeField(rankOf(i), [rankOf(i) - 1], [H], labels));
  const view = (suffix: string, rank: number, axis: number, times: number) => {
    const name = `${id(n)}#${suffix}`;
    st.setField(name, makeField(rank, [axis], [H * times], repeated(labels, times)));
    return name;
  };
  st.attach(view('W', 3, 1, gates), 1, { tensor: w, node: id(n), input: 1, axis: 1 }, 'out');
  st.attach(view('R', 3, 1, gates), 1, { tensor: r, node: id(n), input: 2, axis: 1 }, 'out');
  st.attach(view('Rin', 3, 2, 1), 2, { tensor: r, node: id(n), input: 2, axis: 2 }, 'in');
  if (b) st.attach(view('B', 2, 1, 2 * gates), 1, { tensor: b, node: id(n), input: 3, axis: 1 }, 'out');
  if (p && gates === 4) st.attach(view('P', 2, 1, 3), 1, { tensor: p, node: id(n), input: 7, axis: 1 }, 'param');
  const states: [string | undefined, number, string][] = [[h0, 5, 'H0'], [gates === 4 ? c0 : undefined, 6, 'C0']];
  for (const [s, input, suffix] of states) {
    if (!s) continue;
    if (!st.stored(s)) { st.declineField(space, DECLINE.recurrentState, n, s); continue; }
    st.attach(view(suffix, 3, 2, 1), 2, { tensor: s, node: id(n), input, axis: 2 }, 'param');
  }
  st.attrs.push({ node: id(n), attr: 'hidden_size', field: first.o, axis: rankOf(first.i) - 1, divisor: 1 });
}
