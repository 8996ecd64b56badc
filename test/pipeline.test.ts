/**
 * The pass pipeline: built from names, extended with a pass loaded from a JS module (`--pass ./my-pass.js`)
 * whose change is visible in the output file, clear errors for bad pass modules, and the order check.
 */
import * as fs from 'fs';
import * as path from 'path';
import { UserError } from '../src/ir/errors';
import { loadModel } from '../src/ir/io';
import type { Pass } from '../src/pipeline/pass';
import { Pipeline, newContext } from '../src/pipeline/pipeline';
import { registerBuiltinPasses } from '../passes';
registerBuiltinPasses();
import { createPass, loadPassModule, passNames } from '../src/pipeline/registry';
import { decodeModelProto, encodeModelProto } from '../src/ir/proto';
import { SHARED_MODELS, lines, mkTmp, rmTmp, runBuiltCli, runCliInProcess } from './helpers/cli';
import { bitDifference, runOnce, seededFeeds } from './helpers/ort-run';

const MODEL = path.join(SHARED_MODELS, 'mnist_resmlp.onnx');

let tmp: string;
beforeAll(() => { tmp = mkTmp('onnx-prune-pipeline-'); });
afterAll(() => rmTmp(tmp));

/** A pass module (CommonJS) that adds a metadata_props entry and records that it ran. */
const ADD_METADATA_PASS = `
module.exports = (options) => ({
  name: 'add-metadata',
  description: 'adds a metadata_props entry',
  reads: ['model'],
  writes: ['model', 'artifacts.stamped'],
  run(ctx) {
    ctx.model.proto.metadataProps.push({ key: 'stamped-by', value: 'add-metadata ratio=' + options.ratio });
    ctx.artifacts.stamped = true;
    ctx.report.stamped = ctx.model.graph.nodes.length;
  },
});
`;

function writeModule(name: string, source: string): string {
  const dir = path.join(tmp, 'modules');
  fs.mkdirSync(dir, { recursive: true });
  const p = path.join(dir, name);
  fs.writeFileSync(p, source);
  return p;
}

function metadata(file: string): Record<string, string> {
  const m = loadModel(file);
  return Object.fromEntries(m.proto.metadataProps.map((e) => [e.key ?? '', e.value ?? '']));
}

describe('a pipeline built from names', () => {
  test('the built-in passes are registered', () => {
    expect(passNames()).toEqual(expect.arrayContaining(['load', 'prune', 'save']));
  });

  test('load → prune → save writes the model unchanged', async () => {
    const out = path.join(tmp, 'names.onnx');
    const logs: string[] = [];
    const ctx = newContext({ inputPath: MODEL, outputPath: out, options: { ratio: 0 }, log: (m) => logs.push(m) });
    const p = Pipeline.fromNames(['load', 'prune', 'save'], ctx.options);
    expect(p.passes.map((x) => x.name)).toEqual(['load', 'prune', 'save']);
    await p.run(ctx);
    expect(ctx.model).toBeDefined();
    expect(ctx.report.output).toEqual({ files: [out] });
    expect(logs.map((l) => l.split(':')[0])).toEqual(['pass load', 'pass prune', 'pass save']);
    const norm = (f: string) => Buffer.from(encodeModelProto(decodeModelProto(fs.readFileSync(f))));
    expect(norm(out).equals(norm(MODEL))).toBe(true);
  });

  test('an unknown pass name is a UserError that lists the known passes', () => {
    expect(() => Pipeline.fromNames(['load', 'nope', 'save'], {})).toThrow(UserError);
    expect(() => createPass('nope', {})).toThrow(/unknown pass 'nope' \(known: .*load.*\)/);
  });
});

describe('pass order check', () => {
  const pass = (name: string, reads: string[], writes: string[]): Pass => ({ name, reads, writes, run: () => {} });

  test('a pass that reads a key no earlier pass writes is rejected before anything runs', () => {
    expect(() => new Pipeline([pass('needs-groups', ['artifacts.groups'], [])])).toThrow(UserError);
    expect(() => new Pipeline([createPass('load', {}), pass('needs-groups', ['artifacts.groups'], [])]))
      .toThrow("pass 'needs-groups' reads 'artifacts.groups', which no earlier pass writes");
    // save needs the model, which only load writes.
    expect(() => Pipeline.fromNames(['save', 'load'], {})).toThrow(/pass 'save' reads 'model'/);
  });

  test('the same pass is accepted once an earlier pass writes the key', () => {
    const p = new Pipeline([pass('groups', ['inputPath'], ['artifacts.groups']), pass('needs-groups', ['artifacts.groups'], [])]);
    expect(p.passes).toHaveLength(2);
  });

  test('through the CLI: a pass module reading an unwritten key exits 1 with one line', () => {
    const mod = writeModule('needs-plan.js', `module.exports = { name: 'needs-plan', reads: ['artifacts.plan'], writes: [], run() {} };`);
    const dir = path.join(tmp, 'order-cli');
    fs.mkdirSync(dir);
    const r = runBuiltCli([MODEL, path.join(dir, 'o.onnx'), '--pass', mod]);
    expect(r.code).toBe(1);
    expect(lines(r.stderr)).toEqual([`onnx-prune: error: pass 'needs-plan' reads 'artifacts.plan', which no earlier pass writes`]);
    expect(fs.readdirSync(dir)).toEqual([]);
  });
});

