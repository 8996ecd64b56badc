/** Config files (schemas/config.schema.json) and command-line options validated into one object. */
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { loadConfig, resolveOptions, validateOptions } from '../src/pipeline/options';

const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'cfg-'));
afterAll(() => fs.rmSync(tmp, { recursive: true, force: true }));

function write(name: string, content: unknown): string {
  const p = path.join(tmp, name);
  fs.writeFileSync(p, typeof content === 'string' ? content : JSON.stringify(content));
  return p;
}

describe('config file', () => {
  const calib = write('digits.bin', 'x');

  test('a full config is read, typed and its paths resolved against its folder', () => {
    const file = write('prune.json', {
      $schema: './config.schema.json', importance: 'wanda', allocation: 'global', target: 'flops', ratio: 0.5,
      'round-to': 8, 'max-ratio': 0.8, protect: ['conv1'], 'exclude-op': ['ConvTranspose'], calib: 'digits.bin',
      'calib-shape': '512,1,28,28', 'calib-dtype': 'float32', 'calib-batch': 32, seed: 7, compensate: false,
    });
    expect(loadConfig(file)).toEqual({
      importance: 'wanda', allocation: 'global', target: 'flops', ratio: 0.5, roundTo: 8, maxRatio: 0.8, protect: ['conv1'],
      excludeOp: ['ConvTranspose'], calib, calibShape: [512, 1, 28, 28], calibDtype: 'float32', calibBatch: 32, seed: 7, compensate: false,
    });
  });

  test('bad configs are one-line user errors', () => {
    const bad = (content: unknown) => () => loadConfig(write('bad.json', content));
    expect(bad({ ratio: 0.5, importanc: 'l2' })).toThrow(/config '.*bad\.json': unknown option 'importanc' \(did you mean 'importance'\?\)/);
    expect(bad({ roundTo: 8 })).toThrow(/unknown option 'roundTo' \(did you mean 'round-to'\?\)/);
    expect(bad({ ratio: 1.5 })).toThrow(/bad\.json': ratio: must be < 1, got 1\.5/);
    expect(bad({ ratio: -0.1 })).toThrow(/ratio: must be ≥ 0, got -0\.1/);
    expect(bad({ ratio: '0.5' })).toThrow(/ratio: expected number, got string/);
    expect(bad({ importance: 'magic' })).toThrow(/importance: must be one of "l1", "l2"/);
    expect(bad({ 'round-to': 2.5 })).toThrow(/round-to.*expected integer/);
    expect(bad({ calib: 'missing.npy' })).toThrow(/bad\.json': calib: calibration file '.*missing\.npy' does not exist/);
    expect(bad({ 'calib-shape': '12,x' })).toThrow(/calib-shape.*does not match/);
    expect(bad('{ "ratio": 0.5, }')).toThrow(/is not valid JSON/);
    expect(bad('[1, 2]')).toThrow(/must hold a JSON object/);
    expect(() => loadConfig(path.join(tmp, 'none.json'))).toThrow(/config file '.*none\.json' does not exist/);
    for (const f of [bad({ ratio: 1.5 }), bad({ x: 1 })]) {
      try {
        f();
      } catch (e) {
        expect((e as Error).name).toBe('UserError');
        expect((e as Error).message).not.toContain('\n');
      }
    }
  });

  test('command-line options override the file and are checked the same way', () => {
    const file = write('base.json', { importance: 'l1', ratio: 0.3, 'round-to': 4 });
    expect(resolveOptions({ ratio: 0.5, importance: undefined }, file)).toEqual({ importance: 'l1', ratio: 0.5, roundTo: 4 });
    expect(() => validateOptions({ ratio: 1.5 })).toThrow(/^--ratio: must be < 1, got 1\.5$/);
    expect(() => validateOptions({ calib: path.join(tmp, 'nope.bin') })).toThrow(/--calib: calibration file '.*nope\.bin' does not exist/);
    expect(() => validateOptions({ allocation: 'best' })).toThrow(/^--allocation: must be one of "uniform", "global", "search", got "best"$/);
    expect(validateOptions({ 'calib-shape': '4,10', protect: ['a', 'b'] })).toEqual({ calibShape: [4, 10], protect: ['a', 'b'] });
  });
});
