/**
 * Depth: residual branches that can be removed whole ("blocks"). A block is an `Add(x, f(x))` of the main graph
 * where x (the skip) is an ancestor of the branch output f(x), and f(x) is produced by a weighted layer (MatMul,
 * Gemm or Conv with a stored float weight, the block's *exit*), possibly followed by an Add of a constant (its
 * bias) and by layout ops that keep the last axis (throughLayout). Removing the block makes the Add read the exit's constant remainder instead of f(x) (the bias, or
 * nothing: the Add becomes an Identity of x); every node only the branch used becomes dead and goes.
 *
 * The masked reference of a removed block is the dense model with the exit weight zeroed (then f(x) is exactly
 * that remainder), so verification proves the physical removal as for any group: a block is offered as a group of
 * one unit (`unit: 'block'`, its one member the exit weight, role 'in', every position), see `blockGroups`.
 *
 * A transformer layer gives two blocks (attention: the branch holds a Softmax; MLP); a CNN residual block one.
 * Nested blocks (a branch containing another residual Add) are listed too; allocation never removes two that
 * overlap.
 */
import type { Graph } from '../ir/graph';
import { implicitInputs } from '../ir/graph';
import type { Node } from '../ir/node';
import { specOf } from '../ir/ops';
import { DataType } from '../ir/dtype';
import type { Block, Group } from './types';
import { resolveWeight } from './weight-chain';

const WEIGHTED = new Set(['MatMul', 'Gemm', 'Conv']);

/** A stored float32 constant (a remainder the removal keeps). */
function floatConst(g: Graph, name: string): boolean {
  return g.constant(g.resolveIdentity(name))?.dtype === DataType.FLOAT;
}

function isConst(g: Graph, name: string): boolean {
  return !!name && !!g.constant(g.resolveIdentity(name));
}

/** The stored float weight read at input `i` of `n`, directly (no Cast/DequantizeLinear chain), rank ≥ 2. */
function storedWeight(g: Graph, n: Node, i: number): string | undefined {
  const w = resolveWeight(g, n.inputs[i] ?? '');
  if (!w || w.ops.length || w.dtype !== DataType.FLOAT || w.tensor.dims.length < 2) return undefined;
  return w.name;
}

/**
 * Layout ops between a branch's exit and its Add that keep the last axis (its channels) last and whole: Identity, a
 * Transpose that leaves the last axis in place, a Reshape whose input and output end in the same size
 * (nn.MultiheadAttention's view/transpose after out_proj). A remainder broadcast over the last axis stays valid.
 */
function throughLayout(g: Graph, t: string, shapes?: Map<string, number[]>): string {
  for (;;) {
    const p = g.producer(t);
    if (!p || p.domain) return t;
    if (p.opType === 'Identity') { t = p.inputs[0]; continue; }
    if (p.opType === 'Transpose') {
      const perm = p.attrInts('perm');
      if (!perm || perm[perm.length - 1] !== perm.length - 1) return t;
      t = p.inputs[0];
      continue;
    }
    if (p.opType === 'Reshape') {
      const si = shapes?.get(p.inputs[0]), so = shapes?.get(p.outputs[0]);
      if (!si || !so || !si.length || si[si.length - 1] !== so[so.length - 1]) return t;
      t = p.inputs[0];
      continue;
    }
    return t;
  }
}

/** The exit layer producing `b` (directly, or through an Add of a constant), with its weight and remainder. */
function exitOf(g: Graph, b0: string, shapes?: Map<string, number[]>): Pick<Block, 'exit' | 'remainder'> | undefined {
  const b = throughLayout(g, b0, shapes);
  const moved = b !== b0;
  let p = g.producer(b);
  let remainder: Block['remainder'];
  if (p && p.opType === 'Add' && !p.domain && p.inputs.length === 2) {
    const ci = p.inputs.findIndex((i) => isConst(g, i));
    if (ci < 0 || isConst(g, p.inputs[1 - ci]) || !floatConst(g, p.inputs[ci])) return undefined;
    remainder = { node: p.outputs[0], input: ci, tensor: g.resolveIdentity(p.inputs[ci]) };
    p = g.producer(p.inputs[1 - ci]);
  }
  // Through layout ops the remainder must broadcast over the last axis only (a Conv's runs along axis 1).
  const lastOnly = (name: string) => {
    const d = g.constant(name)?.dims ?? [];
    return d.length >= 1 && d.slice(0, -1).every((x) => x === 1);
  };
  if (moved && (p?.opType === 'Conv' || (remainder && !lastOnly(remainder.tensor)))) return undefined;
  if (!p || p.domain || !WEIGHTED.has(p.opType) || p.outputs.length !== 1) return undefined;
  let wi: number;
  if (p.opType === 'MatMul') {
    const c = [0, 1].filter((i) => storedWeight(g, p!, i));
    if (c.length !== 1) return undefined;
    wi = c[0];
  } else {
    wi = 1;
    if (!storedWeight(g, p, 1) || isConst(g, p.inputs[0])) return undefined;
  }
  const tensor = storedWeight(g, p, wi)!;
  if (p.opType !== 'MatMul' && p.inputs[2]) {
    // A Gemm's C (times beta) or a Conv's B is the remainder; an Add after it would be a second one.
    if (remainder || !floatConst(g, p.inputs[2])) return undefined;
    if (moved && p.opType === 'Gemm' && !lastOnly(g.resolveIdentity(p.inputs[2]))) return undefined;
    const alpha = p.attrFloat('alpha', 1);
    if (p.opType === 'Gemm' && alpha === 0) return undefined;
    remainder = { node: p.outputs[0], input: 2, tensor: g.resolveIdentity(p.inputs[2]) };
    if (p.opType === 'Gemm') remainder.scale = p.attrFloat('beta', 1);
    else remainder.rank = (g.constant(tensor)?.dims.length ?? 4) - 1;
  }
  return { exit: { node: p.outputs[0], input: wi, tensor }, remainder };
}

