/**
 * The data contract between group analysis (src/analysis), planning and physical pruning (src/prune).
 *
 * A group is a set of coupled slices that must be removed together. It has `size` prunable units (channels,
 * heads, kv-groups, neurons); removing unit u removes, in every weight member, the axis positions
 * `indices[u]`, and lowers every shape/attribute member by `perUnit` per removed unit.
 *
 * Nodes are identified by their first output name (unique in an SSA graph), weights by the name of the
 * initializer or Constant-node output they resolve to (after Identity chains).
 */

/**
 * out   : the weight produces the group's channels (Conv/Gemm/MatMul output rows, their bias);
 * in    : the weight consumes the group's channels (a consumer's input slice); masking zeroes these;
 * param : a per-channel parameter on the path (BN scale/bias/mean/var, LN/RMSNorm affine, PRelu slope,
 *         Add/Mul constants broadcast along the channel axis).
 */
export type MemberRole = 'out' | 'in' | 'param';

export interface WeightMember {
  kind: 'weight';
  /** Initializer or Constant-node output name (Identity chains resolved). */
  tensor: string;
  /** Node that reads the weight (first output name) and which input slot, for sharing decisions. */
  node: string;
  input: number;
  axis: number;
  role: MemberRole;
  /** indices[u] = positions along `axis` that belong to unit u (all of the same length). */
  indices: number[][];
}

/** An element of a constant shape-like tensor (Reshape shape, Split sizes, Slice starts/ends, Expand shape...). */
export interface ShapeMember {
  kind: 'shape';
  tensor: string;
  node: string;
  input: number;
  /** Flat position of the element in the tensor. */
  position: number;
  /** The element decreases by perUnit for each removed unit (it may also be an offset that shifts). */
  perUnit: number;
  /**
   * Optional (added by group analysis): the element is not a stored constant but a value computed at run time
   * from an unpruned dimension (e.g. nn.MultiheadAttention's `view(T*N, embed_dim)`), read by `node` at
   * `input` (a one-element tensor, typically a Concat input building a Reshape shape). When any unit of the
   * group is removed, apply must make that input slot read a new constant equal to `replaceWith` (−1: the
   * Reshape infers it) instead of subtracting. `value` is the element's original value. Only emitted when
   * analysis runs with `rewriteComputedShapes: true`.
   */
  replaceWith?: number;
  value?: number;
}

/** An integer attribute (or one element of an ints attribute) that encodes a pruned size (Conv group, Split split). */
export interface AttrMember {
  kind: 'attr';
  node: string;
  attr: string;
  /** Element of an ints attribute; undefined for an int attribute. */
  position?: number;
  perUnit: number;
}

/**
 * A node whose statistics run along the group's axis (LayerNormalization / RMSNorm mean and variance, a
 * ReduceMean of a decomposed norm): physically pruned, it computes them over the kept positions only. The
 * masked reference (src/prune/mask.ts) does the same: it gathers the kept positions of each `gather` input
 * (input 0 along `axis`, and per-channel parameters) before the node and scatters each `scatter` output back to
 * `size` positions (zeros at the removed ones), so "pruned = masked reference" stays exact.
 */
export interface StatMember {
  kind: 'stat';
  node: string;
  /** Length of input 0 along `axis` (every position, whichever group it belongs to). */
  size: number;
  axis: number;
  gather: { input: number; axis: number }[];
  scatter: { output: number; axis: number }[];
  /** indices[u] = positions along `axis` of input 0 that belong to unit u. */
  indices: number[][];
}

export type Member = WeightMember | ShapeMember | AttrMember | StatMember;

export type UnitKind = 'channel' | 'head' | 'kv-group' | 'neuron' | 'block';

export interface Group {
  /** Stable id derived from tensor names (same model → same id). */
  id: string;
  /** Human-readable label, e.g. the first producer node. */
  label: string;
  unit: UnitKind;
  /** Channels per unit (head_dim for heads, 1 for channels). */
  unitSize: number;
  /** Number of prunable units. */
  size: number;
  members: Member[];
  /** Parameters removed per unit removed. */
  paramsPerUnit: number;
  /** Extra facts (e.g. { heads: 4, headDim: 32 } or { kvHeads: 2, queriesPerKv: 4 }). */
  info?: Record<string, unknown>;
}

export interface DeclinedGroup {
  /** Why the coupled slices cannot be proven safe to remove. */
  reason: string;
  /** Where: the tensor and/or node that blocked it. */
  tensor?: string;
  node?: string;
  /** Optional (added by group analysis): the blocking node's op type, and the input it reads `tensor` at. */
  op?: string;
  input?: number;
  /** The producers whose channels were being traced. */
  producers?: string[];
  /** Parameters that would have been prunable. */
  params?: number;
  /** Optional (added by group analysis): every distinct reason found, `reason` being the first. */
  reasons?: string[];
  /** Optional: number of units the group would have had. */
  size?: number;
}

/** A stored float tensor in no group and no declined group's producers (src/analysis/accounting.ts). */
export interface UnaccountedParam {
  tensor: string;
  params: number;
  /** Up to three readers: node id, op type and input index (−1: read inside the node's subgraph). */
  readers: { node: string; op: string; input: number }[];
}

/** A removable residual branch (depth pruning; src/analysis/blocks.ts). */
export interface Block {
  /** The residual Add's output (its node id). */
  id: string;
  kind: 'attention' | 'mlp' | 'branch';
  /** Input index of the Add that carries the skip x. */
  skip: number;
  /** The exit layer (node id), the input its weight is read at, and the stored weight. */
  exit: { node: string; input: number; tensor: string };
  /** The constant the branch reduces to without its exit weight (its bias), read at this node / input. */
  remainder?: { node: string; input: number; tensor: string; scale?: number; rank?: number };
  /** Node ids removed with the block (dead once the Add no longer reads the branch). */
  nodes: string[];
  /** Parameters (stored weight elements) only the block's nodes read. */
  params: number;
}

export interface GroupAnalysis {
  groups: Group[];
  declined: DeclinedGroup[];
  /** Residual branches that can be removed whole (src/analysis/blocks.ts), main graph only. */
  blocks?: Block[];
  /**
   * Stored float tensors (≥ 2 elements) in no group and no declined group's producers, with up to three readers
   * (src/analysis/accounting.ts): with groups and declined, every parameter is accounted for.
   */
  unaccounted?: UnaccountedParam[];
  summary: {
    totalParams: number;
    /** Parameters inside groups (removable if every unit of every group went). */
    prunableParams: number;
    groups: number;
    declined: number;
    /** Optional (added by group analysis): where the concrete shapes came from (see src/analysis/shape-source.ts). */
    shapeSource?: 'static' | 'ort' | 'mixed';
  };
}
