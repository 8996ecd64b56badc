/**
 * Bench: peak memory and time of the CLI on hostile inputs (issue 10, causes 5–6): models whose tensors declare
 * far more data than they hold, negative dims, huge declared input shapes, implausible inferred shapes (a pad of
 * 10^8, a Tile of 10^7), cyclic graphs, and .npz calibration archives that declare or inflate to gigabytes. Each
 * should end in a one-line user error (exit 1) within seconds and a few hundred MB.
 *
 * Run: `npm run build && node dist/bench/hostile-memory.js`. Not part of `npm test`. Prints one row per case:
 * exit code, peak RSS of the CLI process, wall time and the first line of stderr.
 */
import { spawnSync } from 'child_process';
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import * as zlib from 'zlib';
import { DataType, attr, floatTensor, graph, int64Tensor, modelBytes, node, onnx, valueInfo } from '../src/ir/builder';
import { toLong } from '../src/ir/long';
import { formatNpy } from '../src/ort/npy';
import { crc32 } from '../src/ort/zip';

const CLI = path.join(__dirname, '..', 'src', 'cli', 'cli.js');
const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'onnx-prune-hostile-'));

function mlp(w1: onnx.TensorProto, input = valueInfo('x', DataType.FLOAT, [1, 4]), extra: Partial<{ nodes: onnx.NodeProto[]; outputs: onnx.ValueInfoProto[] }> = {}): onnx.GraphProto {
  return graph({
    nodes: [node('MatMul', ['x', 'W1'], ['h']), node('Relu', ['h'], ['r']), node('MatMul', ['r', 'W2'], ['y']), ...(extra.nodes ?? [])],
    inputs: [input],
    outputs: [valueInfo('y', DataType.FLOAT, [1, 2]), ...(extra.outputs ?? [])],
    initializers: [w1, floatTensor('W2', [8, 2], Float32Array.from({ length: 16 }, (_, i) => i / 16 - 0.5))],
  });
}

function w1(dims?: number[]): onnx.TensorProto {
  const t = floatTensor('W1', [4, 8], Float32Array.from({ length: 32 }, (_, i) => i / 32 - 0.5));
  if (dims) t.dims = dims.map((d) => toLong(d));
  return t;
}

function save(name: string, g: onnx.GraphProto): string {
  const f = path.join(dir, `${name}.onnx`);
  fs.writeFileSync(f, modelBytes(g));
  return f;
}

/** A float32 `.npy` declaring `shape`, whatever `data` holds (the declared size may lie). */
function npy(shape: number[], data: Uint8Array): Uint8Array {
  return formatNpy({ dtype: DataType.FLOAT, dims: shape, data });
}

/** A one-entry .npz with a deflated entry; `usize` overrides the declared size. */
function npz(name: string, data: Uint8Array, usize = data.length): string {
  const comp = zlib.deflateRawSync(data, { level: 9 });
  const n = Buffer.from('input.npy');
  const lh = Buffer.alloc(30);
  lh.writeUInt32LE(0x04034b50, 0); lh.writeUInt16LE(20, 4); lh.writeUInt16LE(8, 8); lh.writeUInt32LE(crc32(data), 14);
  lh.writeUInt32LE(comp.length, 18); lh.writeUInt32LE(usize, 22); lh.writeUInt16LE(n.length, 26);
  const ch = Buffer.alloc(46);
  ch.writeUInt32LE(0x02014b50, 0); ch.writeUInt16LE(20, 4); ch.writeUInt16LE(20, 6); ch.writeUInt16LE(8, 10); ch.writeUInt32LE(crc32(data), 16);
  ch.writeUInt32LE(comp.length, 20); ch.writeUInt32LE(usize, 24); ch.writeUInt16LE(n.length, 28);
  const end = Buffer.alloc(22);
  end.writeUInt32LE(0x06054b50, 0); end.writeUInt16LE(1, 8); end.writeUInt16LE(1, 10);
  end.writeUInt32LE(46 + n.length, 12); end.writeUInt32LE(30 + n.length + comp.length, 16);
  const f = path.join(dir, `${name}.npz`);
  fs.writeFileSync(f, Buffer.concat([lh, n, comp, ch, n, end]));
  return f;
}

const out = (name: string) => path.join(dir, `${name}-out.onnx`);
const cases: { name: string; args: string[] }[] = [];
const allCommands = (name: string, file: string) => {
  cases.push({ name: `${name} (inspect)`, args: ['inspect', file] }, { name: `${name} (groups)`, args: ['groups', file] }, { name: `${name} (prune)`, args: [file, out(name), '--ratio', '0.5'] });
};

