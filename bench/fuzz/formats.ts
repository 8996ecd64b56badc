/**
 * Writers of the file formats the fuzz generators corrupt: .npy, .zip (.npz, with lying headers and deflate
 * bombs), and ONNX models built or edited through the project's protobuf code (src/ir/proto.ts).
 */
import * as protobuf from 'protobufjs/minimal';
import * as zlib from 'zlib';
import { decodeModelProto, encodeModelProto, onnx } from '../../src/ir/proto';

// ---------------------------------------------------------------------------------------------------- npy

export interface NpyOptions {
  descr?: string;
  fortran?: boolean;
  shape?: string;
  /** Replaces the whole header dict text. */
  header?: string;
  version?: [number, number];
  /** Replaces the header length field. */
  headerLen?: number;
  magic?: Uint8Array;
}

/** An .npy file: header (v1 unless told) and `data` as given. */
export function npy(shape: number[], data: Uint8Array, o: NpyOptions = {}): Uint8Array {
  const shapeText = o.shape ?? `(${shape.join(', ')}${shape.length === 1 ? ',' : ''})`;
  let dict = o.header ?? `{'descr': '${o.descr ?? '<f4'}', 'fortran_order': ${o.fortran ? 'True' : 'False'}, 'shape': ${shapeText}, }`;
  const [major, minor] = o.version ?? [1, 0];
  const pre = major === 1 ? 10 : 12;
  const pad = (64 - ((pre + dict.length + 1) % 64)) % 64;
  dict = `${dict}${' '.repeat(pad)}\n`;
  const head = Buffer.alloc(pre);
  Buffer.from(o.magic ?? Buffer.from('\x93NUMPY', 'latin1')).copy(head, 0, 0, 6);
  head[6] = major;
  head[7] = minor;
  const len = o.headerLen ?? Buffer.byteLength(dict, 'latin1');
  if (major === 1) head.writeUInt16LE(len & 0xffff, 8);
  else head.writeUInt32LE(len >>> 0, 8);
  return Buffer.concat([head, Buffer.from(dict, 'latin1'), data]);
}

export function f32(values: ArrayLike<number>): Uint8Array {
  return new Uint8Array(Float32Array.from(values).buffer);
}

// ---------------------------------------------------------------------------------------------------- zip

export interface ZipItem {
  name: string;
  /** Bytes as stored in the archive (already compressed when method is 8). */
  stored: Uint8Array;
  method?: number;
  crc: number;
  /** Uncompressed size as declared. */
  size: number;
  flags?: number;
}

export function crc32(data: Uint8Array, prev = 0): number {
  return zlib.crc32(data, prev) >>> 0;
}

/** A stored or deflated entry with honest headers. */
export function zipItem(name: string, data: Uint8Array, deflate: boolean): ZipItem {
  return {
    name,
    stored: deflate ? zlib.deflateRawSync(data) : data,
    method: deflate ? 8 : 0,
    crc: crc32(data),
    size: data.length,
  };
}

export interface ZipOptions {
  /** Replaces the central directory offset in the end record. */
  cdOffset?: number;
  /** Replaces the entry count in the end record. */
  count?: number;
  comment?: Uint8Array;
}

/** A zip archive of `items` (local headers, central directory, end record). */
export function zip(items: ZipItem[], o: ZipOptions = {}): Uint8Array {
  const parts: Buffer[] = [];
  const central: Buffer[] = [];
  let offset = 0;
  for (const it of items) {
    const name = Buffer.from(it.name, 'utf8');
    const local = Buffer.alloc(30);
    local.writeUInt32LE(0x04034b50, 0);
    local.writeUInt16LE(20, 4);
    local.writeUInt16LE(it.flags ?? 0, 6);
    local.writeUInt16LE(it.method ?? 0, 8);
    local.writeUInt32LE(it.crc >>> 0, 14);
    local.writeUInt32LE(it.stored.length >>> 0, 18);
    local.writeUInt32LE(it.size >>> 0, 22);
    local.writeUInt16LE(name.length, 26);
    const cd = Buffer.alloc(46);
    cd.writeUInt32LE(0x02014b50, 0);
    cd.writeUInt16LE(20, 4);
    cd.writeUInt16LE(20, 6);
    cd.writeUInt16LE(it.flags ?? 0, 8);
    cd.writeUInt16LE(it.method ?? 0, 10);
    cd.writeUInt32LE(it.crc >>> 0, 16);
    cd.writeUInt32LE(it.stored.length >>> 0, 20);
    cd.writeUInt32LE(it.size >>> 0, 24);
    cd.writeUInt16LE(name.length, 28);
    cd.writeUInt32LE(offset >>> 0, 42);
    parts.push(local, name, Buffer.from(it.stored));
    central.push(cd, name);
    offset += 30 + name.length + it.stored.length;
  }
  const cdBytes = Buffer.concat(central);
  const comment = Buffer.from(o.comment ?? new Uint8Array(0));
  const end = Buffer.alloc(22);
  end.writeUInt32LE(0x06054b50, 0);
  end.writeUInt16LE((o.count ?? items.length) & 0xffff, 8);
  end.writeUInt16LE((o.count ?? items.length) & 0xffff, 10);
  end.writeUInt32LE(cdBytes.length, 12);
  end.writeUInt32LE((o.cdOffset ?? offset) >>> 0, 16);
  end.writeUInt16LE(comment.length, 20);
  return Buffer.concat([...parts, cdBytes, end, comment]);
}

