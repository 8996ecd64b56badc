export { UserError, isUserError } from './errors';
export { DataType, dtypeName, bitsPerElement, byteLength, float16ToFloat32, float32ToFloat16, ortTypeName } from './dtype';
export { ConstTensor, makeTensorProto, clearData, type TypedArray } from './tensor';
export { Node } from './node';
export { Graph, implicitInputs, valueTypeOf, type ValueType, type WeightRef } from './graph';
export { Model } from './model';
export { loadModel, saveModel, type LoadOptions, type SaveOptions } from './io';
export { onnx } from './proto';
export { toNumber, toBigInt, toLong } from './long';
