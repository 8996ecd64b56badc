/**
 * The fuzz harness (bench/fuzz/harness.ts) classifies what a CLI does: checked with a stand-in CLI that
 * misbehaves in each way on purpose (so the fuzz suite's zero counts mean something).
 */
import * as fs from 'fs';
import * as path from 'path';
import { decodeModel, encodeModel } from '../bench/fuzz/formats';
import { cleanup, createRun, REPO, runCase, type FailureClass, type FuzzCase, type RunContext } from '../bench/fuzz/harness';
import { requireBuiltCli } from './helpers/cli';

const STUB = `
const fs = require('fs');
const [mode, out] = process.argv.slice(2);
const fail = (msg, code = 1) => { process.stderr.write(msg); process.exit(code); };
switch (mode) {
  case 'ok': fs.writeFileSync(out, fs.readFileSync('model.onnx')); break;
  case 'user-error': fail('onnx-prune: warning: something\\nonnx-prune: error: bad input\\n'); break;
  case 'internal': fail('onnx-prune: internal error: boom\\n', 2); break;
  case 'two-lines': fail('onnx-prune: error: first\\nsecond\\n'); break;
  case 'escape-code': fail('onnx-prune: error: \\x1b[31mred\\n'); break;
  case 'crash': process.kill(process.pid, 'SIGSEGV'); break;
  case 'hang': setInterval(() => {}, 1000); break;
  case 'spin': fs.writeFileSync('.onnx-prune-' + process.pid + '-0a1b2c.tmp', 'x'); for (;;) {} // eslint-disable-line no-constant-condition
  case 'leftover': fs.writeFileSync(out + '.tmp-1', 'partial'); fail('onnx-prune: error: bad input\\n'); break;
  case 'tmp-leftover': fs.writeFileSync(require('os').tmpdir() + '/scratch', 'x'); fs.writeFileSync(out, fs.readFileSync('model.onnx')); break;
  case 'existing': fs.writeFileSync(out, 'overwritten'); fail('onnx-prune: error: bad input\\n'); break;
  case 'secret': fs.writeFileSync(out, fs.readFileSync('../outside/secret.bin').subarray(5000, 5100)); break;
  case 'secret-stdout': fs.writeFileSync(out, fs.readFileSync('model.onnx')); process.stdout.write(fs.readFileSync('../outside/secret.bin').subarray(9000, 9040)); break;
  case 'input': fs.appendFileSync('model.onnx', 'x'); fail('onnx-prune: error: bad input\\n'); break;
  case 'outside': fs.writeFileSync('../outside/victim', 'x'); fail('onnx-prune: error: bad input\\n'); break;
  case 'fifo': fs.rmSync(out); fs.writeFileSync(out, fs.readFileSync('model.onnx')); break;
  case 'unloadable': fs.writeFileSync(out, 'not a model'); break;
  case 'nondeterministic': fs.writeFileSync(out, fs.readFileSync('model.onnx')); fs.writeFileSync('plan.json', String(process.hrtime.bigint())); break;
  case 'cut-off': fail('onnx-prune: error: Invalid values:\\n'); break;
  case 'nonfinite': fs.writeFileSync(out, fs.readFileSync('nan.onnx')); break;
  case 'memory': { const b = Buffer.alloc(300 << 20); b.fill(1); fs.writeFileSync(out, fs.readFileSync('model.onnx')); break; }
}
`;

let ctx: RunContext;
let model: Uint8Array;
/** tiny_cnn with a NaN classifier bias: loads, but every output is NaN. */
let nanModel: Uint8Array;

beforeAll(() => {
  requireBuiltCli();
  const root = fs.mkdtempSync(path.join(require('os').tmpdir(), 'fuzz-harness-'));
  fs.writeFileSync(path.join(root, 'stub.js'), STUB);
  ctx = createRun({ seed: 0, root, cli: path.join(root, 'stub.js'), plans: false, timeoutMs: 15_000, memoryBudget: 200 << 20, determinism: true });
  model = fs.readFileSync(path.join(REPO, 'models', 'tiny_cnn.onnx'));
  const m = decodeModel(model);
  const bias = m.graph!.initializer.find((t) => t.name === 'fc.bias')!;
  bias.rawData = new Uint8Array(new Float32Array(bias.rawData!.length / 4).fill(NaN).buffer);
  nanModel = encodeModel(m);
});
afterAll(() => cleanup(ctx));

function stubCase(mode: string, extra: FuzzCase['files'] = []): FuzzCase {
  return {
    id: `stub-${mode}`,
    seed: 0,
    index: 0,
    family: 'stub',
    desc: mode,
    files: [{ path: 'work/model.onnx', kind: 'file', data: model, role: 'input' }, { path: 'work/nan.onnx', kind: 'file', data: nanModel, role: 'input' }, ...extra],
    args: [mode, 'out.onnx'],
    model: 'model.onnx',
  };
}

const CASES: [string, FailureClass[], FuzzCase['files']][] = [
  ['ok', [], []],
  ['user-error', [], []],
  ['internal', ['internal'], []],
  ['two-lines', ['internal'], []],
  ['escape-code', ['internal'], []],
  ['crash', ['internal'], []],
  ['hang', ['hang'], []],
  // Busy: killed at the CPU-time limit; the file it was writing is part of that one finding, not a second one.
  ['spin', ['hang'], []],
  ['leftover', ['leftover'], []],
  ['tmp-leftover', ['leftover'], []],
  ['existing', ['leftover'], [{ path: 'work/out.onnx', kind: 'file', data: 'old', role: 'existing' }]],
  ['secret', ['escape', 'unloadable'], []],
  ['secret-stdout', ['escape'], []],
  ['input', ['escape'], []],
  ['outside', ['escape'], []],
  ['fifo', ['escape'], [{ path: 'work/out.onnx', kind: 'fifo', role: 'input' }]],
  ['unloadable', ['unloadable'], []],
  ['nondeterministic', ['nondeterministic'], []],
  ['cut-off', ['internal'], []],
  ['nonfinite', ['nonfinite'], []],
  ['memory', ['memory'], []],
];

test.each(CASES)('a CLI that does "%s" is classified as %j', async (mode, classes, extra) => {
  // The hang is found at the time limit: a short one for it, a roomy one for the rest (a loaded machine).
  const o = await runCase(mode === 'hang' || mode === 'spin' ? { ...ctx, opts: { ...ctx.opts, timeoutMs: 2000 } } : ctx, stubCase(mode, extra));
  const got = [...new Set(o.findings.map((f) => f.cls))].sort();
  // A mismatch names the findings, with their details.
  expect(got.join(',') === [...classes].sort().join(',') ? got : o.findings).toEqual([...classes].sort());
}, 60_000);
