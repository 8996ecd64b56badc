/** A node of the mutable graph model: a thin wrapper over its NodeProto with typed attribute access. */
import { toLong, toNumber } from './long';
import { onnx } from './proto';
import type { Graph } from './graph';

export const AttrType = onnx.AttributeProto.AttributeType;

export class Node {
  /** Subgraphs of control-flow attributes (If branches, Loop/Scan bodies), in attribute order. */
  readonly subgraphs: Graph[] = [];

  constructor(public proto: onnx.NodeProto, public graph: Graph) {}

  get opType(): string { return this.proto.opType ?? ''; }
  get domain(): string { return this.proto.domain ?? ''; }
  get name(): string { return this.proto.name ?? ''; }
  /** Input tensor names; '' marks an omitted optional input. Mutating the array edits the node. */
  get inputs(): string[] { return this.proto.input; }
  get outputs(): string[] { return this.proto.output; }
  /** A readable label for messages: the node name, else op type and first output. */
  get label(): string { return this.name || `${this.opType}(${this.outputs[0] ?? ''})`; }

  attr(name: string): onnx.AttributeProto | undefined {
    return this.proto.attribute.find((a) => a.name === name);
  }
  hasAttr(name: string): boolean { return this.attr(name) !== undefined; }

  attrInt(name: string, dflt: number): number;
  attrInt(name: string): number | undefined;
  attrInt(name: string, dflt?: number): number | undefined {
    const a = this.attr(name);
    return a && a.i !== undefined && a.i !== null ? toNumber(a.i) : dflt;
  }
  attrInts(name: string): number[] | undefined {
    const a = this.attr(name);
    return a ? a.ints.map((v) => toNumber(v)) : undefined;
  }
  attrFloat(name: string, dflt: number): number;
  attrFloat(name: string): number | undefined;
  attrFloat(name: string, dflt?: number): number | undefined {
    const a = this.attr(name);
    return a && a.f !== undefined && a.f !== null ? a.f : dflt;
  }
  attrFloats(name: string): number[] | undefined {
    return this.attr(name)?.floats.slice();
  }
  attrString(name: string, dflt: string): string;
  attrString(name: string): string | undefined;
  attrString(name: string, dflt?: string): string | undefined {
    const a = this.attr(name);
    return a && a.s ? Buffer.from(a.s).toString('utf8') : dflt;
  }
  attrTensor(name: string): onnx.TensorProto | undefined {
    return this.attr(name)?.t ?? undefined;
  }

  private upsert(name: string, type: number): onnx.AttributeProto {
    let a = this.attr(name);
    if (!a) {
      a = onnx.AttributeProto.create({ name });
      this.proto.attribute.push(a);
    }
    for (const k of ['f', 'i', 's', 't', 'g', 'sparseTensor', 'tp']) delete (a as unknown as Record<string, unknown>)[k];
    a.floats = []; a.ints = []; a.strings = []; a.tensors = []; a.graphs = []; a.sparseTensors = []; a.typeProtos = [];
    a.type = type;
    return a;
  }
  setAttrInt(name: string, v: number | bigint): void { this.upsert(name, AttrType.INT).i = toLong(v); }
  setAttrInts(name: string, v: (number | bigint)[]): void { this.upsert(name, AttrType.INTS).ints = v.map(toLong); }
  setAttrFloat(name: string, v: number): void { this.upsert(name, AttrType.FLOAT).f = v; }
  setAttrTensor(name: string, t: onnx.TensorProto): void { this.upsert(name, AttrType.TENSOR).t = t; }
  removeAttr(name: string): void {
    this.proto.attribute = this.proto.attribute.filter((a) => a.name !== name);
  }
}
