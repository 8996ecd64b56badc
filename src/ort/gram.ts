/**
 * Calibration Gram statistics of consumer inputs, computed in onnxruntime.
 *
 * For each request (a consumer's input activation X and how its columns are formed) a capture copy of the model
 * gets extra nodes that turn X into a matrix of rows P [rows, D] and compute, per calibration batch,
 *   H_b = PᵀP (D×D, float32 in ORT), Σ_rows P (D) and the row count,
 * as extra graph outputs. JS adds the batches up in float64 (fixed batch order; ORT runs on one thread), so the
 * same model and data give the same bits. ORT does the rows·D² work; JS only does D² additions per batch.
 *
 * Columns:
 *  - matmul-like (MatMul, Gemm): X's channel `axis` (the axis semantics of src/score/sites.ts) is the column
 *    axis and every other position is a row: D = channels. X[…, K] axis −1 is reshaped to [−1, K]; a channel
 *    axis 0 (Gemm Aᵀ[K, M]) or any axis of a tensor of known `rank` is moved last by one Transpose; other axes
 *    (MatMul with the weight on the left: X[…, K, N] axis −2, rank unknown) are reshaped at run time to
 *    [outer, K, inner] (Shape → Slice → ReduceProd → Concat) and then transposed.
 *  - conv (Conv, group 1): the rows are the im2col patches of X[N, C, spatial…] for the consumer's kernel, pads,
 *    strides, dilations and auto_pad; D = C·kh·kw…, in the order of the weight's [C, kh, kw…] flattening
 *    (channel c = columns c·k … (c+1)·k − 1, k = kh·kw…). The patches are extracted by a Conv with the same
 *    attributes and group C whose fixed one-hot weight [C·k, 1, kh, kw…] copies patch element j of channel c
 *    into output channel c·k + j (exact: products with 1 and 0 only), then Transpose/Reshape → P [N·L, D].
 *    Padded positions count as zeros of the patch, as the consumer sees them.
 * Float activations of other types (float16, bfloat16, double) are Cast to float32 first, so ORT accumulates
 * in float32 and JS in float64.
 *
 * Memory cap (`maxGramBytes`, default 256 MiB of float64 Gram): a request whose full D×D Gram would exceed it
 * gets the block-diagonal approximation instead, marked `blockDiagonal` with a reason: a conv keeps each
 * channel's k×k block (the columns of one input channel); a matmul-like request keeps diagonal blocks of its
 * `block` columns (default 1: just the diagonal; e.g. head_dim for an attention output projection, so a
 * head's columns keep their couplings). When even those blocks exceed the cap, the diagonal alone is kept.
 * The blocks are computed in ORT as one batched MatMul [D/b, b, rows]·[D/b, rows, b] (the diagonal as
 * ReduceSum(P·P)), so the D×D matrix is never formed.
 *
 * Bounded memory (`maxConcurrentBytes`, default 1 GiB): requests are processed in chunks, one ORT session and one
 * pass over the calibration data per chunk, so that the chunk's accumulators (float64) plus one batch of its
 * ORT outputs (float32) stay under the cap — 12 bytes per Gram element; a request over the cap on its own is a
 * chunk by itself. The capture copy of each chunk keeps only the nodes its Grams need (the model's own outputs
 * are dropped), so an early consumer does not run the rest of the model.
 * Not counted: ORT's intermediate P [rows, D] per batch (rows = batch × positions), which the batch size bounds.
 */
import { numel } from '../ir/dims';
import { DataType } from '../ir/dtype';
import { UserError } from '../ir/errors';
import { cloneModel } from '../ir/clone';
import type { Graph } from '../ir/graph';
import type { Model } from '../ir/model';
import type { Node } from '../ir/node';
import { specOf } from '../ir/ops';
import { onnx } from '../ir/proto';
import { makeTensorProto } from '../ir/tensor';
import type { CalibSet } from './calib';
import { forEachCalibrationBatch } from './capture';
import { createSession, type ort } from './session';

