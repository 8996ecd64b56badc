/**
 * Op specs of contractions, reductions and other math: MatMul, Gemm, Einsum, Reduce*, ArgMax/ArgMin, CumSum,
 * Trilu, Det. One entry per op (see ./types.ts); shape rules from src/ir/shapes/ops-math.ts.
 */
import { EW_SHAPES } from '../shapes/ops-elementwise';
import { MATH_SHAPES as S } from '../shapes/ops-math';
import { einsumMacs, gemmMacs, matmulMacs } from './macs';
import type { OpSpec, WeightedSpec } from './types';

/**
 * MatMul with a constant operand: W[…, K, N] at input 1 (Y = X·W, X[…, K]) or W[M, K] at input 0 (Y = W·X,
 * X[…, K, N]); a 1-D W[K] at input 1 is a vector (no output axis).
 */
const MATMUL: WeightedSpec = {
  unit: 'fc',
  weights: [0, 1],
  inAxis: (_n, input, r) => (input === 1 ? (r >= 2 ? r - 2 : 0) : input === 0 ? r - 1 : undefined),
  outAxis: (_n, input, r) => (r < 2 ? undefined : input === 1 ? r - 1 : input === 0 ? r - 2 : undefined),
  site: (_n, input, r) => (input === 1 && r >= 2 ? { input: 0, axis: -1 } : input === 0 && r === 2 ? { input: 1, axis: -2 } : undefined),
  compensation: { input: 1, rank: 2 },
};

/** Gemm: Y = alpha·A'·B' + beta·C, A' = A[M, K] (Aᵀ when transA), B' = B[K, N] (Bᵀ when transB); either may be the weight. */
const GEMM: WeightedSpec = {
  unit: 'fc',
  weights: [0, 1],
  bias: 2,
  inAxis: (n, input) => (input === 1 ? (n.attrInt('transB', 0) ? 1 : 0) : input === 0 ? (n.attrInt('transA', 0) ? 0 : 1) : undefined),
  outAxis: (n, input) => (input === 1 ? (n.attrInt('transB', 0) ? 0 : 1) : input === 0 ? (n.attrInt('transA', 0) ? 1 : 0) : undefined),
  site: (n, input) => (input === 1 ? { input: 0, axis: n.attrInt('transA', 0) ? 0 : 1 } : input === 0 ? { input: 1, axis: n.attrInt('transB', 0) ? 1 : 0 } : undefined),
  compensation: {
    input: 1,
    biasScale: (n) => {
      const beta = n.attrFloat('beta', 1);
      return beta === 0 ? { skip: 'Gemm with beta 0' } : n.attrFloat('alpha', 1) / beta;
    },
  },
};

/** Einsum: any operand may be a weight; its axes follow from the equation (not modelled here). */
const EINSUM: WeightedSpec = { unit: 'fc' };

const REDUCE: OpSpec = { shape: S.reduce, channels: 'reduce' };

export const MATH_OPS: Record<string, OpSpec> = {
  // contractions
  MatMul: { shape: S.matmul, channels: 'matmul', weighted: MATMUL, macs: matmulMacs, attentionPath: true },
  Gemm: { shape: S.gemm, channels: 'gemm', weighted: GEMM, macs: gemmMacs },
  Einsum: { shape: S.einsum, channels: 'einsum', weighted: EINSUM, macs: einsumMacs },
  MatMulInteger: { shape: S.matmulInteger, channels: { decline: 'unknownOp' }, macs: matmulMacs },
  QLinearMatMul: { shape: S.qlinearMatmul, channels: { decline: 'unknownOp' }, macs: matmulMacs },
  // reductions
  ReduceSum: { shape: S.reduceSum, channels: 'reduce' },
  ReduceProd: { shape: S.reduceProd, channels: 'reduce' },
  ReduceMax: { shape: S.reduceMax, channels: 'reduce' },
  ReduceMin: { shape: S.reduceMin, channels: 'reduce' },
  ReduceMean: REDUCE, ReduceL1: REDUCE, ReduceL2: REDUCE, ReduceLogSum: REDUCE, ReduceLogSumExp: REDUCE, ReduceSumSquare: REDUCE,
  ArgMax: { shape: S.argReduce, channels: 'argReduce' },
  ArgMin: { shape: S.argReduce, channels: 'argReduce' },
  CumSum: { shape: EW_SHAPES.same, channels: 'cumSum' },
  /** Determinant of the last two axes (square matrices). */
  Det: { shape: S.det, channels: { mix: (_n, r) => [r - 2, r - 1], decline: 'reduction', out: 'drop' } },
  /** Keeps or zeroes by position in the last two axes. */
  Trilu: { shape: EW_SHAPES.same, channels: { positional: (_n, r) => [r - 2, r - 1] } },
};
