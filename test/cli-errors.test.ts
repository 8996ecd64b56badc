/**
 * The built CLI on bad input: each case gives exactly one line on stderr (`onnx-prune: error: ...`, never a
 * stack trace), exit code 1, and leaves nothing in the output folder (no output, no temp files).
 */
import * as fs from 'fs';
import * as path from 'path';
import { BUILT_CLI, SHARED_MODELS, lines, mkTmp, rmTmp, runBuiltCli } from './helpers/cli';
import { seededRng } from './helpers/builder';

const MODEL = path.join(SHARED_MODELS, 'mnist_lenet_bn.onnx');

let tmp: string;
let inputs: string;
beforeAll(() => {
  tmp = mkTmp('onnx-prune-cli-errors-');
  inputs = path.join(tmp, 'inputs');
  fs.mkdirSync(inputs);
  const bytes = fs.readFileSync(MODEL);
  fs.writeFileSync(path.join(inputs, 'truncated.onnx'), bytes.subarray(0, bytes.length >> 1));
  const next = seededRng(123);
  fs.writeFileSync(path.join(inputs, 'random.onnx'), Uint8Array.from({ length: 4096 }, () => Math.floor(next() * 256)));
  fs.writeFileSync(path.join(inputs, 'empty.onnx'), new Uint8Array(0));
  fs.writeFileSync(path.join(inputs, 'text.onnx'), 'this is not a model\n');
  fs.mkdirSync(path.join(inputs, 'folder.onnx'));
});
afterAll(() => rmTmp(tmp));

test('the built CLI exists (CI runs `npm run build` before `npm test`)', () => {
  expect(fs.existsSync(BUILT_CLI)).toBe(true);
});

/**
 * Runs the CLI with `args(outDir)` in a fresh output folder and checks the one-line error contract; `left` lists
 * what the case itself put in the folder (nothing else may remain).
 */
function expectUserError(caseName: string, args: (out: string) => string[], pattern: RegExp, left: string[] = []): void {
  const outDir = path.join(tmp, 'out', caseName.replace(/\W+/g, '-'));
  fs.mkdirSync(outDir, { recursive: true });
  const r = runBuiltCli(args(outDir));
  expect(r.code).toBe(1);
  const err = lines(r.stderr);
  expect(err).toHaveLength(1);
  expect(err[0]).toMatch(/^onnx-prune: error: /);
  expect(err[0]).toMatch(pattern);
  expect(r.stderr).not.toMatch(/\n\s+at /);
  expect(r.stdout).toBe('');
  expect(fs.readdirSync(outDir).sort()).toEqual(left);
}

const inp = (name: string) => path.join(inputs, name);

