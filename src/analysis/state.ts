/**
 * The state of channel propagation (phase 1): label fields per tensor, producer spaces, the union-find of
 * coupled elements, and the deferred facts that phase 2 (groups.ts) resolves once the coupling is final.
 */
import type { Graph } from '../ir/graph';
import type { Node } from '../ir/node';
import type { MemberRole } from './types';
import { DECLINE } from './decline';
import { type Field, NONE, compact, hasLabels, makeField } from './field';
import type { Plumbing } from './shape-plumbing';
import { UnionFind } from './union-find';
import { type WeightChain, resolveWeight } from './weight-chain';

/** A producer's output channels: `size` fresh elements starting at `first`. */
export interface Space {
  id: number;
  node: Node;
  tensor: string;
  axis: number;
  size: number;
  first: number;
}

/** The other side of a coupling: a tensor axis that must lose the same positions. */
export interface Partner {
  tensor: string;
  /** Node reading it (first output name) and the input slot. */
  node: string;
  input: number;
  axis: number;
}

/**
 * Positions of `field` along `axis` are positions of `partner` along its axis (same index). When a unit
 * shrinks that axis, the partner must lose the same positions: a stored weight becomes a member, anything else
 * is traced back to stored constants or blocks the group.
 */
export interface AttachFact { field: string; axis: number; partner: Partner; role: MemberRole }

/**
 * An integer attribute that counts positions of `field` along `axis` (divided by `divisor`). With `window`,
 * only the positions in [window[0], window[1]) count, times `sign` (a Slice bound: a non-negative bound drops
 * by the removed positions below it, a negative one rises by those at or above it); every unit must then
 * count the same, or the group is declined.
 */
export interface AttrFact {
  node: string; attr: string; position?: number; field: string; axis: number; divisor: number;
  window?: [number, number]; sign?: 1 | -1;
}

export type ShapeUseKind = 'reshape' | 'expand' | 'slice' | 'split' | 'split-attr' | 'gather' | 'resize';

/** A data op whose shape-like inputs must stay consistent with pruned sizes. */
export interface ShapeUseFact { kind: ShapeUseKind; node: Node; data: string; outs: string[] }

/**
 * Node `node` computes statistics along `axis` of its input 0 (`field`): with the group's units removed it runs
 * over the kept positions (see StatMember: `gather` inputs are sliced before it, `scatter` outputs restored).
 */
export interface StatFact {
  field: string; axis: number; node: string;
  gather: { input: number; axis: number }[];
  scatter: { output: number; axis: number }[];
}

export interface DeclineFact { labels: number[]; reason: string; node?: string; tensor?: string }

/**
 * Distinct labels (NONE dropped) in order of first appearance. One pass: a graph output's field can hold
 * millions of positions (marks by element id when there are many, element ids are below `count`).
 */
function distinctLabels(labels: Iterable<number>, count: number): number[] {
  if (labels instanceof Int32Array && labels.length > 4096) {
    const seen = new Uint8Array(count);
    const out: number[] = [];
    for (let i = 0; i < labels.length; i++) {
      const l = labels[i];
      if (l !== NONE && !seen[l]) { seen[l] = 1; out.push(l); }
    }
    return out;
  }
  const seen = new Set<number>();
  for (const l of labels) if (l !== NONE) seen.add(l);
  return [...seen];
}

export class State {
  readonly uf = new UnionFind();
  readonly spaces: Space[] = [];
  /** Element id → space id. */
  private elementSpace: number[] = [];
  readonly fields = new Map<string, Field>();
  readonly attaches: AttachFact[] = [];
  readonly attrs: AttrFact[] = [];
  readonly shapeUses: ShapeUseFact[] = [];
  readonly declines: DeclineFact[] = [];
  readonly stats: StatFact[] = [];
  /**
   * Normalization statistics over a pruned axis are allowed (recorded as StatFacts, computed over the kept
   * positions) instead of declining the labels there.
   */
  normStats = true;
  /** resolveWeight results by tensor name (null: not a stored weight). */
  private readonly chains = new Map<string, WeightChain | null>();
  /** Elements whose units were formed by attention-style mixing (head evidence) → size of the mixed axis (head_dim). */
  readonly mixed = new Map<number, number>();
  /**
   * Query-head mode (see gqa-query-heads.ts): an Expand that repeats a size-1 axis gives the copies fresh labels
   * (a weightless "repeat space") instead of carrying its input's labels; ids of those spaces.
   */
  repeatSpaces = false;
  readonly repeatSpaceIds = new Set<number>();

