/**
 * Op specs of elementwise ops: activations and other unary maps, broadcasting arithmetic / comparisons /
 * logic, Cast, Dropout, Clip. One entry per op (see ./types.ts); shape rules from src/ir/shapes/ops-elementwise.ts.
 */
import { EW_SHAPES as S } from '../shapes/ops-elementwise';
import type { OpSpec } from './types';

/** Output 0 has input 0's shape and dtype; channels pass unchanged. */
const UNARY: OpSpec = { shape: S.same, channels: 'unary' };
const unary = (shape: OpSpec['shape'], attentionPath?: true): OpSpec => ({ shape, channels: 'unary', ...(attentionPath && { attentionPath }) });
const binary = (shape: OpSpec['shape'], attentionPath?: true): OpSpec => ({ shape, channels: 'elementwise', ...(attentionPath && { attentionPath }) });

export const ELEMENTWISE_OPS: Record<string, OpSpec> = {
  // activations and other unary maps
  Relu: UNARY, LeakyRelu: UNARY, PRelu: binary(S.broadcast), Elu: UNARY, Selu: UNARY, Celu: UNARY,
  ThresholdedRelu: UNARY, Gelu: UNARY, Sigmoid: UNARY, HardSigmoid: UNARY, HardSwish: UNARY, Swish: UNARY,
  Tanh: unary(S.same, true), Softplus: UNARY, Softsign: UNARY, Mish: UNARY, Shrink: UNARY, Erf: UNARY,
  Exp: UNARY, Log: UNARY, Sqrt: unary(S.sqrt, true), Reciprocal: unary(S.reciprocal), Neg: unary(S.neg, true),
  Abs: unary(S.abs), Sign: unary(S.sign), Floor: unary(S.floor), Ceil: unary(S.ceil), Round: unary(S.round),
  Sin: UNARY, Cos: UNARY, Tan: UNARY, Asin: UNARY, Acos: UNARY, Atan: UNARY, Sinh: UNARY, Cosh: UNARY,
  Asinh: UNARY, Acosh: UNARY, Atanh: UNARY,
  Not: unary(S.not), IsNaN: unary(S.isBool), IsInf: unary(S.isBool), BitwiseNot: UNARY,
  // experimental ops of early opsets (scalar attributes only)
  Scale: UNARY, Affine: UNARY, ParametricSoftplus: UNARY, ScaledTanh: UNARY,
  /** ImageScaler: y = scale·x + bias[c], `bias` a per-channel attribute list. */
  ImageScaler: { shape: S.same, channels: { positional: () => [1] } },
  /** ai.onnx.ml's Binarizer, listed in the default domain as the shape rules always did. */
  Binarizer: UNARY,
  // copies and conversions
  Identity: unary(S.identity, true), Cast: unary(S.cast, true), CastLike: unary(S.castLike),
  Dropout: unary(S.dropout, true),
  // numpy broadcasting
  Add: { shape: S.add, channels: 'biasAdd', attentionPath: true },
  Sub: binary(S.sub, true), Mul: binary(S.mul, true), Div: binary(S.div, true), Pow: binary(S.pow), Mod: binary(S.mod),
  Where: binary(S.where, true), Max: binary(S.max), Min: binary(S.min), Sum: binary(S.sum), Mean: binary(S.broadcast),
  Clip: binary(S.same),
  Equal: binary(S.equal), Less: binary(S.less), Greater: binary(S.greater), LessOrEqual: binary(S.lessOrEqual),
  GreaterOrEqual: binary(S.greaterOrEqual), And: binary(S.and), Or: binary(S.or), Xor: binary(S.xor),
  BitwiseAnd: binary(S.broadcast), BitwiseOr: binary(S.broadcast), BitwiseXor: binary(S.broadcast), BitShift: binary(S.broadcast),
};