describe('prune command: bad input gives one line on stderr, exit 1, no output file', () => {
  const cases: [string, (out: string) => string[], RegExp][] = [
    ['truncated file', (o) => [inp('truncated.onnx'), path.join(o, 'o.onnx')], /truncated\.onnx' is not a valid ONNX model/],
    ['random bytes', (o) => [inp('random.onnx'), path.join(o, 'o.onnx')], /random\.onnx' is not a valid ONNX model/],
    ['text file', (o) => [inp('text.onnx'), path.join(o, 'o.onnx')], /text\.onnx' is not a valid ONNX model/],
    ['empty file', (o) => [inp('empty.onnx'), path.join(o, 'o.onnx')], /empty/],
    ['missing file', (o) => [inp('nope.onnx'), path.join(o, 'o.onnx')], /nope\.onnx': no such file/],
    ['directory as input', (o) => [inp('folder.onnx'), path.join(o, 'o.onnx')], /is a directory/],
    ['output into a missing folder', (o) => [MODEL, path.join(o, 'missing', 'o.onnx')], /does not exist/],
    ['--ratio out of range', (o) => [MODEL, path.join(o, 'o.onnx'), '--ratio', '1.5'], /--ratio: must be < 1, got 1\.5/],
    ['--ratio negative', (o) => [MODEL, path.join(o, 'o.onnx'), '--ratio', '-0.1'], /--ratio.*0/],
    ['--ratio not a number', (o) => [MODEL, path.join(o, 'o.onnx'), '--ratio', 'abc'], /--ratio/],
    ['unknown option', (o) => [MODEL, path.join(o, 'o.onnx'), '--frobnicate'], /frobnicate/],
    ['missing output argument', () => [MODEL], /argument|output/i],
    ['no arguments', () => [], /argument/i],
    ['unknown pipeline pass', (o) => [MODEL, path.join(o, 'o.onnx'), '--passes', 'load,frobnicate,save'], /unknown pass 'frobnicate'/],
    // A bad choice lists the valid ones (yargs' own message puts them on further lines).
    ['bad --importance choice', (o) => [MODEL, path.join(o, 'o.onnx'), '--importance', 'magic'],
      /--importance: must be one of "l1", "l2", .*"obs", "obs-weights", got "magic"$/],
    ['bad --target choice', (o) => [MODEL, path.join(o, 'o.onnx'), '--target', 'x'], /--target: must be one of "params", "flops", got "x"$/],
    ['two bad choices', (o) => [MODEL, path.join(o, 'o.onnx'), '--reduce', 'median', '--allocation', 'x'],
      /--reduce: must be one of "mean", "sum", "max", got "median"; --allocation: must be one of "uniform", "global", "search", got "x"$/],
  ];
  test.each(cases)('%s', (caseName, args, pattern) => expectUserError(caseName, args, pattern));

  test('output is a directory: refused, the directory is left alone', () => {
    expectUserError('output is a directory', (o) => {
      fs.mkdirSync(path.join(o, 'd'));
      return [MODEL, path.join(o, 'd')];
    }, /is a directory/, ['d']);
    expect(fs.readdirSync(path.join(tmp, 'out', 'output-is-a-directory', 'd'))).toEqual([]);
  });

  test('input equals output: refused, the input is untouched', () => {
    const dir = path.join(tmp, 'out', 'input-equals-output');
    expectUserError('input equals output', (o) => {
      fs.copyFileSync(MODEL, path.join(o, 'm.onnx'));
      return [path.join(o, 'm.onnx'), path.join(o, 'm.onnx')];
    }, /different/, ['m.onnx']);
    expect(fs.readFileSync(path.join(dir, 'm.onnx')).equals(fs.readFileSync(MODEL))).toBe(true);
  });
});

describe('inspect: bad input gives one line on stderr and exit 1', () => {
  test.each([
    ['truncated.onnx', /not a valid ONNX model/],
    ['random.onnx', /not a valid ONNX model/],
    ['empty.onnx', /empty/],
    ['nope.onnx', /no such file/],
    ['folder.onnx', /is a directory/],
  ])('%s', (name, pattern) => {
    const r = runBuiltCli(['inspect', inp(name)]);
    expect(r.code).toBe(1);
    expect(lines(r.stderr)).toHaveLength(1);
    expect(r.stderr).toMatch(/^onnx-prune: error: /);
    expect(r.stderr).toMatch(pattern);
    expect(r.stdout).toBe('');
  });
});

describe('help and version', () => {
  test('--help exits 0 and describes both commands', () => {
    const r = runBuiltCli(['--help']);
    expect(r.code).toBe(0);
    expect(r.stdout).toMatch(/inspect/);
    expect(r.stdout).toMatch(/--ratio/);
  });

  test('--version exits 0 and prints the package version', () => {
    const r = runBuiltCli(['--version']);
    expect(r.code).toBe(0);
    const pkg = JSON.parse(fs.readFileSync(path.resolve(__dirname, '..', 'package.json'), 'utf8')) as { version: string };
    expect(r.stdout.trim()).toBe(pkg.version);
  });

  test('inspect --help exits 0', () => {
    const r = runBuiltCli(['inspect', '--help']);
    expect(r.code).toBe(0);
    expect(r.stdout).toMatch(/--json/);
  });
});
