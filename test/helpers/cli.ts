/**
 * Running the CLI from tests: in-process through runCli (no build needed), or the real built binary
 * (`node dist/src/cli/main.js`, which CI builds before `npm test`; a missing build fails loudly).
 */
import { spawnSync } from 'child_process';
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { runCli } from '../../src/cli/cli';

export const REPO_ROOT = path.resolve(__dirname, '../..');
export const SHARED_MODELS = path.resolve(REPO_ROOT, '../shared/models');
export const BUILT_CLI = path.join(REPO_ROOT, 'dist', 'src', 'cli', 'main.js');

export interface CliResult {
  code: number;
  stdout: string;
  stderr: string;
}

/** Runs `onnx-prune ARGS` in this process, capturing stdout/stderr. */
export async function runCliInProcess(args: string[]): Promise<CliResult> {
  let stdout = '';
  let stderr = '';
  const out = process.stdout.write;
  const err = process.stderr.write;
  process.stdout.write = ((chunk: string | Uint8Array) => { stdout += chunk.toString(); return true; }) as typeof out;
  process.stderr.write = ((chunk: string | Uint8Array) => { stderr += chunk.toString(); return true; }) as typeof err;
  try {
    const code = await runCli(args);
    return { code, stdout, stderr };
  } finally {
    process.stdout.write = out;
    process.stderr.write = err;
  }
}

/** Throws a loud error when the CLI has not been built (CI runs `npm run build` before `npm test`). */
export function requireBuiltCli(): string {
  if (!fs.existsSync(BUILT_CLI)) {
    throw new Error(`the built CLI ${BUILT_CLI} is missing: run \`npm run build\` before \`npm test\``);
  }
  return BUILT_CLI;
}

/** Spawns the built CLI (`node dist/src/cli/main.js ARGS`). */
export function runBuiltCli(args: string[], opts: { cwd?: string; timeoutMs?: number } = {}): CliResult {
  const cli = requireBuiltCli();
  const r = spawnSync(process.execPath, [cli, ...args], {
    cwd: opts.cwd ?? REPO_ROOT,
    encoding: 'utf8',
    timeout: opts.timeoutMs ?? 120_000,
    env: envWithoutDebug(),
  });
  if (r.error) throw r.error;
  return { code: r.status ?? -1, stdout: r.stdout, stderr: r.stderr };
}

function envWithoutDebug(): NodeJS.ProcessEnv {
  const env = { ...process.env };
  delete env.ONNX_PRUNE_DEBUG;
  return env;
}

/** Non-empty lines of a stream's text. */
export function lines(text: string): string[] {
  return text.split('\n').filter((l) => l.trim() !== '');
}

/** A fresh temp folder; remove it with `rmTmp`. */
export function mkTmp(prefix = 'onnx-prune-test-'): string {
  return fs.mkdtempSync(path.join(os.tmpdir(), prefix));
}

export function rmTmp(dir: string): void {
  fs.rmSync(dir, { recursive: true, force: true });
}

/** Every `.onnx` file in ../shared/models (sorted). */
export function sharedModels(): string[] {
  return fs.readdirSync(SHARED_MODELS).filter((f) => f.endsWith('.onnx')).sort().map((f) => path.join(SHARED_MODELS, f));
}
