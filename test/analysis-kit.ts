/**
 * Shared helpers for the group-analysis tests (test/analysis-*.test.ts): a tiny graph DSL with seeded random
 * weights, group lookups, the masked-vs-scrambled onnxruntime check, and a small JSON Schema checker for the
 * draft-07 subset schemas/groups.schema.json uses (type, const, enum, required, properties,
 * additionalProperties, items, oneOf, $ref to #/definitions, minimum, maximum, minItems, maxItems, minLength).
 */
import * as path from 'path';
import type { GroupAnalysisOptions } from '../src/analysis/analyze';
import { analyzeGroups } from '../src/pipeline/stages';
import { maskCheck } from './helpers/mask-check';
import type { Group, GroupAnalysis, Member, WeightMember } from '../src/analysis/types';
import { loadModel } from '../src/ir/io';
import type { Model } from '../src/ir/model';
import {
  DataType, attr, constantNode, floatTensor, graph, int64Tensor, modelBytes, node, onnx, seededRng, uniform, valueInfo,
} from './helpers/builder';

export const SHARED = path.resolve(__dirname, '../../shared/models');
export const sharedModel = (file: string): Model => loadModel(path.join(SHARED, file));

type AttrValue = number | number[] | string | onnx.TensorProto | { float: number } | { floats: number[] };

function toAttrs(a: Record<string, AttrValue>): onnx.AttributeProto[] {
  return Object.entries(a).map(([k, v]) => {
    if (typeof v === 'number') return Number.isInteger(v) ? attr.int(k, v) : attr.float(k, v);
    if (typeof v === 'string') return attr.string(k, v);
    if (Array.isArray(v)) return attr.ints(k, v);
    if ('float' in v) return attr.float(k, v.float);
    if ('floats' in v) return attr.floats(k, v.floats);
    return attr.tensor(k, v as onnx.TensorProto);
  });
}

/** Builds small models in code. Weights are seeded uniform(-0.5, 0.5). */
export class G {
  readonly nodes: onnx.NodeProto[] = [];
  readonly inits: onnx.TensorProto[] = [];
  readonly ins: onnx.ValueInfoProto[] = [];
  readonly outs: onnx.ValueInfoProto[] = [];
  private k = 0;
  private rnd = seededRng(7);

  name(base: string): string { return `${base}_${this.k++}`; }

  input(name: string, shape: (number | string)[], dtype: DataType = DataType.FLOAT): string {
    this.ins.push(valueInfo(name, dtype, shape));
    return name;
  }

  output(name: string, dtype: DataType = DataType.FLOAT): void {
    this.outs.push(valueInfo(name, dtype));
  }

  weight(dims: number[], base = 'w'): string {
    const n = this.name(base);
    this.inits.push(floatTensor(n, dims, uniform(this.rnd, dims.reduce((a, b) => a * b, 1), 0.5)));
    return n;
  }

  floats(values: number[], dims: number[] = [values.length], base = 'c'): string {
    const n = this.name(base);
    this.inits.push(floatTensor(n, dims, values));
    return n;
  }

  ints(values: number[], dims: number[] = [values.length], base = 'i'): string {
    const n = this.name(base);
    this.inits.push(int64Tensor(n, dims, values));
    return n;
  }

  /** An int64 constant held by a Constant node (as exporters emit shape constants). */
  constInts(values: number[], dims: number[] = [values.length]): string {
    const n = this.name('k');
    this.nodes.push(constantNode(n, int64Tensor(n, dims, values)));
    return n;
  }

  op(opType: string, inputs: string[], attrs: Record<string, AttrValue> = {}, outputs = 1, domain?: string): string {
    return this.opN(opType, inputs, attrs, outputs, domain)[0];
  }

  opN(opType: string, inputs: string[], attrs: Record<string, AttrValue> = {}, outputs = 1, domain?: string): string[] {
    const outs = Array.from({ length: outputs }, () => this.name(opType.toLowerCase()));
    const n = node(opType, inputs, outs, toAttrs(attrs), this.name(opType));
    if (domain) n.domain = domain;
    this.nodes.push(n);
    return outs;
  }

  conv(x: string, cin: number, cout: number, opts: { k?: number; group?: number; bias?: boolean } = {}): string {
    const k = opts.k ?? 1, group = opts.group ?? 1;
    const w = this.weight([cout, cin / group, k, k], 'conv_w');
    const ins = [x, w];
    if (opts.bias !== false) ins.push(this.weight([cout], 'conv_b'));
    return this.op('Conv', ins, { group, kernel_shape: [k, k], pads: [(k - 1) / 2, (k - 1) / 2, (k - 1) / 2, (k - 1) / 2] });
  }

  /** x[..., k] · W[k, n] (+ bias via Add). */
  linear(x: string, k: number, n: number, bias = true): string {
    const y = this.op('MatMul', [x, this.weight([k, n], 'fc_w')]);
    return bias ? this.op('Add', [y, this.weight([n], 'fc_b')]) : y;
  }

