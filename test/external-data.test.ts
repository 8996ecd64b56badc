/**
 * External data: a model with ~32 MB of float weights saved with external data, reloaded and run in
 * onnxruntime from disk (bit-identical to the inline model), external → inline → external round-trips, fp16
 * initializers, and refusal of unsafe or broken `location`s by loadModel and by the CLI.
 */
import * as fs from 'fs';
import * as path from 'path';
import { float16ToFloat32, float32ToFloat16 } from '../src/ir/dtype';
import { UserError } from '../src/ir/errors';
import { loadModel, saveModel } from '../src/ir/io';
import { ort } from '../src/ort/session';
import {
  DataType, attr, floatTensor, graph, modelBytes, node, onnx, seededRng, tensor, uniform, valueInfo,
} from './helpers/builder';
import { lines, mkTmp, rmTmp, runBuiltCli, runCliInProcess } from './helpers/cli';
import { bitDifference, runOnce, tensorBytes } from './helpers/ort-run';

const D = 1024;
const H = 2048;
const BIG_NAMES = ['w0', 'w1', 'w2', 'w3'];

/** X[2,1024] → 4 MatMuls (1024↔2048, 8 MB each) with Relu, a bias Add and a tiny scale (stays inline). */
function bigModelBytes(): Uint8Array {
  const next = seededRng(42);
  const shapes: [number, number][] = [[D, H], [H, D], [D, H], [H, D]];
  const inits = shapes.map(([r, c], i) => floatTensor(BIG_NAMES[i], [r, c], uniform(next, r * c, 1 / Math.sqrt(r))));
  inits.push(floatTensor('bias', [D], uniform(next, D, 0.1)));
  inits.push(floatTensor('scale', [1], [0.5]));
  const nodes = [
    node('MatMul', ['x', 'w0'], ['h0']), node('Relu', ['h0'], ['r0']),
    node('MatMul', ['r0', 'w1'], ['h1']), node('Relu', ['h1'], ['r1']),
    node('MatMul', ['r1', 'w2'], ['h2']), node('Relu', ['h2'], ['r2']),
    node('MatMul', ['r2', 'w3'], ['h3']), node('Add', ['h3', 'bias'], ['h4']),
    node('Mul', ['h4', 'scale'], ['y']),
  ];
  return modelBytes(graph({
    name: 'big_mlp', nodes, initializers: inits,
    inputs: [valueInfo('x', DataType.FLOAT, ['batch', D])],
    outputs: [valueInfo('y', DataType.FLOAT, ['batch', D])],
  }));
}

function xFeed(): Record<string, ort.Tensor> {
  return { x: new ort.Tensor('float32', uniform(seededRng(5), 2 * D), [2, D]) };
}

function sizeOf(p: string): number {
  return fs.statSync(p).size;
}

let tmp: string;
beforeAll(() => { tmp = mkTmp('onnx-prune-extdata-'); });
afterAll(() => rmTmp(tmp));