/** X with channel axis `axis`: every other position is a row (MatMul, Gemm). */
export interface MatmulGramRequest {
  kind: 'matmul';
  tensor: string;
  /** Channel axis; negative counts from the end. */
  axis: number;
  /** Size of the channel axis (D). Checked against X at run time. */
  channels: number;
  /** X's rank when known (Gemm: 2): lets a channel axis other than the last be moved by one Transpose. */
  rank?: number;
  /** Columns per diagonal block when the full Gram exceeds the memory cap (default 1: the diagonal); divides `channels`. */
  block?: number;
}

/** X[N, C, spatial…] read by a Conv (group 1) with this kernel: the rows are im2col patches. */
export interface ConvGramRequest {
  kind: 'conv';
  tensor: string;
  /** Input channels C. Checked against X at run time. */
  channels: number;
  /** Kernel spatial shape (the weight's dims after [O, C]). */
  kernel: number[];
  pads?: number[];
  strides?: number[];
  dilations?: number[];
  /** The Conv's auto_pad (NOTSET, SAME_UPPER, SAME_LOWER, VALID). */
  autoPad?: string;
}

export type GramRequest = MatmulGramRequest | ConvGramRequest;

interface GramCommon {
  request: GramRequest;
  /** Number of columns D (matmul: channels; conv: channels·kh·kw…). */
  dim: number;
  /** Columns per input channel (conv: kh·kw…; matmul: 1). */
  columnsPerChannel: number;
  /** Rows seen (calibration samples × positions). */
  count: number;
  /** Σ over rows of each column (D). */
  sum: Float64Array;
}

/** The full Gram: `gram` is D×D row-major, symmetric, Σ over rows of p pᵀ. */
export interface FullGram extends GramCommon {
  blockDiagonal?: undefined;
  gram: Float64Array;
}

/**
 * The block-diagonal approximation: `blocks` holds the D/blockSize diagonal blocks of the Gram, each
 * blockSize×blockSize row-major, one after the other (block i covers columns i·blockSize … (i+1)·blockSize − 1).
 * Everything off these blocks is unknown (not zero).
 */
export interface BlockDiagonalGram extends GramCommon {
  blockDiagonal: true;
  blockSize: number;
  blocks: Float64Array;
  /** Why the full Gram was not computed. */
  reason: string;
}

export type GramStats = FullGram | BlockDiagonalGram;

export interface GramOptions {
  /**
   * Samples per onnxruntime run. Default: automatic — 32 samples first; then, when the pass's Grams have few
   * rows per sample (weighted by their sizes; a fully connected layer after pooling has 1), more samples per run
   * (about 1024 rows, at most 256 samples, 16 MiB of inputs and ~256 MiB of ORT's rows P), since each run
   * returns every Gram (D² floats) whatever its rows.
   * Data files only (random calibration and models with a fixed batch size keep 32 / their size).
   */
  batch?: number;
  quiet?: boolean;
  /** Largest float64 Gram (bytes) computed in full (default 256 MiB: D ≤ 5792); above it, block-diagonal. */
  maxGramBytes?: number;
  /** Bytes of Gram statistics (12 per element) held at once; requests over it are processed in several passes (default 1 GiB). */
  maxConcurrentBytes?: number;
}

export const DEFAULT_MAX_GRAM_BYTES = 256 * 2 ** 20;
export const DEFAULT_MAX_CONCURRENT_BYTES = 2 ** 30;

/** Number of columns of a request's rows. */
export function gramDim(r: GramRequest): number {
  return r.kind === 'conv' ? r.channels * numel(r.kernel) : r.channels;
}

/** Columns per input channel: the kernel's size for a conv, 1 for a matmul-like request. */
export function columnsPerChannel(r: GramRequest): number {
  return r.kind === 'conv' ? numel(r.kernel) : 1;
}

