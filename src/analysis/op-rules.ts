/**
 * The channel rules of group analysis, derived from the op spec registry (src/ir/ops: one entry per ONNX op
 * type). A spec names a channel behaviour (`channels`); this file implements each behaviour as an OpRule. A
 * rule maps the label fields of a node's inputs to its outputs, couples labels that must be removed together,
 * and records members (weights, shape constants, attributes) and declines.
 *
 * An op without a spec blocks every group whose channels reach it ("unsupported op: X").
 * `produces` marks behaviours that create new channel spaces (they run even when no input is labeled).
 */
import type { Node } from '../ir/node';
import { type ChannelKind, type ChannelSpec, OP_SPECS, opSpec } from '../ir/ops';
import { DECLINE } from './decline';
import { declineInputs, dropAxes, elementwise, mixAlong, passThrough } from './rule-kit';
import { convRule, einsumRule, gemmRule, matmulRule } from './rules-contract';
import {
  concatRule, expandRule, gatherRule, padRule, reshapeRule, resizeRule, sliceRule, splitRule, tileRule, transposeRule,
} from './rules-layout';
import {
  argReduceRule, batchNormRule, cumSumRule, globalPoolRule, groupNormRule, instanceNormRule, layerNormRule, poolRule,
  reduceRule, softmaxRule,
} from './rules-norm';
import { quantizeRule } from './rules-quant';
import { rnnRule } from './rules-recurrent';
import type { State } from './state';

export interface OpRule {
  apply(st: State, n: Node): void;
  /** Creates channel spaces (a weight's output rows): applied even when no input is labeled. */
  produces?: boolean;
}

/** The producer of `name`, looking through an activation's QuantizeLinear→DequantizeLinear pair (QDQ models). */
function producerThroughQdq(st: State, name: string): Node | undefined {
  let p = st.graph.producer(name);
  for (let k = 0; k < 4 && p?.opType === 'DequantizeLinear' && p.domain === ''; k++) {
    const q = st.graph.producer(p.inputs[0]);
    if (!q || q.opType !== 'QuantizeLinear' || q.domain !== '') break;
    p = st.graph.producer(q.inputs[0]);
  }
  return p;
}

/**
 * Add: elementwise; a 1-D constant added right after a weighted layer (or after its output's QDQ pair) is that
 * layer's bias ('out' member).
 */
function biasAddRule(st: State, n: Node): void {
  const producerOut = n.inputs.some((i) => {
    const p = producerThroughQdq(st, i);
    return !!p && !!opSpec(p.opType, p.domain)?.weighted;
  });
  const isBias = producerOut && n.inputs.some((i) => (st.stored(i)?.tensor.dims.length ?? 0) === 1);
  elementwise(st, n, undefined, [0], isBias ? 'out' : 'param');
}

/** Per-channel sampling of input 0 (GridSample, RoiAlign, MaxRoiPool): only its channel axis may be labeled. */
function resampleRule(st: State, n: Node): void {
  const f = st.field(n.inputs[0]);
  for (let i = 1; i < n.inputs.length; i++) if (n.inputs[i]) st.declineField(st.field(n.inputs[i]), DECLINE.dataIndex, n, n.inputs[i]);
  if (!f) return;
  if (f.axes.some((a) => a !== 1)) { st.declineField(f, DECLINE.irregular, n, n.inputs[0]); return; }
  st.setField(n.outputs[0], f);
}

/** Labels on inputs other than 0, which the parameterized behaviours do not read, are declined with `reason`. */
function declineOtherInputs(st: State, n: Node, reason: string): void {
  for (let i = 1; i < n.inputs.length; i++) if (n.inputs[i]) st.declineField(st.field(n.inputs[i]), reason, n, n.inputs[i]);
}

const rule = (apply: OpRule['apply'], produces = false): OpRule => ({ apply, produces });

const KINDS: Record<ChannelKind, OpRule> = {
  inert: rule(() => undefined),
  unary: rule((st, n) => passThrough(st, n, 0, n.outputs.map((_, i) => i).filter((i) => n.outputs[i]))),
  elementwise: rule((st, n) => elementwise(st, n)),
  biasAdd: rule(biasAddRule),
  quantize: rule(quantizeRule),
  conv: rule((st, n) => convRule(st, n, false), true),
  convTranspose: rule((st, n) => convRule(st, n, true), true),
  gemm: rule(gemmRule, true),
  matmul: rule(matmulRule, true),
  einsum: rule(einsumRule, true),
  gather: rule(gatherRule, true),
  batchNorm: rule(batchNormRule),
  instanceNorm: rule(instanceNormRule),
  layerNorm: rule(layerNormRule),
  groupNorm: rule(groupNormRule),
  softmax: rule(softmaxRule),
  reduce: rule(reduceRule),
  argReduce: rule(argReduceRule),
  globalPool: rule(globalPoolRule),
  pool: rule(poolRule),
  cumSum: rule(cumSumRule),
  reshape: rule(reshapeRule),
  transpose: rule(transposeRule),
  concat: rule(concatRule),
  split: rule(splitRule),
  slice: rule(sliceRule),
  expand: rule(expandRule),
  tile: rule(tileRule),
  pad: rule(padRule),
  resize: rule(resizeRule),
  rnn: rule(rnnRule, true),
  resample: rule(resampleRule),
};

/** The rule implementing a channel spec. */
export function channelRule(spec: ChannelSpec): OpRule {
  if (typeof spec === 'string') {
    const r = KINDS[spec];
    if (!r) throw new Error(`channel behaviour '${spec}' is not implemented`);
    return r;
  }
  if ('positional' in spec) {
    const axesOf = spec.positional;
    return rule((st, n) => {
      declineOtherInputs(st, n, DECLINE.positional);
      const f = st.field(n.inputs[0]);
      if (!f) return;
      const axes = axesOf(n, f.rank);
      if (f.axes.some((a) => axes.includes(a))) { st.declineField(f, DECLINE.positional, n); return; }
      st.setField(n.outputs[0], f);
    });
  }
  if ('mix' in spec) {
    const { mix, out } = spec;
    const reason = DECLINE[spec.decline];
    return rule((st, n) => {
      declineOtherInputs(st, n, reason);
      const f = st.field(n.inputs[0]);
      if (!f) return;
      const axes = mix(n, f.rank);
      const g = mixAlong(st, n, f, axes, reason);
      const h = out === 'same' ? g : dropAxes(g, axes, out === 'keep');
      for (const o of n.outputs) if (o) st.setField(o, h);
    });
  }
  // An op we know but do not model reads like an unknown one ("unsupported op: DepthToSpace").
  const key = spec.decline;
  return rule((st, n) => declineInputs(st, n, key === 'unknownOp' ? `${DECLINE.unknownOp}: ${n.opType}` : DECLINE[key]));
}

/** THE channel rule table: one rule per op spec (derived, not a list of its own). */
export const OP_RULES: Readonly<Record<string, OpRule>> = Object.freeze(
  Object.fromEntries(Object.entries(OP_SPECS).map(([op, s]) => [op, channelRule(s.channels)])),
);

/** The rule for a node, or undefined for unsupported ops (and every op of a non-default domain). */
export function ruleFor(n: Node): OpRule | undefined {
  if (!opSpec(n.opType, n.domain)) return undefined;
  return OP_RULES[n.opType];
}