const BOMB_BLOCK = 16 << 20;
let zeroBlock: { deflated: Buffer } | undefined;

/**
 * A deflate bomb entry: `prefix` (e.g. an .npy header) followed by `blocks` x 16 MiB of zeros, built by repeating
 * one sync-flushed deflate block, so the archive stays a few KB per 16 MiB while its data is never held here.
 * `declared` replaces the declared uncompressed size.
 */
export function bombItem(name: string, prefix: Uint8Array, blocks: number, declared?: number): ZipItem {
  if (!zeroBlock) {
    const zeros = Buffer.alloc(BOMB_BLOCK);
    zeroBlock = { deflated: zlib.deflateRawSync(zeros, { finishFlush: zlib.constants.Z_FULL_FLUSH, level: 9 }) };
  }
  const head = zlib.deflateRawSync(prefix, { finishFlush: zlib.constants.Z_FULL_FLUSH });
  const stored = Buffer.concat([head, ...Array.from({ length: blocks }, () => zeroBlock!.deflated), Buffer.from([0x03, 0x00])]);
  // An honest CRC only for small bombs (readers inflate before they check it).
  let crc = 0;
  if (blocks <= 8) {
    crc = crc32(prefix);
    const zeros = Buffer.alloc(1 << 20);
    for (let i = 0; i < blocks * 16; i++) crc = crc32(zeros, crc);
  }
  const size = prefix.length + blocks * BOMB_BLOCK;
  return { name, stored, method: 8, crc, size: declared ?? Math.min(size, 0xffffffff) };
}

// ---------------------------------------------------------------------------------------------------- models

export function decodeModel(bytes: Uint8Array): onnx.ModelProto {
  return decodeModelProto(bytes);
}

export function encodeModel(m: onnx.ModelProto): Uint8Array {
  return encodeModelProto(m);
}

export const FLOAT = 1;

function floatInput(name: string, dims: (number | string)[]): onnx.ValueInfoProto {
  return onnx.ValueInfoProto.create({
    name,
    type: {
      tensorType: {
        elemType: FLOAT,
        shape: { dim: dims.map((d) => (typeof d === 'number' ? { dimValue: d } : { dimParam: d })) },
      },
    },
  });
}

/** A chain of `n` unary nodes (Relu/Neg/Abs) on a [N, 4] float input: deep traversals in every pass. */
export function chainModel(n: number, opset = 17): Uint8Array {
  const ops = ['Relu', 'Neg', 'Abs', 'Identity'];
  const nodes: onnx.INodeProto[] = [];
  for (let i = 0; i < n; i++) {
    nodes.push({ opType: ops[i % ops.length], input: [i === 0 ? 'x' : `t${i - 1}`], output: [i === n - 1 ? 'y' : `t${i}`], name: `n${i}` });
  }
  const m = onnx.ModelProto.create({
    irVersion: 8,
    opsetImport: [{ domain: '', version: opset }],
    graph: { name: 'chain', node: nodes, input: [floatInput('x', ['N', 4])], output: [floatInput('y', ['N', 4])] },
  });
  return encodeModel(m);
}

function varint(n: number): number[] {
  const out: number[] = [];
  while (n > 0x7f) {
    out.push((n & 0x7f) | 0x80);
    n = Math.floor(n / 128);
  }
  out.push(n);
  return out;
}

