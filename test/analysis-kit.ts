/**
 * Shared helpers for the group-analysis tests (test/analysis-*.test.ts): a tiny graph DSL with seeded random
 * weights, group lookups, the masked-vs-scrambled onnxruntime check. The groups JSON is checked
 * against schemas/groups.schema.json with the product's own checker (src/util/json-schema.ts).
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
