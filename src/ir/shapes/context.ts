/** The state of one shape-inference run and the per-node view that rules work with. */
import type { Graph, ValueType } from '../graph';
import type { Node } from '../node';
import type { Shape } from './sym';
import { type TValue, valueFromConst } from './values';

/** Inferred types and tracked values of one graph (a subgraph's state falls back to its parent's). */
export class InferState {
  readonly types = new Map<string, ValueType>();
  readonly values = new Map<string, TValue>();
  /** Names whose constant value was looked up already (hit or miss). */
  private constLooked = new Set<string>();

  constructor(public readonly graph: Graph, public readonly opset: number, public readonly parent?: InferState) {}

  type(name: string): ValueType | undefined {
    return this.types.get(name) ?? this.parent?.type(name);
  }

  value(name: string): TValue | undefined {
    const v = this.values.get(name);
    if (v || this.constLooked.has(name)) return v;
    this.constLooked.add(name);
    const c = this.graph.constant(name);
    const cv = c ? valueFromConst(c) : this.parent?.value(name);
    if (cv) this.values.set(name, cv);
    return cv;
  }
}

export interface OutInfo {
  dtype?: number;
  shape?: Shape;
  value?: TValue;
}

/** What a rule sees of one node: typed access to input types/shapes/values, and output setters. */
export class RuleCtx {
  readonly outs: OutInfo[];

  constructor(public readonly node: Node, public readonly st: InferState) {
    this.outs = node.outputs.map(() => ({}));
  }

  get opset(): number { return this.st.opset; }
  get nIn(): number { return this.node.inputs.length; }
  get nOut(): number { return this.node.outputs.length; }

  /** Whether optional input `i` is present. */
  has(i: number): boolean { return !!this.node.inputs[i]; }
  hasOut(k: number): boolean { return !!this.node.outputs[k]; }

  type(i: number): ValueType | undefined {
    const n = this.node.inputs[i];
    return n ? this.st.type(n) : undefined;
  }
  shape(i: number): Shape | undefined { return this.type(i)?.shape; }
  rank(i: number): number | undefined { return this.type(i)?.shape?.length; }
  dtype(i: number): number | undefined {
    const t = this.type(i);
    return t && t.dtype ? t.dtype : undefined;
  }
  value(i: number): TValue | undefined {
    const n = this.node.inputs[i];
    return n ? this.st.value(n) : undefined;
  }
  /** Input i's value as plain integers (all elements numeric), else undefined. */
  ints(i: number): number[] | undefined {
    const v = this.value(i);
    if (!v) return undefined;
    for (const d of v.data) if (typeof d !== 'number') return undefined;
    return v.data as number[];
  }

  out(k: number, dtype: number | undefined, shape?: Shape, value?: TValue): void {
    if (k >= this.outs.length) return;
    this.outs[k] = { dtype, shape, value };
  }

  attrInt(name: string, dflt: number): number { return this.node.attrInt(name, dflt); }
  attrInts(name: string): number[] | undefined { return this.node.attrInts(name); }
}

/** A shape rule: reads inputs through the context and sets outputs with `ctx.out`. */
export type Rule = (ctx: RuleCtx) => void;

/** Normalizes a possibly negative axis against `rank`; undefined when out of range. */
export function normAxis(axis: number, rank: number): number | undefined {
  const a = axis < 0 ? axis + rank : axis;
  return a >= 0 && a < rank ? a : undefined;
}
