/**
 * Collects edits of constant tensors per *use* (a node input slot that reads the tensor, through Identity
 * chains) and of node attributes, then commits them to the graph:
 *  - a tensor whose uses all want the same edit is edited in place (its name is kept);
 *  - a tensor whose uses want different edits (a shared initializer pruned differently by its consumers, or
 *    read by a graph output / a subgraph that must see the original) keeps its name for one variant, and every
 *    other variant becomes a private copy wired straight into the uses that want it.
 * Edits of one use add up: positions removed/zeroed per axis are united, shape deltas are summed.
 * Works the same for initializers and Constant-node weights (value, value_floats, value_ints...).
 */
import { numel } from '../ir/dims';
import type { Graph } from '../ir/graph';
import { toLong, toNumber } from '../ir/long';
import type { Node } from '../ir/node';
import { onnx } from '../ir/proto';
import { makeTensorProto } from '../ir/tensor';
import { DataType } from '../ir/dtype';
import { RawTensor, removeAlongAxis, subtractAt, zeroAlongAxis } from './tensor-edit';

interface TensorEdit {
  remove: Map<number, Set<number>>;
  zero: Map<number, Set<number>>;
  delta: Map<number, number>;
}

interface Use {
  node: Node;
  input: number;
}

interface InputReplacement {
  node: Node;
  input: number;
  tensor: string;
  value: number;
}

interface AttrEdit {
  node: Node;
  attr: string;
  position?: number;
  delta: number;
}

export interface CopyMade {
  /** The original tensor. */
  tensor: string;
  /** The private copy's name. */
  copy: string;
  /** The nodes (first output names) now reading the copy. */
  nodes: string[];
}

export interface CommitSummary {
  /** Tensors edited in place (names kept). */
  edited: string[];
  /** Private copies made for uses that needed a different edit. */
  copies: CopyMade[];
  /** Attributes changed, as `node.attr[position]`. */
  attrs: string[];
  /** Computed shape elements replaced by constants, as `node[input] = value`. */
  replaced: string[];
}

const emptyEdit = (): TensorEdit => ({ remove: new Map(), zero: new Map(), delta: new Map() });

function editKey(e: TensorEdit): string {
  const axes = (m: Map<number, Set<number>>) =>
    [...m.entries()].filter(([, s]) => s.size > 0).sort((a, b) => a[0] - b[0])
      .map(([ax, s]) => `${ax}:${[...s].sort((x, y) => x - y).join(',')}`).join(';');
  const deltas = [...e.delta.entries()].filter(([, d]) => d !== 0).sort((a, b) => a[0] - b[0]).map(([p, d]) => `${p}:${d}`).join(';');
  const r = axes(e.remove), z = axes(e.zero);
  return r || z || deltas ? `r[${r}] z[${z}] d[${deltas}]` : '';
}

export class EditSet {
  /** tensor → (use key → use + edit); insertion-ordered for determinism. */
  private readonly tensors = new Map<string, Map<string, { use: Use; edit: TensorEdit }>>();
  private readonly attrs = new Map<string, AttrEdit>();
  private readonly replacements = new Map<string, InputReplacement>();

  constructor(private readonly graph: Graph) {}

  /** The node identified by its first output name. */
  node(id: string, what: string): Node {
    const n = this.graph.producer(id);
    if (!n || n.outputs[0] !== id) throw new Error(`${what}: no node has first output '${id}'`);
    return n;
  }

  private entry(tensor: string, nodeId: string, input: number, what: string): TensorEdit {
    const node = this.node(nodeId, what);
    const name = node.inputs[input];
    if (name === undefined || name === '') throw new Error(`${what}: node '${nodeId}' has no input ${input}`);
    const resolved = this.graph.resolveIdentity(name);
    if (resolved !== tensor) throw new Error(`${what}: input ${input} of node '${nodeId}' is '${name}', which is not the weight '${tensor}'`);
    if (!this.graph.constant(tensor)) throw new Error(`${what}: '${tensor}' is not a constant (initializer or Constant node)`);
    let uses = this.tensors.get(tensor);
    if (!uses) this.tensors.set(tensor, (uses = new Map()));
    const key = `${nodeId}\u0000${input}`;
    let e = uses.get(key);
    if (!e) uses.set(key, (e = { use: { node, input }, edit: emptyEdit() }));
    return e.edit;
  }

  remove(tensor: string, nodeId: string, input: number, axis: number, positions: Iterable<number>, what: string): void {
    const e = this.entry(tensor, nodeId, input, what);
    let s = e.remove.get(axis);
    if (!s) e.remove.set(axis, (s = new Set()));
    for (const p of positions) s.add(p);
  }

