/**
 * Hostile and broken files (issue 10): nothing escapes, nothing is destroyed, nothing blocks.
 *  - External data is read only from the files checked at load: a data file swapped for a symlink, hard link or
 *    FIFO after loading (by a `--pass` plugin) never puts outside bytes into the output and never blocks.
 *  - Outputs never replace a FIFO, device or directory, the input (also through a symlink or hard link), or a
 *    file the input references (its external data), nor does the plan file (`--save-plan`).
 *  - Every artifact (model, data file, plan) is written at the end, together: a run that fails (verification,
 *    a later pass) leaves nothing behind, not even the plan; no temp files remain.
 *  - File-system errors (EACCES, ENOSPC, EFBIG, ENAMETOOLONG, ENOTDIR, EISDIR) are one-line user errors (exit 1).
 *  - Config, plan and calibration files: a FIFO does not block, /dev/zero and oversized files are refused, deep
 *    JSON nesting is a user error (not a stack overflow).
 * Cases that can block (FIFOs) or need a file-size limit or another user run the built CLI in a child process.
 */
import { execFileSync, spawnSync } from 'child_process';
import * as fs from 'fs';
import * as path from 'path';
import type { GroupAnalysis } from '../src/analysis/types';
import { UserError } from '../src/ir/errors';
import { loadModel, runtimeModel, saveModel } from '../src/ir/io';
import { registerPass } from '../src/pipeline/registry';
import { registerBuiltinPasses } from '../passes';
import { DataType, attr, floatTensor, graph, modelBytes, node, onnx, seededRng, uniform, valueInfo } from './helpers/builder';
import { BUILT_CLI, REPO_ROOT, SHARED_MODELS, lines, mkTmp, requireBuiltCli, rmTmp, runBuiltCli, runCliInProcess, type CliResult } from './helpers/cli';
import { layerNormCoupled } from './prune-fixtures';

registerBuiltinPasses();

/** The fs module object itself (the `import * as` namespace above is a read-only view: spies go on this). */
// eslint-disable-next-line @typescript-eslint/no-require-imports
const nodeFs: typeof fs = require('fs');

const MNIST = path.join(SHARED_MODELS, 'mnist_lenet_bn.onnx');
const IS_ROOT = process.getuid?.() === 0;
/** Bytes that must never reach an output: the content of a file outside the model's folder. */
const MARK = Buffer.from('OUTSIDE-THE-MODEL-FOLDER-0123456789');
const SECRET = Buffer.concat(Array.from({ length: 2048 }, () => MARK));

let tmp: string;
beforeAll(() => {
  tmp = mkTmp('onnx-prune-files-');
  // Other users (the EACCES cases run the CLI as `nobody` when the tests run as root) must reach the folders.
  fs.chmodSync(tmp, 0o755);
  // Stand-in analysis for the verification-failure cases: the LayerNorm fixture's hand-written group.
  registerPass('analyze-ln-fixture', () => ({
    name: 'analyze-ln-fixture',
    reads: ['model'],
    writes: ['artifacts.groups'],
    run(ctx) {
      ctx.artifacts.groups = layerNormCoupled().analysis satisfies GroupAnalysis;
    },
  }));
});
afterAll(() => rmTmp(tmp));

/** A fresh folder under the test's temp folder. */
function dir(name: string): string {
  const d = path.join(tmp, name);
  fs.mkdirSync(d, { recursive: true });
  fs.chmodSync(d, 0o777);
  return d;
}

/** x[batch,16] → MatMul w1[16,32] → Relu → MatMul w2[32,16] → y: two 2 KB weights (external when saved so). */
function mlpBytes(): Uint8Array {
  const next = seededRng(7);
  return modelBytes(graph({
    nodes: [node('MatMul', ['x', 'w1'], ['h']), node('Relu', ['h'], ['r']), node('MatMul', ['r', 'w2'], ['y'])],
    initializers: [floatTensor('w1', [16, 32], uniform(next, 512, 0.3)), floatTensor('w2', [32, 16], uniform(next, 512, 0.3))],
    inputs: [valueInfo('x', DataType.FLOAT, ['batch', 16])],
    outputs: [valueInfo('y', DataType.FLOAT, ['batch', 16])],
  }));
}

