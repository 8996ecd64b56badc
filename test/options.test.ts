/**
 * One list per kind of thing: options (src/pipeline/options.ts) and importance methods (src/score/methods.ts).
 * The config schema, the CLI flags and choices, the passes and the API all come from them.
 */
import * as fs from 'fs';
import * as path from 'path';
import * as ts from 'typescript';
import { sourceFiles } from './helpers/source-files';
import { IMPORTANCE_METHODS } from '../src/score/methods';
import { OPTION_NAMES, OPTION_SPECS, configSchema, validateOptions } from '../src/pipeline/options';
import { lines, mkTmp, rmTmp, runBuiltCli, runCliInProcess } from './helpers/cli';

const ROOT = path.resolve(__dirname, '..');
const MODEL = path.join(ROOT, 'models', 'tiny_cnn.onnx');
let tmp: string;
beforeAll(() => { tmp = mkTmp('onnx-prune-options-'); });
afterAll(() => rmTmp(tmp));

test('the committed config schema is the one the option registry generates (npm run build && npm run gen:schemas)', () => {
  const committed = JSON.parse(fs.readFileSync(path.join(ROOT, 'schemas', 'config.schema.json'), 'utf8'));
  expect(committed).toEqual(JSON.parse(JSON.stringify(configSchema())));
});

test('every option but --config can be set in the config file, under the same name', () => {
  const keys = Object.keys(configSchema().properties ?? {}).filter((k) => k !== '$schema');
  expect(keys.sort()).toEqual(OPTION_NAMES.filter((k) => k !== 'config').sort());
  // The options the old CLI kept to itself are ordinary keys now.
  for (const k of ['tolerance', 'verify-batch', 'verify-seq', 'plan', 'json', 'dim', 'shapes']) expect(keys).toContain(k);
});

test('the importance choices everywhere are the registry\'s', async () => {
  const names = IMPORTANCE_METHODS.map((m) => m.name);
  expect((configSchema().properties!.importance as { enum: string[] }).enum).toEqual(names);
  expect(OPTION_SPECS.importance.choices).toEqual(names);
  const help = runBuiltCli(['--help']);
  expect(help.code).toBe(0);
  const line = help.stdout.replace(/\s+/g, ' ');
  expect(line).toContain(`[choices: ${names.map((n) => `"${n}"`).join(', ')}]`);
  for (const n of names) expect(validateOptions({ importance: n }).importance).toBe(n);
});

/** String literals of a TypeScript file. */
function stringLiterals(file: string): string[] {
  const sf = ts.createSourceFile(file, fs.readFileSync(file, 'utf8'), ts.ScriptTarget.ES2022, true);
  const out: string[] = [];
  const stack: ts.Node[] = [sf];
  while (stack.length) {
    const n = stack.pop()!;
    if (ts.isStringLiteral(n) || ts.isNoSubstitutionTemplateLiteral(n)) out.push(n.text);
    n.forEachChild((c) => { stack.push(c); });
  }
  return out;
}


test('no source file but the registry lists the importance methods', () => {
  const names = new Set<string>(IMPORTANCE_METHODS.map((m) => m.name));
  const offenders: string[] = [];
  for (const f of sourceFiles()) {
    if (f.endsWith(path.join('score', 'methods.ts'))) continue;
    const mentioned = new Set(stringLiterals(f).filter((s) => names.has(s)));
    // A method's own implementation names itself (activation.ts serves wanda and fluctuation, and reads 'l1'
    // profiles); a list of the methods names most of them.
    if (mentioned.size >= 4) offenders.push(`${path.relative(ROOT, f)}: ${[...mentioned].join(', ')}`);
  }
  expect(offenders).toEqual([]);
});

test('options the config file sets reach the passes: tolerance, verify-batch and verify-seq from --config', async () => {
  const cfg = path.join(tmp, 'cfg.json');
  fs.writeFileSync(cfg, JSON.stringify({ ratio: 0.5, tolerance: 0.002, 'verify-batch': 3, seed: 4 }));
  const r = await runCliInProcess([MODEL, path.join(tmp, 'a.onnx'), '--config', cfg, '--json']);
  expect(r.code).toBe(0);
  const rep = JSON.parse(r.stdout);
  expect(rep.verify.rtol).toBe(0.002);
  expect(rep.verify.inputs.seed).toBe(4);
  expect(Object.values(rep.verify.inputs.shapes as Record<string, number[]>)[0][0]).toBe(3);
  // The command line overrides the file.
  const r2 = await runCliInProcess([MODEL, path.join(tmp, 'b.onnx'), '--config', cfg, '--tolerance', '0.003', '--json']);
  expect(JSON.parse(r2.stdout).verify.rtol).toBe(0.003);
});

test('bad options in code are the same one-line errors as flags', async () => {
  const bad = await runCliInProcess([MODEL, path.join(tmp, 'c.onnx'), '--ratio', '0.5', '--verify-seq', '0']);
  expect(bad.code).toBe(1);
  expect(lines(bad.stderr)).toEqual(['onnx-prune: error: --verify-seq: must be ≥ 1, got 0']);
});

test('the README documents every option and every importance method', () => {
  const readme = fs.readFileSync(path.join(ROOT, 'README.md'), 'utf8');
  const reference = readme.slice(readme.indexOf('## CLI reference'), readme.indexOf('## Using it from code'));
  const missing = OPTION_NAMES.filter((k) => !reference.includes(`--${k}`) && !reference.includes(`--no-${k}`));
  expect(missing).toEqual([]);
  const methods = /--importance M\s+(.*)/.exec(reference)![1];
  expect(methods.split('|').map((s) => s.replace('(default)', '').trim())).toEqual(IMPORTANCE_METHODS.map((m) => m.name));
});
