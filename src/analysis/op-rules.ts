/**
 * THE table of op channel rules: one entry per ONNX op type (default domain). A rule maps the label fields of
 * a node's inputs to its outputs, couples labels that must be removed together, and records members
 * (weights, shape constants, attributes) and declines. Adding an op is adding one entry here.
 *
 * An op without an entry blocks every group whose channels reach it ("unsupported op: X").
 * `produces` marks ops that create new channel spaces (they run even when no input is labeled).
 */
import type { Node } from '../ir/node';
import { DECLINE } from './decline';
import { declineInputs, elementwise, normAxis, passThrough } from './rule-kit';
import { convRule, einsumRule, gemmRule, matmulRule } from './rules-contract';
import {
  concatRule, expandRule, gatherRule, padRule, reshapeRule, resizeRule, sliceRule, splitRule, tileRule, transposeRule,
} from './rules-layout';
import {
  argReduceRule, batchNormRule, cumSumRule, globalPoolRule, groupNormRule, instanceNormRule, layerNormRule, mixRule,
  poolRule, reduceRule, softmaxRule, triluRule,
} from './rules-norm';
import { quantizeRule } from './rules-quant';
import type { State } from './state';

export interface OpRule {
  apply(st: State, n: Node): void;
  /** Creates channel spaces (a weight's output rows): applied even when no input is labeled. */
  produces?: boolean;
}