allCommands('dims [1e5,1e5], 128 bytes', save('huge-dims', mlp(w1([100000, 100000]))));
allCommands('dims [4,2^40]', save('dims-2e40', mlp(w1([4, 2 ** 40]))));
allCommands('dims [-4,-8]', save('neg-dims', mlp(w1([-4, -8]))));
allCommands('Constant [1e5,1e5], 16 bytes', save('huge-constant', mlp(w1(), undefined, {
  nodes: [node('Constant', [], ['c'], [attr.tensor('value', onnx.TensorProto.create({ dataType: DataType.FLOAT, dims: [toLong(100000), toLong(100000)], rawData: new Uint8Array(16) }))]), node('Add', ['y', 'c'], ['z'])],
  outputs: [valueInfo('z', DataType.FLOAT)],
})));
{
  const bad = onnx.TensorProto.create({ name: 'W1', dataType: DataType.FLOAT, dims: [toLong(100000), toLong(100000)], dataLocation: 1, externalData: [onnx.StringStringEntryProto.create({ key: 'location', value: 'w.bin' })] });
  fs.writeFileSync(path.join(dir, 'w.bin'), new Uint8Array(128));
  allCommands('external [1e5,1e5], 128-byte file', save('ext-huge', mlp(bad)));
}
cases.push({ name: 'input [1e9,4] (prune)', args: [save('input-1e9', mlp(w1(), valueInfo('x', DataType.FLOAT, [1e9, 4]))), out('input-1e9'), '--ratio', '0.5'] });
cases.push({ name: 'input [-3,4] (prune)', args: [save('input-neg', mlp(w1(), valueInfo('x', DataType.FLOAT, [-3, 4]))), out('input-neg'), '--ratio', '0.5'] });
{
  const conv = graph({
    nodes: [node('Conv', ['x', 'W', 'B'], ['c'], [attr.ints('kernel_shape', [3, 3]), attr.ints('pads', [1e8, 1e8, 1e8, 1e8])]), node('Relu', ['c'], ['r']), node('Flatten', ['r'], ['y'], [attr.int('axis', 1)])],
    inputs: [valueInfo('x', DataType.FLOAT, [1, 1, 8, 8])], outputs: [valueInfo('y', DataType.FLOAT)],
    initializers: [floatTensor('W', [4, 1, 3, 3], new Float32Array(36).fill(0.1)), floatTensor('B', [4], [0, 0, 0, 0])],
  });
  cases.push({ name: 'Conv pads 1e8 (groups)', args: ['groups', save('pads', conv)] });
  const tile = graph({
    nodes: [node('Conv', ['x', 'W', 'B'], ['c'], [attr.ints('kernel_shape', [1, 1])]), node('Tile', ['c', 'reps'], ['t']), node('Relu', ['t'], ['y'])],
    inputs: [valueInfo('x', DataType.FLOAT, [1, 1, 2, 2])], outputs: [valueInfo('y', DataType.FLOAT)],
    initializers: [floatTensor('W', [4, 1, 1, 1], [1, 2, 3, 4]), floatTensor('B', [4], [0, 0, 0, 0]), int64Tensor('reps', [4], [1, 1e7, 1, 1])],
  });
  cases.push({ name: 'Tile 1e7 (groups)', args: ['groups', save('tile', tile)] });
}
{
  const cyclic = graph({
    nodes: [node('Add', ['x', 'b'], ['a']), node('Relu', ['a'], ['b']), node('MatMul', ['a', 'W1'], ['y'])],
    inputs: [valueInfo('x', DataType.FLOAT, [1, 4])], outputs: [valueInfo('y', DataType.FLOAT, [1, 8])], initializers: [w1()],
  });
  allCommands('cyclic graph', save('cyclic', cyclic));
}
{
  const model = save('calib-model', mlp(w1(), valueInfo('x', DataType.FLOAT, ['N', 4])));
  const calib = (name: string, file: string) => cases.push({ name, args: [model, out(name), '--ratio', '0.5', '--importance', 'wanda', '--calib', file] });
  calib('npz declaring 4 GB', npz('declares-4g', npy([4], new Uint8Array(16)), 0xfffffff0));
  calib('npz inflating 400 MB, declaring 1 KB', npz('liar', npy([100_000_000], new Uint8Array(400_000_000)), 1000));
  calib('npz shape (1e15, 4), no data', npz('no-data', npy([1e15, 4], new Uint8Array(0))));
}

console.log('case'.padEnd(44), 'exit', 'peak RSS', '   time', ' stderr');
for (const c of cases) {
  // Peak RSS of the child itself: VmHWM (Linux; ru_maxrss would include this process's peak, inherited at fork).
  const script = `require(${JSON.stringify(CLI)}).runCli(${JSON.stringify(c.args)}).then((code) => {
    let kb = process.resourceUsage().maxRSS;
    try { kb = Number(/VmHWM:\\s*(\\d+)/.exec(require('fs').readFileSync('/proc/self/status', 'utf8'))[1]); } catch {}
    process.stderr.write('\\n@@maxrss ' + kb + '\\n'); process.exit(code); });`;
  const t0 = Date.now();
  const r = spawnSync(process.execPath, ['-e', script], { cwd: dir, encoding: 'utf8', timeout: 120_000 });
  const secs = ((Date.now() - t0) / 1000).toFixed(1);
  const rss = /@@maxrss (\d+)/.exec(r.stderr ?? '')?.[1];
  const mb = rss ? `${(Number(rss) / 1024).toFixed(0)} MB` : '?';
  const first = (r.stderr ?? '').split('\n').find((l) => l.trim() && !l.startsWith('@@')) ?? '';
  console.log(c.name.padEnd(44), String(r.status ?? r.signal).padEnd(4), mb.padStart(8), `${secs} s`.padStart(7), '', first.slice(0, 150));
}
fs.rmSync(dir, { recursive: true, force: true });
