/**
 * The project's own example models (models/*.onnx, built by models/make-models.ts): rebuilding gives the
 * committed bytes, they are small, they compute what make-models says (checked against a direct JS
 * computation in onnxruntime), and the README example (`--ratio 0`) round-trips them bit-identically.
 */
import { spawnSync } from 'child_process';
import * as fs from 'fs';
import * as path from 'path';
import { loadModel } from '../src/ir/io';
import { ort } from '../src/ort/session';
import { EXAMPLE_MODELS, defaultModelsDir, writeModels } from '../models/make-models';
import { seededRng, uniform } from './helpers/builder';
import { REPO_ROOT, mkTmp, requireBuiltCli, rmTmp, runBuiltCli, runCliInProcess } from './helpers/cli';
import { bitDifference, runOnce } from './helpers/ort-run';

const COMMITTED = path.join(REPO_ROOT, 'models');
const FILES = Object.keys(EXAMPLE_MODELS).sort();

let tmp: string;
beforeAll(() => { tmp = mkTmp('onnx-prune-models-'); });
afterAll(() => rmTmp(tmp));

function committed(file: string): Buffer {
  const p = path.join(COMMITTED, file);
  if (!fs.existsSync(p)) throw new Error(`${p} is missing: run \`npm run build && npm run models\` and commit it`);
  return fs.readFileSync(p);
}

test('the example set has tiny_cnn and tiny_mlp, and make-models writes to the repository models/ by default', () => {
  expect(FILES).toEqual(['tiny_cnn.onnx', 'tiny_mlp.onnx']);
  expect(defaultModelsDir()).toBe(COMMITTED);
});

test('rebuilding in a temp folder gives byte-identical files to the committed ones, each < 1 MB', () => {
  const dir = path.join(tmp, 'rebuilt');
  const written = writeModels(dir);
  expect(written.map((f) => path.basename(f)).sort()).toEqual(FILES);
  expect(fs.readdirSync(dir).sort()).toEqual(FILES);
  for (const f of FILES) {
    const bytes = fs.readFileSync(path.join(dir, f));
    expect(bytes.length).toBeLessThan(1 << 20);
    expect(bytes.equals(committed(f))).toBe(true);
  }
});

test('the compiled script (npm run models) writes the same bytes', () => {
  requireBuiltCli();
  const script = path.join(REPO_ROOT, 'dist', 'models', 'make-models.js');
  expect(fs.existsSync(script)).toBe(true);
  const dir = path.join(tmp, 'compiled');
  const r = spawnSync(process.execPath, [script, dir], { encoding: 'utf8' });
  expect(r.status).toBe(0);
  for (const f of FILES) expect(fs.readFileSync(path.join(dir, f)).equals(committed(f))).toBe(true);
});

// Direct JS computations (float64 accumulation) of what make-models says each model is ------------------------

type W = Record<string, Float32Array>;
function weights(file: string): W {
  const m = loadModel(path.join(COMMITTED, file));
  return Object.fromEntries([...m.graph.initializers].map(([k, t]) => [k, t.toFloat32()]));
}

/** y[o] = sum_i x[i] * w[o*nIn + i] + b[o] (Gemm with transB=1). */
function linearT(x: Float64Array, w: Float32Array, b: Float32Array, nOut: number): Float64Array {
  const nIn = x.length;
  const y = new Float64Array(nOut);
  for (let o = 0; o < nOut; o++) {
    let s = b[o];
    for (let i = 0; i < nIn; i++) s += x[i] * w[o * nIn + i];
    y[o] = s;
  }
  return y;
}

const relu = (a: Float64Array) => a.map((v) => Math.max(0, v));

/** 3x3 conv, pad 1, on [cin,h,w] → [cout,h/stride,w/stride]. */
function conv3x3(x: Float64Array, cin: number, h: number, wd: number, w: Float32Array, b: Float32Array, cout: number, stride: number): Float64Array {
  const oh = Math.floor((h + 2 - 3) / stride) + 1;
  const ow = Math.floor((wd + 2 - 3) / stride) + 1;
  const y = new Float64Array(cout * oh * ow);
  for (let o = 0; o < cout; o++) {
    for (let r = 0; r < oh; r++) {
      for (let c = 0; c < ow; c++) {
        let s = b[o];
        for (let i = 0; i < cin; i++) {
          for (let kr = 0; kr < 3; kr++) {
            const ir = r * stride + kr - 1;
            if (ir < 0 || ir >= h) continue;
            for (let kc = 0; kc < 3; kc++) {
              const ic = c * stride + kc - 1;
              if (ic < 0 || ic >= wd) continue;
              s += x[(i * h + ir) * wd + ic] * w[((o * cin + i) * 3 + kr) * 3 + kc];
            }
          }
        }
        y[(o * oh + r) * ow + c] = s;
      }
    }
  }
  return y;
}