const unary: OpRule = { apply: (st, n) => passThrough(st, n, 0, n.outputs.map((_, i) => i).filter((i) => n.outputs[i])) };
const ew: OpRule = { apply: (st, n) => elementwise(st, n) };
/** Ops that never see channels (their inputs are shapes or nothing). */
const inert: OpRule = { apply: () => undefined };
const decline = (reason: string): OpRule => ({ apply: (st, n) => declineInputs(st, n, reason) });

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
 * Add: elementwise; a 1-D constant added right after a producer (or after its output's QDQ pair) is that
 * producer's bias ('out' member).
 */
const addRule: OpRule = {
  apply(st, n) {
    const producerOut = n.inputs.some((i) => ['MatMul', 'Gemm', 'Conv', 'ConvTranspose', 'Einsum'].includes(producerThroughQdq(st, i)?.opType ?? ''));
    const isBias = producerOut && n.inputs.some((i) => (st.stored(i)?.tensor.dims.length ?? 0) === 1);
    elementwise(st, n, undefined, [0], isBias ? 'out' : 'param');
  },
};

const mk = (apply: OpRule['apply'], produces = false): OpRule => ({ apply, produces });

export const OP_RULES: Record<string, OpRule> = {
  // weights: producers and consumers of channels
  Conv: mk((st, n) => convRule(st, n, false), true),
  ConvTranspose: mk((st, n) => convRule(st, n, true), true),
  Gemm: mk(gemmRule, true),
  MatMul: mk(matmulRule, true),
  Einsum: mk(einsumRule, true),
  Gather: mk(gatherRule, true),
  // elementwise with broadcasting
  Add: addRule, Sub: ew, Mul: ew, Div: ew, Pow: ew, Mod: ew, Where: ew, Max: ew, Min: ew, Sum: ew, Mean: ew,
  Equal: ew, Less: ew, Greater: ew, LessOrEqual: ew, GreaterOrEqual: ew, And: ew, Or: ew, Xor: ew, PRelu: ew,
  BitwiseAnd: ew, BitwiseOr: ew, BitwiseXor: ew, BitShift: ew,
  Clip: mk((st, n) => elementwise(st, n)),
  // unary / per-position
  QuantizeLinear: mk(quantizeRule), DequantizeLinear: mk(quantizeRule),
  Identity: unary, Cast: unary, CastLike: mk((st, n) => passThrough(st, n)), Dropout: unary,
  Relu: unary, LeakyRelu: unary, Elu: unary, Selu: unary, Celu: unary, ThresholdedRelu: unary, Gelu: unary,
  Sigmoid: unary, HardSigmoid: unary, HardSwish: unary, Tanh: unary, Softplus: unary, Softsign: unary, Mish: unary,
  Erf: unary, Exp: unary, Log: unary, Sqrt: unary, Reciprocal: unary, Neg: unary, Abs: unary, Sign: unary,
  Floor: unary, Ceil: unary, Round: unary, Sin: unary, Cos: unary, Tan: unary, Asin: unary, Acos: unary,
  Atan: unary, Sinh: unary, Cosh: unary, Asinh: unary, Acosh: unary, Atanh: unary, Not: unary, IsNaN: unary,
  IsInf: unary, BitwiseNot: unary,
  // per-channel parameters and normalizations
  BatchNormalization: mk(batchNormRule),
  InstanceNormalization: mk(instanceNormRule),
  LayerNormalization: mk(layerNormRule),
  RMSNormalization: mk(layerNormRule),
  SimplifiedLayerNormalization: mk(layerNormRule),
  GroupNormalization: mk(groupNormRule),
  LpNormalization: mk(mixRule((n, r) => [normAxis(n.attrInt('axis', -1), r)], DECLINE.normalization)),
  LRN: mk(mixRule(() => [1], DECLINE.normalization)),
  MeanVarianceNormalization: mk(mixRule((n, r) => (n.attrInts('axes') ?? [0, 2, 3]).map((a) => normAxis(a, r)), DECLINE.normalization)),
  Softmax: mk(softmaxRule), LogSoftmax: mk(softmaxRule), Hardmax: mk(softmaxRule),
  // reductions and pooling
  ReduceMean: mk(reduceRule), ReduceSum: mk(reduceRule), ReduceMax: mk(reduceRule), ReduceMin: mk(reduceRule),
  ReduceProd: mk(reduceRule), ReduceL1: mk(reduceRule), ReduceL2: mk(reduceRule), ReduceLogSum: mk(reduceRule),
  ReduceLogSumExp: mk(reduceRule), ReduceSumSquare: mk(reduceRule),
  ArgMax: mk(argReduceRule), ArgMin: mk(argReduceRule),
  GlobalAveragePool: mk(globalPoolRule), GlobalMaxPool: mk(globalPoolRule), GlobalLpPool: mk(globalPoolRule),
  MaxPool: mk(poolRule), AveragePool: mk(poolRule), LpPool: mk(poolRule),
  CumSum: mk(cumSumRule),
  Trilu: mk(triluRule),
  // layout
  Reshape: mk(reshapeRule), Flatten: mk(reshapeRule), Squeeze: mk(reshapeRule), Unsqueeze: mk(reshapeRule),
  Transpose: mk(transposeRule),
  Concat: mk(concatRule),
  Split: mk(splitRule),
  Slice: mk(sliceRule),
  Expand: mk(expandRule),
  Tile: mk(tileRule),
  Pad: mk(padRule),
  Resize: mk(resizeRule), Upsample: mk(resizeRule),
  // shape plumbing and constants: no channels flow through them
  Shape: inert, Size: inert, Constant: inert, ConstantOfShape: inert, Range: inert, EyeLike: inert,
  RandomNormal: inert, RandomUniform: inert, RandomNormalLike: inert, RandomUniformLike: inert,
  // declined cleanly
  LSTM: decline(DECLINE.recurrent), GRU: decline(DECLINE.recurrent), RNN: decline(DECLINE.recurrent),
  If: decline(DECLINE.controlFlow), Loop: decline(DECLINE.controlFlow), Scan: decline(DECLINE.controlFlow),
};

/** The rule for a node, or undefined for unsupported ops (and every op of a non-default domain). */
export function ruleFor(n: Node): OpRule | undefined {
  if (n.domain !== '' && n.domain !== 'ai.onnx') return undefined;
  return Object.prototype.hasOwnProperty.call(OP_RULES, n.opType) ? OP_RULES[n.opType] : undefined;
}

