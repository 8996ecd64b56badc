/**
 * The mutable graph model (in the spirit of onnx-graphsurgeon): nodes, named tensors with producers and
 * consumers, initializers and Constant-node weights presented uniformly as ConstTensors, Identity chains,
 * iterative topological sort and dead-node cleanup. Subgraphs (If/Loop/Scan) are wrapped too and kept intact.
 */
import { DataType } from './dtype';
import { toBigInt, toNumber } from './long';
import { Node } from './node';
import { onnx } from './proto';
import { ModelFiles } from './external-data';
import { ConstTensor, makeTensorProto } from './tensor';

/** A tensor's element type and shape; a dim is a number, a symbolic name, or undefined when unknown. */
export interface ValueType {
  dtype: number;
  shape?: (number | string | undefined)[];
}

/** A constant weight, wherever it is stored. */
export interface WeightRef {
  name: string;
  tensor: ConstTensor;
  source: 'initializer' | 'constant-node' | 'sparse-initializer';
  /** The Constant node, for source === 'constant-node'. */
  node?: Node;
  graph: Graph;
}

export class Graph {
  nodes: Node[] = [];
  /** Initializers by name, in file order. */
  readonly initializers = new Map<string, ConstTensor>();
  /** Known element types and shapes by tensor name (from the model, then from shape inference). */
  readonly types = new Map<string, ValueType>();
  private index?: { producer: Map<string, Node>; consumers: Map<string, Node[]> };
  private constNodeCache = new Map<string, ConstTensor | null>();

  /** The model's files (external data); shared by all graphs of a model and by its clones. */
  readonly files?: ModelFiles;

  /** @param files the model's files, or the folder external data is relative to */
  constructor(public proto: onnx.GraphProto, files?: ModelFiles | string, public readonly parent?: Graph) {
    this.files = typeof files === 'string' ? new ModelFiles(files) : files;
    for (const t of proto.initializer) this.initializers.set(t.name ?? '', new ConstTensor(t, this.files));
    for (const np of proto.node) this.nodes.push(this.wrapNode(np));
    for (const vi of [...proto.input, ...proto.output, ...proto.valueInfo]) {
      const vt = valueTypeOf(vi);
      if (vt && vi.name) this.types.set(vi.name, vt);
    }
    for (const [name, t] of this.initializers) this.types.set(name, { dtype: t.dtype, shape: t.dims });
  }

  private wrapNode(np: onnx.NodeProto): Node {
    const n = new Node(np, this);
    for (const a of np.attribute) {
      if (a.g) n.subgraphs.push(new Graph(a.g, this.files, this));
      for (const g of a.graphs ?? []) n.subgraphs.push(new Graph(g, this.files, this));
    }
    return n;
  }

  /** Folder that external-data locations are relative to. */
  get baseDir(): string | undefined { return this.files?.baseDir; }
  get name(): string { return this.proto.name ?? ''; }
  get inputs(): onnx.ValueInfoProto[] { return this.proto.input; }
  get outputs(): onnx.ValueInfoProto[] { return this.proto.output; }
  /** Graph inputs that are real inputs (not initializers listed as inputs, as old exporters do). */
  get realInputs(): onnx.ValueInfoProto[] { return this.proto.input.filter((i) => !this.initializers.has(i.name ?? '')); }

  /** Call after changing node inputs/outputs or the node list directly. */
  invalidate(): void {
    this.index = undefined;
    this.constNodeCache.clear();
  }

  private ensureIndex() {
    if (this.index) return this.index;
    const producer = new Map<string, Node>();
    const consumers = new Map<string, Node[]>();
    for (const n of this.nodes) {
      for (const o of n.outputs) if (o) producer.set(o, n);
      const used = new Set<string>(n.inputs.filter((i) => i));
      for (const i of implicitInputs(n)) used.add(i);
      for (const i of used) {
        let list = consumers.get(i);
        if (!list) consumers.set(i, (list = []));
        list.push(n);
      }
    }
    this.index = { producer, consumers };
    return this.index;
  }