describe('a model with ~32 MB of weights', () => {
  let inlinePath: string;
  let extPath: string;
  let reference: Record<string, ort.Tensor>;

  beforeAll(async () => {
    inlinePath = path.join(tmp, 'inline', 'big.onnx');
    extPath = path.join(tmp, 'ext', 'big.onnx');
    fs.mkdirSync(path.dirname(inlinePath));
    fs.mkdirSync(path.dirname(extPath));
    expect(saveModel(loadModel(bigModelBytes()), inlinePath, { externalData: false })).toEqual([inlinePath]);
    reference = await runOnce(inlinePath, xFeed());
  });

  test('saved with external data: small .onnx, weights in .onnx.data, tiny tensors inline', () => {
    const files = saveModel(loadModel(inlinePath), extPath, { externalData: true });
    const dataPath = `${extPath}.data`;
    expect(files).toEqual([extPath, dataPath]);
    expect(fs.readdirSync(path.dirname(extPath)).sort()).toEqual(['big.onnx', 'big.onnx.data']);
    expect(sizeOf(inlinePath)).toBeGreaterThan(32 * 2 ** 20);
    expect(sizeOf(extPath)).toBeLessThan(16 * 1024);
    expect(sizeOf(dataPath)).toBeGreaterThanOrEqual(4 * D * H * 4 + D * 4);

    const m = loadModel(extPath);
    const inline = loadModel(inlinePath);
    for (const name of [...BIG_NAMES, 'bias']) {
      const t = m.graph.initializers.get(name)!;
      expect(t.external?.location).toBe('big.onnx.data');
      expect(Buffer.from(t.bytes()).equals(Buffer.from(inline.graph.initializers.get(name)!.bytes()))).toBe(true);
    }
    expect(m.graph.initializers.get('scale')!.external).toBeUndefined();
    expect(Array.from(m.graph.initializers.get('scale')!.toFloat32())).toEqual([0.5]);
  });

  test('runs in onnxruntime from its path, bit-identical to the inline model', async () => {
    const out = await runOnce(extPath, xFeed());
    expect(bitDifference(reference, out)).toBeUndefined();
    // The output is not trivially zero (the comparison is meaningful).
    expect((out.y.data as Float32Array).some((v) => v !== 0)).toBe(true);
  });

  test('external → inline → external round-trips byte for byte', async () => {
    const inline2 = path.join(tmp, 'inline2', 'big.onnx');
    const ext2 = path.join(tmp, 'ext2', 'big.onnx');
    fs.mkdirSync(path.dirname(inline2));
    fs.mkdirSync(path.dirname(ext2));
    saveModel(loadModel(extPath), inline2, { externalData: false });
    expect(fs.readdirSync(path.dirname(inline2))).toEqual(['big.onnx']);
    expect(fs.readFileSync(inline2).equals(fs.readFileSync(inlinePath))).toBe(true);

    saveModel(loadModel(inline2), ext2, { externalData: true });
    expect(fs.readFileSync(ext2).equals(fs.readFileSync(extPath))).toBe(true);
    expect(fs.readFileSync(`${ext2}.data`).equals(fs.readFileSync(`${extPath}.data`))).toBe(true);
    expect(bitDifference(reference, await runOnce(ext2, xFeed()))).toBeUndefined();
  });

  test('default (auto) save of an external-data model stays external, also through the CLI', async () => {
    const auto = path.join(tmp, 'auto', 'm.onnx');
    fs.mkdirSync(path.dirname(auto));
    saveModel(loadModel(extPath), auto);
    expect(fs.existsSync(`${auto}.data`)).toBe(true);
    expect(sizeOf(auto)).toBeLessThan(16 * 1024);

    const cliOut = path.join(tmp, 'auto', 'cli.onnx');
    const r = await runCliInProcess([extPath, cliOut, '--ratio', '0', '--quiet']);
    expect(r).toMatchObject({ code: 0, stderr: '' });
    expect(fs.readdirSync(path.dirname(auto)).sort()).toEqual(['cli.onnx', 'cli.onnx.data', 'm.onnx', 'm.onnx.data']);
    expect(bitDifference(reference, await runOnce(cliOut, xFeed()))).toBeUndefined();
  });

  test('--external-data on an inline model writes external data', async () => {
    const dir = path.join(tmp, 'cli-ext');
    fs.mkdirSync(dir);
    const out = path.join(dir, 'o.onnx');
    const r = await runCliInProcess([inlinePath, out, '--external-data', '--quiet']);
    expect(r).toMatchObject({ code: 0, stderr: '' });
    expect(fs.readdirSync(dir).sort()).toEqual(['o.onnx', 'o.onnx.data']);
    expect(bitDifference(reference, await runOnce(out, xFeed()))).toBeUndefined();
  });
});

