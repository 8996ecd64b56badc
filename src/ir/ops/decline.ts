/**
 * Why a group of coupled slices is not offered for pruning. Every reason is a fixed string (tools and the
 * coverage bench group by it); the node / tensor that blocked the group is reported next to it.
 */
export const DECLINE = {
  graphOutput: 'reaches a graph output',
  graphInput: 'coupled with a graph input',
  pinned: 'coupled with a tensor that cannot be pruned',
  unknownOp: 'unsupported op',
  normalization: 'normalization over the pruned axis',
  softmax: 'Softmax over the pruned axis',
  reduction: 'reduction over the pruned axis',
  contraction: 'contraction over the pruned axis without a weight',
  groupedConv: 'grouped convolution',
  recurrent: 'recurrent op (LSTM/GRU/RNN)',
  recurrentState: 'recurrent state passed in by the caller (its shape would change)',
  controlFlow: 'used inside a subgraph (control flow)',
  outerScope: 'weight read outside its control-flow subgraph',
  scopeNames: 'tensor name defined in several scopes (subgraphs not analyzed)',
  unknownShape: 'unknown tensor shape',
  reshape: 'Reshape cannot be mapped',
  gatherAxis: 'Gather on the pruned axis',
  dataIndex: 'data-dependent index on the pruned axis',
  strided: 'strided Slice on the pruned axis',
  sliceBound: 'Slice bound depends on the unit',
  pad: 'Pad on the pruned axis',
  resize: 'Resize scales the pruned axis',
  positional: 'position-dependent op on the pruned axis',
  irregular: 'irregular channel layout',
  nonUniform: 'units of unequal shape',
  shapeRewrite: 'shape computed at runtime cannot be rewritten',
  shapeAsData: 'pruned size flows into data',
  sharedParam: 'computed parameter is shared',
  singleUnit: 'only one unit',
  noConsumer: 'channels reach no consuming weight',
  weightOnBatchAxis: 'weight applied across a pruned batch axis',
  broadcastShared: 'broadcast to every unit of the other operand (shared, e.g. a multi-query k/v head)',
} as const;

export type DeclineKey = keyof typeof DECLINE;