/** Entry (i, j) of a Gram (0 off the blocks of a block-diagonal one). */
export function gramAt(s: GramStats, i: number, j: number): number {
  if (!s.blockDiagonal) return s.gram[i * s.dim + j];
  const b = s.blockSize;
  const bi = Math.floor(i / b);
  if (Math.floor(j / b) !== bi) return 0;
  return s.blocks[bi * b * b + (i - bi * b) * b + (j - bi * b)];
}

/** The D×D matrix (a block-diagonal Gram with zeros off its blocks): for small D only. */
export function denseGram(s: GramStats): Float64Array {
  if (!s.blockDiagonal) return s.gram;
  const d = s.dim, b = s.blockSize;
  const out = new Float64Array(d * d);
  for (let k = 0; k < d / b; k++) {
    for (let i = 0; i < b; i++) for (let j = 0; j < b; j++) out[(k * b + i) * d + k * b + j] = s.blocks[k * b * b + i * b + j];
  }
  return out;
}

/**
 * The Gram request for the consumer `node` whose weight is at input `weightInput` with dims `weightDims` (for a
 * weight behind a Cast / DequantizeLinear chain: the op after the chain and the stored weight's dims), or why
 * there is none. The activation and its axis come from the op spec's site (as src/score/sites.ts).
 */
export function gramRequestFor(node: Node, weightInput: number, weightDims: readonly number[], opts: { block?: number } = {}): { request: GramRequest } | { decline: string } {
  const rank = weightDims.length;
  if (node.domain !== '') return { decline: `${node.opType} (domain ${node.domain}) is not a modelled consumer` };
  if (node.opType === 'ConvTranspose') return { decline: 'ConvTranspose: Gram statistics of transposed convolutions are not computed yet' };
  if (node.opType === 'Conv' && node.attrInt('group', 1) !== 1) return { decline: `grouped Conv (group ${node.attrInt('group', 1)}): no im2col Gram` };
  const w = specOf(node)?.weighted;
  const inAxis = w?.inAxis?.(node, weightInput, rank);
  const site = w?.site?.(node, weightInput, rank);
  if (!w || !site || inAxis === undefined) return { decline: `${node.opType} input ${weightInput} has no activation site` };
  const tensor = node.inputs[site.input];
  if (!tensor) return { decline: `${node.opType} has no input ${site.input}` };
  const channels = weightDims[inAxis];
  switch (node.opType) {
    case 'Conv': {
      if (rank < 3) return { decline: `Conv weight of rank ${rank}` };
      const kernel = weightDims.slice(2);
      const autoPad = node.attrString('auto_pad');
      return {
        request: {
          kind: 'conv', tensor, channels, kernel,
          pads: node.attrInts('pads'), strides: node.attrInts('strides'), dilations: node.attrInts('dilations'),
          ...(autoPad ? { autoPad } : {}),
        },
      };
    }
    case 'Gemm':
      return { request: { kind: 'matmul', tensor, axis: site.axis, channels, rank: 2, ...(opts.block ? { block: opts.block } : {}) } };
    case 'MatMul':
      // A batched weight [B…, K, N] meets a different activation slice per batch index: one Gram over all of
      // them would not be any slice's statistics.
      if (rank > 2 && numel(weightDims.slice(0, rank - 2)) !== 1) return { decline: `batched MatMul weight [${weightDims.join(',')}]` };
      return { request: { kind: 'matmul', tensor, axis: site.axis, channels, ...(opts.block ? { block: opts.block } : {}) } };
    default:
      return { decline: `${node.opType}: no Gram statistics` };
  }
}

/** How one request is computed: full or blocks of `block` columns, and the graph outputs that carry it. */
interface Plan {
  request: GramRequest;
  dim: number;
  /** 0: full Gram; else the block size. */
  block: number;
  reason?: string;
  /** Elements of the accumulated Gram. */
  elements: number;
  out: { gram: string; sum: string; rows: string; xShape: string };
}

