/**
 * The generated protobuf code for schemas/onnx.proto (IR 13), plus encode/decode helpers.
 *
 * int64 fields decode as `Long` objects (lossless, e.g. INT64_MAX in Slice ends); use `toNumber` from
 * ./long to read them. Unknown fields (from newer ONNX versions) are kept in `$unknowns` by the generated
 * decoder and written back by the encoder, so a round-trip never drops data.
 */
import { constants as bufferConstants } from 'buffer';
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

type SizedWriter = protobuf.Writer & { _reserve?: (n: number) => void; pos?: number; buf?: Uint8Array };

/** Byte fields at least this long are left out of the skeleton encode that sizes the output. */
const LARGE_BYTES = 4096;

interface Hole {
  owner: Record<string, unknown>;
  key: string;
  value: Uint8Array;
}

/**
 * The large byte fields (raw_data...) of a message tree, and how many bytes they add at most to the encoding
 * of the tree with those fields emptied: each field's own bytes plus its length varint (≤ 5 bytes instead of 1),
 * plus ≤ 4 bytes of length-varint growth for each enclosing message.
 */
function largeByteFields(root: object): { holes: Hole[]; extra: number } {
  const holes: Hole[] = [];
  let extra = 0;
  const stack: [object, number][] = [[root, 1]];
  while (stack.length) {
    const [v, depth] = stack.pop()!;
    if (Array.isArray(v)) {
      for (const x of v) if (x !== null && typeof x === 'object' && !ArrayBuffer.isView(x)) stack.push([x, depth]);
      continue;
    }
    const rec = v as Record<string, unknown>;
    for (const key of Object.keys(rec)) {
      const x = rec[key];
      if (x === null || typeof x !== 'object') continue;
      if (x instanceof Uint8Array) {
        if (x.length >= LARGE_BYTES) {
          holes.push({ owner: rec, key, value: x });
          extra += x.length + 4 + 4 * depth;
        }
        continue;
      }
      if (ArrayBuffer.isView(x) || (x as { __isLong__?: boolean }).__isLong__) continue;
      stack.push([x, depth + 1]);
    }
  }
  return { holes, extra };
}

/**
 * Encodes a ModelProto into one buffer allocated up front. The size is bounded first by encoding the model with
 * its large byte fields emptied (cheap) and adding their lengths, so the writer never grows: protobufjs'
 * growth doubles with a 32-bit shift, which stops doubling past 1 GiB and then reallocates on every write
 * (quadratic), and each growth copies the whole buffer. The result is a view of that buffer (no final copy;
 * its slack is a few bytes per large tensor). `sizeHint`, when larger, is reserved instead.
 */
export function encodeModelProto(model: onnx.ModelProto, sizeHint = 0): Uint8Array {
  const { holes, extra } = largeByteFields(model);
  let skeleton: number;
  const empty = new Uint8Array(0);
  try {
    for (const h of holes) h.owner[h.key] = empty;
    const w = protobuf.Writer.create() as SizedWriter;
    onnx.ModelProto.encode(model, w);
    skeleton = w.pos ?? w.len;
  } finally {
    for (const h of holes) h.owner[h.key] = h.value;
  }
  const bound = Math.max(skeleton + extra, sizeHint);
  const writer = protobuf.Writer.create() as SizedWriter;
  if (typeof writer._reserve === 'function' && bound <= bufferConstants.MAX_LENGTH) writer._reserve(bound);
  onnx.ModelProto.encode(model, writer);
  const used = writer.pos ?? writer.len;
  const capacity = writer.buf?.length ?? 0;
  // A shared view unless a large hint left much unused space (then a copy frees it).
  return capacity - used <= Math.max(1 << 16, used >> 4) ? writer.finish(true) : writer.finish();
}