describe('fp16 initializers', () => {
  // y = x + float(w16): fp16 → fp32 is exact and one fp32 add is exactly Math.fround(x + w).
  const N = 1024;
  const w16 = Uint16Array.from(uniform(seededRng(9), N, 4), (v) => float32ToFloat16(v));
  const small16 = Uint16Array.from([0x3c00, 0xc000, 0x3555, 0x7bff]); // 1, -2, ~0.333, 65504

  function fp16Model(): Uint8Array {
    return modelBytes(graph({
      name: 'fp16',
      nodes: [
        node('Cast', ['w16'], ['wf'], [attr.int('to', DataType.FLOAT)]),
        node('Add', ['x', 'wf'], ['y']),
        node('Cast', ['s16'], ['sf'], [attr.int('to', DataType.FLOAT)]),
        node('Identity', ['sf'], ['s']),
      ],
      initializers: [tensor('w16', DataType.FLOAT16, [N], w16), tensor('s16', DataType.FLOAT16, [4], small16)],
      inputs: [valueInfo('x', DataType.FLOAT, [N])],
      outputs: [valueInfo('y', DataType.FLOAT, [N]), valueInfo('s', DataType.FLOAT, [4])],
    }));
  }

  test('round-trip inline → external → inline keeps the fp16 bits and runs in onnxruntime', async () => {
    const dir = path.join(tmp, 'fp16');
    fs.mkdirSync(dir);
    const a = path.join(dir, 'a.onnx');
    const b = path.join(dir, 'b.onnx');
    const c = path.join(dir, 'c.onnx');
    saveModel(loadModel(fp16Model()), a, { externalData: false });
    saveModel(loadModel(a), b, { externalData: true });
    saveModel(loadModel(b), c, { externalData: false });
    expect(fs.readdirSync(dir).sort()).toEqual(['a.onnx', 'b.onnx', 'b.onnx.data', 'c.onnx']);

    const mb = loadModel(b);
    const w = mb.graph.initializers.get('w16')!;
    expect(w.external).toBeDefined(); // 2 KB ≥ the 1 KB threshold
    expect(mb.graph.initializers.get('s16')!.external).toBeUndefined();
    expect(w.dtype).toBe(DataType.FLOAT16);
    expect(Array.from(w.data() as Uint16Array)).toEqual(Array.from(w16));
    expect(Array.from(w.toFloat32())).toEqual(Array.from(w16, float16ToFloat32));
    expect(fs.readFileSync(c).equals(fs.readFileSync(a))).toBe(true);

    const x = uniform(seededRng(3), N, 2);
    const feeds = { x: new ort.Tensor('float32', x, [N]) };
    const outA = await runOnce(a, feeds);
    const outB = await runOnce(b, feeds);
    expect(bitDifference(outA, outB)).toBeUndefined();
    const want = Float32Array.from(x, (v, i) => v + float16ToFloat32(w16[i]));
    expect(tensorBytes(outB.y).equals(Buffer.from(want.buffer))).toBe(true);
    expect(Array.from(outB.s.data as Float32Array)).toEqual([1, -2, float16ToFloat32(0x3555), 65504]);
  });
});