  zero(tensor: string, nodeId: string, input: number, axis: number, positions: Iterable<number>, what: string): void {
    const e = this.entry(tensor, nodeId, input, what);
    let s = e.zero.get(axis);
    if (!s) e.zero.set(axis, (s = new Set()));
    for (const p of positions) s.add(p);
  }

  /** The element at flat `position` decreases by `amount` (amounts from several groups add up). */
  subtract(tensor: string, nodeId: string, input: number, position: number, amount: number, what: string): void {
    const e = this.entry(tensor, nodeId, input, what);
    e.delta.set(position, (e.delta.get(position) ?? 0) + amount);
  }

  /** An int attribute (or element `position` of an ints attribute) decreases by `amount`. */
  subtractAttr(nodeId: string, attr: string, position: number | undefined, amount: number, what: string): void {
    const node = this.node(nodeId, what);
    const a = node.attr(attr);
    if (!a) throw new Error(`${what}: node '${nodeId}' has no attribute '${attr}'`);
    const key = `${nodeId}\u0000${attr}\u0000${position ?? ''}`;
    const cur = this.attrs.get(key);
    if (cur) cur.delta += amount;
    else this.attrs.set(key, { node, attr, position, delta: amount });
  }

  /**
   * Input `input` of node `nodeId` (a computed one-element shape value, `tensor`) is to read the constant
   * `value` instead (e.g. −1 so that a Reshape infers a dimension that pruning changes).
   */
  replaceInput(tensor: string, nodeId: string, input: number, value: number, what: string): void {
    const node = this.node(nodeId, what);
    if (node.inputs[input] !== tensor) throw new Error(`${what}: input ${input} of node '${nodeId}' is '${node.inputs[input] ?? ''}', not '${tensor}'`);
    const key = `${nodeId}\u0000${input}`;
    const cur = this.replacements.get(key);
    // One group pins the element to its original value (its own removals leave it unchanged), another lets the
    // Reshape infer it (its removals change it): −1 is right for both. Verification checks the result runs.
    if (cur && cur.value !== value && cur.value !== -1 && value !== -1) {
      throw new Error(`${what}: input ${input} of node '${nodeId}' is to be replaced by both ${cur.value} and ${value}`);
    }
    if (cur && value !== -1) return;
    this.replacements.set(key, { node, input, tensor, value });
  }

  /** Applies every collected edit to the graph. */
  commit(): CommitSummary {
    const summary: CommitSummary = { edited: [], copies: [], attrs: [], replaced: [] };
    const order = new Map<Node, number>();
    this.graph.nodes.forEach((n, i) => order.set(n, i));
    for (const [tensor, edits] of this.tensors) this.commitTensor(tensor, edits, order, summary);
    for (const a of this.attrs.values()) summary.attrs.push(applyAttrEdit(a));
    for (const r of this.replacements.values()) summary.replaced.push(this.commitReplacement(r));
    this.graph.invalidate();
    return summary;
  }

  private commitReplacement(r: InputReplacement): string {
    const g = this.graph;
    const known = g.types.get(r.tensor);
    const dtype = known && (known.dtype === DataType.INT64 || known.dtype === DataType.INT32) ? known.dtype : DataType.INT64;
    const dims = known?.shape && known.shape.every((d) => d === 1) ? (known.shape as number[]) : [1];
    const data = dtype === DataType.INT64 ? BigInt64Array.of(BigInt(r.value)) : Int32Array.of(r.value);
    const name = g.uniqueName(`${r.tensor}_pruned`);
    g.setInitializer(makeTensorProto(name, dtype, dims, data));
    r.node.inputs[r.input] = name;
    g.invalidate();
    removeDeadProducers(g, r.tensor);
    return `${r.node.outputs[0]}[${r.input}] = ${r.value}`;
  }