function checkRequest(r: GramRequest): void {
  const bad = (why: string) => new UserError(`Gram request for '${r.tensor}': ${why}`);
  if (!Number.isInteger(r.channels) || r.channels < 1) throw bad(`channels must be a positive integer, got ${r.channels}`);
  if (r.kind === 'conv') {
    const k = r.kernel.length;
    if (k < 1 || r.kernel.some((d) => !Number.isInteger(d) || d < 1)) throw bad(`kernel [${r.kernel.join(',')}] is not a kernel shape`);
    if (r.pads && r.pads.length !== 2 * k) throw bad(`pads [${r.pads.join(',')}] do not fit a ${k}-D kernel`);
    if (r.strides && r.strides.length !== k) throw bad(`strides [${r.strides.join(',')}] do not fit a ${k}-D kernel`);
    if (r.dilations && r.dilations.length !== k) throw bad(`dilations [${r.dilations.join(',')}] do not fit a ${k}-D kernel`);
  } else {
    if (!Number.isInteger(r.axis)) throw bad(`axis ${r.axis} is not an integer`);
    if (r.rank !== undefined && (r.axis >= r.rank || r.axis < -r.rank)) throw bad(`axis ${r.axis} is out of range for rank ${r.rank}`);
    if (r.block !== undefined && (!Number.isInteger(r.block) || r.block < 1 || r.channels % r.block !== 0)) throw bad(`block ${r.block} does not divide ${r.channels} channels`);
  }
}

function planRequest(r: GramRequest, maxGramBytes: number): Omit<Plan, 'out'> {
  checkRequest(r);
  const dim = gramDim(r);
  const full = dim * dim * 8;
  if (full <= maxGramBytes) return { request: r, dim, block: 0, elements: dim * dim };
  const mb = (x: number) => `${(x / 2 ** 20).toFixed(1)} MiB`;
  let block = r.kind === 'conv' ? numel(r.kernel) : r.block ?? 1;
  let what = r.kind === 'conv' ? `per-channel ${block}×${block} blocks (the kernel's columns of each input channel)` : block === 1 ? 'the diagonal only' : `diagonal ${block}×${block} blocks`;
  if (dim * block * 8 > maxGramBytes && block > 1) {
    what = `the diagonal only (${block}×${block} blocks would take ${mb(dim * block * 8)})`;
    block = 1;
  }
  const reason = `full Gram ${dim}×${dim} (${mb(full)}) is over the ${mb(maxGramBytes)} cap: block-diagonal approximation, ${what}`;
  return { request: r, dim, block, reason, elements: dim * block };
}

/** Adds nodes to a graph under names no existing tensor uses. */
class GraphBuilder {
  private readonly taken = new Set<string>();
  private counter = 0;

  constructor(private readonly g: Graph, private readonly opset: number, private readonly prefix: string) {
    for (const n of g.nodes) for (const t of [...n.inputs, ...n.outputs]) this.taken.add(t);
    for (const t of g.initializers.keys()) this.taken.add(t);
    for (const vi of [...g.inputs, ...g.outputs, ...g.proto.valueInfo]) this.taken.add(vi.name ?? '');
  }

  name(base: string): string {
    let n = `${this.prefix}${base}_${this.counter++}`;
    while (this.taken.has(n)) n = `${this.prefix}${base}_${this.counter++}`;
    this.taken.add(n);
    return n;
  }

  op(opType: string, inputs: string[], attrs: onnx.IAttributeProto[] = [], base = opType): string {
    const out = this.name(base);
    this.g.addNode({ opType, name: out, input: inputs, output: [out], attribute: attrs.map((a) => onnx.AttributeProto.create(a)) });
    return out;
  }

  ints(values: number[]): string {
    const name = this.name('const');
    this.g.setInitializer(makeTensorProto(name, DataType.INT64, [values.length], BigInt64Array.from(values.map((v) => BigInt(v)))));
    return name;
  }

