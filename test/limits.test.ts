/**
 * Hostile and broken input (issue 10, causes 5–7): sizes a file declares are checked before anything is allocated
 * for them (tensor dims against the data present, declared input shapes and archive entry sizes against a memory
 * budget), cyclic graphs and exceptions from `--pass` modules are one-line user errors, and names from models and
 * config files are printed escaped. Each case is a one-line error on stderr with exit code 1.
 */
import * as fs from 'fs';
import * as path from 'path';
import * as zlib from 'zlib';
import {
  DataType, attr, floatTensor, graph, int64Tensor, modelBytes, node, onnx, valueInfo,
} from './helpers/builder';
import { lines, mkTmp, rmTmp, runCliInProcess } from './helpers/cli';
import { loadModel } from '../src/ir/io';
import { UserError } from '../src/ir/errors';
import { toLong } from '../src/ir/long';
import { GENERATED_INPUT_MAX_BYTES, INFLATE_MAX_BYTES } from '../src/ir/limits';
import { escapeControl } from '../src/util/text';
import { calibFromArrays } from '../src/ort/calib';
import { parseNpy } from '../src/ort/npy';
import { randomInputs } from '../src/ort/session';
import { crc32, readZip } from '../src/ort/zip';
import { seededRng } from './helpers/builder';
import { DataType as DT } from '../src/ir/dtype';

let tmp: string;
beforeAll(() => {
  tmp = mkTmp('onnx-prune-limits-');
});
afterAll(() => rmTmp(tmp));

/** x[1,4] → MatMul W1[4,8] → Relu → MatMul W2[8,2] → y, with hooks to spoil it. */
function mlp(opts: { w1?: onnx.TensorProto; input?: onnx.ValueInfoProto; extraNodes?: onnx.NodeProto[]; extraOutputs?: onnx.ValueInfoProto[]; extraInits?: onnx.TensorProto[]; nodes?: onnx.NodeProto[] } = {}): onnx.GraphProto {
  return graph({
    nodes: opts.nodes ?? [node('MatMul', ['x', 'W1'], ['h']), node('Relu', ['h'], ['r']), node('MatMul', ['r', 'W2'], ['y']), ...(opts.extraNodes ?? [])],
    inputs: [opts.input ?? valueInfo('x', DataType.FLOAT, [1, 4])],
    outputs: [valueInfo('y', DataType.FLOAT, [1, 2]), ...(opts.extraOutputs ?? [])],
    initializers: [opts.w1 ?? floatTensor('W1', [4, 8], new Float32Array(32).fill(0.5)), floatTensor('W2', [8, 2], Float32Array.from({ length: 16 }, (_, i) => i / 16 - 0.5)), ...(opts.extraInits ?? [])],
  });
}

/** W1 with its data for [4,8] but `dims` declared. */
function spoiledW1(dims: (number | bigint)[]): onnx.TensorProto {
  const t = floatTensor('W1', [4, 8], new Float32Array(32));
  t.dims = dims.map((d) => toLong(d));
  return t;
}

function write(name: string, g: onnx.GraphProto): string {
  const file = path.join(tmp, `${name}.onnx`);
  fs.writeFileSync(file, modelBytes(g));
  return file;
}

/** Runs the CLI in this process and checks the one-line user-error contract (exit 1, nothing on stdout). */
async function expectOneLineError(args: string[], pattern: RegExp): Promise<string> {
  const r = await runCliInProcess(args);
  expect({ code: r.code, stderr: r.stderr }).toEqual({ code: 1, stderr: expect.stringMatching(/^onnx-prune: error: [^\n]*\n$/) });
  expect(r.stderr).toMatch(pattern);
  expect(r.stdout).toBe('');
  return r.stderr;
}

/** inspect, groups and prune all refuse `file` with `pattern`; prune writes nothing. */
async function expectEveryCommandRefuses(file: string, pattern: RegExp): Promise<void> {
  const out = path.join(tmp, `${path.basename(file, '.onnx')}-out`);
  fs.mkdirSync(out, { recursive: true });
  await expectOneLineError(['inspect', file], pattern);
  await expectOneLineError(['groups', file], pattern);
  await expectOneLineError([file, path.join(out, 'o.onnx'), '--ratio', '0.5'], pattern);
  expect(fs.readdirSync(out)).toEqual([]);
}