  producer(name: string): Node | undefined { return this.ensureIndex().producer.get(name); }
  /** Nodes that read `name` (directly, or inside their subgraphs as an outer-scope value). */
  consumers(name: string): Node[] { return this.ensureIndex().consumers.get(name) ?? []; }
  isGraphOutput(name: string): boolean { return this.proto.output.some((o) => o.name === name); }
  isGraphInput(name: string): boolean { return this.realInputs.some((o) => o.name === name); }

  /** The constant behind `name`: an initializer, or a Constant node's value (this graph, then outer scopes). */
  constant(name: string): ConstTensor | undefined {
    const init = this.initializers.get(name);
    if (init) return init;
    const prod = this.producer(name);
    if (prod) {
      if (prod.opType !== 'Constant' || prod.domain !== '') return undefined;
      if (!this.constNodeCache.has(name)) this.constNodeCache.set(name, constantNodeTensor(prod, this.files));
      return this.constNodeCache.get(name) ?? undefined;
    }
    if (this.isGraphInput(name)) return undefined;
    return this.parent?.constant(name);
  }

  /** Follows Identity (and no-op) producers back to the source tensor name. */
  resolveIdentity(name: string): string {
    let cur = name;
    const seen = new Set<string>();
    for (;;) {
      const p = this.producer(cur);
      if (!p || p.opType !== 'Identity' || p.domain !== '' || seen.has(cur)) return cur;
      seen.add(cur);
      cur = p.inputs[0];
    }
  }

  /** Constant behind `name` after resolving Identity chains. */
  resolveConstant(name: string): ConstTensor | undefined {
    return this.constant(this.resolveIdentity(name));
  }

  /**
   * Every consumer of `name`, looking through Identity nodes: the nodes that really use the value.
   * A weight is shared when this returns more than one node.
   */
  realConsumers(name: string): Node[] {
    const out: Node[] = [];
    for (const cur of this.identityAliases(name)) {
      for (const c of this.consumers(cur)) if (!isIdentity(c) && !out.includes(c)) out.push(c);
    }
    return out;
  }

  /** `name` and every value that is an Identity (chain) of it, in depth-first order. */
  identityAliases(name: string): string[] {
    const out: string[] = [];
    const stack = [name];
    const seen = new Set<string>();
    while (stack.length) {
      const cur = stack.pop()!;
      if (seen.has(cur)) continue;
      seen.add(cur);
      out.push(cur);
      for (const c of this.consumers(cur)) if (isIdentity(c)) stack.push(c.outputs[0]);
    }
    return out;
  }

  isSharedWeight(name: string): boolean {
    return this.realConsumers(this.resolveIdentity(name)).length > 1;
  }

  /** All constant weights of this graph (initializers, Constant nodes, sparse initializers). */
  weights(recursive = false): WeightRef[] {
    const out: WeightRef[] = [];
    for (const [name, tensor] of this.initializers) out.push({ name, tensor, source: 'initializer', graph: this });
    for (const sp of this.proto.sparseInitializer) {
      if (sp.values) out.push({ name: sp.values.name ?? '', tensor: new ConstTensor(sp.values, this.files), source: 'sparse-initializer', graph: this });
    }
    for (const n of this.nodes) {
      if (n.opType === 'Constant' && n.domain === '') {
        const t = this.constant(n.outputs[0]);
        if (t) out.push({ name: n.outputs[0], tensor: t, source: 'constant-node', node: n, graph: this });
      }
      if (recursive) for (const g of n.subgraphs) out.push(...g.weights(true));
    }
    return out;
  }

  /** Nodes in topological order (Kahn's algorithm, iterative, stable w.r.t. the current order). */
  topoSort(): Node[] {
    const { order, cycle } = this.kahn();
    if (cycle) throw new Error(`graph '${this.name}' has a cycle (through node '${cycle.label}')`);
    return order;
  }