  floats(dims: number[], data: Float32Array): string {
    const name = this.name('weight');
    this.g.setInitializer(makeTensorProto(name, DataType.FLOAT, dims, data));
    return name;
  }

  /** ReduceSum over `axes` (axes as an input from opset 13, an attribute before). */
  reduceSum(x: string, axes: number[], keepdims: 0 | 1): string {
    const k = intAttr('keepdims', keepdims);
    return this.opset >= 13 ? this.op('ReduceSum', [x, this.ints(axes)], [k]) : this.op('ReduceSum', [x], [intsAttr('axes', axes), k]);
  }

  /** Elements [start, end) of a 1-D tensor (Slice with inputs from opset 10, attributes before). */
  slice(x: string, start: number, end: number): string {
    return this.opset >= 10
      ? this.op('Slice', [x, this.ints([start]), this.ints([end]), this.ints([0])])
      : this.op('Slice', [x], [intsAttr('starts', [start]), intsAttr('ends', [end]), intsAttr('axes', [0])]);
  }
}

const AT = onnx.AttributeProto.AttributeType;
const intAttr = (name: string, i: number): onnx.IAttributeProto => ({ name, type: AT.INT, i });
const intsAttr = (name: string, ints: number[]): onnx.IAttributeProto => ({ name, type: AT.INTS, ints });
const stringAttr = (name: string, s: string): onnx.IAttributeProto => ({ name, type: AT.STRING, s: Buffer.from(s, 'utf8') });

const INT64_MAX = Number.MAX_SAFE_INTEGER;

/** P [rows, D] for a matmul-like request. */
function matmulRows(b: GraphBuilder, x: string, r: MatmulGramRequest): string {
  const K = r.channels;
  const axis = r.rank !== undefined && r.axis < 0 ? r.axis + r.rank : r.axis;
  if (axis === -1 || (r.rank !== undefined && axis === r.rank - 1)) return b.op('Reshape', [x, b.ints([-1, K])]);
  if (r.rank !== undefined) {
    const perm = [...Array(r.rank).keys()].filter((a) => a !== axis);
    perm.push(axis);
    return b.op('Reshape', [b.op('Transpose', [x], [intsAttr('perm', perm)]), b.ints([-1, K])]);
  }
  // Rank unknown: X as [outer, K, inner], then the channel axis last.
  let shape3: string;
  if (axis === 0) shape3 = b.ints([1, K, -1]);
  else {
    const s = b.op('Shape', [x]);
    const keep = [intAttr('keepdims', 1)];
    if (axis > 0) shape3 = b.op('Concat', [b.op('ReduceProd', [b.slice(s, 0, axis)], keep), b.ints([K, -1])], [intAttr('axis', 0)]);
    else shape3 = b.op('Concat', [b.ints([-1, K]), b.op('ReduceProd', [b.slice(s, axis + 1, INT64_MAX)], keep)], [intAttr('axis', 0)]);
  }
  const x3 = b.op('Reshape', [x, shape3]);
  return b.op('Reshape', [b.op('Transpose', [x3], [intsAttr('perm', [0, 2, 1])]), b.ints([-1, K])]);
}

