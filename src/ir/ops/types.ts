/**
 * What every stage knows about one ONNX op, in one entry (src/ir/ops/*.ts, merged in ./index.ts):
 *  - `shape`: its static shape rule (src/ir/shapes; implementations in src/ir/shapes/ops-*.ts);
 *  - `channels`: how pruned channels flow through it — a named behaviour that group analysis implements
 *    (src/analysis/op-rules.ts maps each kind to its rule), a parameterized one, or a decline reason;
 *  - `weighted`: for layers whose weight the pruner slices (Conv, ConvTranspose, Gemm, MatMul, Einsum), the
 *    facts scores, compensation, protection and unit naming need;
 *  - `macs`: its multiply-accumulate count (src/analysis/flops.ts; absent: the op costs none);
 *  - `attentionPath`: the cost model walks through it between a head split and an attention MatMul.
 */
import type { Node } from '../node';
import type { Rule } from '../shapes/context';
import type { DeclineKey } from './decline';

/** Concrete shape of a tensor by name, or undefined when unknown. */
export type ShapeLookup = (name: string) => number[] | undefined;

/** MACs of one node from its tensors' shapes; undefined when a shape it needs is unknown. */
export type MacsFn = (node: Node, shape: ShapeLookup) => number | undefined;

/** Axes of input 0 (of rank `rank`) an op acts on, from its attributes. */
export type AxesOf = (node: Node, rank: number) => number[];

/**
 * Named channel behaviours (implemented in src/analysis, see op-rules.ts):
 *  - 'inert': never sees channels (its inputs are shapes or nothing: Shape, Constant, Range, Random*);
 *  - 'unary': every output carries input 0's channels unchanged (activations, Cast, Identity, Dropout);
 *  - 'elementwise': numpy broadcasting; constants broadcast along a channel become per-channel parameters;
 *  - 'biasAdd': elementwise, and a 1-D constant added right after a weighted layer is that layer's bias;
 *  - 'quantize': activation (De)QuantizeLinear (per-axis scale / zero-point become parameters);
 *  - producers: 'conv', 'convTranspose', 'gemm', 'matmul', 'einsum' (a constant operand is a weight) and
 *    'gather' (embedding tables; otherwise indexing);
 *  - normalizations and mixing: 'batchNorm', 'instanceNorm', 'layerNorm', 'groupNorm', 'softmax', 'reduce',
 *    'argReduce', 'globalPool', 'pool', 'cumSum';
 *  - layout: 'reshape' (also Flatten / Squeeze / Unsqueeze), 'transpose', 'concat', 'split', 'slice',
 *    'expand', 'tile', 'pad', 'resize';
 *  - 'resample': per-channel sampling of input 0 at positions given by the other inputs (GridSample, RoiAlign,
 *    MaxRoiPool): channels (axis 1) pass through; labels on other axes or on the position inputs are declined;
 *  - 'rnn': LSTM / GRU / RNN: the hidden units are channels (gate rows of W, R, B; R's columns; hidden_size).
 */
export type ChannelKind =
  | 'inert' | 'unary' | 'elementwise' | 'biasAdd' | 'quantize'
  | 'conv' | 'convTranspose' | 'gemm' | 'matmul' | 'einsum' | 'gather'
  | 'batchNorm' | 'instanceNorm' | 'layerNorm' | 'groupNorm' | 'softmax'
  | 'reduce' | 'argReduce' | 'globalPool' | 'pool' | 'cumSum'
  | 'reshape' | 'transpose' | 'concat' | 'split' | 'slice' | 'expand' | 'tile' | 'pad' | 'resize'
  | 'resample' | 'rnn';

/**
 * How pruned channels flow through an op:
 *  - a ChannelKind;
 *  - `{ decline }`: every labeled input is declined with that reason ('unknownOp', for ops we know but do not
 *    model, reads "unsupported op: <op type>" like an op without a spec);
 *  - `{ mix, decline, out }`: every output position mixes input 0's positions along `mix(node, rank)` (statistics,
 *    top-k, determinants): labels there are declined with `decline` unless another labeled axis makes each mixed
 *    slice one unit. `out`: 'same' (the outputs keep the mixed axes, same size), 'keep' (the outputs keep those
 *    axes at another size: they carry no labels there), 'drop' (the outputs lose those axes);
 *  - `{ positional }`: the output depends on the position along `positional(node, rank)` (Trilu's triangle,
 *    ImageScaler's per-channel bias attribute, ReverseSequence): labels there are declined ('positional'),
 *    others pass through to output 0.
 * In the parameterized forms only input 0 carries channels: labels on another input are declined.
 */
export type ChannelSpec =
  | ChannelKind
  | { decline: DeclineKey }
  | { mix: AxesOf; decline: DeclineKey; out: 'same' | 'keep' | 'drop' }
  | { positional: AxesOf };

/** Where a weight meets its activation: the node's data input slot and that tensor's axis (negative: from the end). */
export interface ActivationSlot {
  input: number;
  axis: number;
}

/**
 * Facts about a layer whose weight the pruner slices. Axes are of the weight tensor at input slot `input`, of
 * rank `rank`; each function returns undefined where the slot is not a weight or the case is not modelled.
 */
export interface WeightedSpec {
  /** 'conv': a convolution (units are channels; the stem is protected); 'fc': fully connected (units are neurons). */
  unit: 'conv' | 'fc';
  /** Input slots that can hold the weight (undefined: every input, e.g. Einsum operands). */
  weights?: readonly number[];
  /** Input slot of the bias (added per output channel), if the op has one. */
  bias?: number;
  /** The weight axis that reads the input channels (contracted with the activation). */
  inAxis?(node: Node, input: number, rank: number): number | undefined;
  /** The weight axis that produces the output channels. */
  outAxis?(node: Node, input: number, rank: number): number | undefined;
  /**
   * The activation whose channels the weight's `inAxis` reads, where one weight slice along `inAxis` meets one
   * activation channel (not for grouped convolutions).
   */
  site?(node: Node, input: number, rank: number): ActivationSlot | undefined;
  /**
   * Bias compensation (src/score/compensate.ts) folds removed input channels' mean contributions
   * Σ_j W[o, j, …]·E[x_j] into a per-output-channel bias: the weight slot and rank where that contribution is
   * the same at every output position (not ConvTranspose: with strides, output positions read different taps),
   * and the factor applied to a bias delta (Gemm: alpha / beta), or why the bias cannot absorb it.
   */
  compensation?: {
    input: number;
    rank?: number;
    biasScale?(node: Node): number | { skip: string };
  };
}

export interface OpSpec {
  /** Static shape rule (absent: inferShapes handles the op itself, or leaves its outputs unknown). */
  shape?: Rule;
  channels: ChannelSpec;
  weighted?: WeightedSpec;
  macs?: MacsFn;
  /** The cost model (src/allocate/cost.ts) walks through this op from an attention MatMul up to the head split. */
  attentionPath?: true;
}