/**
 * If nodes nested `depth` deep (then_branch holds the next If; else_branch an Identity). Built from the inside
 * out as prefix/suffix byte runs around the innermost graph (linear in depth; nothing here recurses).
 */
export function nestedIfModel(depth: number): Uint8Array {
  const enc = <T>(codec: { encode(m: T): protobuf.Writer }, m: T) => codec.encode(m).finish();
  const tag = (no: number) => (no << 3) | 2;
  const out = floatInput('y', ['N', 4]);
  const elseGraph = enc(onnx.GraphProto, { name: 'e', node: [{ opType: 'Identity', input: ['x'], output: ['y'] }], output: [out] });
  const elseAttr = Buffer.concat([enc(onnx.AttributeProto, { name: 'else_branch', type: onnx.AttributeProto.AttributeType.GRAPH }), Buffer.from([tag(6), ...varint(elseGraph.length)]), elseGraph]);
  const thenHead = enc(onnx.AttributeProto, { name: 'then_branch', type: onnx.AttributeProto.AttributeType.GRAPH });
  const suffix = Buffer.concat([Buffer.from([tag(5), ...varint(elseAttr.length)]), elseAttr]);
  const leaf = enc(onnx.GraphProto, { name: 'leaf', node: [{ opType: 'Relu', input: ['x'], output: ['y'] }], output: [out] });
  const prefixes: Buffer[] = [];
  let innerLen = leaf.length;
  for (let level = depth - 1; level >= 0; level--) {
    const thenLen = thenHead.length + 1 + varint(innerLen).length + innerLen;
    const nodeHead = enc(onnx.NodeProto, { opType: 'If', input: ['c'], output: ['y'], name: `if${level}` });
    const nodeLen = nodeHead.length + 1 + varint(thenLen).length + thenLen + suffix.length;
    const head: onnx.IGraphProto = { name: `g${level}`, output: [out] };
    if (level === 0) {
      head.input = [floatInput('x', ['N', 4]), onnx.ValueInfoProto.create({ name: 'c', type: { tensorType: { elemType: 9, shape: { dim: [] } } } })];
    }
    const graphHead = enc(onnx.GraphProto, head);
    prefixes.push(Buffer.concat([graphHead, Buffer.from([tag(1), ...varint(nodeLen)]), nodeHead, Buffer.from([tag(5), ...varint(thenLen)]), thenHead, Buffer.from([tag(6), ...varint(innerLen)])]));
    innerLen = graphHead.length + 1 + varint(nodeLen).length + nodeLen;
  }
  const modelHead = enc(onnx.ModelProto, { irVersion: 8, opsetImport: [{ domain: '', version: 17 }] });
  return Buffer.concat([modelHead, Buffer.from([tag(7), ...varint(innerLen)]), ...prefixes.reverse(), leaf, ...Array.from({ length: depth }, () => suffix)]);
}

/** Moves the raw data of the chosen initializers into one data file (aligned); returns the data file bytes. */
export function externalize(m: onnx.ModelProto, names: Set<string>, location: string): Uint8Array {
  const chunks: Buffer[] = [];
  let offset = 0;
  for (const t of m.graph?.initializer ?? []) {
    if (!names.has(t.name ?? '') || !t.rawData || t.rawData.length === 0) continue;
    const pad = (4096 - (offset % 4096)) % 4096;
    if (pad) chunks.push(Buffer.alloc(pad));
    offset += pad;
    chunks.push(Buffer.from(t.rawData));
    t.externalData = [
      onnx.StringStringEntryProto.create({ key: 'location', value: location }),
      onnx.StringStringEntryProto.create({ key: 'offset', value: String(offset) }),
      onnx.StringStringEntryProto.create({ key: 'length', value: String(t.rawData.length) }),
    ];
    t.dataLocation = onnx.TensorProto.DataLocation.EXTERNAL;
    offset += t.rawData.length;
    t.rawData = new Uint8Array(0);
  }
  return Buffer.concat(chunks);
}

/** Initializers holding raw data, largest first (ties by name). */
export function rawInitializers(m: onnx.ModelProto): onnx.ITensorProto[] {
  return (m.graph?.initializer ?? [])
    .filter((t) => t.rawData && t.rawData.length > 0)
    .sort((a, b) => b.rawData!.length - a.rawData!.length || (a.name ?? '').localeCompare(b.name ?? ''));
}