describe('tensor sizes are checked against the data present, at load, before anything is allocated', () => {
  const cases: [string, () => onnx.GraphProto, RegExp][] = [
    ['huge dims with 128 bytes of data', () => mlp({ w1: spoiledW1([100000, 100000]) }), /tensor 'W1' has 128 data bytes, expected 40000000000 for float\[100000,100000\]/],
    ['a dim of 2^40 (over any typed array)', () => mlp({ w1: spoiledW1([4, 2 ** 40]) }), /tensor 'W1' has 128 data bytes, expected/],
    ['dims whose product is not exact', () => mlp({ w1: spoiledW1([2 ** 40, 2 ** 40]) }), /tensor 'W1' has too many elements/],
    ['a dim past 2^53', () => mlp({ w1: spoiledW1([4, 2n ** 62n]) }), /tensor 'W1' has an invalid dimension/],
    ['negative dims (their product matches the data)', () => mlp({ w1: spoiledW1([-4, -8]) }), /tensor 'W1' has an invalid dimension -4 in \[-4,-8\]/],
    ['raw_data shorter than the dims', () => {
      const t = floatTensor('W1', [4, 8], new Float32Array(32));
      t.rawData = t.rawData.subarray(0, 20);
      return mlp({ w1: t });
    }, /tensor 'W1' has 20 data bytes, expected 128/],
    ['float_data with fewer values than the dims', () => mlp({ w1: onnx.TensorProto.create({ name: 'W1', dataType: DataType.FLOAT, dims: [toLong(100000), toLong(100000)], floatData: [1, 2, 3] }) }), /tensor 'W1' has 12 data bytes, expected 40000000000/],
    ['a string tensor with fewer strings than the dims', () => mlp({ w1: onnx.TensorProto.create({ name: 'W1', dataType: DataType.STRING, dims: [toLong(1e9)], stringData: [] }) }), /tensor 'W1' has 0 strings, expected 1000000000/],
    ['a Constant node declaring [100000,100000] with 16 bytes', () => {
      const t = onnx.TensorProto.create({ dataType: DataType.FLOAT, dims: [toLong(100000), toLong(100000)], rawData: new Uint8Array(16) });
      return mlp({ extraNodes: [node('Constant', [], ['c'], [attr.tensor('value', t)]), node('Add', ['y', 'c'], ['z'])], extraOutputs: [valueInfo('z', DataType.FLOAT)] });
    }, /tensor '' has 16 data bytes, expected 40000000000/],
    ['a tensor inside an If branch', () => {
      const branch = (name: string) => graph({ name, nodes: [node('Identity', ['k'], ['o'])], inputs: [], outputs: [valueInfo('o', DataType.FLOAT)], initializers: [spoiledW1([100000, 100000])].map((t) => Object.assign(t, { name: 'k' })) });
      return mlp({
        extraInits: [onnx.TensorProto.create({ name: 'cond', dataType: DataType.BOOL, dims: [], rawData: Uint8Array.of(1) })],
        extraNodes: [node('If', ['cond'], ['z'], [attr.graph('then_branch', branch('t')), attr.graph('else_branch', branch('e'))])],
        extraOutputs: [valueInfo('z', DataType.FLOAT)],
      });
    }, /tensor 'k' has 128 data bytes, expected 40000000000/],
  ];
  test.each(cases)('%s: loadModel throws a UserError', (name, make, pattern) => {
    const file = write(`tensor-${name.replace(/\W+/g, '-')}`, make());
    expect(() => loadModel(file)).toThrow(UserError);
    expect(() => loadModel(file)).toThrow(pattern);
  });

  test.each(cases.filter(([name]) => /huge dims|negative|string|Constant/.test(name)))('%s: inspect, groups and prune refuse it in one line', async (name, make, pattern) => {
    await expectEveryCommandRefuses(write(`cli-${name.replace(/\W+/g, '-')}`, make()), pattern);
  });

  test('external data: dims larger than the referenced bytes are refused at load (the file is never read)', async () => {
    const dir = path.join(tmp, 'ext');
    fs.mkdirSync(dir);
    fs.writeFileSync(path.join(dir, 'w.bin'), new Uint8Array(128));
    const t = onnx.TensorProto.create({
      name: 'W1', dataType: DataType.FLOAT, dims: [toLong(100000), toLong(100000)], dataLocation: 1,
      externalData: [onnx.StringStringEntryProto.create({ key: 'location', value: 'w.bin' })],
    });
    const file = path.join(dir, 'm.onnx');
    fs.writeFileSync(file, modelBytes(mlp({ w1: t })));
    expect(() => loadModel(file)).toThrow(/tensor 'W1' has 128 data bytes, expected 40000000000/);
    await expectEveryCommandRefuses(file, /tensor 'W1' has 128 data bytes, expected 40000000000/);
  });

  test('valid tensors of every storage load unchanged (typed fields, empty tensors, strings)', () => {
    const g = mlp({
      extraInits: [
        onnx.TensorProto.create({ name: 'f', dataType: DataType.FLOAT, dims: [toLong(2), toLong(2)], floatData: [1, 2, 3, 4] }),
        onnx.TensorProto.create({ name: 'i', dataType: DataType.INT64, dims: [toLong(3)], int64Data: [toLong(1), toLong(2), toLong(3)] }),
        onnx.TensorProto.create({ name: 'h', dataType: DataType.FLOAT16, dims: [toLong(2)], int32Data: [0x3c00, 0x4000] }),
        onnx.TensorProto.create({ name: 'q', dataType: DataType.INT4, dims: [toLong(3)], int32Data: [0x21, 0x03] }),
        onnx.TensorProto.create({ name: 'e', dataType: DataType.FLOAT, dims: [toLong(0), toLong(2n ** 40n)] }),
        onnx.TensorProto.create({ name: 's', dataType: DataType.STRING, dims: [toLong(2)], stringData: [Buffer.from('a'), Buffer.from('b')] }),
      ],
    });
    const m = loadModel(write('valid-storage', g));
    expect(m.graph.initializers.get('f')!.toNumbers()).toEqual([1, 2, 3, 4]);
    expect(m.graph.initializers.get('i')!.toNumbers()).toEqual([1, 2, 3]);
    expect(m.graph.initializers.get('q')!.bytes()).toEqual(Uint8Array.of(0x21, 0x03));
    expect(m.graph.initializers.get('e')!.size).toBe(0);
  });
});