function tinyCnnRef(w: W, x: Float32Array): Float64Array {
  const a = relu(conv3x3(Float64Array.from(x), 3, 32, 32, w['conv1.weight'], w['conv1.bias'], 16, 1));
  const b = relu(conv3x3(a, 16, 32, 32, w['conv2.weight'], w['conv2.bias'], 32, 2));
  const pooled = new Float64Array(32);
  for (let c = 0; c < 32; c++) {
    let s = 0;
    for (let i = 0; i < 256; i++) s += b[c * 256 + i];
    pooled[c] = s / 256;
  }
  return linearT(pooled, w['fc.weight'], w['fc.bias'], 10);
}

function tinyMlpRef(w: W, x: Float32Array): Float64Array {
  const h1 = relu(linearT(Float64Array.from(x), w['fc1.weight'], w['fc1.bias'], 128));
  const h2 = new Float64Array(64);
  const w2 = w['fc2.weight']; // MatMul [128, 64]
  for (let o = 0; o < 64; o++) {
    let s = w['fc2.bias'][o];
    for (let i = 0; i < 128; i++) s += h1[i] * w2[i * 64 + o];
    h2[o] = s;
  }
  return linearT(relu(h2), w['fc3.weight'], w['fc3.bias'], 10);
}

test.each([
  ['tiny_cnn.onnx', [3, 32, 32], tinyCnnRef],
  ['tiny_mlp.onnx', [64], tinyMlpRef],
] as const)('%s runs in onnxruntime and matches a direct JS computation', async (file, inShape, ref) => {
  const batch = 2;
  const per = inShape.reduce((a, b) => a * b, 1);
  const x = uniform(seededRng(77), batch * per, 1);
  const out = await runOnce(path.join(COMMITTED, file), { input: new ort.Tensor('float32', x, [batch, ...inShape]) });
  expect(out.logits.dims).toEqual([batch, 10]);
  const got = out.logits.data as Float32Array;
  const w = weights(file);
  let maxErr = 0;
  let maxAbs = 0;
  for (let n = 0; n < batch; n++) {
    const want = ref(w, x.subarray(n * per, (n + 1) * per));
    for (let k = 0; k < 10; k++) {
      maxErr = Math.max(maxErr, Math.abs(got[n * 10 + k] - want[k]));
      maxAbs = Math.max(maxAbs, Math.abs(want[k]));
    }
  }
  expect(maxAbs).toBeGreaterThan(0.01); // not a degenerate all-zero model
  expect(maxErr).toBeLessThan(1e-4 * Math.max(1, maxAbs));
});

test.each(FILES)('README example: onnx-prune models/%s OUT --ratio 0 is bit-identical', async (file) => {
  const out = path.join(tmp, `ratio0-${file}`);
  const r = await runCliInProcess([path.join(COMMITTED, file), out, '--ratio', '0']);
  expect(r).toMatchObject({ code: 0, stderr: '' });
  expect(fs.readFileSync(out).equals(committed(file))).toBe(true);
  const x = uniform(seededRng(5), file === 'tiny_cnn.onnx' ? 2 * 3 * 32 * 32 : 2 * 64, 1);
  const feeds = { input: new ort.Tensor('float32', x, file === 'tiny_cnn.onnx' ? [2, 3, 32, 32] : [2, 64]) };
  expect(bitDifference(await runOnce(path.join(COMMITTED, file), feeds), await runOnce(out, feeds))).toBeUndefined();
});

test('inspect on the built CLI describes tiny_cnn', () => {
  const r = runBuiltCli(['inspect', path.join(COMMITTED, 'tiny_cnn.onnx'), '--json']);
  expect(r.code).toBe(0);
  const s = JSON.parse(r.stdout) as { params: number; ops: Record<string, number>; inputs: { shape: unknown[] }[] };
  expect(s.params).toBe(16 * 27 + 16 + 32 * 144 + 32 + 10 * 32 + 10);
  expect(s.ops).toEqual({ Conv: 2, Relu: 2, Flatten: 1, Gemm: 1, GlobalAveragePool: 1 });
  expect(s.inputs[0].shape).toEqual(['N', 3, 32, 32]);
});
