/**
 * Bench: a model with more than 2 GB of weights (9 MatMuls of 16384x4096 float32, ~2.4 GB) saved with
 * external data (chosen automatically), reloaded, run in onnxruntime from disk on a tiny input, and compared
 * with a direct JS computation. Prints timings, sizes and peak RSS; removes its temp files.
 *
 * Run: `npm run build && node dist/bench/external-2gb.js` (needs ~5.5 GB free disk in the temp folder and
 * ~8 GB of RAM). Not part of `npm test`.
 */
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { UserError } from '../src/ir/errors';
import { loadModel, saveModel } from '../src/ir/io';
import { Model } from '../src/ir/model';
import { createSession, ort } from '../src/ort/session';
import { DataType, graph, modelProto, node, seededRng, tensor, uniform, valueInfo } from '../src/ir/builder';

const BIG = 16384;
const SMALL = 4096;
const LAYERS = 9;
/** Weight values repeat with this period (prime, so rows see shifted windows); cheap to generate. */
const PERIOD = 65521;

const t0 = Date.now();
const mib = (n: number) => `${(n / 2 ** 20).toFixed(1)} MiB`;
const secs = (ms: number) => `${(ms / 1000).toFixed(2)} s`;
const peakRss = () => process.resourceUsage().maxRSS * 1024;

function row(label: string, value: string): void {
  console.log(`${label.padEnd(42)} ${value}`);
}

function timed<T>(label: string, fn: () => T): T {
  const s = Date.now();
  const r = fn();
  row(label, secs(Date.now() - s));
  return r;
}

async function timedAsync<T>(label: string, fn: () => Promise<T>): Promise<T> {
  const s = Date.now();
  const r = await fn();
  row(label, secs(Date.now() - s));
  return r;
}

/** Layer l maps `fanIn` → `fanOut`: even layers 16384 → 4096, odd layers 4096 → 16384. */
function layerShape(l: number): [number, number] {
  return l % 2 === 0 ? [BIG, SMALL] : [SMALL, BIG];
}

/** The repeating pattern of layer l, extended by one row so that row windows need no modulo. */
function pattern(l: number): Float32Array {
  const [fanIn, fanOut] = layerShape(l);
  const base = uniform(seededRng(1000 + l), PERIOD, Math.sqrt(3 / fanIn));
  const ext = new Float32Array(PERIOD + fanOut);
  ext.set(base);
  for (let i = PERIOD; i < ext.length; i++) ext[i] = base[i - PERIOD];
  return ext;
}

/** W[i, j] = pattern[(i * fanOut + j) % PERIOD], built by doubling copies. */
function weight(l: number): Float32Array {
  const [fanIn, fanOut] = layerShape(l);
  const w = new Float32Array(fanIn * fanOut);
  w.set(pattern(l).subarray(0, PERIOD));
  for (let filled = PERIOD; filled < w.length; filled *= 2) w.copyWithin(filled, 0, Math.min(filled, w.length - filled));
  return w;
}

/** y = x · W_l for all layers, accumulating in float64 (weights are read from the pattern, not from memory). */
function reference(x: Float32Array): Float64Array {
  let cur = Float64Array.from(x);
  for (let l = 0; l < LAYERS; l++) {
    const [fanIn, fanOut] = layerShape(l);
    const pat = pattern(l);
    const y = new Float64Array(fanOut);
    for (let i = 0; i < fanIn; i++) {
      const xi = cur[i];
      const off = (i * fanOut) % PERIOD;
      for (let j = 0; j < fanOut; j++) y[j] += xi * pat[off + j];
    }
    cur = y;
  }
  return cur;
}

/** Byte equality of two files, compared in 64 MiB chunks. */
function sameFile(a: string, b: string): boolean {
  const size = fs.statSync(a).size;
  if (fs.statSync(b).size !== size) return false;
  const fa = fs.openSync(a, 'r');
  const fb = fs.openSync(b, 'r');
  try {
    const ba = Buffer.alloc(64 * 2 ** 20);
    const bb = Buffer.alloc(64 * 2 ** 20);
    for (let pos = 0; pos < size; pos += ba.length) {
      const n = Math.min(ba.length, size - pos);
      fs.readSync(fa, ba, 0, n, pos);
      fs.readSync(fb, bb, 0, n, pos);
      if (!ba.subarray(0, n).equals(bb.subarray(0, n))) return false;
    }
    return true;
  } finally {
    fs.closeSync(fa);
    fs.closeSync(fb);
  }
}

function checkResources(dir: string): void {
  const st = fs.statfsSync(dir);
  const free = st.bavail * st.bsize;
  const need = 5.5e9; // the .data file, written twice
  console.log(`temp folder ${dir}: ${mib(free)} free; memory ${mib(os.totalmem())} total, ${mib(os.freemem())} free`);
  if (free < need) throw new Error(`need ~${mib(need)} free disk in ${dir}, have ${mib(free)}`);
  if (os.totalmem() < 8e9) throw new Error(`need ~8 GB of RAM, have ${mib(os.totalmem())}`);
}