/** P [N·L, C·k] for a conv request: the im2col patches, extracted by a one-hot Conv of group C. */
function convRows(b: GraphBuilder, x: string, r: ConvGramRequest): string {
  const C = r.channels;
  const k = numel(r.kernel);
  const D = C * k;
  // Output channel c·k + j belongs to group c (groups split the outputs into C runs of k) and copies kernel
  // position j (row-major over the kernel's spatial dims) of input channel c.
  const w = new Float32Array(D * k);
  for (let c = 0; c < C; c++) for (let j = 0; j < k; j++) w[(c * k + j) * k + j] = 1;
  const attrs: onnx.IAttributeProto[] = [intAttr('group', C), intsAttr('kernel_shape', r.kernel)];
  if (r.autoPad && r.autoPad !== 'NOTSET') attrs.push(stringAttr('auto_pad', r.autoPad));
  else if (r.pads) attrs.push(intsAttr('pads', r.pads));
  if (r.strides) attrs.push(intsAttr('strides', r.strides));
  if (r.dilations) attrs.push(intsAttr('dilations', r.dilations));
  const y = b.op('Conv', [x, b.floats([D, 1, ...r.kernel], w)], attrs, 'Im2col');
  const rank = 2 + r.kernel.length;
  const perm = [0, ...Array.from({ length: rank - 2 }, (_, i) => i + 2), 1];
  return b.op('Reshape', [b.op('Transpose', [y], [intsAttr('perm', perm)]), b.ints([-1, D])]);
}

/** Adds the Gram nodes of `plan` to the builder's graph and returns the output names. */
function addGramNodes(b: GraphBuilder, p: Omit<Plan, 'out'>): Plan['out'] {
  const r = p.request;
  const x = b.op('Cast', [r.tensor], [intAttr('to', DataType.FLOAT)]);
  const xShape = b.op('Shape', [x]);
  const P = r.kind === 'conv' ? convRows(b, x, r) : matmulRows(b, x, r);
  let gram: string;
  if (p.block === 0) {
    gram = b.op('MatMul', [b.op('Transpose', [P], [intsAttr('perm', [1, 0])]), P], [], 'Gram');
  } else if (p.block === 1) {
    gram = b.reduceSum(b.op('Mul', [P, P]), [0], 0);
  } else {
    const r3 = b.op('Reshape', [P, b.ints([-1, p.dim / p.block, p.block])]);
    const left = b.op('Transpose', [r3], [intsAttr('perm', [1, 2, 0])]);
    const right = b.op('Transpose', [r3], [intsAttr('perm', [1, 0, 2])]);
    gram = b.op('MatMul', [left, right], [], 'GramBlocks');
  }
  const sum = b.reduceSum(P, [0], 0);
  const rows = b.op('Shape', [P]);
  return { gram, sum, rows, xShape };
}

/** Splits plans into consecutive chunks whose Gram statistics (12 bytes per element) fit `cap`. */
function chunks<T extends { elements: number }>(plans: T[], cap: number): T[][] {
  const out: T[][] = [];
  let cur: T[] = [];
  let bytes = 0;
  for (const p of plans) {
    const b = p.elements * 12;
    if (cur.length && bytes + b > cap) {
      out.push(cur);
      cur = [];
      bytes = 0;
    }
    cur.push(p);
    bytes += b;
  }
  if (cur.length) out.push(cur);
  return out;
}

/** The capture copy for one chunk: the Gram nodes, with only their outputs (nodes nothing needs are removed). */
function captureCopy(model: Model, plans: Omit<Plan, 'out'>[]): { copy: Model; plans: Plan[] } {
  const copy = cloneModel(model);
  const g = copy.graph;
  for (const p of plans) {
    const t = p.request.tensor;
    if (!g.isGraphInput(t) && !g.producer(t)) throw new UserError(`cannot capture '${t}': no node produces it`);
  }
  const b = new GraphBuilder(g, copy.opset('') ?? 1, 'onnx_prune_gram/');
  const built = plans.map((p) => ({ ...p, out: addGramNodes(b, p) }));
  g.proto.output = built.flatMap((p) => [p.out.gram, p.out.sum, p.out.rows, p.out.xShape]).map((name) => onnx.ValueInfoProto.create({ name }));
  g.removeDeadNodes();
  return { copy, plans: built };
}

function shapeOf(t: ort.Tensor): number[] {
  return Array.from(t.data as BigInt64Array, (v) => Number(v));
}