describe('declared input shapes: random inputs stay within a memory budget', () => {
  test('an input of [100000,100000,4] floats is a user error naming the input and its size', async () => {
    const file = write('input-huge', mlp({ input: valueInfo('x', DataType.FLOAT, [100000, 100000, 4]) }));
    await expectOneLineError([file, path.join(tmp, 'o-input-huge.onnx'), '--ratio', '0.5'], /input 'x' of shape \[100000,100000,4\] needs 149\.0 GiB, over the 256\.0 MiB limit/);
  });

  test('a negative input dim is a user error naming the input', async () => {
    const file = write('input-negative', mlp({ input: valueInfo('x', DataType.FLOAT, [-3, 4]) }));
    await expectOneLineError([file, path.join(tmp, 'o-input-negative.onnx'), '--ratio', '0.5'], /input 'x' has an invalid dimension -3 in \[-3,4\]/);
  });

  test('randomInputs refuses inputs over GENERATED_INPUT_MAX_BYTES before allocating them', () => {
    const over = Math.floor(GENERATED_INPUT_MAX_BYTES / 4 / (1024 * 1024)) + 1;
    const m = loadModel(modelBytes(mlp({ input: valueInfo('x', DataType.FLOAT, [over, 1024, 1024]), nodes: [node('Relu', ['x'], ['y'])] })));
    expect(() => randomInputs(m)).toThrow(UserError);
    expect(() => randomInputs(m)).toThrow(/input 'x' of shape \[\d+,1024,1024\] needs .* over the 256\.0 MiB limit for generated inputs/);
  });
});

