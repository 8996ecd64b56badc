/**
 * Weights that reach their op through a value-converting chain of constant ops:
 *  - float16 (or bfloat16, int8…) *storage* with float32 compute: W_fp16 → Cast(to=FLOAT) → Conv;
 *  - QDQ quantization (onnxruntime's quantize_static): W_int8 → DequantizeLinear(W, scale, zero_point) → Conv,
 *    with a per-tensor scale, or per-channel scale / zero-point vectors along one axis of W; also fake-quantized
 *    float weights, W → QuantizeLinear → DequantizeLinear → Conv.
 * Every op of such a chain is element-wise and keeps the weight's shape, so the chain's output *is* the stored
 * tensor for channel analysis: slicing the stored tensor (and the per-channel scale / zero-point when they run
 * along the sliced axis) slices the output the same way.
 *
 * A chain counts only when it is private: every value on it has exactly one reader and is no graph output (a
 * chain output read by two ops would make both members name the same (node, input) use). Its output must be a
 * float type, so that integer shape constants cast to int64 stay shape plumbing. Blocked quantization
 * (`block_size`) and 4-bit / float8 codes are not chains (the weight stays a computed one).
 *
 * Members name the node that reads the stored tensor (the chain's first op, input 0), as edits need;
 * `weightUse` maps such a member back to the op that uses the value (Conv / Gemm / MatMul / BatchNorm…).
 */
import { DataType, float16ToFloat32, float32ToFloat16, isFloat } from '../ir/dtype';
import type { Graph } from '../ir/graph';
import type { Node } from '../ir/node';
import type { ConstTensor } from '../ir/tensor';

/** A per-channel quantization parameter of a chain: a 1-D tensor along `axis` of the weight. */
export interface ChainParam {
  /** The stored parameter (initializer or Constant-node output, Identity resolved). */
  tensor: string;
  /** The (De)QuantizeLinear node (first output) and the input slot (1 = scale, 2 = zero-point). */
  node: string;
  input: number;
  /** The axis of the weight the parameter runs along. */
  axis: number;
}

export interface WeightChain {
  /** The stored constant (initializer or Constant-node output, after Identity chains). */
  name: string;
  tensor: ConstTensor;
  /** Chain ops from the stored tensor to the value that was asked for (empty for a plain constant). */
  ops: Node[];
  /** Per-channel quantization parameters met on the way (per-tensor scalars are left out: they stay). */
  params: ChainParam[];
  /** Element type of the value that was asked for. */
  dtype: number;
}

const MAX_STEPS = 16;

/**
 * Stored types a chain may start from: every type edits can slice element by element and scores can read
 * (not 4-bit or float8 codes).
 */
const STORED_TYPES = new Set<number>([
  DataType.FLOAT, DataType.FLOAT16, DataType.BFLOAT16, DataType.DOUBLE, DataType.INT8, DataType.UINT8,
  DataType.INT16, DataType.UINT16, DataType.INT32, DataType.UINT32,
]);

/** A node of the default domain. */
function isOp(n: Node | undefined, op: string): boolean {
  return !!n && n.opType === op && (n.domain === '' || n.domain === 'ai.onnx');
}

/** Is `n` an op a weight chain may pass (reading the chain at input 0)? */
export function isChainOp(n: Node | undefined): n is Node {
  return isOp(n, 'Cast') || isOp(n, 'CastLike') || isQuant(n);
}

function isQuant(n: Node | undefined): boolean {
  return isOp(n, 'DequantizeLinear') || isOp(n, 'QuantizeLinear');
}

/** Per-tensor (one element) or per-axis (1-D, one element per position of the axis) parameter; undefined otherwise. */
function paramKind(t: ConstTensor, axisSize: number): 'tensor' | 'axis' | undefined {
  if (t.size === 1 && t.dims.length <= 1) return 'tensor';
  if (t.dims.length === 1 && t.dims[0] === axisSize) return 'axis';
  return undefined;
}

/** The (De)QuantizeLinear axis (normalized; meaningful for per-axis parameters), undefined when out of range. */
function dqAxis(n: Node, rank: number): number | undefined {
  const a = n.attrInt('axis', 1);
  const ax = a < 0 ? a + rank : a;
  return ax >= 0 && ax < rank ? ax : undefined;
}

