/**
 * The generated protobuf code for schemas/onnx.proto (IR 13), plus encode/decode helpers.
 *
 * int64 fields decode as `Long` objects (lossless, e.g. INT64_MAX in Slice ends); use `toNumber` from
 * ./long to read them. Unknown fields (from newer ONNX versions) are kept in `$unknowns` by the generated
 * decoder and written back by the encoder, so a round-trip never drops data.
 */
import * as protobuf from 'protobufjs/minimal';
// eslint-disable-next-line @typescript-eslint/no-require-imports
import { onnx } from './generated/onnx';

export { onnx };

/** Decodes a serialized ModelProto; throws protobufjs' error on malformed input. */
export function decodeModelProto(bytes: Uint8Array): onnx.ModelProto {
  // protobufjs drops unknown fields unless the reader is told to keep them; nested decoders share the reader.
  const reader = protobuf.Reader.create(bytes) as protobuf.Reader & { discardUnknown: boolean };
  reader.discardUnknown = false;
  return onnx.ModelProto.decode(reader);
}

/**
 * Encodes a ModelProto. `sizeHint` presizes the writer so that large byte fields are not copied on every
 * buffer doubling.
 */
export function encodeModelProto(model: onnx.ModelProto, sizeHint = 0): Uint8Array {
  const writer = protobuf.Writer.create() as protobuf.Writer & { _reserve?: (n: number) => void };
  if (sizeHint > 0 && typeof writer._reserve === 'function') writer._reserve(Math.min(sizeHint, 2 ** 31 - 1));
  onnx.ModelProto.encode(model, writer);
  return writer.finish();
}