describe('unsafe or broken external data locations are refused', () => {
  const W_BYTES = 16 * 4;

  /** A model at <tmp>/<case>/a/b/model.onnx whose initializer w[4,4] lives in external `location`. */
  function writeModel(caseName: string, location: string, entries: Record<string, string> = { length: String(W_BYTES) }): string {
    const dir = path.join(tmp, 'unsafe', caseName, 'a', 'b');
    fs.mkdirSync(dir, { recursive: true });
    const w = onnx.TensorProto.create({
      name: 'w', dataType: DataType.FLOAT, dims: [4, 4], dataLocation: 1,
      externalData: Object.entries({ location, offset: '0', ...entries })
        .map(([key, value]) => onnx.StringStringEntryProto.create({ key, value })),
    });
    const bytes = modelBytes(graph({
      nodes: [node('MatMul', ['x', 'w'], ['y'])], initializers: [w],
      inputs: [valueInfo('x', DataType.FLOAT, [1, 4])], outputs: [valueInfo('y', DataType.FLOAT, [1, 4])],
    }));
    const p = path.join(dir, 'model.onnx');
    fs.writeFileSync(p, bytes);
    return p;
  }

  function expectCliRefuses(model: string, pattern: RegExp): void {
    const outDir = path.join(path.dirname(model), 'out');
    fs.mkdirSync(outDir);
    const r = runBuiltCli([model, path.join(outDir, 'o.onnx'), '--ratio', '0']);
    expect(r.code).toBe(1);
    expect(lines(r.stderr)).toHaveLength(1);
    expect(r.stderr).toMatch(/^onnx-prune: error: /);
    expect(r.stderr).toMatch(pattern);
    expect(r.stdout).toBe('');
    expect(fs.readdirSync(outDir)).toEqual([]);
  }

  const cases: [string, string, RegExp][] = [
    ['dotdot', '../../etc/passwd', /leaves the model's folder/],
    ['dotdot-inner', 'x/../../b/w.bin', /leaves the model's folder/],
    ['absolute', '/etc/passwd', /is absolute/],
    ['windows-absolute', 'C:\\Windows\\win.ini', /is absolute/],
    ['missing', 'missing.bin', /not found/],
  ];
  test.each(cases)('%s (%s): loadModel and the CLI refuse it', (caseName, location, pattern) => {
    const model = writeModel(caseName, location);
    expect(() => loadModel(model)).toThrow(UserError);
    expect(() => loadModel(model)).toThrow(pattern);
    expectCliRefuses(model, pattern);
  });

  test('a data file shorter than offset + length is refused', () => {
    const model = writeModel('short', 'w.bin');
    fs.writeFileSync(path.join(path.dirname(model), 'w.bin'), Buffer.alloc(10));
    expect(() => loadModel(model)).toThrow(UserError);
    expect(() => loadModel(model)).toThrow(/too short/);
    expectCliRefuses(model, /too short/);
  });

  test('a data file shorter than the tensor (no length given) is refused at load, before it is read', () => {
    const model = writeModel('short-nolength', 'w.bin', {});
    fs.writeFileSync(path.join(path.dirname(model), 'w.bin'), Buffer.alloc(10));
    expect(() => loadModel(model)).toThrow(UserError);
    expect(() => loadModel(model)).toThrow(/10 data bytes, expected 64/);
    expectCliRefuses(model, /10 data bytes, expected 64/);
  });

  test('a symlink that points outside the model folder is refused', () => {
    const model = writeModel('symlink', 'link.bin');
    const outside = path.join(tmp, 'unsafe', 'symlink', 'secret.bin');
    fs.writeFileSync(outside, Buffer.alloc(W_BYTES));
    fs.symlinkSync(outside, path.join(path.dirname(model), 'link.bin'));
    expect(() => loadModel(model)).toThrow(/links outside the model's folder/);
    expectCliRefuses(model, /links outside/);
  });

  test('a bad offset is refused', () => {
    const model = writeModel('bad-offset', 'w.bin', { offset: '-4', length: String(W_BYTES) });
    fs.writeFileSync(path.join(path.dirname(model), 'w.bin'), Buffer.alloc(W_BYTES));
    expect(() => loadModel(model)).toThrow(/bad external data offset/);
  });

  test('a valid location in a subfolder loads, and the data is read from the right offset', async () => {
    const model = writeModel('ok', 'sub/./w.bin', { offset: '8', length: String(W_BYTES) });
    const data = Float32Array.from({ length: 18 }, (_, i) => i - 2);
    fs.mkdirSync(path.join(path.dirname(model), 'sub'));
    fs.writeFileSync(path.join(path.dirname(model), 'sub', 'w.bin'), Buffer.from(data.buffer));
    const m = loadModel(model);
    expect(Array.from(m.graph.initializers.get('w')!.toFloat32())).toEqual(Array.from({ length: 16 }, (_, i) => i));
    const out = await runOnce(m, { x: new ort.Tensor('float32', Float32Array.of(1, 0, 0, 0), [1, 4]) });
    expect(Array.from(out.y.data as Float32Array)).toEqual([0, 1, 2, 3]);
  });

  test('external data in a model loaded from bytes without a base folder is refused', () => {
    const model = writeModel('bytes', 'w.bin');
    expect(() => loadModel(fs.readFileSync(model))).toThrow(/without a base folder/);
  });
});