describe('group analysis: implausible inferred shapes are refused before label fields are allocated', () => {
  // x[1,1,8,8] → Conv(W[4,1,3,3], pads) → Flatten → y: the channel layout of the flattened tensor is C×H×W.
  const conv = (pads: number) => graph({
    nodes: [
      node('Conv', ['x', 'W', 'B'], ['c'], [attr.ints('kernel_shape', [3, 3]), attr.ints('pads', [pads, pads, pads, pads])]),
      node('Relu', ['c'], ['r']),
      node('Flatten', ['r'], ['y'], [attr.int('axis', 1)]),
    ],
    inputs: [valueInfo('x', DataType.FLOAT, [1, 1, 8, 8])],
    outputs: [valueInfo('y', DataType.FLOAT)],
    initializers: [floatTensor('W', [4, 1, 3, 3], new Float32Array(36).fill(0.1)), floatTensor('B', [4], [0, 0, 0, 0])],
  });

  test('a Conv pad of 10^8 makes a [4, 2·10^8, 2·10^8] layout: a user error, not an allocation', async () => {
    await expectOneLineError(['groups', write('pads-huge', conv(1e8))], /group analysis: a tensor's channel layout \[4,\d+,\d+\] has \d+ positions, over the limit/);
  });

  test('a Tile of 10^7 repeats on a channel axis', async () => {
    const g = graph({
      nodes: [
        node('Conv', ['x', 'W', 'B'], ['c'], [attr.ints('kernel_shape', [1, 1])]),
        node('Tile', ['c', 'reps'], ['t']),
        node('Relu', ['t'], ['y']),
      ],
      inputs: [valueInfo('x', DataType.FLOAT, [1, 1, 2, 2])],
      outputs: [valueInfo('y', DataType.FLOAT)],
      initializers: [floatTensor('W', [4, 1, 1, 1], [1, 2, 3, 4]), floatTensor('B', [4], [0, 0, 0, 0]), int64Tensor('reps', [4], [1, 1e7, 1, 1])],
    });
    await expectOneLineError(['groups', write('tile-huge', g)], /over the limit of \d+/);
  });

  test('ordinary pads still analyze', async () => {
    const r = await runCliInProcess(['groups', write('pads-ok', conv(1)), '--json']);
    expect(r.code).toBe(0);
  });
});

describe('cyclic graphs are refused at load', () => {
  const cyclic = () => mlp({ nodes: [node('Add', ['x', 'b'], ['a']), node('Relu', ['a'], ['b']), node('MatMul', ['a', 'W1'], ['h']), node('Relu', ['h'], ['r']), node('MatMul', ['r', 'W2'], ['y'])] });
  test('a two-node cycle: inspect, groups and prune', async () => {
    await expectEveryCommandRefuses(write('cyclic', cyclic()), /is not a valid ONNX model \(graph 'g' has a cycle through node '(Add\(a\)|Relu\(b\))'\)/);
  });

  test('a node reading its own output', async () => {
    const g = mlp({ nodes: [node('Add', ['x', 'a'], ['a']), node('MatMul', ['a', 'W1'], ['h']), node('Relu', ['h'], ['r']), node('MatMul', ['r', 'W2'], ['y'])] });
    await expectEveryCommandRefuses(write('self-loop', g), /has a cycle through node 'Add\(a\)'/);
  });

  test('nodes listed out of order but acyclic still load', () => {
    const g = mlp({ nodes: [node('MatMul', ['r', 'W2'], ['y']), node('Relu', ['h'], ['r']), node('MatMul', ['x', 'W1'], ['h'])] });
    expect(loadModel(modelBytes(g)).graph.topoSort().map((n) => n.opType)).toEqual(['MatMul', 'Relu', 'MatMul']);
  });
});

// --- .npy / .npz ---------------------------------------------------------------------------------------------

function npy(descr: string, shape: (number | string)[], data: Uint8Array): Uint8Array {
  let h = `{'descr': '${descr}', 'fortran_order': False, 'shape': (${shape.join(', ')}${shape.length === 1 ? ',' : ''}), }`;
  h += ' '.repeat((64 - ((10 + h.length + 1) % 64)) % 64) + '\n';
  const head = Buffer.alloc(10 + h.length);
  Buffer.from([0x93, 0x4e, 0x55, 0x4d, 0x50, 0x59, 1, 0]).copy(head);
  head.writeUInt16LE(h.length, 8);
  head.write(h, 10, 'latin1');
  return Buffer.concat([head, data]);
}

/** A zip archive of deflated entries; `usize` overrides an entry's declared size. */
function zip(entries: { name: string; data: Uint8Array; usize?: number }[]): Uint8Array {
  const parts: Buffer[] = [];
  const central: Buffer[] = [];
  let off = 0;
  for (const e of entries) {
    const comp = zlib.deflateRawSync(e.data);
    const name = Buffer.from(e.name);
    const usize = e.usize ?? e.data.length;
    const lh = Buffer.alloc(30);
    lh.writeUInt32LE(0x04034b50, 0); lh.writeUInt16LE(20, 4); lh.writeUInt16LE(8, 8); lh.writeUInt32LE(crc32(e.data), 14);
    lh.writeUInt32LE(comp.length, 18); lh.writeUInt32LE(usize, 22); lh.writeUInt16LE(name.length, 26);
    parts.push(lh, name, comp);
    const ch = Buffer.alloc(46);
    ch.writeUInt32LE(0x02014b50, 0); ch.writeUInt16LE(20, 4); ch.writeUInt16LE(20, 6); ch.writeUInt16LE(8, 10); ch.writeUInt32LE(crc32(e.data), 16);
    ch.writeUInt32LE(comp.length, 20); ch.writeUInt32LE(usize, 24); ch.writeUInt16LE(name.length, 28); ch.writeUInt32LE(off, 42);
    central.push(ch, name);
    off += 30 + name.length + comp.length;
  }
  const cd = Buffer.concat(central);
  const end = Buffer.alloc(22);
  end.writeUInt32LE(0x06054b50, 0); end.writeUInt16LE(entries.length, 8); end.writeUInt16LE(entries.length, 10);
  end.writeUInt32LE(cd.length, 12); end.writeUInt32LE(off, 16);
  return new Uint8Array(Buffer.concat([...parts, cd, end]));
}

const FIXTURES = path.join(__dirname, 'fixtures', 'calib');

describe('.npz archives: sizes checked before inflating, malformed ones are user errors', () => {
  test('an entry declaring more than the archive budget is refused before it is inflated', () => {
    const bytes = zip([{ name: 'x.npy', data: npy('<f4', [4], new Uint8Array(16)), usize: 0xfffffff0 }]);
    expect(() => readZip(bytes, 'bomb.npz')).toThrow(UserError);
    expect(() => readZip(bytes, 'bomb.npz')).toThrow(/bomb\.npz: its compressed entries declare 4\.0 GiB of data, over the 1\.0 GiB limit/);
  });

  test('the budget counts all entries together (checked before the first is inflated)', () => {
    const data = npy('<f4', [262144], new Uint8Array(1 << 20));
    const bytes = zip([{ name: 'a.npy', data }, { name: 'b.npy', data }]);
    expect(readZip(bytes, 'two.npz', { maxBytes: 3 << 20 })).toHaveLength(2);
    expect(() => readZip(bytes, 'two.npz', { maxBytes: 3 << 19 })).toThrow(/two\.npz: its compressed entries declare 2\.0 MiB of data, over the 1\.5 MiB limit/);
    expect(INFLATE_MAX_BYTES).toBe(2 ** 30);
  });

  test('an entry that inflates past its declared size stops there', () => {
    const bytes = zip([{ name: 'x.npy', data: new Uint8Array(10 << 20), usize: 1000 }]);
    expect(() => readZip(bytes, 'liar.npz')).toThrow(/liar\.npz is not a readable \.npz\/zip archive \(entry 'x\.npy' inflates to more than the 1000 bytes it declares\)/);
  });

  test('entries the caller does not want are not inflated (nor counted)', () => {
    const bytes = zip([{ name: 'x.npy', data: npy('<f4', [1], new Uint8Array(4)) }, { name: 'junk.bin', data: new Uint8Array(16), usize: 0xfffffff0 }]);
    expect(readZip(bytes, 'a.npz', { filter: (n) => n.endsWith('.npy') }).map((e) => e.name)).toEqual(['x.npy']);
  });

  test('a central directory entry whose extra field runs past the end is a user error', () => {
    const bytes = new Uint8Array(fs.readFileSync(path.join(FIXTURES, 'two_inputs.npz')));
    const v = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
    const eocd = bytes.length - 22;
    const cd = v.getUint32(eocd + 16, true);
    v.setUint16(cd + 30, 0xffff, true); // extra field length of the first entry
    expect(() => readZip(bytes, 'x.npz')).toThrow(UserError);
  });

  test('seeded corruptions of the fixture archives and arrays give only user errors', () => {
    const next = seededRng(10);
    const other: string[] = [];
    for (const f of fs.readdirSync(FIXTURES).filter((n) => /\.np[yz]$/.test(n))) {
      const orig = new Uint8Array(fs.readFileSync(path.join(FIXTURES, f)));
      for (let k = 0; k < 400; k++) {
        const b = orig.slice();
        for (let j = 0, n = 1 + Math.floor(next() * 4); j < n; j++) {
          const r = next();
          b[Math.floor(next() * b.length)] = r < 0.3 ? 0xff : r < 0.5 ? 0 : Math.floor(next() * 256);
        }
        const cut = next() < 0.2 ? b.subarray(0, Math.floor(next() * b.length)) : b;
        try {
          if (f.endsWith('.npz')) for (const e of readZip(cut)) parseNpy(e.data);
          else parseNpy(cut);
        } catch (e) {
          if (!(e instanceof UserError)) other.push(`${f}: ${(e as Error).message}`);
        }
      }
    }
    expect(other).toEqual([]);
  });
});

describe('.npy shapes and calibration arrays', () => {
  test('a dimension past 2^53 is refused', () => {
    expect(() => parseNpy(npy('<f4', [0, '18014398509481984'], new Uint8Array(0)), 'x.npy')).toThrow(/x\.npy: bad dimension '18014398509481984'/);
  });

  test('arrays share memory with aligned little-endian bytes instead of copying them', () => {
    const bytes = npy('<f4', [2, 2], new Uint8Array(Float32Array.of(1, 2, 3, 4).buffer));
    const a = parseNpy(bytes);
    expect(Array.from(a.data as Float32Array)).toEqual([1, 2, 3, 4]);
    expect(a.data.buffer).toBe(bytes.buffer);
  });

  test('unaligned and big-endian arrays in a Buffer are copied, and the bytes are left unchanged', () => {
    const le = npy('<f4', [2], new Uint8Array(Float32Array.of(1.5, -2).buffer));
    const be = npy('>f4', [2], Uint8Array.of(0x3f, 0xc0, 0, 0, 0xc0, 0, 0, 0));
    for (const b of [le, be]) {
      const buf = Buffer.alloc(b.length + 1);
      Buffer.from(b).copy(buf, 1);
      const view = buf.subarray(1);
      const before = Buffer.from(view);
      expect(Array.from(parseNpy(view).data as Float32Array)).toEqual([1.5, -2]);
      expect(view.equals(before)).toBe(true);
    }
  });

  test('a calibration array of 10^15 samples of no elements is refused (it fits in 0 bytes)', () => {
    const m = loadModel(modelBytes(graph({
      nodes: [node('Relu', ['x'], ['y'])],
      inputs: [valueInfo('x', DataType.FLOAT, ['N', 'S'])],
      outputs: [valueInfo('y', DataType.FLOAT, ['N', 'S'])],
    })));
    const a = parseNpy(npy('<f4', [1e15, 0], new Uint8Array(0)));
    expect(() => calibFromArrays(m, [a], 'c.npy')).toThrow(/calibration array for input 'x' has shape \[1000000000000000,0\]: a sample has no elements/);
  });

  test('float64 and int32 arrays convert to the input types as before', () => {
    const m = loadModel(modelBytes(graph({
      nodes: [node('Cast', ['t'], ['tf'], [attr.int('to', DT.FLOAT)]), node('Add', ['x', 'tf'], ['y'])],
      inputs: [valueInfo('x', DataType.FLOAT, ['N', 2]), valueInfo('t', DataType.INT64, ['N', 2])],
      outputs: [valueInfo('y', DataType.FLOAT, ['N', 2])],
    })));
    const set = calibFromArrays(m, {
      x: { dtype: DT.DOUBLE, dims: [1, 2], data: Float64Array.of(0.1, -2.5) },
      t: { dtype: DT.INT32, dims: [1, 2], data: Int32Array.of(7, -3) },
    }, 'c.npz');
    expect(Array.from(set.inputs[0].data as Float32Array)).toEqual([Math.fround(0.1), -2.5]);
    expect(Array.from(set.inputs[1].data as BigInt64Array)).toEqual([7n, -3n]);
  });
});

// --- --pass modules -----------------------------------------------------------------------------------------

describe('what a --pass module throws is a one-line user error naming the pass', () => {
  const MODEL = path.join(__dirname, '..', 'models', 'tiny_mlp.onnx');
  const cases: [string, string, RegExp][] = [
    ['an Error', `module.exports = { name: 'p-error', run() { throw new Error('kaboom\\nsecond line'); } };`, /pass 'p-error' \(from module '.*p-error\.js'\) failed: kaboom$/m],
    ['a string', `module.exports = { name: 'p-string', run() { throw 'just a string'; } };`, /pass 'p-string' .* failed: just a string/],
    ['undefined', `module.exports = { name: 'p-undefined', run() { throw undefined; } };`, /pass 'p-undefined' .* failed: it threw undefined/],
    ['a rejected promise', `module.exports = { name: 'p-reject', run() { return Promise.reject(new TypeError('async no')); } };`, /pass 'p-reject' .* failed: TypeError: async no/],
    ['a factory that throws', `module.exports = () => { throw new RangeError('factory broke'); };`, /pass module '.*p-factory\.js' failed: RangeError: factory broke/],
  ];
  test.each(cases)('%s', async (_name, code, pattern) => {
    const name = /name: '([\w-]+)'/.exec(code)?.[1] ?? 'p-factory';
    const file = path.join(tmp, `${name}.js`);
    fs.writeFileSync(file, code);
    const out = path.join(tmp, `out-${name}`);
    fs.mkdirSync(out);
    await expectOneLineError([MODEL, path.join(out, 'o.onnx'), '--passes', 'load,save', '--pass', file], pattern);
    expect(fs.readdirSync(out)).toEqual([]);
  });
});

// --- messages -----------------------------------------------------------------------------------------------

describe('names from models and config files are printed escaped, on one line', () => {
  const NASTY = 'W1\n\u001b[31mRED\u0007';

  test('escapeControl', () => {
    expect(escapeControl(`a\nb\r\t\u001b[2J\u0000\u007f\u009b\u2028\u202e z 'é' \\`)).toBe('a\\nb\\r\\t\\u001b[2J\\u0000\\u007f\\u009b\\u2028\\u202e z \'é\' \\');
  });

  test('a tensor name with a newline and an escape sequence in an error', async () => {
    const t = floatTensor(NASTY, [4, 8], new Float32Array(32));
    t.rawData = t.rawData.subarray(0, 20);
    const g = mlp({ w1: t });
    g.node[0].input[1] = NASTY;
    const stderr = await expectOneLineError(['inspect', write('nasty-name', g)], /tensor 'W1\\n\\u001b\[31mRED\\u0007' has 20 data bytes/);
    expect(stderr).not.toMatch(/\u001b|\u0007/);
  });

  test('a config key and value with control characters', async () => {
    const cfg = path.join(tmp, 'nasty.json');
    fs.writeFileSync(cfg, JSON.stringify({ 'ratio\n\u001b[1m': 0.5 }));
    const stderr = await expectOneLineError([path.join(__dirname, '..', 'models', 'tiny_mlp.onnx'), path.join(tmp, 'o-cfg.onnx'), '--config', cfg], /ratio\\n\\u001b\[1m/);
    expect(stderr).not.toMatch(/\u001b/);
  });

  test('inspect and groups listings show names escaped, one line each', async () => {
    const g = mlp();
    const name = 'x\n\u001b[2J';
    g.input[0].name = name;
    g.node[0].input[0] = name;
    const file = write('nasty-input', g);
    const inspect = await runCliInProcess(['inspect', file]);
    expect(inspect.code).toBe(0);
    expect(inspect.stdout).not.toMatch(/\u001b/);
    expect(lines(inspect.stdout)).toContain('input        x\\n\\u001b[2J: float [1, 4]');
    const groups = await runCliInProcess(['groups', file]);
    expect(groups.code).toBe(0);
    expect(groups.stdout).not.toMatch(/\u001b/);
  });

  test('warnings are escaped too', async () => {
    // Constant weights make the output constant on every input: verification warns, naming the output.
    const g = mlp({ w1: floatTensor('W1', [4, 8], new Float32Array(32)) });
    const name = 'y\n\u001b[2J';
    g.node[2].output[0] = name;
    g.output[0].name = name;
    const r = await runCliInProcess([write('nasty-warning', g), path.join(tmp, 'o-warn.onnx'), '--ratio', '0.5']);
    expect(r.stderr).not.toMatch(/\u001b/);
    const warnings = lines(r.stderr);
    expect(warnings.join('\n')).toMatch(/'y\\n\\u001b\[2J'/);
    for (const w of warnings) expect(w).toMatch(/^onnx-prune: (warning|error): /);
  });
});