  private commitTensor(tensor: string, edits: Map<string, { use: Use; edit: TensorEdit }>, order: Map<Node, number>, summary: CommitSummary): void {
    const g = this.graph;
    const { uses, opaque } = usesOf(g, tensor);
    // Every use of the tensor, with its edit key ('' = must see the original data).
    const variants = new Map<string, { edit: TensorEdit; uses: Use[] }>();
    if (opaque) variants.set('', { edit: emptyEdit(), uses: [] });
    uses.sort((a, b) => order.get(a.node)! - order.get(b.node)! || a.input - b.input);
    for (const u of uses) {
      const e = edits.get(`${u.node.outputs[0]}\u0000${u.input}`)?.edit ?? emptyEdit();
      const k = editKey(e);
      let v = variants.get(k);
      if (!v) variants.set(k, (v = { edit: e, uses: [] }));
      v.uses.push(u);
    }
    const keys = [...variants.keys()];
    // The original name keeps the unedited data when something needs it, else the first use's variant.
    const keeper = variants.has('') ? '' : keys[0];
    const source = g.constant(tensor)!;
    // Edits never write into their input: the stored bytes are read without a copy.
    const original: RawTensor = { dtype: source.dtype, dims: source.dims, bytes: source.bytesView() };
    if (keeper !== '') {
      writeTensor(g, tensor, ownedCopy(applyEdit(original, variants.get(keeper)!.edit, tensor), original));
      summary.edited.push(tensor);
    }
    for (const k of keys) {
      if (k === keeper) continue;
      const v = variants.get(k)!;
      const copy = g.uniqueName(`${tensor}_pruned`);
      addCopy(g, tensor, copy, ownedCopy(applyEdit(original, v.edit, tensor), original));
      for (const u of v.uses) {
        const old = u.node.inputs[u.input];
        u.node.inputs[u.input] = copy;
        g.invalidate();
        removeDeadProducers(g, old);
      }
      summary.copies.push({ tensor, copy, nodes: v.uses.map((u) => u.node.outputs[0]) });
    }
  }
}

/**
 * Every (node, input slot) reading `tensor` directly or through Identity nodes; `opaque` is true when the
 * value (or an Identity of it) is also a graph output or read by a subgraph, which must keep the original.
 */
function usesOf(g: Graph, tensor: string): { uses: Use[]; opaque: boolean } {
  const uses: Use[] = [];
  let opaque = false;
  for (const name of g.identityAliases(tensor)) {
    if (g.isGraphOutput(name)) opaque = true;
    for (const c of g.consumers(name)) {
      if (c.opType === 'Identity' && c.domain === '') continue; // followed by identityAliases
      let direct = false;
      c.inputs.forEach((inp, i) => {
        if (inp === name) {
          uses.push({ node: c, input: i });
          direct = true;
        }
      });
      if (!direct) opaque = true; // read from inside a subgraph
    }
  }
  return { uses, opaque };
}

/**
 * Removes the nodes that computed `name` (and, transitively, their inputs) when rewiring left them with no
 * reader: an Identity chain that fed a weight, a Shape→Gather→... chain that fed a replaced shape element,
 * and initializers only they read. Anything still read is kept; ONNX nodes have no side effects.
 */
function removeDeadProducers(g: Graph, name: string): void {
  const stack = [name];
  while (stack.length) {
    const cur = stack.pop()!;
    const p = g.producer(cur);
    if (!p && g.initializers.has(cur) && g.consumers(cur).length === 0 && !g.isGraphOutput(cur) && !g.proto.input.some((i) => i.name === cur)) {
      g.initializers.delete(cur); // orphaned by the rewiring
      g.types.delete(cur);
      g.invalidate();
      continue;
    }
    if (!p || p.subgraphs.length) continue;
    if (p.outputs.some((o) => o && (g.consumers(o).length > 0 || g.isGraphOutput(o)))) continue;
    g.removeNode(p);
    for (const o of p.outputs) g.types.delete(o);
    for (const i of p.inputs) if (i) stack.push(i);
  }
}

function applyEdit(t: RawTensor, e: TensorEdit, what: string): RawTensor {
  let out = t;
  const hasRemove = [...e.remove.values()].some((s) => s.size > 0);
  const hasDelta = [...e.delta.values()].some((d) => d !== 0);
  if (hasRemove && hasDelta) throw new Error(`'${what}': a tensor cannot be both sliced and used as a shape`);
  for (const ax of [...e.remove.keys()].sort((a, b) => a - b)) out = removeAlongAxis(out, ax, e.remove.get(ax)!, `'${what}'`);
  for (const ax of [...e.zero.keys()].sort((a, b) => a - b)) out = zeroAlongAxis(out, ax, e.zero.get(ax)!, `'${what}'`);
  for (const p of [...e.delta.keys()].sort((a, b) => a - b)) {
    const d = e.delta.get(p)!;
    if (d !== 0) out = subtractAt(out, p, d, `'${what}'`);
  }
  if (out.dims.some((d) => d === 0) && !t.dims.some((d) => d === 0)) {
    throw new Error(`'${what}' would become zero-width [${out.dims.join(',')}]; at least one unit must stay`);
  }
  return out;
}

/** `t` with bytes of its own (edits return new buffers; an edit that changed nothing returns its input). */
function ownedCopy(t: RawTensor, original: RawTensor): RawTensor {
  return t.bytes === original.bytes ? { ...t, bytes: t.bytes.slice() } : t;
}