/** Every removable residual branch of the main graph, in graph order. */
export function findBlocks(graph: Graph, shapes?: Map<string, number[]>): Block[] {
  const order = graph.topoSort();
  const pos = new Map<Node, number>();
  order.forEach((n, i) => pos.set(n, i));
  // Uses of each tensor (node inputs, subgraph reads, graph outputs).
  const uses = new Map<string, number>();
  const use = (t: string) => { if (t) uses.set(t, (uses.get(t) ?? 0) + 1); };
  for (const n of order) for (const i of [...n.inputs, ...implicitInputs(n)]) use(i);
  for (const o of graph.outputs) use(o.name ?? '');
  const out: Block[] = [];
  for (const add of order) {
    if (add.opType !== 'Add' || add.domain || add.inputs.length !== 2) continue;
    if (add.inputs.some((i) => !i || isConst(graph, i))) continue;
    for (const s of [0, 1]) {
      const x = add.inputs[s], b = add.inputs[1 - s];
      if (x === b || !ancestor(graph, pos, x, b)) continue;
      const ex = exitOf(graph, b, shapes);
      if (!ex) continue;
      const dead = deadAfter(graph, uses, b);
      if (!dead.some((n) => n.outputs[0] === ex.exit.node)) continue;
      out.push({ id: add.outputs[0], kind: kindOf(graph, dead), skip: s, ...ex, nodes: dead.map((n) => n.outputs[0]), params: deadParams(graph, uses, dead) });
      break;
    }
  }
  return out;
}

/** Whether tensor `x` is an ancestor of tensor `b` (only nodes after x's producer are visited). */
function ancestor(g: Graph, pos: Map<Node, number>, x: string, b: string): boolean {
  const px = g.producer(x);
  const floor = px ? pos.get(px)! : -1;
  const seen = new Set<string>([b]);
  const stack = [b];
  while (stack.length) {
    const t = stack.pop()!;
    if (t === x) return true;
    const p = g.producer(t);
    if (!p || (pos.get(p) ?? -1) <= floor) continue;
    for (const i of [...p.inputs, ...implicitInputs(p)]) if (i && !seen.has(i)) { seen.add(i); stack.push(i); }
  }
  return false;
}

/** Nodes that become dead when one use of `b` goes (in reverse discovery order). */
function deadAfter(g: Graph, uses: Map<string, number>, b: string): Node[] {
  const left = new Map<string, number>();
  const count = (t: string) => left.get(t) ?? uses.get(t) ?? 0;
  const dead: Node[] = [];
  const gone = new Set<Node>();
  left.set(b, count(b) - 1);
  const stack = [b];
  while (stack.length) {
    const t = stack.pop()!;
    if (count(t) > 0) continue;
    const p = g.producer(t);
    if (!p || gone.has(p) || p.outputs.some((o) => o && count(o) > 0)) continue;
    gone.add(p);
    dead.push(p);
    for (const i of [...p.inputs, ...implicitInputs(p)]) {
      if (!i) continue;
      left.set(i, count(i) - 1);
      stack.push(i);
    }
  }
  return dead;
}

function deadParams(g: Graph, uses: Map<string, number>, dead: Node[]): number {
  const reads = new Map<string, number>();
  for (const n of dead) for (const i of [...n.inputs, ...implicitInputs(n)]) if (i) reads.set(i, (reads.get(i) ?? 0) + 1);
  let p = 0;
  for (const [t, k] of reads) {
    const c = g.initializers.get(t);
    if (c && k === (uses.get(t) ?? 0)) p += c.size;
  }
  for (const n of dead) if (n.opType === 'Constant') p += g.constant(n.outputs[0])?.size ?? 0;
  return p;
}

function kindOf(g: Graph, dead: Node[]): Block['kind'] {
  if (dead.some((n) => n.opType === 'Softmax')) return 'attention';
  const weighted = dead.filter((n) => specOf(n)?.weighted);
  return weighted.length >= 2 && weighted.every((n) => n.opType === 'MatMul' || n.opType === 'Gemm') ? 'mlp' : 'branch';
}

/**
 * The blocks as groups of one unit each (for depth pruning): the unit is the whole branch; its one member is the
 * exit weight (role 'in', every position of axis 0), which the masked reference zeroes.
 */
export function blockGroups(graph: Graph, blocks: Block[]): Group[] {
  return blocks.map((b) => {
    const dims = graph.constant(b.exit.tensor)!.dims;
    return {
      id: `block:${b.id}`,
      label: `${b.kind} block ending at ${graph.producer(b.id)?.name || b.id}`,
      unit: 'block',
      unitSize: 1,
      size: 1,
      members: [{ kind: 'weight', tensor: b.exit.tensor, node: b.exit.node, input: b.exit.input, axis: 0, role: 'in', indices: [Array.from({ length: dims[0] }, (_, i) => i)] }],
      paramsPerUnit: b.params,
      info: { block: b },
    };
  });
}
