/**
 * MAC (multiply-accumulate) formulas of the ops that cost them, one multiply-add of the naive algorithm each
 * (the op specs name them; src/analysis/flops.ts sums them over a graph):
 * - Conv / ConvInteger / QLinearConv: prod(output shape) × prod(W.shape[1:])  (= N·Cout·spatial_out·Cin/g·k…)
 * - ConvTranspose: prod(input shape) × prod(W.shape[1:])  (= N·Cin·spatial_in·Cout/g·k…)
 * - Gemm: M·K·N;  MatMul / MatMulInteger / QLinearMatMul: prod(output shape) × K (batched, numpy broadcasting)
 * - Einsum: for n ≥ 2 operands, (n−1) × the product of the sizes of all letters (ellipsis dims included);
 *   a 1-operand Einsum (transpose/trace/sum) costs 0
 * - LSTM / GRU / RNN: seq · batch · directions · gates · hidden · (input + hidden), gates = 4 / 3 / 1
 * Each returns undefined when a shape it needs is unknown.
 */
import { numel } from '../dims';
import type { Node } from '../node';
import { einsumDims, parseEinsum } from '../shapes/ops-math';
import type { Shape } from '../shapes/sym';
import type { MacsFn, ShapeLookup } from './types';

const inp = (n: Node, shape: ShapeLookup, i: number) => (n.inputs[i] ? shape(n.inputs[i]) : undefined);
const out = (n: Node, shape: ShapeLookup, k: number) => (n.outputs[k] ? shape(n.outputs[k]) : undefined);

/** Convolution with its weight at input `w`: every output element reads prod(W.shape[1:]) inputs. */
export function convMacs(w: number): MacsFn {
  return (n, shape) => {
    const ws = inp(n, shape, w);
    const y = out(n, shape, 0);
    return ws && y ? numel(y) * numel(ws.slice(1)) : undefined;
  };
}

/** ConvTranspose: every input element is scattered through prod(W.shape[1:]) weights. */
export const convTransposeMacs: MacsFn = (n, shape) => {
  const x = inp(n, shape, 0);
  const w = inp(n, shape, 1);
  return x && w ? numel(x) * numel(w.slice(1)) : undefined;
};

export const gemmMacs: MacsFn = (n, shape) => {
  const a = inp(n, shape, 0);
  const b = inp(n, shape, 1);
  if (!a || !b || a.length !== 2 || b.length !== 2) return undefined;
  const [m, k] = n.attrInt('transA', 0) ? [a[1], a[0]] : [a[0], a[1]];
  const nn = n.attrInt('transB', 0) ? b[0] : b[1];
  return m * k * nn;
};

/** MatMul-like (numpy batching): prod(output shape) × K, K the last dim of input 0. */
export const matmulMacs: MacsFn = (n, shape) => {
  const a = inp(n, shape, 0);
  const y = out(n, shape, 0);
  if (!a || !y || a.length === 0) return undefined;
  return numel(y) * a[a.length - 1];
};

export const einsumMacs: MacsFn = (n, shape) => {
  const parsed = parseEinsum(n.attrString('equation', ''));
  const shapes: Shape[] = [];
  for (let i = 0; i < n.inputs.length; i++) {
    const s = inp(n, shape, i);
    if (!s) return undefined;
    shapes.push(s);
  }
  if (!parsed || parsed.inputs.length !== shapes.length) return undefined;
  if (shapes.length < 2) return 0;
  const d = einsumDims(parsed.inputs, shapes);
  if (!d) return undefined;
  let p = 1;
  for (const v of [...d.letter.values(), ...d.ellipsis]) {
    if (typeof v !== 'number') return undefined;
    p *= v;
  }
  return (shapes.length - 1) * p;
};

/** LSTM / GRU / RNN with `gates` gates per hidden unit. */
export function rnnMacs(gates: number): MacsFn {
  return (n, shape) => {
    const x = inp(n, shape, 0);
    const w = inp(n, shape, 1);
    if (!x || !w || x.length !== 3 || w.length !== 3) return undefined;
    const hidden = w[1] / gates;
    const [seq, batch] = n.attrInt('layout', 0) === 0 ? [x[0], x[1]] : [x[1], x[0]];
    return seq * batch * w[0] * gates * hidden * (x[2] + hidden);
  };
}