/** Checks a batch's X against the request (a wrong channel count would otherwise reshape silently). */
function checkActivation(p: Plan, dims: number[]): void {
  const r = p.request;
  const where = `Gram of '${r.tensor}'`;
  if (r.kind === 'conv') {
    if (dims.length !== 2 + r.kernel.length) throw new UserError(`${where}: activation of shape [${dims.join(',')}] does not fit a ${r.kernel.length}-D convolution`);
    if (dims[1] !== r.channels) throw new UserError(`${where}: activation of shape [${dims.join(',')}] has ${dims[1]} channels, the request ${r.channels}`);
    return;
  }
  const axis = r.axis < 0 ? r.axis + dims.length : r.axis;
  if (axis < 0 || axis >= dims.length) throw new UserError(`${where}: axis ${r.axis} is out of range for an activation of shape [${dims.join(',')}]`);
  if (r.rank !== undefined && r.rank !== dims.length) throw new UserError(`${where}: activation of shape [${dims.join(',')}] is not of rank ${r.rank}`);
  if (dims[axis] !== r.channels) throw new UserError(`${where}: activation of shape [${dims.join(',')}] has ${dims[axis]} channels on axis ${r.axis}, the request ${r.channels}`);
}

/** Mirrors the average of (i, j) and (j, i) into both, for each n×n matrix stored at `offset`. */
function symmetrize(g: Float64Array, n: number, count: number): void {
  for (let m = 0; m < count; m++) {
    const o = m * n * n;
    for (let i = 0; i < n; i++) {
      for (let j = i + 1; j < n; j++) {
        const v = (g[o + i * n + j] + g[o + j * n + i]) / 2;
        g[o + i * n + j] = v;
        g[o + j * n + i] = v;
      }
    }
  }
}

/** Samples of the first run when the batch size is chosen automatically, and the most samples per run then. */
const AUTO_FIRST_BATCH = 32;
const AUTO_MAX_BATCH = 256;
/** Rows per run aimed at when the batch size is chosen automatically. */
const AUTO_ROWS = 1024;
/** Most bytes of model inputs per run when the batch size is chosen automatically. */
const AUTO_MAX_INPUT_BYTES = 16 * 2 ** 20;
/** Most bytes of ORT's Gram rows (estimated) per run when the batch size is chosen automatically. */
const AUTO_MAX_ROW_BYTES = 256 * 2 ** 20;

/** Samples [start, end) of a calibration set, sharing its data (no copy). */
function calibView(set: CalibSet, start: number, end: number): CalibSet {
  const gen = set.generate;
  if (gen) return { ...set, samples: end - start, generate: (s, c) => gen(start + s, c) };
  const inputs = set.inputs.map((x) => {
    const row = numel(x.dims.slice(1));
    return { ...x, dims: [end - start, ...x.dims.slice(1)], data: x.data.subarray(start * row, end * row) as typeof x.data };
  });
  return { ...set, inputs, samples: end - start };
}

/**
 * Gram statistics of every request over the calibration set (results in request order). Each chunk of
 * requests (see maxConcurrentBytes) costs one ORT session of a capture copy and one pass over the data.
 */