async function main(): Promise<void> {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'onnx-prune-2gb-'));
  try {
    checkResources(dir);
    const out = path.join(dir, 'big.onnx');
    let model: Model | undefined = timed('build model in memory', () => {
      const nodes = [];
      const inits = [];
      for (let l = 0; l < LAYERS; l++) {
        const [fanIn, fanOut] = layerShape(l);
        inits.push(tensor(`w${l}`, DataType.FLOAT, [fanIn, fanOut], weight(l)));
        nodes.push(node('MatMul', [l === 0 ? 'x' : `h${l - 1}`, `w${l}`], [l === LAYERS - 1 ? 'y' : `h${l}`], [], `mm${l}`));
      }
      const g = graph({
        name: 'big_chain', nodes, initializers: inits,
        inputs: [valueInfo('x', DataType.FLOAT, [1, BIG])],
        outputs: [valueInfo('y', DataType.FLOAT, [1, layerShape(LAYERS - 1)[1]])],
      });
      return new Model(modelProto(g));
    });
    const weightBytes = [...model.graph.initializers.values()].reduce((a, t) => a + t.byteSize, 0);
    row('weights', `${mib(weightBytes)} (${weightBytes} bytes, > 2^31: ${weightBytes > 2 ** 31})`);

    try {
      saveModel(model, path.join(dir, 'inline.onnx'), { externalData: false });
      throw new Error('saving > 2 GB inline should have been refused');
    } catch (e) {
      if (!(e instanceof UserError)) throw e;
      row('inline save refused (UserError)', e.message);
    }
    if (fs.readdirSync(dir).length !== 0) throw new Error(`refused inline save left files: ${fs.readdirSync(dir)}`);

    const files = timed('save (auto → external data)', () => saveModel(model!, out));
    if (files.length !== 2 || !fs.existsSync(`${out}.data`)) throw new Error(`expected external data, got ${files}`);
    row('files', `${path.basename(out)} ${fs.statSync(out).size} bytes, ${path.basename(out)}.data ${mib(fs.statSync(`${out}.data`).size)}`);
    model = undefined;

    const reloaded = timed('reload (lazy external data)', () => loadModel(out));
    timed('read + check w0 and w8 (offset ≥ 2 GiB)', () => {
      for (const l of [0, LAYERS - 1]) {
        const t = reloaded.graph.initializers.get(`w${l}`)!;
        const got = t.toFloat32();
        const want = weight(l);
        if (!Buffer.from(got.buffer, got.byteOffset, got.byteLength).equals(Buffer.from(want.buffer))) {
          throw new Error(`w${l} read back differs`);
        }
        console.log(`  w${l}: offset ${t.external!.offset}, ${mib(t.external!.length)}`);
      }
    });

    const out2 = path.join(dir, 'again', 'big.onnx');
    fs.mkdirSync(path.dirname(out2));
    timed('re-save reloaded (external → external)', () => saveModel(loadModel(out), out2));
    timed('compare both .data files', () => {
      if (!sameFile(`${out}.data`, `${out2}.data`) || !sameFile(out, out2)) throw new Error('re-saved files differ');
    });
    fs.rmSync(path.dirname(out2), { recursive: true });

    const x = uniform(seededRng(7), BIG, 1);
    const session = await timedAsync('onnxruntime session from path', () => createSession(out));
    const result = await timedAsync('onnxruntime run [1,16384]', () => session.run({ x: new ort.Tensor('float32', x, [1, BIG]) }));
    await session.release();
    const y = result.y.data as Float32Array;
    const ref = timed('direct JS computation (float64)', () => reference(x));
    let maxErr = 0;
    let maxAbs = 0;
    for (let j = 0; j < ref.length; j++) {
      maxErr = Math.max(maxErr, Math.abs(y[j] - ref[j]));
      maxAbs = Math.max(maxAbs, Math.abs(ref[j]));
    }
    const sample = [0, 1, 2047, 4095].map((j) => `y[${j}] ort ${y[j].toPrecision(7)} js ${ref[j].toPrecision(7)}`);
    console.log(sample.map((s) => `  ${s}`).join('\n'));
    console.log(`max |ort - js| = ${maxErr.toExponential(3)} (max |y| = ${maxAbs.toExponential(3)}, relative ${(maxErr / maxAbs).toExponential(3)})`);
    if (!(maxAbs > 0) || !(maxErr <= 1e-3 * maxAbs)) throw new Error('onnxruntime output does not match the JS computation');
    row('peak RSS', mib(peakRss()));
    row('total', secs(Date.now() - t0));
    console.log('OK');
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
}

main().catch((e) => {
  console.error(`external-2gb: ${(e as Error).stack ?? e}`);
  process.exitCode = 1;
});