  constructor(readonly graph: Graph, readonly shapes: Map<string, number[]>, readonly plumb: Plumbing, readonly opset: number) {}

  field(name: string): Field | undefined {
    return name ? this.fields.get(name) : undefined;
  }

  setField(name: string, f: Field | undefined): void {
    if (!name || !hasLabels(f)) return;
    this.fields.set(name, compact(f));
  }

  shape(name: string): number[] | undefined {
    if (!name) return undefined;
    const s = this.shapes.get(name);
    if (s) return s;
    const c = this.graph.constant(this.graph.resolveIdentity(name));
    return c?.dims;
  }

  /**
   * The stored constant behind a tensor (initializer or Constant node, through Identity, and through a private
   * Cast / DequantizeLinear chain of constants: see weight-chain.ts), if any.
   */
  stored(name: string): WeightChain | undefined {
    if (!name) return undefined;
    let w = this.chains.get(name);
    if (w === undefined) this.chains.set(name, (w = resolveWeight(this.graph, name) ?? null));
    return w ?? undefined;
  }

  /**
   * The weight members a stored weight reached from (`partner.node`, `partner.input`) contributes when `axis` of
   * it is sliced: the stored tensor, read by the chain's first op (or the partner itself without a chain), and
   * the chain's per-channel scale / zero-point when they run along `axis` (role 'param').
   */
  chainMembers(w: WeightChain, partner: { node: string; input: number }, axis: number): { tensor: string; node: string; input: number; axis: number; param: boolean }[] {
    const reader = w.ops.length ? { node: State.id(w.ops[0]), input: 0 } : partner;
    const out = [{ tensor: w.name, node: reader.node, input: reader.input, axis, param: false }];
    for (const p of w.params) if (p.axis === axis) out.push({ tensor: p.tensor, node: p.node, input: p.input, axis: 0, param: true });
    return out;
  }

  spaceOf(element: number): Space {
    return this.spaces[this.elementSpace[element]];
  }

  /** A fresh space for `size` output channels of `node` on `axis` of `tensor`; returns its field. */
  newSpace(node: Node, tensor: string, axis: number, size: number, rank: number): Field {
    const first = this.uf.add(size);
    const sp: Space = { id: this.spaces.length, node, tensor, axis, size, first };
    this.spaces.push(sp);
    for (let i = 0; i < size; i++) this.elementSpace[first + i] = sp.id;
    const labels = new Int32Array(size);
    for (let i = 0; i < size; i++) labels[i] = first + i;
    return makeField(rank, [axis], [size], labels);
  }

  /** Couples two labels; NONE coupled with a label pins it. */
  union(a: number, b: number, node?: Node): void {
    if (a === NONE && b === NONE) return;
    if (a === NONE || b === NONE) {
      this.decline([a === NONE ? b : a], DECLINE.pinned, node);
      return;
    }
    this.uf.union(a, b);
  }

  unionAll(labels: Iterable<number>, node?: Node): void {
    let first = NONE;
    let sawNone = false;
    const real: number[] = [];
    for (const l of labels) {
      if (l === NONE) { sawNone = true; continue; }
      real.push(l);
      if (first === NONE) first = l;
      else this.uf.union(first, l);
    }
    if (sawNone && real.length) this.decline(real, DECLINE.pinned, node);
  }

  decline(labels: Iterable<number>, reason: string, node?: Node, tensor?: string): void {
    const ls = distinctLabels(labels, this.uf.count);
    if (ls.length) this.declines.push({ labels: ls, reason, node: node?.outputs[0], tensor });
  }

  declineField(f: Field | undefined, reason: string, node?: Node, tensor?: string): void {
    if (f) this.decline(f.labels, reason, node, tensor);
  }

  attach(field: string, axis: number, partner: Partner, role: MemberRole): void {
    this.attaches.push({ field, axis, partner, role });
  }

  /** A node's first output (the node id used in members). */
  static id(n: Node): string {
    return n.outputs[0];
  }
}
