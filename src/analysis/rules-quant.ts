/**
 * QuantizeLinear / DequantizeLinear on activations (QDQ models: every activation between compute ops goes
 * through a Q→DQ pair). Both are element-wise: a per-tensor scale / zero-point keeps every channel as it is;
 * per-axis ones along a labeled axis are per-channel parameters (they shrink with the channels). A weight's
 * DequantizeLinear (constant input) carries no channels: it is part of a weight chain (weight-chain.ts).
 */
import type { Node } from '../ir/node';
import { DECLINE } from './decline';
import { declineInputs, id, normAxis, passThrough } from './rule-kit';
import type { State } from './state';

export function quantizeRule(st: State, n: Node): void {
  const f = st.field(n.inputs[0]);
  if (!f) return;
  if (st.field(n.inputs[1]) || st.field(n.inputs[2] ?? '')) { declineInputs(st, n, `${DECLINE.unknownOp}: ${n.opType} with a computed scale`); return; }
  if (n.attrInt('block_size', 0) !== 0) { declineInputs(st, n, `${DECLINE.unknownOp}: blocked ${n.opType}`); return; }
  const ss = st.shape(n.inputs[1]);
  if (!ss) { declineInputs(st, n, DECLINE.unknownShape); return; }
  const perTensor = ss.reduce((a, b) => a * b, 1) === 1 && ss.length <= 1;
  if (!perTensor) {
    if (ss.length !== 1) { declineInputs(st, n, DECLINE.unknownShape); return; }
    const ax = normAxis(n.attrInt('axis', 1), f.rank);
    if (f.axes.includes(ax)) {
      for (const i of [1, 2]) if (n.inputs[i]) st.attach(n.outputs[0], ax, { tensor: n.inputs[i], node: id(n), input: i, axis: 0 }, 'param');
    }
  }
  passThrough(st, n);
}