  /** A node on a cycle of this graph's nodes, or undefined when they form a DAG. */
  cycleNode(): Node | undefined {
    return this.kahn().cycle;
  }

  private kahn(): { order: Node[]; cycle?: Node } {
    const pos = new Map<Node, number>();
    this.nodes.forEach((n, i) => pos.set(n, i));
    const indeg = new Map<Node, number>();
    const succ = new Map<Node, Node[]>();
    for (const n of this.nodes) indeg.set(n, 0);
    for (const n of this.nodes) {
      const preds = new Set<Node>();
      for (const i of [...n.inputs, ...implicitInputs(n)]) {
        const p = i ? this.producer(i) : undefined;
        if (p && p !== n) preds.add(p);
      }
      indeg.set(n, preds.size);
      for (const p of preds) {
        let l = succ.get(p);
        if (!l) succ.set(p, (l = []));
        l.push(n);
      }
    }
    // A binary heap keyed by original position keeps the result stable and deterministic.
    const heap: Node[] = [];
    const less = (a: Node, b: Node) => pos.get(a)! < pos.get(b)!;
    const push = (n: Node) => {
      heap.push(n);
      let i = heap.length - 1;
      while (i > 0) {
        const p = (i - 1) >> 1;
        if (!less(heap[i], heap[p])) break;
        [heap[i], heap[p]] = [heap[p], heap[i]];
        i = p;
      }
    };
    const pop = (): Node => {
      const top = heap[0];
      const last = heap.pop()!;
      if (heap.length) {
        heap[0] = last;
        let i = 0;
        for (;;) {
          const l = 2 * i + 1, r = l + 1;
          let m = i;
          if (l < heap.length && less(heap[l], heap[m])) m = l;
          if (r < heap.length && less(heap[r], heap[m])) m = r;
          if (m === i) break;
          [heap[i], heap[m]] = [heap[m], heap[i]];
          i = m;
        }
      }
      return top;
    };
    for (const n of this.nodes) if (indeg.get(n) === 0) push(n);
    const out: Node[] = [];
    while (heap.length) {
      const n = pop();
      out.push(n);
      for (const s of succ.get(n) ?? []) {
        const d = indeg.get(s)! - 1;
        indeg.set(s, d);
        if (d === 0) push(s);
      }
    }
    if (out.length === this.nodes.length) return { order: out };
    // Every unplaced node has an unplaced predecessor: walking predecessors from one must repeat a node, which
    // is on a cycle.
    const preds = new Map<Node, Node[]>();
    for (const [p, list] of succ) for (const n of list) if (indeg.get(n)! > 0) (preds.get(n) ?? preds.set(n, []).get(n)!).push(p);
    let cur = this.nodes.find((n) => indeg.get(n)! > 0)!;
    const seen = new Set<Node>();
    while (!seen.has(cur)) {
      seen.add(cur);
      cur = preds.get(cur)!.find((p) => indeg.get(p)! > 0)!;
    }
    return { order: out, cycle: cur };
  }

  /** Sorts `nodes` topologically in place. */
  sortNodes(): void {
    this.nodes = this.topoSort();
  }