export async function captureGrams(model: Model, calib: CalibSet, requests: GramRequest[], opts: GramOptions = {}): Promise<GramStats[]> {
  if (requests.length === 0) return [];
  const maxGram = opts.maxGramBytes ?? DEFAULT_MAX_GRAM_BYTES;
  const planned = requests.map((r, index) => ({ ...planRequest(r, maxGram), index }));
  const groups = chunks(planned, opts.maxConcurrentBytes ?? DEFAULT_MAX_CONCURRENT_BYTES);
  const results: GramStats[] = new Array(requests.length);
  for (let c = 0; c < groups.length; c++) {
    const { copy, plans } = captureCopy(model, groups[c]);
    const acc = plans.map((p) => ({ gram: new Float64Array(p.elements), sum: new Float64Array(p.dim), count: 0 }));
    const fetch = plans.flatMap((p) => [p.out.gram, p.out.sum, p.out.rows, p.out.xShape]);
    const onBatch = (outs: Record<string, ort.Tensor>) => {
      plans.forEach((p, i) => {
        checkActivation(p, shapeOf(outs[p.out.xShape]));
        const a = acc[i];
        const g = outs[p.out.gram].data as Float32Array;
        const s = outs[p.out.sum].data as Float32Array;
        if (g.length !== a.gram.length || s.length !== a.sum.length) throw new Error(`Gram of '${p.request.tensor}': onnxruntime returned ${g.length} elements, expected ${a.gram.length}`);
        for (let k = 0; k < g.length; k++) a.gram[k] += g[k];
        for (let k = 0; k < s.length; k++) a.sum[k] += s[k];
        a.count += shapeOf(outs[p.out.rows])[0];
      });
    };
    const run = { quiet: opts.quiet, label: 'Gram statistics', passes: groups.length, pass: c };
    const session = await createSession(copy, { logSeverityLevel: 4 });
    try {
      if (opts.batch !== undefined || calib.fixedBatch !== undefined || calib.generate || calib.samples <= AUTO_FIRST_BATCH) {
        await forEachCalibrationBatch(session, calib, fetch, { ...run, batch: opts.batch ?? AUTO_FIRST_BATCH }, onBatch);
      } else {
        // The first batch tells the rows per sample; the rest run in batches of about AUTO_ROWS rows (each run
        // returns every Gram, D² floats, whatever its rows: few rows per run would make that transfer dominate),
        // within AUTO_MAX_BATCH samples and AUTO_MAX_INPUT_BYTES of inputs per run.
        await forEachCalibrationBatch(session, calibView(calib, 0, AUTO_FIRST_BATCH), fetch, { ...run, batch: AUTO_FIRST_BATCH }, onBatch);
        // Rows per sample weighted by each Gram's size (what a run transfers): a pass of small conv Grams with many
        // rows and one large fully connected Gram with one row per sample is dominated by the latter.
        const elements = plans.reduce((t, p) => t + p.elements, 0);
        const rowsPerSample = Math.max(1, acc.reduce((t, a, i) => t + (a.count / AUTO_FIRST_BATCH) * plans[i].elements, 0) / elements);
        const sampleBytes = calib.inputs.reduce((t, x) => t + x.data.byteLength / calib.samples, 0);
        // ORT's rows P [rows, D] (float32) per sample, about three times over (a conv's patches, their transpose).
        const rowBytes = acc.reduce((t, a, i) => t + (a.count / AUTO_FIRST_BATCH) * plans[i].dim * 4 * 3, 0);
        const most = Math.min(AUTO_MAX_BATCH, Math.floor(AUTO_MAX_INPUT_BYTES / Math.max(1, sampleBytes)), Math.floor(AUTO_MAX_ROW_BYTES / Math.max(1, rowBytes)));
        const batch = Math.max(AUTO_FIRST_BATCH, Math.min(most, Math.ceil(AUTO_ROWS / rowsPerSample)));
        await forEachCalibrationBatch(session, calibView(calib, AUTO_FIRST_BATCH, calib.samples), fetch, { ...run, batch }, onBatch);
      }
    } finally {
      await session.release();
    }
    plans.forEach((p, i) => {
      const a = acc[i];
      const common = { request: p.request, dim: p.dim, columnsPerChannel: columnsPerChannel(p.request), count: a.count, sum: a.sum };
      if (p.block === 0) {
        symmetrize(a.gram, p.dim, 1);
        results[groups[c][i].index] = { ...common, gram: a.gram };
      } else {
        symmetrize(a.gram, p.block, p.dim / p.block);
        results[groups[c][i].index] = { ...common, blockDiagonal: true, blockSize: p.block, blocks: a.gram, reason: p.reason! };
      }
    });
  }
  return results;
}