/** Output element type of a chain op (undefined when unknown). */
function outType(g: Graph, n: Node): number | undefined {
  if (isOp(n, 'Cast')) return n.attrInt('to');
  if (isOp(n, 'CastLike')) return g.types.get(n.inputs[1])?.dtype ?? g.constant(n.inputs[1])?.dtype;
  const explicit = n.attrInt('output_dtype', 0);
  if (explicit) return explicit;
  if (isOp(n, 'QuantizeLinear')) return n.inputs[2] ? g.resolveConstant(n.inputs[2])?.dtype : DataType.UINT8;
  return g.resolveConstant(n.inputs[1])?.dtype;
}

/**
 * The stored weight behind `name`: the constant itself (through Identity), or the constant at the start of a
 * private Cast / CastLike / (De)QuantizeLinear chain with constant scales and zero-points. Undefined when `name`
 * is computed otherwise.
 */
export function resolveWeight(g: Graph, name: string): WeightChain | undefined {
  if (!name) return undefined;
  // Walk back to the stored tensor through private chain ops (every op keeps the shape: it is the stored one's).
  const ops: Node[] = [];
  let cur = g.resolveIdentity(name);
  let t = g.constant(cur);
  while (!t) {
    const p = g.producer(cur);
    if (!isChainOp(p) || ops.length === MAX_STEPS) return undefined;
    // Private: the value is read by one node only and is no graph output.
    if (g.isGraphOutput(cur) || g.realConsumers(cur).length !== 1) return undefined;
    ops.push(p!);
    cur = g.resolveIdentity(p!.inputs[0]);
    t = g.constant(cur);
  }
  if (!ops.length) return { name: cur, tensor: t, ops, params: [], dtype: t.dtype };
  if (!STORED_TYPES.has(t.dtype)) return undefined;
  const dtype = outType(g, ops[0]);
  if (dtype === undefined || !isFloat(dtype)) return undefined;
  ops.reverse();
  const params: ChainParam[] = [];
  for (const p of ops) {
    if (!isQuant(p)) continue;
    if (p.attrInt('block_size', 0) !== 0) return undefined;
    const ax = dqAxis(p, t.dims.length);
    let kind: 'tensor' | 'axis' | undefined;
    for (const slot of [1, 2]) {
      if (!p.inputs[slot]) continue;
      const src = g.resolveIdentity(p.inputs[slot]);
      const c = g.constant(src);
      const k = c && paramKind(c, ax === undefined ? -1 : t.dims[ax]);
      if (!k || (kind && k !== kind)) return undefined;
      kind = k;
      if (k === 'axis') params.push({ tensor: src, node: p.outputs[0], input: slot, axis: ax! });
    }
    if (!kind) return undefined;
  }
  return { name: cur, tensor: t, ops, params, dtype };
}

/**
 * The chain that starts at `start` (a chain op reading a stored tensor at input 0), as resolveWeight accepts it
 * from its end: its ops in order and the op that uses its value (with the input slot); undefined when none.
 */
function chainFrom(g: Graph, start: Node): { ops: Node[]; use: { node: Node; input: number } } | undefined {
  const path: Node[] = [start];
  for (let n = start; path.length < MAX_STEPS;) {
    const out = n.outputs[0];
    const readers = g.realConsumers(out);
    if (readers.length !== 1 || g.isGraphOutput(out)) break;
    const next = readers[0];
    const aliases = new Set(g.identityAliases(out));
    if (!isChainOp(next) || !aliases.has(next.inputs[0]) || next.inputs.slice(1).some((i) => aliases.has(i))) break;
    path.push(next);
    n = next;
  }
  // The longest prefix that is a chain (its value a float: QuantizeLinear's integer output is not).
  for (let k = path.length; k > 0; k--) {
    const end = path[k - 1].outputs[0];
    const w = resolveWeight(g, end);
    if (!w || w.ops[0] !== start) continue;
    const node = g.realConsumers(end)[0];
    const aliases = new Set(g.identityAliases(end));
    const input = node ? node.inputs.findIndex((i) => aliases.has(i)) : -1;
    return input < 0 ? undefined : { ops: path.slice(0, k), use: { node, input } };
  }
  return undefined;
}

/**
 * The graph whose nodes read `stored`: `g` itself when one of its nodes reads it directly, else the one subgraph
 * below `g` whose nodes do (a weight of an If branch, or an outer-scope weight read only inside one), else the
 * graph that defines it.
 */
function readerScope(g: Graph, stored: string): Graph {
  if (g.consumers(stored).some((c) => c.inputs.includes(stored))) return g;
  const readers = g.allGraphs().filter((x) => x.nodes.some((n) => n.inputs.includes(stored)));
  return readers.length === 1 ? readers[0] : g.ownerOf(stored) ?? g;
}