  /**
   * Removes nodes whose outputs reach no graph output (nor an outer-scope consumer), then initializers that
   * nothing reads. Returns the number of nodes removed.
   */
  removeDeadNodes(): number {
    const live = new Set<Node>();
    const needed: string[] = this.proto.output.map((o) => o.name ?? '');
    const seen = new Set<string>();
    while (needed.length) {
      const t = needed.pop()!;
      if (seen.has(t)) continue;
      seen.add(t);
      const p = this.producer(t);
      if (!p || live.has(p)) continue;
      live.add(p);
      for (const i of [...p.inputs, ...implicitInputs(p)]) if (i) needed.push(i);
    }
    // Nodes without outputs we can trace (side effects are not in ONNX) but inside subgraphs a node can
    // also feed the parent; a subgraph's outputs are its graph outputs, so the rule is the same.
    const before = this.nodes.length;
    this.nodes = this.nodes.filter((n) => live.has(n));
    this.invalidate();
    const used = new Set<string>();
    for (const n of this.nodes) for (const i of [...n.inputs, ...implicitInputs(n)]) used.add(i);
    for (const o of this.proto.output) used.add(o.name ?? '');
    for (const name of [...this.initializers.keys()]) {
      if (!used.has(name) && !this.isGraphInputListed(name)) this.initializers.delete(name);
    }
    const produced = new Set<string>();
    for (const n of this.nodes) for (const o of n.outputs) produced.add(o);
    this.proto.valueInfo = this.proto.valueInfo.filter((v) => produced.has(v.name ?? ''));
    return before - this.nodes.length;
  }

  private isGraphInputListed(name: string): boolean {
    return this.proto.input.some((i) => i.name === name);
  }

  /** Adds a node (at the end; call sortNodes() if order matters) and returns it. */
  addNode(np: onnx.INodeProto): Node {
    const n = this.wrapNode(onnx.NodeProto.create(np));
    this.nodes.push(n);
    this.invalidate();
    return n;
  }

  removeNode(n: Node): void {
    this.nodes = this.nodes.filter((x) => x !== n);
    this.invalidate();
  }

  /** Adds (or replaces) an initializer. */
  setInitializer(proto: onnx.TensorProto): ConstTensor {
    const t = new ConstTensor(proto, this.files);
    this.initializers.set(proto.name ?? '', t);
    this.types.set(proto.name ?? '', { dtype: t.dtype, shape: t.dims });
    this.invalidate();
    return t;
  }

  /** A tensor name not used anywhere in this graph, derived from `base`. */
  uniqueName(base: string): string {
    const taken = (s: string) => this.initializers.has(s) || this.producer(s) !== undefined ||
      this.proto.input.some((i) => i.name === s) || this.consumers(s).length > 0;
    if (!taken(base)) return base;
    for (let k = 1; ; k++) if (!taken(`${base}_${k}`)) return `${base}_${k}`;
  }

  /** Writes nodes and initializers back into the GraphProto (subgraphs too) and returns it. */
  toProto(): onnx.GraphProto {
    for (const n of this.nodes) for (const g of n.subgraphs) g.toProto();
    this.proto.node = this.nodes.map((n) => n.proto);
    this.proto.initializer = [...this.initializers.values()].map((t) => t.proto);
    return this.proto;
  }

  /** Names this graph reads from enclosing scopes (for subgraphs). */
  outerReferences(): string[] {
    const defined = new Set<string>();
    for (const i of this.proto.input) defined.add(i.name ?? '');
    for (const k of this.initializers.keys()) defined.add(k);
    for (const n of this.nodes) for (const o of n.outputs) defined.add(o);
    const out = new Set<string>();
    for (const n of this.nodes) {
      for (const i of [...n.inputs, ...implicitInputs(n)]) if (i && !defined.has(i)) out.add(i);
    }
    for (const o of this.proto.output) if (o.name && !defined.has(o.name)) out.add(o.name);
    return [...out];
  }

  /**
   * The node whose outputs include `id`, in this graph or any subgraph below it (this graph first). Tensor
   * names are unique model-wide in valid ONNX, so the node is the one that defines `id`.
   */
  findNode(id: string): Node | undefined {
    for (const g of this.allGraphs()) {
      const p = g.producer(id);
      if (p) return p;
    }
    return undefined;
  }

  /**
   * The node a group member names (src/analysis/types.ts: a node's first output, else its name): the producer in
   * this graph, a node of this graph with that name, then the producer in a subgraph below it.
   */
  memberNode(id: string): Node | undefined {
    return this.producer(id) ?? this.nodes.find((n) => n.name === id) ?? this.findNode(id);
  }

