/**
 * The I/O paths that keep large models fast and small in memory, on small models: the presized encoder gives the
 * bytes protobufjs' own encoder gives (large raw_data, subgraph tensors, unknown fields); a structural model clone
 * shares tensor bytes but no mutable message with the original; large external tensors are not cached and typed
 * data is always a fresh array; bytesView never hands out a Buffer; runtimeModel keeps large main-graph
 * initializers out of the message (in-memory external data for onnxruntime) without changing the model.
 */
import * as fs from 'fs';
import * as path from 'path';
import * as protobuf from 'protobufjs/minimal';
import { loadModel, runtimeModel, saveModel } from '../src/ir/io';
import { decodeModelProto, encodeModelProto } from '../src/ir/proto';
import { EXTERNAL_CACHE_MAX_BYTES } from '../src/ir/tensor';
import { cloneModel } from '../src/ir/clone';
import { ort } from '../src/ort/session';
import { DataType, attr, floatTensor, graph, modelBytes, modelProto, node, onnx, seededRng, uniform, valueInfo } from './helpers/builder';
import { mkTmp, rmTmp } from './helpers/cli';

const F = DataType.FLOAT;

let tmp: string;
beforeAll(() => { tmp = mkTmp('onnx-prune-ir-large-'); });
afterAll(() => rmTmp(tmp));

/** protobufjs' own encoding (growing writer), the reference for encodeModelProto. */
const plainEncode = (m: onnx.ModelProto) => Buffer.from(onnx.ModelProto.encode(m, protobuf.Writer.create()).finish());

/**
 * y = If(cond, then: x·W1 + B, else: x·W2) · W3: large and small initializers in the main graph and in a branch.
 * `n` sets the width (W* are n×n floats).
 */
function ifModel(n: number): onnx.ModelProto {
  const w = (name: string, seed: number) => floatTensor(name, [n, n], uniform(seededRng(seed), n * n, 0.5));
  const thenG = graph({
    name: 'then', nodes: [node('MatMul', ['x', 'W1'], ['t1']), node('Add', ['t1', 'B'], ['h'])],
    inputs: [], outputs: [valueInfo('h', F, [1, n])], initializers: [w('W1', 1), floatTensor('B', [n], uniform(seededRng(2), n, 0.5))],
  });
  const elseG = graph({ name: 'else', nodes: [node('MatMul', ['x', 'W2'], ['h'])], inputs: [], outputs: [valueInfo('h', F, [1, n])] });
  const g = graph({
    nodes: [node('If', ['cond'], ['h'], [attr.graph('then_branch', thenG), attr.graph('else_branch', elseG)]), node('MatMul', ['h', 'W3'], ['y'])],
    inputs: [valueInfo('cond', DataType.BOOL, []), valueInfo('x', F, [1, n])], outputs: [valueInfo('y', F, [1, n])],
    initializers: [w('W2', 3), w('W3', 4)],
  });
  return modelProto(g);
}

describe('encodeModelProto', () => {
  test('same bytes as the growing protobufjs writer: large and small tensors, subgraphs, unknown fields', () => {
    for (const n of [4, 40, 300]) {
      const m = ifModel(n);
      expect(Buffer.from(encodeModelProto(m)).equals(plainEncode(m))).toBe(true);
      // A decoded model (raw_data are views into the input, unknown fields kept) re-encodes to its input.
      const bytes = plainEncode(m);
      const extra = Buffer.from([0xf8, 0xe0, 0x04, 42]); // field 9999 (varint) = 42, unknown to ModelProto
      const withUnknown = Buffer.concat([bytes, extra]);
      expect(Buffer.from(encodeModelProto(decodeModelProto(withUnknown))).equals(withUnknown)).toBe(true);
    }
  });

  test('a size hint larger than the model does not change the bytes (nor keep the slack)', () => {
    const m = ifModel(64);
    const out = encodeModelProto(m, 50 * 1024 * 1024);
    expect(Buffer.from(out).equals(plainEncode(m))).toBe(true);
    expect(out.buffer.byteLength).toBeLessThan(1024 * 1024);
  });
});

describe('cloneModel', () => {
  test('encodes like the original; edits of the clone never show in the original', () => {
    const original = loadModel(plainEncode(ifModel(40)));
    const before = Buffer.from(encodeModelProto(original.toProto()));
    const copy = cloneModel(original);
    expect(Buffer.from(encodeModelProto(copy.toProto())).equals(before)).toBe(true);

    copy.graph.initializers.get('W3')!.setData(new Float32Array(1600).fill(1));
    copy.graph.nodes[1].inputs[0] = 'x';
    copy.graph.nodes[1].setAttrInt('extra', 3);
    const branch = copy.graph.nodes[0].subgraphs[0];
    branch.initializers.get('B')!.setData(new Float32Array(40));
    copy.graph.proto.output[0].name = 'renamed';
    copy.proto.producerName = 'changed';
    expect(Buffer.from(encodeModelProto(original.toProto())).equals(before)).toBe(true);
    expect(Buffer.from(encodeModelProto(copy.toProto())).equals(before)).toBe(false);
  });

  test('unknown fields (non-enumerable $unknowns) are kept by the clone', () => {
    const extra = Buffer.from([0xf8, 0xe0, 0x04, 42]);
    const bytes = Buffer.concat([plainEncode(ifModel(4)), extra]);
    const copy = cloneModel(loadModel(bytes));
    expect(Object.getOwnPropertyDescriptor(copy.proto, '$unknowns')?.enumerable).toBe(false);
    expect(Buffer.from(encodeModelProto(copy.toProto())).equals(bytes)).toBe(true);
  });
});