/** The MLP saved as `<folder>/<name>` with its weights in `<name>.data`. */
function externalModel(folder: string, name = 'model.onnx'): { model: string; data: string } {
  const model = path.join(folder, name);
  const files = saveModel(loadModel(mlpBytes()), model, { externalData: true });
  expect(files).toEqual([model, `${model}.data`]);
  return { model, data: `${model}.data` };
}

function sha(file: string): string {
  return require('crypto').createHash('sha256').update(fs.readFileSync(file)).digest('hex') as string;
}

/** The one-line user-error contract: exit 1, one line on stderr matching `pattern`, nothing on stdout. */
function expectUserError(r: CliResult, pattern: RegExp): void {
  expect({ code: r.code, stderr: r.stderr }).toEqual({ code: 1, stderr: expect.stringMatching(pattern) });
  expect(lines(r.stderr)).toHaveLength(1);
  expect(r.stderr).toMatch(/^onnx-prune: error: /);
  expect(r.stdout).toBe('');
}

/** The names in a folder, sorted. */
const ls = (d: string) => fs.readdirSync(d).sort();

/** Runs the built CLI in a child process (killed after `timeoutMs`: a blocked run fails the test, never hangs it). */
function cli(args: string[], timeoutMs = 60_000): CliResult {
  return runBuiltCli(args, { timeoutMs });
}

/**
 * Whether permission errors can be produced: not as root (chmod 000 does not stop root), unless the built CLI runs
 * as `nobody` (uid 65534; it must be able to read the repository).
 */
function permissionsTestable(): boolean {
  if (!IS_ROOT) return true;
  if (!fs.existsSync(BUILT_CLI)) return false;
  const r = spawnSync(process.execPath, [BUILT_CLI, '--version'], { cwd: '/', encoding: 'utf8', timeout: 60_000, uid: 65534, gid: 65534 });
  return r.status === 0;
}
const describePermissions = permissionsTestable() ? describe : describe.skip;

/** Runs the built CLI as an unprivileged user (as root, chmod 000 would not stop reads or writes). */
function cliUnprivileged(args: string[]): CliResult {
  if (!IS_ROOT) return cli(args);
  const r = spawnSync(process.execPath, [requireBuiltCli(), ...args], { cwd: REPO_ROOT, encoding: 'utf8', timeout: 60_000, uid: 65534, gid: 65534 });
  if (r.error) throw r.error;
  return { code: r.status ?? -1, stdout: r.stdout, stderr: r.stderr };
}

/** A FIFO at `p`. */
function mkfifo(p: string): string {
  execFileSync('mkfifo', [p]);
  return p;
}

test('the built CLI exists', () => {
  expect(fs.existsSync(BUILT_CLI)).toBe(true);
});