/**
 * The use of a weight member: the op that reads the value of the chain starting at (`nodeId`, `input`), and its
 * input slot. A member not on a chain is its own use.
 */
export function weightUse(g: Graph, nodeId: string, input: number): { node: Node; input: number } | undefined {
  // A member of a group inside a control-flow subgraph names a node of that subgraph: looked up model-wide.
  const start = g.memberNode(nodeId);
  if (!start) return undefined;
  if (input !== 0 || !isChainOp(start)) return { node: start, input };
  return chainFrom(start.graph, start)?.use ?? { node: start, input };
}

/**
 * The scale and zero point of a (De)QuantizeLinear step as functions of the flat element index (per tensor, or
 * per channel along its axis); undefined when the scale is not constant or its axis does not fit `dims`.
 */
function qParams(g: Graph, n: Node, dims: number[]): { scale: (i: number) => number; zeroPoint: (i: number) => number } | undefined {
  const scale = g.resolveConstant(n.inputs[1])?.toFloat32();
  const ax = scale && scale.length > 1 ? dqAxis(n, dims.length) : 0;
  if (ax === undefined || !scale) return undefined;
  const zp = n.inputs[2] ? g.resolveConstant(n.inputs[2])?.toFloat32() : undefined;
  let inner = 1;
  for (let a = ax + 1; a < dims.length; a++) inner *= dims[a];
  const size = dims[ax] ?? 1;
  const channel = (i: number) => (scale.length === 1 ? 0 : Math.floor(i / inner) % size);
  return {
    scale: (i) => scale[channel(i)],
    zeroPoint: (i) => (zp ? zp[zp.length === 1 ? 0 : channel(i)] : 0),
  };
}

/** (x − zero_point) · scale of a DequantizeLinear step, per tensor or per axis. */
function dequantize(g: Graph, n: Node, x: Float32Array, dims: number[]): Float32Array | undefined {
  const q = qParams(g, n, dims);
  if (!q) return undefined;
  const out = new Float32Array(x.length);
  for (let i = 0; i < x.length; i++) out[i] = (x[i] - q.zeroPoint(i)) * q.scale(i);
  return out;
}

/** Saturation range of QuantizeLinear's integer output types. */
const QRANGE: Partial<Record<number, [number, number]>> = {
  [DataType.UINT8]: [0, 255], [DataType.INT8]: [-128, 127], [DataType.UINT16]: [0, 65535], [DataType.INT16]: [-32768, 32767],
};

/** Rounds half to even, as QuantizeLinear does. */
function roundHalfEven(x: number): number {
  const r = Math.round(x);
  return Math.abs(x % 1) === 0.5 && r % 2 !== 0 ? r - 1 : r;
}

/** saturate(round(x / scale) + zero_point) of a QuantizeLinear step into an 8/16-bit integer type. */
function quantize(g: Graph, n: Node, x: Float32Array, dims: number[]): Float32Array | undefined {
  const range = QRANGE[outType(g, n) ?? 0];
  const p = range && qParams(g, n, dims);
  if (!range || !p) return undefined;
  const out = new Float32Array(x.length);
  for (let i = 0; i < x.length; i++) {
    const q = roundHalfEven(x[i] / p.scale(i)) + p.zeroPoint(i);
    out[i] = Math.min(range[1], Math.max(range[0], q));
  }
  return out;
}

/**
 * The values a stored weight has where it is used: its data passed through the private chain it feeds
 * (cast, quantized, dequantized), as float32. A tensor read directly, or by several readers, gives its own values
 * (as does a chain with a step that cannot be evaluated, e.g. quantization to 4-bit types).
 */
export function usedValues(root: Graph, stored: string): Float32Array | undefined {
  const g = readerScope(root, stored);
  const t = g.constant(stored);
  if (!t) return undefined;
  const readers = g.realConsumers(stored);
  const aliases = new Set(g.identityAliases(stored));
  const first = readers.length === 1 && !g.isGraphOutput(stored) ? readers[0] : undefined;
  const chain = first && isChainOp(first) && aliases.has(first.inputs[0]) ? chainFrom(g, first) : undefined;
  let data = t.toFloat32();
  for (const n of chain?.ops ?? []) {
    if (isQuant(n)) {
      const d = isOp(n, 'QuantizeLinear') ? quantize(g, n, data, t.dims) : dequantize(g, n, data, t.dims);
      if (!d) return t.toFloat32(); // a step we cannot evaluate: the stored values
      data = d;
    } else if (outType(g, n) === DataType.FLOAT16) {
      data = data.map((v) => float16ToFloat32(float32ToFloat16(v)));
    }
  }
  return data;
}