describe('a pass loaded from a JS module', () => {
  test('loadPassModule returns the pass, and it runs in a pipeline and changes the saved model', async () => {
    const mod = writeModule('add-metadata.js', ADD_METADATA_PASS);
    const options = { ratio: 0 };
    const [p] = loadPassModule(mod, options);
    expect(p.name).toBe('add-metadata');
    expect(passNames()).toContain('add-metadata');
    const out = path.join(tmp, 'api-pass.onnx');
    const ctx = newContext({ inputPath: MODEL, outputPath: out, options });
    await Pipeline.fromNames(['load', 'add-metadata', 'save'], options).run(ctx);
    expect(ctx.artifacts.stamped).toBe(true);
    expect(metadata(out)['stamped-by']).toBe('add-metadata ratio=0');
    expect(metadata(MODEL)['stamped-by']).toBeUndefined();
  });

  test('`--pass ./my-pass.js` with the built CLI: the change is in the output file, which still runs', async () => {
    const dir = path.join(tmp, 'cli-pass');
    fs.mkdirSync(dir);
    fs.writeFileSync(path.join(dir, 'my-pass.js'), ADD_METADATA_PASS);
    const r = runBuiltCli([MODEL, 'out.onnx', '--pass', './my-pass.js', '--json'], { cwd: dir });
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    const report = JSON.parse(r.stdout) as Record<string, unknown>;
    expect(report.stamped).toBe(loadModel(MODEL).graph.nodes.length);
    const out = path.join(dir, 'out.onnx');
    expect(metadata(out)['stamped-by']).toBe('add-metadata ratio=0');
    const feeds = seededFeeds(MODEL, 3);
    expect(bitDifference(await runOnce(MODEL, feeds), await runOnce(out, feeds))).toBeUndefined();
  });

  test('in-process CLI with --pass and --passes', async () => {
    const mod = writeModule('add-metadata-2.js', ADD_METADATA_PASS);
    const out = path.join(tmp, 'inproc.onnx');
    const r = await runCliInProcess([MODEL, out, '--passes', 'load,save', '--pass', mod, '--quiet']);
    expect(r).toMatchObject({ code: 0, stderr: '' });
    expect(metadata(out)['stamped-by']).toBe('add-metadata ratio=0');
  });

  describe('a bad pass module gives a clear UserError (and exit 1 with one line from the CLI)', () => {
    const cases: [string, string | null, RegExp][] = [
      ['missing.js', null, /cannot load pass module '.*missing\.js': file not found/],
      ['syntax.js', 'module.exports = { name: "x", run( {', /cannot load pass module '.*syntax\.js': /],
      ['throws.js', 'throw new Error("boom at load");', /cannot load pass module '.*throws\.js': boom at load/],
      ['empty.js', 'module.exports = {};', /must export a pass/],
      ['no-run.js', 'module.exports = { name: "no-run" };', /must export a pass/],
      ['bad-factory.js', 'module.exports = () => 42;', /must export a pass/],
    ];
    test.each(cases)('%s', (file, source, pattern) => {
      const p = source === null ? path.join(tmp, 'modules', file) : writeModule(file, source);
      expect(() => loadPassModule(p, {})).toThrow(UserError);
      expect(() => loadPassModule(p, {})).toThrow(pattern);
      const dir = path.join(tmp, `bad-${file}`);
      fs.mkdirSync(dir);
      const r = runBuiltCli([MODEL, path.join(dir, 'o.onnx'), '--pass', p]);
      expect(r.code).toBe(1);
      expect(lines(r.stderr)).toHaveLength(1);
      expect(r.stderr).toMatch(/^onnx-prune: error: /);
      expect(r.stderr).toMatch(pattern);
      expect(fs.readdirSync(dir)).toEqual([]);
    });
  });

  test('a pass that throws a plain Error at run time is a user error naming the pass: exit 1, one line, no output', () => {
    const mod = writeModule('crash.js', `module.exports = { name: 'crash', reads: ['model'], writes: [], run() { throw new Error('bug in pass'); } };`);
    const dir = path.join(tmp, 'crash');
    fs.mkdirSync(dir);
    const r = runBuiltCli([MODEL, path.join(dir, 'o.onnx'), '--pass', mod]);
    expect(r.code).toBe(1);
    expect(lines(r.stderr)).toEqual([`onnx-prune: error: pass 'crash' (from module '${mod}') failed: bug in pass`]);
    expect(fs.readdirSync(dir)).toEqual([]);
  });
});
