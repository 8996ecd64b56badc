/**
 * Op specs of tensor ops: layout (Reshape, Transpose, Concat, Split, Slice, Gather, Expand, Tile, Pad, …),
 * shape plumbing and generators, data-dependent indexing. One entry per op (see ./types.ts); shape rules from
 * src/ir/shapes/ops-tensor.ts.
 */
import { EW_SHAPES } from '../shapes/ops-elementwise';
import { TENSOR_SHAPES as S } from '../shapes/ops-tensor';
import { normAxis } from './axes';
import type { OpSpec } from './types';

const layout = (shape: OpSpec['shape'], channels: OpSpec['channels'], attentionPath?: true): OpSpec =>
  ({ shape, channels, ...(attentionPath && { attentionPath }) });
const inert = (shape: OpSpec['shape']): OpSpec => ({ shape, channels: 'inert' });
const notModelled = (shape: OpSpec['shape']): OpSpec => ({ shape, channels: { decline: 'unknownOp' } });
const dataIndex = (shape: OpSpec['shape']): OpSpec => ({ shape, channels: { decline: 'dataIndex' } });

export const TENSOR_OPS: Record<string, OpSpec> = {
  // layout
  Reshape: layout(S.reshape, 'reshape', true),
  Flatten: layout(S.flatten, 'reshape'),
  Squeeze: layout(S.squeeze, 'reshape', true),
  Unsqueeze: layout(S.unsqueeze, 'reshape', true),
  Transpose: layout(S.transpose, 'transpose', true),
  Concat: layout(S.concat, 'concat', true),
  Split: layout(S.split, 'split', true),
  Slice: layout(S.slice, 'slice', true),
  Gather: layout(S.gather, 'gather', true),
  Expand: layout(S.expand, 'expand', true),
  Tile: layout(S.tile, 'tile'),
  Pad: layout(S.pad, 'pad'),
  /** Reverses each batch entry's first sequence_lens[b] positions along time_axis. */
  ReverseSequence: layout(EW_SHAPES.same, { positional: (n, r) => [normAxis(n.attrInt('batch_axis', 1), r), normAxis(n.attrInt('time_axis', 0), r)] }),
  DepthToSpace: notModelled(S.depthToSpace),
  SpaceToDepth: notModelled(S.spaceToDepth),
  /** Values and indices of the k largest along `axis` (k from input 1). */
  TopK: layout(S.topK, { mix: (n, r) => [normAxis(n.attrInt('axis', -1), r)], decline: 'reduction', out: 'keep' }),
  // shape plumbing and generators: no channels flow through them
  Shape: inert(S.shape),
  Size: inert(S.size),
  ConstantOfShape: inert(S.constantOfShape),
  Range: inert(S.range),
  EyeLike: inert(S.likeInputDtypeAttr),
  RandomNormal: inert(S.randomShape),
  RandomUniform: inert(S.randomShape),
  RandomNormalLike: inert(S.likeInputDtypeAttr),
  RandomUniformLike: inert(S.likeInputDtypeAttr),
  // data-dependent indexing and data-dependent shapes
  GatherElements: dataIndex(S.likeIndices),
  GatherND: dataIndex(S.gatherND),
  ScatterND: dataIndex(S.likeData),
  ScatterElements: dataIndex(S.likeData),
  Scatter: dataIndex(S.likeData),
  OneHot: notModelled(S.oneHot),
  NonZero: notModelled(S.nonZero),
  Compress: notModelled(S.compress),
  Unique: notModelled(S.unique),
  NonMaxSuppression: notModelled(S.nonMaxSuppression),
  // random sampling from the input's values
  Bernoulli: notModelled(S.likeInputDtypeAttr),
  Multinomial: notModelled(S.multinomial),
};
