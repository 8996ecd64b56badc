/**
 * Op specs of neural-network ops: convolutions, pooling, normalizations, Softmax, resizing and sampling,
 * recurrent layers, quantization. One entry per op (see ./types.ts); shape rules from src/ir/shapes/ops-nn.ts.
 */
import { EW_SHAPES } from '../shapes/ops-elementwise';
import { NN_SHAPES as S } from '../shapes/ops-nn';
import { normAxis } from './axes';
import { convMacs, convTransposeMacs, rnnMacs } from './macs';
import type { AxesOf, OpSpec, WeightedSpec } from './types';

/** Conv: W[O, I/group, k…] at input 1, bias[O] at input 2; X[N, I, …]. */
const CONV: WeightedSpec = {
  unit: 'conv',
  weights: [1],
  bias: 2,
  inAxis: (_n, input) => (input === 1 ? 1 : undefined),
  outAxis: (_n, input) => (input === 1 ? 0 : undefined),
  site: (n, input) => (input === 1 && n.attrInt('group', 1) === 1 ? { input: 0, axis: 1 } : undefined),
  compensation: { input: 1 },
};

/** ConvTranspose: W[I, O/group, k…] at input 1, bias[O] at input 2; X[N, I, …]. */
const CONV_TRANSPOSE: WeightedSpec = {
  unit: 'conv',
  weights: [1],
  bias: 2,
  inAxis: (_n, input) => (input === 1 ? 0 : undefined),
  outAxis: (_n, input) => (input === 1 ? 1 : undefined),
  site: (n, input) => (input === 1 && n.attrInt('group', 1) === 1 ? { input: 0, axis: 1 } : undefined),
};

/** A normalization whose statistics mix input 0 along `mix` (no per-channel parameters). */
const mixNorm = (mix: AxesOf): OpSpec => ({ shape: S.same, channels: { mix, decline: 'normalization', out: 'same' } });

export const NN_OPS: Record<string, OpSpec> = {
  // convolutions
  Conv: { shape: S.conv, channels: 'conv', weighted: CONV, macs: convMacs(1) },
  ConvTranspose: { shape: S.convTranspose, channels: 'convTranspose', weighted: CONV_TRANSPOSE, macs: convTransposeMacs },
  ConvInteger: { shape: S.convInteger, channels: { decline: 'unknownOp' }, macs: convMacs(1) },
  QLinearConv: { shape: S.qlinearConv, channels: { decline: 'unknownOp' }, macs: convMacs(3) },
  // pooling
  MaxPool: { shape: S.maxPool, channels: 'pool' },
  AveragePool: { shape: S.pool, channels: 'pool' },
  LpPool: { shape: S.pool, channels: 'pool' },
  MaxUnpool: { shape: S.maxUnpool, channels: { decline: 'dataIndex' } },
  GlobalAveragePool: { shape: S.globalPool, channels: 'globalPool' },
  GlobalMaxPool: { shape: S.globalPool, channels: 'globalPool' },
  GlobalLpPool: { shape: S.globalPool, channels: 'globalPool' },
  // per-channel parameters and normalizations
  BatchNormalization: { shape: S.batchNorm, channels: 'batchNorm' },
  InstanceNormalization: { shape: S.same, channels: 'instanceNorm' },
  LayerNormalization: { shape: S.layerNorm, channels: 'layerNorm' },
  RMSNormalization: { shape: S.same, channels: 'layerNorm' },
  /** onnxruntime's RMSNorm (default domain): outputs Y and, optionally, inv_std_var shaped like LayerNorm's. */
  SimplifiedLayerNormalization: { shape: S.layerNorm, channels: 'layerNorm' },
  GroupNormalization: { shape: S.same, channels: 'groupNorm' },
  LpNormalization: mixNorm((n, r) => [normAxis(n.attrInt('axis', -1), r)]),
  LRN: mixNorm(() => [1]),
  MeanVarianceNormalization: mixNorm((n, r) => (n.attrInts('axes') ?? [0, 2, 3]).map((a) => normAxis(a, r))),
  Softmax: { shape: EW_SHAPES.same, channels: 'softmax', attentionPath: true },
  LogSoftmax: { shape: EW_SHAPES.same, channels: 'softmax' },
  Hardmax: { shape: EW_SHAPES.same, channels: 'softmax' },
  // resizing and sampling
  Resize: { shape: S.resize, channels: 'resize' },
  Upsample: { shape: S.upsample, channels: 'resize' },
  GridSample: { shape: S.gridSample, channels: 'resample' },
  RoiAlign: { shape: S.roiAlign, channels: 'resample' },
  MaxRoiPool: { shape: S.maxRoiPool, channels: 'resample' },
  // recurrent layers
  LSTM: { shape: S.rnn, channels: 'rnn', macs: rnnMacs(4) },
  GRU: { shape: S.rnn, channels: 'rnn', macs: rnnMacs(3) },
  RNN: { shape: S.rnn, channels: 'rnn', macs: rnnMacs(1) },
  // quantization
  QuantizeLinear: { shape: S.quantize, channels: 'quantize' },
  DequantizeLinear: { shape: S.dequantize, channels: 'quantize' },
  /** Its scale comes from the min / max of the whole tensor: every channel changes every other. */
  DynamicQuantizeLinear: { shape: S.dynQuantize, channels: { decline: 'reduction' } },
};