  model(opset = 17): Model {
    return loadModel(modelBytes(graph({ nodes: this.nodes, inputs: this.ins, outputs: this.outs, initializers: this.inits }), { opset }));
  }
}

export async function analyze(model: Model, opts: GroupAnalysisOptions = {}): Promise<GroupAnalysis> {
  return analyzeGroups(model, { dims: { batch: 2, seq: 5 }, ...opts });
}

export function weights(g: Group, role?: WeightMember['role']): WeightMember[] {
  return g.members.filter((m): m is WeightMember => m.kind === 'weight' && (!role || m.role === role));
}

export function shapes(g: Group) {
  return g.members.filter((m): m is Extract<Member, { kind: 'shape' }> => m.kind === 'shape');
}

export function attrs(g: Group) {
  return g.members.filter((m): m is Extract<Member, { kind: 'attr' }> => m.kind === 'attr');
}

/** The group whose producers include the node with first output `producer`. */
export function groupOf(a: GroupAnalysis, producer: string): Group {
  const g = a.groups.find((x) => ((x.info?.producers as string[]) ?? []).includes(producer));
  if (!g) {
    const d = a.declined.find((x) => x.producers?.includes(producer));
    throw new Error(`no group produced by ${producer}${d ? ` (declined: ${d.reasons?.join('; ') ?? d.reason})` : ''}`);
  }
  return g;
}

/** The declined entry whose producers include `producer`. */
export function declinedOf(a: GroupAnalysis, producer: string) {
  return a.declined.find((x) => x.producers?.includes(producer));
}

/** Masked (in members zeroed) vs scrambled (out/param members perturbed too): outputs must agree. */
export async function expectMaskOk(model: Model, g: Group, units?: number[], observe?: string[]): Promise<void> {
  const u = units ?? Array.from({ length: g.size - 1 }, (_, i) => i).filter((i) => i % 2 === 0);
  const r = await maskCheck(model, g, u.length ? u : [0], { dims: { batch: 2, seq: 5 }, observe });
  expect(r.scale).toBeGreaterThan(0);
  expect(r.maxAbsDiff).toBeLessThanOrEqual(1e-5 * Math.max(1, r.scale));
}

// JSON Schema (draft-07 subset) ----------------------------------------------------------------------------

type Schema = Record<string, unknown>;

function typeOk(v: unknown, t: string): boolean {
  switch (t) {
    case 'object': return typeof v === 'object' && v !== null && !Array.isArray(v);
    case 'array': return Array.isArray(v);
    case 'integer': return Number.isInteger(v);
    case 'number': return typeof v === 'number';
    case 'string': return typeof v === 'string';
    case 'boolean': return typeof v === 'boolean';
    case 'null': return v === null;
    default: throw new Error(`schema type '${t}' not supported`);
  }
}

/** First violation as "path: problem", or undefined. */
export function validate(v: unknown, s: Schema, root: Schema = s, p = '$'): string | undefined {
  if (typeof s.$ref === 'string') {
    const m = /^#\/definitions\/(.+)$/.exec(s.$ref);
    const target = m ? (root.definitions as Record<string, Schema>)[m[1]] : undefined;
    if (!target) throw new Error(`cannot resolve ${s.$ref}`);
    return validate(v, target, root, p);
  }
  if (s.oneOf) {
    const ok = (s.oneOf as Schema[]).filter((x) => validate(v, x, root, p) === undefined).length;
    if (ok !== 1) return `${p}: matches ${ok} of oneOf`;
  }
  if (typeof s.type === 'string' && !typeOk(v, s.type)) return `${p}: expected ${s.type}`;
  if ('const' in s && v !== s.const) return `${p}: expected ${JSON.stringify(s.const)}`;
  if (s.enum && !(s.enum as unknown[]).includes(v)) return `${p}: not in enum`;
  if (typeof v === 'number') {
    if (typeof s.minimum === 'number' && v < s.minimum) return `${p}: < ${s.minimum}`;
    if (typeof s.maximum === 'number' && v > s.maximum) return `${p}: > ${s.maximum}`;
  }
  if (typeof v === 'string' && typeof s.minLength === 'number' && v.length < s.minLength) return `${p}: too short`;
  if (Array.isArray(v)) {
    if (typeof s.minItems === 'number' && v.length < s.minItems) return `${p}: too few items`;
    if (typeof s.maxItems === 'number' && v.length > s.maxItems) return `${p}: too many items`;
    if (s.items) for (let i = 0; i < v.length; i++) { const e = validate(v[i], s.items as Schema, root, `${p}[${i}]`); if (e) return e; }
  }
  if (typeOk(v, 'object') && (s.properties || s.required)) {
    const o = v as Record<string, unknown>;
    for (const r of (s.required as string[]) ?? []) if (!(r in o)) return `${p}: missing ${r}`;
    const props = (s.properties ?? {}) as Record<string, Schema>;
    for (const [k, x] of Object.entries(o)) {
      if (props[k]) { const e = validate(x, props[k], root, `${p}.${k}`); if (e) return e; } else if (s.additionalProperties === false) return `${p}: unexpected key ${k}`;
    }
  }
  return undefined;
}