  /**
   * The graph (this one or a subgraph below it) that defines `name`: as an initializer, a node output or a
   * formal input. This graph first.
   */
  ownerOf(name: string): Graph | undefined {
    for (const g of this.allGraphs()) {
      if (g.initializers.has(name) || g.producer(name) || g.proto.input.some((i) => i.name === name)) return g;
    }
    return undefined;
  }

  /** The constant `name` wherever it is defined (this graph, then subgraphs below it). */
  findConstant(name: string): ConstTensor | undefined {
    return this.constant(name) ?? this.ownerOf(name)?.constant(name);
  }

  /** Names this graph itself defines: its formal inputs, initializers and node outputs (not its subgraphs'). */
  definedNames(): Set<string> {
    const out = new Set<string>(this.initializers.keys());
    for (const n of this.nodes) for (const o of n.outputs) if (o) out.add(o);
    for (const i of this.proto.input) if (i.name) out.add(i.name);
    return out;
  }

  /** True when this graph is `g` or nested (at any depth) inside `g`. */
  isWithin(g: Graph): boolean {
    for (let cur: Graph | undefined = this; cur; cur = cur.parent) if (cur === g) return true;
    return false;
  }

  /** This graph and every subgraph below it. */
  allGraphs(): Graph[] {
    const out: Graph[] = [this];
    for (let i = 0; i < out.length; i++) for (const n of out[i].nodes) out.push(...n.subgraphs);
    return out;
  }
}

/** Names a node reads from outer scope through its subgraphs (If/Loop/Scan bodies). */
function isIdentity(n: Node): boolean {
  return n.opType === 'Identity' && n.domain === '';
}

export function implicitInputs(n: Node): string[] {
  if (n.subgraphs.length === 0) return [];
  const out = new Set<string>();
  for (const g of n.subgraphs) for (const name of g.outerReferences()) out.add(name);
  return [...out];
}

/** The value of a Constant node as a ConstTensor (value, value_float(s), value_int(s), value_string(s)). */
function constantNodeTensor(n: Node, files?: ModelFiles): ConstTensor | null {
  const name = n.outputs[0];
  for (const a of n.proto.attribute) {
    switch (a.name) {
      case 'value':
        if (a.t) {
          // Constant-node tensors are often unnamed; the node's output is their name.
          return new ConstTensor(a.t, files);
        }
        break;
      case 'value_float': return new ConstTensor(makeTensorProto(name, DataType.FLOAT, [], Float32Array.of(a.f ?? 0)));
      case 'value_floats': return new ConstTensor(makeTensorProto(name, DataType.FLOAT, [a.floats.length], Float32Array.from(a.floats)));
      case 'value_int': return new ConstTensor(makeTensorProto(name, DataType.INT64, [], BigInt64Array.of(toBigInt(a.i))));
      case 'value_ints': return new ConstTensor(makeTensorProto(name, DataType.INT64, [a.ints.length], BigInt64Array.from(a.ints.map((v) => toBigInt(v)))));
      case 'value_string': {
        const p = onnx.TensorProto.create({ name, dataType: DataType.STRING, dims: [], stringData: [a.s ?? new Uint8Array()] });
        return new ConstTensor(p);
      }
      case 'value_strings': {
        const p = onnx.TensorProto.create({ name, dataType: DataType.STRING, dims: [a.strings.length], stringData: a.strings.slice() });
        return new ConstTensor(p);
      }
      default: break;
    }
  }
  return null;
}

export function valueTypeOf(vi: onnx.IValueInfoProto): ValueType | undefined {
  const tt = vi.type?.tensorType;
  if (!tt) return undefined;
  const dtype = tt.elemType ?? 0;
  if (!tt.shape) return { dtype };
  const shape = (tt.shape.dim ?? []).map((d) => {
    if (d.dimValue !== undefined && d.dimValue !== null) return toNumber(d.dimValue);
    if (d.dimParam) return d.dimParam;
    return undefined;
  });
  return { dtype, shape };
}
