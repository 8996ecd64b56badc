/**
 * A tiny ONNX model builder for tests, examples (models/make-models.ts) and benches: protos for tensors,
 * value infos, nodes with typed attributes, graphs and models, plus seeded random weights.
 * It depends only on the protobuf layer (not on Graph/Model), so tests can build models independently of the graph model.
 */
import { DataType } from './dtype';
import { toLong } from './long';
import { encodeModelProto, onnx } from './proto';
import { makeTensorProto, type TypedArray } from './tensor';

const AT = onnx.AttributeProto.AttributeType;

export { DataType, onnx };
export { rng as seededRng } from '../util/rng';

/** `n` floats uniform in [-scale, scale) from `next`. */
export function uniform(next: () => number, n: number, scale = 1): Float32Array {
  const a = new Float32Array(n);
  for (let i = 0; i < n; i++) a[i] = (next() * 2 - 1) * scale;
  return a;
}

/** An inline TensorProto (raw_data) from a typed array. */
export function tensor(name: string, dtype: DataType, dims: number[], data: TypedArray): onnx.TensorProto {
  return makeTensorProto(name, dtype, dims, data);
}

export function floatTensor(name: string, dims: number[], data: Float32Array | number[]): onnx.TensorProto {
  return makeTensorProto(name, DataType.FLOAT, dims, data instanceof Float32Array ? data : Float32Array.from(data));
}

export function int64Tensor(name: string, dims: number[], data: (number | bigint)[]): onnx.TensorProto {
  return makeTensorProto(name, DataType.INT64, dims, BigInt64Array.from(data.map((v) => BigInt(v))));
}

/** A tensor ValueInfoProto; a string dim is symbolic (dim_param); `shape` undefined means rank unknown. */
export function valueInfo(name: string, dtype: DataType, shape?: (number | string)[]): onnx.ValueInfoProto {
  const tensorType = onnx.TypeProto.Tensor.create({ elemType: dtype });
  if (shape) {
    tensorType.shape = onnx.TensorShapeProto.create({
      dim: shape.map((d) =>
        typeof d === 'number'
          ? onnx.TensorShapeProto.Dimension.create({ dimValue: toLong(d) })
          : onnx.TensorShapeProto.Dimension.create({ dimParam: d })),
    });
  }
  return onnx.ValueInfoProto.create({ name, type: onnx.TypeProto.create({ tensorType }) });
}

// Attributes ----------------------------------------------------------------------------------------------

export const attr = {
  int: (name: string, v: number | bigint) => onnx.AttributeProto.create({ name, type: AT.INT, i: toLong(v) }),
  ints: (name: string, v: (number | bigint)[]) => onnx.AttributeProto.create({ name, type: AT.INTS, ints: v.map(toLong) }),
  float: (name: string, v: number) => onnx.AttributeProto.create({ name, type: AT.FLOAT, f: v }),
  floats: (name: string, v: number[]) => onnx.AttributeProto.create({ name, type: AT.FLOATS, floats: v }),
  string: (name: string, v: string) => onnx.AttributeProto.create({ name, type: AT.STRING, s: Buffer.from(v, 'utf8') }),
  tensor: (name: string, t: onnx.TensorProto) => onnx.AttributeProto.create({ name, type: AT.TENSOR, t }),
  graph: (name: string, g: onnx.GraphProto) => onnx.AttributeProto.create({ name, type: AT.GRAPH, g }),
};

export function node(
  opType: string,
  inputs: string[],
  outputs: string[],
  attributes: onnx.AttributeProto[] = [],
  name?: string,
): onnx.NodeProto {
  const n = onnx.NodeProto.create({ opType, input: inputs.slice(), output: outputs.slice(), attribute: attributes });
  if (name !== undefined) n.name = name;
  return n;
}

/** A Constant node whose `value` attribute holds `t` (the tensor is left unnamed, as exporters do). */
export function constantNode(output: string, t: onnx.TensorProto): onnx.NodeProto {
  const copy = onnx.TensorProto.create({ dataType: t.dataType, dims: t.dims, rawData: t.rawData });
  return node('Constant', [], [output], [attr.tensor('value', copy)], `Constant_${output}`);
}

export interface GraphSpec {
  name?: string;
  nodes: onnx.NodeProto[];
  inputs: onnx.ValueInfoProto[];
  outputs: onnx.ValueInfoProto[];
  initializers?: onnx.TensorProto[];
  valueInfo?: onnx.ValueInfoProto[];
}

export function graph(spec: GraphSpec): onnx.GraphProto {
  return onnx.GraphProto.create({
    name: spec.name ?? 'g',
    node: spec.nodes,
    input: spec.inputs,
    output: spec.outputs,
    initializer: spec.initializers ?? [],
    valueInfo: spec.valueInfo ?? [],
  });
}

export interface ModelSpec {
  opset?: number;
  irVersion?: number;
  producerName?: string;
  producerVersion?: string;
  docString?: string;
}

export function modelProto(g: onnx.GraphProto, spec: ModelSpec = {}): onnx.ModelProto {
  const m = onnx.ModelProto.create({
    irVersion: toLong(spec.irVersion ?? 8),
    producerName: spec.producerName ?? 'onnx-prune-tests',
    producerVersion: spec.producerVersion ?? '0',
    opsetImport: [onnx.OperatorSetIdProto.create({ domain: '', version: toLong(spec.opset ?? 17) })],
    graph: g,
  });
  if (spec.docString) m.docString = spec.docString;
  return m;
}

export function modelBytes(g: onnx.GraphProto, spec: ModelSpec = {}): Uint8Array {
  return encodeModelProto(modelProto(g, spec));
}