describe('external data is read only from the files checked at load (a swap after loading cannot escape)', () => {
  /** A pass module that replaces the model's data file by `kind` (pointing at `secret`) when it runs. */
  function swapPlugin(folder: string, data: string, secret: string, kind: 'symlink' | 'hardlink' | 'fifo'): string {
    const file = path.join(folder, `swap-${kind}.js`);
    fs.writeFileSync(file, `const fs = require('fs');
module.exports = {
  name: 'swap-data-${kind}-${path.basename(folder)}',
  reads: [],
  writes: [],
  run() {
    const data = ${JSON.stringify(data)};
    fs.renameSync(data, data + '.moved');
    ${kind === 'symlink' ? `fs.symlinkSync(${JSON.stringify(secret)}, data);` : ''}
    ${kind === 'hardlink' ? `fs.linkSync(${JSON.stringify(secret)}, data);` : ''}
    ${kind === 'fifo' ? `require('child_process').execFileSync('mkfifo', [data]);` : ''}
  },
};
`);
    return file;
  }

  /** The model in <case>/model, the secret in <case>/secret.bin (outside the model folder), the output in <case>/out. */
  function setup(caseName: string) {
    const root = dir(`swap/${caseName}`);
    const { model, data } = externalModel(dir(`swap/${caseName}/model`));
    const secret = path.join(root, 'secret.bin');
    fs.writeFileSync(secret, SECRET);
    return { root, model, data, secret, out: dir(`swap/${caseName}/out`) };
  }

  /** The run either failed as a user error and wrote nothing, or wrote an output without the outside bytes. */
  function expectNoEscape(r: CliResult, out: string): void {
    for (const f of ls(out)) expect(fs.readFileSync(path.join(out, f)).indexOf(MARK)).toBe(-1);
    if (r.code === 0) return;
    expectUserError(r, /external data .* (was replaced|was removed)/);
    expect(ls(out)).toEqual([]);
  }

  test.each(['symlink', 'hardlink'] as const)('the data file becomes a %s to a file outside the folder after load: its bytes never reach the output', async (kind) => {
    const c = setup(kind);
    const plugin = swapPlugin(c.root, c.data, c.secret, kind);
    const r = await runCliInProcess([c.model, path.join(c.out, 'o.onnx'), '--ratio', '0', '--pass', plugin]);
    expectNoEscape(r, c.out);
    // The swap happened (the test tests something).
    expect(fs.readFileSync(c.data).indexOf(MARK)).toBe(0);
  });

  test('the data file becomes a FIFO after load: the run does not block', () => {
    const c = setup('fifo');
    const plugin = swapPlugin(c.root, c.data, c.secret, 'fifo');
    const r = cli([c.model, path.join(c.out, 'o.onnx'), '--ratio', '0', '--pass', plugin], 60_000);
    expectNoEscape(r, c.out);
    expect(r.code).toBe(1);
    expect(fs.statSync(c.data).isFIFO()).toBe(true);
  });

  test('in code: runtimeModel and saveModel after a swap read the checked file or fail, never the outside bytes', () => {
    const c = setup('api');
    const m = loadModel(c.model);
    fs.renameSync(c.data, `${c.data}.moved`);
    fs.symlinkSync(c.secret, c.data);
    const noMark = (bytes: Uint8Array) => expect(Buffer.from(bytes).indexOf(MARK)).toBe(-1);
    for (const attempt of [
      () => { const rm = runtimeModel(m, { splitAbove: 0 }); noMark(rm.bytes); for (const d of rm.externalData) noMark(d.data); },
      () => noMark(runtimeModel(m, { splitAbove: Infinity }).bytes),
      () => saveModel(m, path.join(c.out, 'api.onnx'), { externalData: false }),
      () => noMark(m.graph.initializers.get('w1')!.bytes()),
    ]) {
      try {
        attempt();
      } catch (e) {
        expect(e).toBeInstanceOf(UserError);
        expect((e as Error).message).toMatch(/was replaced/);
      }
    }
    for (const f of ls(c.out)) expect(fs.readFileSync(path.join(c.out, f)).indexOf(MARK)).toBe(-1);
  });

  test('an external tensor that is no initializer (a ConstantOfShape value) is read from the model folder at load, not from the working folder later', async () => {
    const folder = dir('swap/attr/model');
    const out = dir('swap/attr/out');
    const value = onnx.TensorProto.create({
      name: 'v', dataType: DataType.FLOAT, dims: [1], dataLocation: 1,
      externalData: [{ key: 'location', value: 'v.bin' }, { key: 'offset', value: '0' }, { key: 'length', value: '4' }]
        .map((e) => onnx.StringStringEntryProto.create(e)),
    });
    fs.writeFileSync(path.join(folder, 'v.bin'), Buffer.from(Float32Array.of(1.5).buffer));
    const model = path.join(folder, 'cos.onnx');
    fs.writeFileSync(model, modelBytes(graph({
      nodes: [node('ConstantOfShape', ['s'], ['y'], [attr.tensor('value', value)])],
      inputs: [valueInfo('s', DataType.INT64, [1])], outputs: [valueInfo('y', DataType.FLOAT, ['n'])],
    })));
    // onnxruntime resolves a location in model bytes against its working folder: a file there must not be read.
    const m = loadModel(model);
    fs.writeFileSync(path.join(folder, 'v.bin'), Buffer.from(Float32Array.of(-7).buffer));
    const rm = runtimeModel(m);
    const decoded = onnx.ModelProto.decode(rm.bytes);
    const t = decoded.graph!.node[0].attribute[0].t!;
    expect(t.externalData ?? []).toEqual([]);
    expect(Array.from(new Float32Array(Uint8Array.from(t.rawData).buffer))).toEqual([1.5]);
    const r = await runCliInProcess([model, path.join(out, 'o.onnx'), '--ratio', '0']);
    expect(r.code).toBe(0);
    const saved = loadModel(path.join(out, 'o.onnx'));
    expect(saved.graph.nodes[0].proto.attribute[0].t!.externalData ?? []).toEqual([]);
  });
});

