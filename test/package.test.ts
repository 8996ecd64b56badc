/**
 * The package as users get it: `npm pack`, then `npm install ./onnx-prune-*.tgz` in a fresh folder gives a
 * working `onnx-prune` bin and `require('onnx-prune')`; the README's API example and plugin-pass example run
 * against that installation. Needs `npm run build` first (CI builds before testing) and the npm registry or its
 * cache for the dependencies (`ONNX_PRUNE_OFFLINE=1` skips, with a warning).
 */
import { execFileSync, spawnSync } from 'child_process';
import * as fs from 'fs';
import * as path from 'path';
import { loadModel } from '../src/ir/io';
import { mkTmp, requireBuiltCli, rmTmp } from './helpers/cli';

const ROOT = path.resolve(__dirname, '..');
const OFFLINE = process.env.ONNX_PRUNE_OFFLINE === '1';
const NPM = process.platform === 'win32' ? 'npm.cmd' : 'npm';
const maybe = OFFLINE ? test.skip : test;
if (OFFLINE) process.stderr.write('warning: ONNX_PRUNE_OFFLINE=1: the packed-package tests are skipped\n');

let tmp: string;
let app: string;

/** The fenced code blocks of the README, with their info strings. */
function readmeBlocks(): { lang: string; code: string }[] {
  const text = fs.readFileSync(path.join(ROOT, 'README.md'), 'utf8');
  const out: { lang: string; code: string }[] = [];
  const re = /^```(\w*)\n([\s\S]*?)^```$/gm;
  let m: RegExpExecArray | null;
  while ((m = re.exec(text))) out.push({ lang: m[1], code: m[2] });
  return out;
}

function run(cmd: string, args: string[], cwd: string, env: NodeJS.ProcessEnv = process.env) {
  const r = spawnSync(cmd, args, { cwd, encoding: 'utf8', env: { ...env, ONNX_PRUNE_DEBUG: '' }, timeout: 300_000 });
  if (r.error) throw r.error;
  return { code: r.status ?? -1, stdout: r.stdout, stderr: r.stderr };
}

beforeAll(() => {
  if (OFFLINE) return;
  requireBuiltCli();
  tmp = mkTmp('onnx-prune-pack-');
  execFileSync(NPM, ['pack', '--pack-destination', tmp], { cwd: ROOT, stdio: 'pipe' });
  const tgz = fs.readdirSync(tmp).find((f) => /^onnx-prune-.*\.tgz$/.test(f));
  if (!tgz) throw new Error('npm pack wrote no onnx-prune-*.tgz');
  app = path.join(tmp, 'app');
  fs.mkdirSync(app);
  fs.writeFileSync(path.join(app, 'package.json'), JSON.stringify({ name: 'app', private: true }));
  // As in the repository's .npmrc: onnxruntime-node's optional GPU download cannot reach its host here.
  fs.writeFileSync(path.join(app, '.npmrc'), 'onnxruntime-node-install=skip\n');
  // The onnxruntime-node the repository is tested with (the tarball's range would take the newest).
  const ortVersion = JSON.parse(fs.readFileSync(path.join(ROOT, 'node_modules', 'onnxruntime-node', 'package.json'), 'utf8')).version;
  const r = run(NPM, ['install', path.join(tmp, tgz), `onnxruntime-node@${ortVersion}`, '--prefer-offline', '--no-audit', '--no-fund'], app);
  if (r.code !== 0) throw new Error(`npm install of the packed tarball failed: ${r.stderr.slice(-2000)}`);
  fs.cpSync(path.join(ROOT, 'models'), path.join(app, 'models'), { recursive: true });
}, 300_000);

afterAll(() => { if (tmp) rmTmp(tmp); });

maybe('the installed bin prunes a model and prints its version', () => {
  const bin = path.join(app, 'node_modules', '.bin', 'onnx-prune');
  const v = run(bin, ['--version'], app);
  expect(v.code).toBe(0);
  expect(v.stdout.trim()).toBe(JSON.parse(fs.readFileSync(path.join(ROOT, 'package.json'), 'utf8')).version);
  const r = run(bin, ['models/tiny_cnn.onnx', 'out.onnx', '--ratio', '0.5', '--json'], app);
  expect(r.stderr).toBe('');
  expect(r.code).toBe(0);
  const rep = JSON.parse(r.stdout);
  expect(rep.verify.passed).toBe(true);
  expect(rep.params.after).toBeLessThan(rep.params.before);
  expect(fs.existsSync(path.join(app, 'out.onnx'))).toBe(true);
});

maybe("require('onnx-prune') exposes prune, the stage functions and their types", () => {
  const probe = `const o = require('onnx-prune');
    const want = ['prune', 'analyzeGroups', 'scoreGroups', 'allocate', 'applyPlan', 'verifyPruned', 'loadModel', 'saveModel',
      'Pipeline', 'newContext', 'registerPass', 'pruningPipeline', 'IMPORTANCE_METHODS', 'VerificationError', 'UserError'];
    console.log(JSON.stringify(want.filter((k) => typeof o[k] !== 'function' && typeof o[k] !== 'object')));`;
  const r = run(process.execPath, ['-e', probe], app);
  expect(r.stderr).toBe('');
  expect(JSON.parse(r.stdout)).toEqual([]);
  const dts = fs.readFileSync(path.join(app, 'node_modules', 'onnx-prune', 'dist', 'src', 'index.d.ts'), 'utf8');
  for (const t of ['PruneOptions', 'PruneResult', 'GroupAnalysis', 'PrunePlan', 'Pass', 'PassContext', 'VerifyReport', 'Report']) expect(dts).toMatch(new RegExp(`\\b${t}\\b`));
});

maybe("the README's API example runs against the installed package", () => {
  const block = readmeBlocks().find((b) => b.lang === 'js' && b.code.includes("require('onnx-prune')"));
  expect(block).toBeDefined();
  fs.writeFileSync(path.join(app, 'api-example.js'), block!.code);
  const r = run(process.execPath, ['api-example.js'], app);
  expect(r.stderr).toBe('');
  expect(r.code).toBe(0);
  const [first, second] = r.stdout.trim().split('\n');
  const [removed, passed, groups] = first.split(' ');
  expect(Number(removed)).toBeGreaterThan(0.3);
  expect(passed).toBe('true');
  expect(Number(groups)).toBeGreaterThan(0);
  expect(second).toBe('true');
  expect(fs.existsSync(path.join(app, 'tiny_cnn_50.onnx'))).toBe(true);
});

maybe("the README's plugin-pass example runs with the installed bin", () => {
  const blocks = readmeBlocks();
  const k = blocks.findIndex((b) => b.lang === 'js' && b.code.startsWith('// stamp.js'));
  expect(k).toBeGreaterThanOrEqual(0);
  fs.writeFileSync(path.join(app, 'stamp.js'), blocks[k].code);
  const cmd = blocks.slice(k + 1).find((b) => b.lang === 'sh')!.code.trim();
  expect(cmd).toMatch(/^onnx-prune .* --pass \.\/stamp\.js$/);
  const out = path.join(app, 'stamped.onnx');
  const args = cmd.split(/\s+/).slice(1).map((a) => (a === '/tmp/stamped.onnx' ? out : a));
  const r = run(path.join(app, 'node_modules', '.bin', 'onnx-prune'), args, app);
  expect(r.stderr).toBe('');
  expect(r.code).toBe(0);
  const meta = Object.fromEntries(loadModel(out).proto.metadataProps.map((e) => [e.key, e.value]));
  expect(meta.pruned_ratio).toBe('0.5');
});