/**
 * Replaces the data of an initializer or Constant-node weight, keeping the way it is stored. The tensor takes
 * over `t.bytes` (no copy).
 */
function writeTensor(g: Graph, name: string, t: RawTensor): void {
  const init = g.initializers.get(name);
  if (init) {
    init.adoptBytes(t.bytes, t.dims);
    g.types.set(name, { dtype: t.dtype, shape: t.dims.slice() });
    const listed = g.proto.input.find((i) => i.name === name);
    const shape = listed?.type?.tensorType?.shape;
    if (shape) shape.dim = t.dims.map((d) => onnx.TensorShapeProto.Dimension.create({ dimValue: toLong(d) }));
    return;
  }
  const node = g.producer(name);
  if (!node || node.opType !== 'Constant') throw new Error(`'${name}' is neither an initializer nor a Constant node`);
  const a = node.proto.attribute.find((x) => x.name.startsWith('value'));
  if (a?.name === 'value') g.constant(name)!.adoptBytes(t.bytes, t.dims); // the ConstTensor wraps a.t itself
  else writeConstantNode(node, t);
  g.types.set(name, { dtype: t.dtype, shape: t.dims.slice() });
  g.invalidate();
}

function writeConstantNode(node: Node, t: RawTensor): void {
  const a = node.proto.attribute.find((x) => x.name.startsWith('value'));
  if (!a) throw new Error(`Constant node '${node.outputs[0]}' has no value attribute`);
  const view = new DataView(t.bytes.buffer, t.bytes.byteOffset, t.bytes.byteLength);
  const n = numel(t.dims);
  switch (a.name) {
    case 'value_floats':
      a.floats = Array.from({ length: n }, (_, i) => view.getFloat32(i * 4, true));
      return;
    case 'value_ints':
      a.ints = Array.from({ length: n }, (_, i) => toLong(view.getBigInt64(i * 8, true)));
      return;
    case 'value_float':
      a.f = view.getFloat32(0, true);
      return;
    case 'value_int':
      a.i = toLong(view.getBigInt64(0, true));
      return;
    default:
      throw new Error(`Constant node '${node.outputs[0]}': cannot edit a '${a.name}' value`);
  }
}

/** A TensorProto holding `t` (its bytes are taken over, not copied). */
function tensorProto(name: string, t: RawTensor): onnx.TensorProto {
  const p = onnx.TensorProto.create({ name, dataType: t.dtype, dims: t.dims.slice() });
  p.rawData = t.bytes;
  return p;
}

/** Adds a private copy next to the original: an initializer, or a Constant node right after the original's. */
function addCopy(g: Graph, original: string, copy: string, t: RawTensor): void {
  if (g.initializers.has(original)) {
    g.setInitializer(tensorProto(copy, t));
    return;
  }
  const src = g.producer(original)!;
  const value = tensorProto('', t);
  delete (value as { name?: string }).name;
  const np = onnx.NodeProto.create({
    opType: 'Constant',
    input: [],
    output: [copy],
    attribute: [onnx.AttributeProto.create({ name: 'value', type: onnx.AttributeProto.AttributeType.TENSOR, t: value })],
  });
  if (src.name) np.name = `${src.name}_pruned_${copy}`;
  const n = g.addNode(np);
  // addNode appends; move the copy right after its original so the node order stays topological.
  g.nodes.pop();
  g.nodes.splice(g.nodes.indexOf(src) + 1, 0, n);
  g.types.set(copy, { dtype: t.dtype, shape: t.dims.slice() });
  g.invalidate();
}

function applyAttrEdit(e: AttrEdit): string {
  const label = `${e.node.outputs[0]}.${e.attr}${e.position !== undefined ? `[${e.position}]` : ''}`;
  if (e.delta === 0) return label;
  if (e.position === undefined) {
    const cur = e.node.attrInt(e.attr);
    if (cur === undefined) throw new Error(`attribute ${label} is not an int`);
    const next = cur - e.delta;
    if (cur < 0 || next < 1) throw new Error(`attribute ${label} would go from ${cur} to ${next}`);
    e.node.setAttrInt(e.attr, next);
  } else {
    const a = e.node.attr(e.attr)!;
    if (e.position < 0 || e.position >= a.ints.length) throw new Error(`attribute ${label}: element ${e.position} is out of range`);
    const cur = toNumber(a.ints[e.position]);
    const next = cur - e.delta;
    // Sizes stay non-negative; negative (from-the-end) Slice bounds stay negative.
    if ((cur < 0) !== (next < 0)) throw new Error(`attribute ${label} would go from ${cur} to ${next}`);
    a.ints[e.position] = toLong(next);
  }
  return label;
}