describe('outputs never replace a non-regular file, an input, or a file the input references', () => {
  test('OUT is a FIFO: refused without blocking, the FIFO stays', () => {
    const d = dir('out-fifo');
    const fifo = mkfifo(path.join(d, 'o.onnx'));
    const r = cli([MNIST, fifo]);
    expectUserError(r, /FIFO.*not a regular file/);
    expect(fs.statSync(fifo).isFIFO()).toBe(true);
    expect(ls(d)).toEqual(['o.onnx']);
  });

  test('OUT is a character device: refused, nothing written to it, the device stays', () => {
    // As root, a null device made in the temp folder (never the real /dev/null); otherwise /dev/null itself, which
    // an unprivileged run could not replace anyway.
    let dev = '/dev/null';
    if (IS_ROOT) {
      dev = path.join(dir('out-device'), 'null.onnx');
      execFileSync('mknod', [dev, 'c', '1', '3']);
    }
    const before = fs.statSync(dev);
    const r = cli([MNIST, dev]);
    expectUserError(r, /character device.*not a regular file/);
    const after = fs.statSync(dev);
    expect(after.isCharacterDevice()).toBe(true);
    expect(after.ino).toBe(before.ino);
    if (IS_ROOT) expect(ls(path.dirname(dev))).toEqual(['null.onnx']);
  });

  test('OUT.data is a FIFO (external-data output): refused, nothing written', () => {
    const d = dir('out-data-fifo');
    const { model } = externalModel(dir('out-data-fifo-in'));
    mkfifo(path.join(d, 'o.onnx.data'));
    const r = cli([model, path.join(d, 'o.onnx'), '--ratio', '0']);
    expectUserError(r, /o\.onnx\.data'.*FIFO/);
    expect(ls(d)).toEqual(['o.onnx.data']);
  });

  test('IN is a symlink to OUT (input = output through a link): refused, the input is untouched', () => {
    const d = dir('in-link-out');
    const real = path.join(d, 'real.onnx');
    fs.copyFileSync(MNIST, real);
    fs.symlinkSync(real, path.join(d, 'link.onnx'));
    const r = cli([path.join(d, 'link.onnx'), real]);
    expectUserError(r, /the input model.*different files/);
    expect(sha(real)).toBe(sha(MNIST));
    expect(ls(d)).toEqual(['link.onnx', 'real.onnx']);
  });

  test('OUT is a symlink to the input, or a hard link of it: refused', () => {
    const d = dir('out-link-in');
    const input = path.join(d, 'in.onnx');
    fs.copyFileSync(MNIST, input);
    fs.symlinkSync(input, path.join(d, 'sym.onnx'));
    fs.linkSync(input, path.join(d, 'hard.onnx'));
    for (const out of ['sym.onnx', 'hard.onnx']) {
      const r = cli([input, path.join(d, out)]);
      expectUserError(r, /the input model.*different files/);
      expect(fs.lstatSync(path.join(d, 'sym.onnx')).isSymbolicLink()).toBe(true);
    }
    expect(sha(input)).toBe(sha(MNIST));
    expect(ls(d)).toEqual(['hard.onnx', 'in.onnx', 'sym.onnx']);
  });

  test("OUT is the input's external-data file: refused, the weights are untouched", () => {
    const d = dir('out-is-data');
    const { model, data } = externalModel(d);
    const before = sha(data);
    const r = cli([model, data, '--ratio', '0']);
    expectUserError(r, /external data/);
    expect(sha(data)).toBe(before);
    expect(ls(d)).toEqual(['model.onnx', 'model.onnx.data']);
  });

  test("OUT whose OUT.data is the input's external-data file: refused, the weights are untouched", () => {
    // The input references 'out.onnx.data' (it was saved as out.onnx and renamed); pruning it to out.onnx would
    // write out.onnx.data over the weights it reads.
    const d = dir('out-data-is-data');
    const { model, data } = externalModel(d, 'out.onnx');
    const input = path.join(d, 'in.onnx');
    fs.renameSync(model, input);
    const before = sha(data);
    const r = cli([input, path.join(d, 'out.onnx'), '--ratio', '0']);
    expectUserError(r, /out\.onnx\.data'.*external data/);
    expect(sha(data)).toBe(before);
    expect(ls(d)).toEqual(['in.onnx', 'out.onnx.data']);
    // Through a symlink to the data file in another folder too.
    const other = dir('out-data-is-data/other');
    fs.symlinkSync(data, path.join(other, 'o.onnx.data'));
    const r2 = cli([input, path.join(other, 'o.onnx'), '--ratio', '0']);
    expectUserError(r2, /o\.onnx\.data'.*external data/);
    expect(sha(data)).toBe(before);
    expect(ls(other)).toEqual(['o.onnx.data']);
  });

  test("--save-plan at the input's data file, at OUT.data, or at the input through a symlink: refused, nothing written", () => {
    const d = dir('plan-clash');
    const { model, data } = externalModel(dir('plan-clash-in'));
    const before = sha(data);
    fs.symlinkSync(model, path.join(d, 'link.json'));
    const cases: [string, RegExp][] = [
      [data, /external data/],
      [path.join(d, 'o.onnx.data'), /o\.onnx\.data'.*also the plan file/],
      [path.join(d, 'link.json'), /the input model/],
    ];
    for (const [plan, re] of cases) {
      const r = cli([model, path.join(d, 'o.onnx'), '--ratio', '0.5', '--external-data', '--save-plan', plan]);
      expectUserError(r, re);
      expect(ls(d)).toEqual(['link.json']);
    }
    expect(sha(data)).toBe(before);
  });

  test('saveModel in code refuses to overwrite the files the model was loaded from', () => {
    const d = dir('api-self');
    const { model, data } = externalModel(d);
    const m = loadModel(model);
    const before = [sha(model), sha(data)];
    expect(() => saveModel(m, model)).toThrow(/it is the input model/);
    expect(() => saveModel(m, data)).toThrow(/external data/);
    expect(() => saveModel(m, path.join(d, 'model.onnx.data'), { externalData: false })).toThrow(/external data/);
    expect([sha(model), sha(data)]).toEqual(before);
    expect(ls(d)).toEqual(['model.onnx', 'model.onnx.data']);
  });
});

describe('artifacts are written together, only when the whole run succeeded', () => {
  const LN_PIPELINE = ['--passes', 'load,analyze-ln-fixture,importance-l2,plan,prune,verify,save'];

  test('a verification failure (exit 3) leaves no plan, no model and no temp file', async () => {
    const d = dir('atomic-verify');
    const input = path.join(dir('atomic-verify-in'), 'ln.onnx');
    fs.writeFileSync(input, layerNormCoupled().bytes);
    const r = await runCliInProcess([input, path.join(d, 'o.onnx'), '--ratio', '0.5', '--save-plan', path.join(d, 'plan.json'), ...LN_PIPELINE]);
    expect(r.code).toBe(3);
    expect(r.stderr).toMatch(/verification failed/);
    expect(ls(d)).toEqual([]);
  });

  test('with --keep-invalid the model and the plan are written (exit 3), no temp file', async () => {
    const d = dir('atomic-keep');
    const input = path.join(dir('atomic-keep-in'), 'ln.onnx');
    fs.writeFileSync(input, layerNormCoupled().bytes);
    const r = await runCliInProcess([input, path.join(d, 'o.onnx'), '--ratio', '0.5', '--keep-invalid', '--save-plan', path.join(d, 'plan.json'), ...LN_PIPELINE]);
    expect(r.code).toBe(3);
    expect(ls(d)).toEqual(['o.onnx', 'plan.json']);
    expect(JSON.parse(fs.readFileSync(path.join(d, 'plan.json'), 'utf8')).groups.through_ln).toHaveLength(4);
  });

  test('a pass that fails after the plan was made leaves no plan and no model', async () => {
    const d = dir('atomic-later');
    const plugin = path.join(dir('atomic-later-in'), 'fail.js');
    fs.writeFileSync(plugin, "module.exports = { name: 'fail-late', reads: [], writes: [], run() { throw new Error('late failure'); } };\n");
    const { model } = externalModel(dir('atomic-later-model'));
    const r = await runCliInProcess([model, path.join(d, 'o.onnx'), '--ratio', '0.5', '--save-plan', path.join(d, 'plan.json'), '--pass', plugin]);
    expect(r.code).not.toBe(0);
    expect(r.stderr).toMatch(/late failure/);
    expect(ls(d)).toEqual([]);
  });

  test('a write error on the data file leaves nothing behind (saveModel in code)', () => {
    const d = dir('atomic-write-error');
    const m = loadModel(mlpBytes());
    const spy = jest.spyOn(nodeFs, 'writeSync').mockImplementationOnce(() => {
      throw Object.assign(new Error('ENOSPC: no space left on device, write'), { code: 'ENOSPC', errno: -28, syscall: 'write' });
    });
    try {
      expect(() => saveModel(m, path.join(d, 'o.onnx'), { externalData: true })).toThrow(/cannot write .*o\.onnx\.data': no space left on the device \(ENOSPC\)/);
    } finally {
      spy.mockRestore();
    }
    expect(ls(d)).toEqual([]);
  });
});

describe('file-system errors are one-line user errors (exit 1), never internal errors', () => {
  test('ENOSPC while writing the output: exit 1, the file and the reason named, nothing left', async () => {
    const d = dir('enospc');
    const spy = jest.spyOn(nodeFs, 'writeSync').mockImplementation(() => {
      throw Object.assign(new Error('ENOSPC: no space left on device, write'), { code: 'ENOSPC', errno: -28, syscall: 'write' });
    });
    let r: CliResult;
    try {
      r = await runCliInProcess([MNIST, path.join(d, 'o.onnx')]);
    } finally {
      spy.mockRestore();
    }
    expectUserError(r, /o\.onnx': no space left on the device \(ENOSPC\)/);
    expect(ls(d)).toEqual([]);
  });

  test('EFBIG (the file-size limit) while writing the output: exit 1, nothing left', () => {
    const d = dir('efbig');
    const r = spawnSync('/bin/sh', ['-c', 'ulimit -f 64 && exec "$0" "$@"', process.execPath, requireBuiltCli(), MNIST, path.join(d, 'o.onnx')], {
      cwd: REPO_ROOT, encoding: 'utf8', timeout: 60_000,
    });
    if (r.error) throw r.error;
    expectUserError({ code: r.status ?? -1, stdout: r.stdout, stderr: r.stderr }, /o\.onnx': file too large.*\(EFBIG\)/);
    expect(ls(d)).toEqual([]);
  });

  test('an over-long output name (ENAMETOOLONG): exit 1, nothing left', () => {
    const d = dir('enametoolong');
    expectUserError(cli([MNIST, path.join(d, `${'n'.repeat(300)}.onnx`)]), /file name too long \(ENAMETOOLONG\)/);
    expect(ls(d)).toEqual([]);
  });

  test('an output whose folder is a file (ENOTDIR) or missing: exit 1', () => {
    const d = dir('enotdir');
    fs.writeFileSync(path.join(d, 'file'), 'x');
    expectUserError(cli([MNIST, path.join(d, 'file', 'o.onnx')]), /is not a folder/);
    expectUserError(cli([MNIST, path.join(d, 'missing', 'o.onnx')]), /does not exist/);
    expect(ls(d)).toEqual(['file']);
  });

  test('an output that is a directory (EISDIR): exit 1, the directory stays empty', () => {
    const d = dir('eisdir');
    fs.mkdirSync(path.join(d, 'o.onnx'));
    expectUserError(cli([MNIST, path.join(d, 'o.onnx')]), /it is a directory/);
    expect(ls(path.join(d, 'o.onnx'))).toEqual([]);
  });

  // Skipped (and said so by jest) when the tests run as root and the CLI cannot run as another user.
  describePermissions('permission denied (EACCES), run as an unprivileged user', () => {
    test('an unreadable input, config, plan or calibration file', () => {
      const d = dir('eacces-read');
      const locked = (name: string, content: string | Buffer) => {
        const p = path.join(d, name);
        fs.writeFileSync(p, content);
        fs.chmodSync(p, 0o000);
        return p;
      };
      const model = path.join(d, 'm.onnx');
      fs.copyFileSync(MNIST, model);
      fs.chmodSync(model, 0o644);
      const out = path.join(d, 'o.onnx');
      const cases: [string[], RegExp][] = [
        [[locked('locked.onnx', fs.readFileSync(MNIST)), out], /cannot read '.*locked\.onnx': permission denied \(EACCES\)/],
        [[model, out, '--config', locked('c.json', '{}')], /config file '.*c\.json': permission denied \(EACCES\)/],
        [[model, out, '--plan', locked('p.json', '{}')], /plan '.*p\.json': permission denied \(EACCES\)/],
        [[model, out, '--ratio', '0.3', '--importance', 'wanda', '--calib', locked('c.bin', Buffer.alloc(16))], /calibration file '.*c\.bin': permission denied \(EACCES\)/],
      ];
      for (const [args, re] of cases) expectUserError(cliUnprivileged(args), re);
      expect(ls(d).filter((f) => !['locked.onnx', 'm.onnx', 'c.json', 'p.json', 'c.bin'].includes(f))).toEqual([]);
    });

    test('an output folder without write permission', () => {
      const d = dir('eacces-write');
      fs.chmodSync(d, 0o555);
      expectUserError(cliUnprivileged([MNIST, path.join(d, 'o.onnx')]), /o\.onnx': permission denied \(EACCES\)/);
      expect(ls(d)).toEqual([]);
    });
  });
});

describe('config, plan and calibration files: regular, bounded, shallow', () => {
  test('a FIFO as --config, --plan, --calib or --pass (or /dev/zero as --pass): refused without blocking', () => {
    const d = dir('input-fifos');
    const out = path.join(d, 'o.onnx');
    const fifo = mkfifo(path.join(d, 'in.fifo'));
    expectUserError(cli([MNIST, out, '--config', fifo]), /config file '.*in\.fifo'.*FIFO/);
    expectUserError(cli([MNIST, out, '--plan', fifo]), /in\.fifo'.*FIFO/);
    expectUserError(cli([MNIST, out, '--ratio', '0.3', '--importance', 'wanda', '--calib', fifo]), /in\.fifo'.*FIFO/);
    const jsFifo = mkfifo(path.join(d, 'pass.js'));
    expectUserError(cli([MNIST, out, '--pass', jsFifo]), /pass module '.*pass\.js': it is a FIFO/);
    expectUserError(cli([MNIST, out, '--pass', '/dev/zero']), /pass module '\/dev\/zero': it is a character device/);
    expect(ls(d)).toEqual(['in.fifo', 'pass.js']);
  });

  test('--config /dev/zero: a quick one-line user error', () => {
    const d = dir('dev-zero');
    expectUserError(cli([MNIST, path.join(d, 'o.onnx'), '--config', '/dev/zero'], 30_000), /config file '\/dev\/zero'.*character device/);
    expect(ls(d)).toEqual([]);
  });

  test('config and plan files over 16 MB are refused before they are read', () => {
    const d = dir('big-json');
    const big = path.join(d, 'big.json');
    fs.writeFileSync(big, '{}');
    fs.truncateSync(big, 17 * 2 ** 20); // sparse: no disk space
    const out = path.join(d, 'o.onnx');
    expectUserError(cli([MNIST, out, '--config', big]), /config file '.*big\.json' is 17825792 bytes; a JSON file over 16 MB/);
    expectUserError(cli([MNIST, out, '--plan', big]), /plan '.*big\.json' is 17825792 bytes; a JSON file over 16 MB/);
    expect(ls(d)).toEqual(['big.json']);
  });

  test('a calibration file over the limit is refused before it is read', () => {
    const d = dir('big-calib');
    const big = path.join(d, 'big.bin');
    fs.writeFileSync(big, '');
    fs.truncateSync(big, 2 ** 30 + 4096); // sparse
    expectUserError(cli([MNIST, path.join(d, 'o.onnx'), '--ratio', '0.3', '--importance', 'wanda', '--calib', big]), /calibration file '.*big\.bin' is 1073745920 bytes, over the 1 GiB limit/);
    expect(ls(d)).toEqual(['big.bin']);
  });

  test.each([
    ['arrays', (n: number) => `{"ratio": ${'['.repeat(n)}${']'.repeat(n)}}`],
    ['objects', (n: number) => `{"protect": ${'{"a":'.repeat(n)}1${'}'.repeat(n)}}`],
  ])('deeply nested JSON (%s) in --config and --plan: a user error, not a stack overflow', async (_kind, deep) => {
    const d = dir(`deep-json-${_kind}`);
    const file = path.join(d, 'deep.json');
    fs.writeFileSync(file, deep(100_000));
    const out = path.join(d, 'o.onnx');
    expectUserError(await runCliInProcess([MNIST, out, '--config', file]), /config file '.*deep\.json' nests arrays and objects more than 64 levels deep/);
    expectUserError(await runCliInProcess([MNIST, out, '--plan', file]), /plan '.*deep\.json' nests arrays and objects more than 64 levels deep/);
    // Brackets inside strings do not count.
    fs.writeFileSync(file, JSON.stringify({ protect: ['['.repeat(1000), '{"\\"['.repeat(100)] }));
    const r = await runCliInProcess([MNIST, out, '--config', file]);
    expect(r.stderr).not.toMatch(/levels deep/);
    expect(ls(d).filter((f) => f !== 'o.onnx')).toEqual(['deep.json']);
  });
});

describe('found by the fuzz suite (bench/fuzz)', () => {
  test('an external-data location holding a NUL character is a user error, not an internal one', () => {
    const d = dir('nul-location');
    const { model } = externalModel(d);
    const m = onnx.ModelProto.decode(fs.readFileSync(model));
    const loc = m.graph!.initializer[0].externalData.find((e) => e.key === 'location')!;
    loc.value = 'model.onnx\u0000.data';
    fs.writeFileSync(model, onnx.ModelProto.encode(m).finish());
    expectUserError(cli([model, path.join(d, 'o.onnx'), '--ratio', '0.3']), /external data location .* holds a NUL character/);
    expect(ls(d)).toEqual(['model.onnx', 'model.onnx.data']);
  });

  test('a pass module that takes the model away is a user error naming it, at any ratio', () => {
    const d = dir('clear-model');
    const plugin = path.join(d, 'clear.js');
    fs.writeFileSync(plugin, 'module.exports = { name: "clear", reads: [], writes: [], run(ctx) { ctx.model = undefined; } };');
    const tiny = path.join(REPO_ROOT, 'models', 'tiny_cnn.onnx');
    for (const ratio of ['0', '0.3']) {
      expectUserError(cli([tiny, path.join(d, 'o.onnx'), '--ratio', ratio, '--pass', plugin]), /pass 'clear' \(from .*clear\.js.*\) left no model in the context/);
    }
    expect(ls(d)).toEqual(['clear.js']);
  });

  test('a model onnxruntime loads only with its graph optimizations off is not written at --ratio 0', () => {
    // llama_s with every input dim declared 1e6: the declared sizes contradict the RoPE tables, which onnxruntime's
    // default optimizations (constant folding, shape propagation) find when the session is created.
    const d = dir('bad-declared-dims');
    const m = onnx.ModelProto.decode(fs.readFileSync(path.join(SHARED_MODELS, 'llama_s.onnx')));
    for (const dim of m.graph!.input[0].type!.tensorType!.shape!.dim) { delete (dim as { dimParam?: string }).dimParam; dim.dimValue = 1e6 as never; }
    const model = path.join(d, 'model.onnx');
    fs.writeFileSync(model, onnx.ModelProto.encode(m).finish());
    expectUserError(cli([model, path.join(d, 'o.onnx'), '--ratio', '0']), /onnxruntime cannot load the model: .*Incompatible dimensions/);
    expect(ls(d)).toEqual(['model.onnx']);
  });
});