describe('tensor data access', () => {
  test('large external tensors are read on each use (no cache); small ones once; data() is always a fresh array', () => {
    const big = 1 + EXTERNAL_CACHE_MAX_BYTES / 4;
    const g = graph({
      nodes: [node('Add', ['x', 'small'], ['s']), node('Mul', ['s', 'big'], ['y'])],
      inputs: [valueInfo('x', F, [big])], outputs: [valueInfo('y', F, [big])],
      initializers: [floatTensor('small', [1], [0.25]), floatTensor('big', [big], uniform(seededRng(5), big))],
    });
    const file = path.join(tmp, 'cache.onnx');
    saveModel(loadModel(modelBytes(g)), file, { externalData: true, externalThreshold: 1 });
    const m = loadModel(file);
    const bigT = m.graph.initializers.get('big')!;
    const smallT = m.graph.initializers.get('small')!;
    expect(bigT.external && smallT.external).toBeTruthy();
    expect(bigT.bytes()).not.toBe(bigT.bytes());
    expect(Buffer.from(bigT.bytes()).equals(Buffer.from(bigT.bytes()))).toBe(true);
    expect(smallT.bytes()).toBe(smallT.bytes());
    for (const t of [bigT, smallT, loadModel(modelBytes(g)).graph.initializers.get('big')!]) {
      const a = t.data() as Float32Array;
      const keep = a[0];
      a[0] = 123;
      expect((t.data() as Float32Array)[0]).toBe(keep);
    }
  });

  test('bytesView: raw_data without a copy, as a plain Uint8Array whose slice() copies', () => {
    const m = loadModel(plainEncode(ifModel(8)));
    const t = m.graph.initializers.get('W3')!;
    const view = t.bytesView();
    expect(Buffer.isBuffer(t.proto.rawData)).toBe(true);
    expect(Buffer.isBuffer(view)).toBe(false);
    expect(view.buffer).toBe(t.proto.rawData.buffer);
    expect(Buffer.from(view).equals(Buffer.from(t.bytes()))).toBe(true);
    const s = view.slice();
    s[0] ^= 0xff;
    expect(view[0]).not.toBe(s[0]);
  });
});

describe('runtimeModel', () => {
  const feeds = (cond: boolean, n: number) => ({
    cond: new ort.Tensor('bool', Uint8Array.of(cond ? 1 : 0), []),
    x: new ort.Tensor('float32', uniform(seededRng(9), n, 1), [1, n]),
  });

  test('large main-graph initializers go to in-memory external data; ORT gives the inline outputs; the model is unchanged', async () => {
    const n = 200; // 160 kB weights
    const m = loadModel(plainEncode(ifModel(n)));
    const before = Buffer.from(encodeModelProto(m.toProto()));
    const split = runtimeModel(m, { extraOutputs: ['h'] });
    const inline = runtimeModel(m, { splitAbove: Infinity, extraOutputs: ['h'] });
    expect(Buffer.from(encodeModelProto(m.toProto())).equals(before)).toBe(true);
    expect(m.graph.outputs.map((o) => o.name)).toEqual(['y']);
    expect(inline.externalData).toEqual([]);
    // W2 and W3 (main graph) are split off; W1 and B live in the If branch and stay in the message.
    expect(split.externalData.map((e) => e.data.length)).toEqual([n * n * 4, n * n * 4]);
    expect(split.bytes.length).toBeLessThan(inline.bytes.length - 2 * n * n * 4 + 1000);
    for (const cond of [true, false]) {
      const a = await ort.InferenceSession.create(inline.bytes);
      const b = await ort.InferenceSession.create(split.bytes, { externalData: split.externalData });
      const ra = await a.run(feeds(cond, n));
      const rb = await b.run(feeds(cond, n));
      for (const name of ['y', 'h']) expect(Buffer.from((rb[name].data as Float32Array).buffer).equals(Buffer.from((ra[name].data as Float32Array).buffer))).toBe(true);
      await a.release();
      await b.release();
    }
  });

  test('external data on disk is read in; saving the model afterwards writes the same weights', () => {
    const file = path.join(tmp, 'rt-ext.onnx');
    saveModel(loadModel(plainEncode(ifModel(150))), file, { externalData: true });
    const m = loadModel(file);
    const rm = runtimeModel(m);
    expect(rm.externalData.length).toBe(2);
    expect(Buffer.from(rm.externalData[1].data).equals(Buffer.from(m.graph.initializers.get('W3')!.bytes()))).toBe(true);
    const again = path.join(tmp, 'rt-ext-again.onnx');
    saveModel(m, again);
    expect(fs.readFileSync(`${again}.data`).equals(fs.readFileSync(`${file}.data`))).toBe(true);
    expect(loadModel(again).graph.initializers.get('W3')!.external).toBeDefined();
  });
});
