/**
 * The fuzz harness: materializes generated cases in a temp folder, runs the *built* CLI on each one in a child
 * process (time limit, peak memory), and classifies the outcome:
 *
 * - internal:         exit 2, a signal, another exit code, or a failing run (exit 1/3) whose stderr is not exactly
 *                     one `onnx-prune: error:` line (warnings aside), or control characters on stderr
 * - hang:             over the CPU-time limit, or 4× that in wall time (the process group is killed)
 * - memory:           peak resident memory over the budget (2 GiB) for inputs under 64 MB (killed at the hard cap)
 * - leftover:         after a non-zero exit, any new or changed file in the case folder (partial outputs, temp
 *                     files, a written --save-plan); at any exit, files left in the run's TMPDIR
 * - escape:           bytes of the secret planted outside the case folder in any output (or stdout/stderr); a file
 *                     outside the case folder changed; an input file modified, replaced or removed
 * - unloadable:       exit 0 and a model written that onnxruntime cannot load (checked in a child process)
 * - nondeterministic: exit 0 and a second run of the same case gives another exit code or other bytes
 * - nonfinite:        exit 0 and the written model gives NaN/Inf on seeded inputs where the input model does not
 *
 * Folder of one case: `work/` (inputs, outputs; the command runs here), `outside/` (secret.bin and anything else the
 * command must not touch), `tmp/` (TMPDIR). Case folders are removed after the run unless kept for a failure.
 */
import { spawn, spawnSync } from 'child_process';
import { createHash, randomBytes } from 'crypto';
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { FAMILIES, generateCase, type Family, type GenContext, type PlanFixture } from './generators';
import { CLASSES, type CaseFile, type FailureClass, type Finding, type FuzzCase, type Outcome } from './types';

export { CLASSES, FAMILIES };
export type { Family, FuzzCase, Outcome, Finding, FailureClass };

const MiB = 1 << 20;
const GiB = 1 << 30;

/** The repo root (from bench/fuzz under ts-jest, or dist/bench/fuzz when built). */
export const REPO = [path.resolve(__dirname, '../..'), path.resolve(__dirname, '../../..')].find((p) => fs.existsSync(path.join(p, 'package.json')) && fs.existsSync(path.join(p, 'models'))) ?? path.resolve(__dirname, '../..');
export const BUILT_CLI = path.join(REPO, 'dist', 'src', 'cli', 'main.js');
export const ORT_CHECK = path.join(REPO, 'dist', 'bench', 'fuzz', 'ort-check.js');
/** ../shared/models beside the repo; ONNX_PRUNE_SHARED overrides. */
export const SHARED = process.env.ONNX_PRUNE_SHARED ?? path.resolve(REPO, '../shared/models');

export interface HarnessOptions {
  seed: number;
  /** Folder for this run's case folders (created; removed by `cleanup`). */
  root: string;
  cli?: string;
  /** Per-run time limit (ms). */
  timeoutMs?: number;
  /** Peak memory budget for inputs under 64 MB (bytes). */
  memoryBudget?: number;
  /** The CLI is killed above this resident size (bytes), to protect the machine. */
  hardCap?: number;
  concurrency?: number;
  /** Keep the folders of failing cases (restored to their state before the run, to reproduce). */
  keepFailures?: boolean;
  /** Re-run each exit-0 case and compare its outputs (default on). */
  determinism?: boolean;
  /** Only these families. */
  families?: readonly Family[];
  /** Make the plan fixtures with the CLI (default on; off for a stand-in CLI). */
  plans?: boolean;
  /** Progress callback. */
  onOutcome?: (o: Outcome, done: number, total: number) => void;
}

const SECRET_BLOCK = 4096;
const SECRET_SIZE = 2 * MiB;

// ------------------------------------------------------------------------------------------ context

/** Base models for the generators: models/ of the repo, and a few small shared models when present. */
export function loadBases(): Record<string, Uint8Array> {
  const bases: Record<string, Uint8Array> = {};
  for (const n of ['tiny_cnn', 'tiny_mlp']) bases[n] = fs.readFileSync(path.join(REPO, 'models', `${n}.onnx`));
  for (const n of ['mnist_lenet_bn', 'llama_s', 'mobilenet_v3_small_050']) {
    const p = path.join(SHARED, `${n}.onnx`);
    if (fs.existsSync(p)) bases[n] = fs.readFileSync(p);
  }
  return bases;
}

/** Plans written by the CLI itself (`--save-plan`) for the plan family to edit. */
export function makePlans(cli: string, root: string, bases: Record<string, Uint8Array>): PlanFixture[] {
  const dir = path.join(root, 'plans');
  fs.mkdirSync(dir, { recursive: true });
  const specs: [string, string[]][] = [
    ['tiny_cnn', []], ['tiny_mlp', ['--importance', 'wanda']], ['mnist_lenet_bn', ['--importance', 'l1']],
    // A least-squares reconstruction (random calibration): the plan refers to its .refit.npz sidecar.
    ['tiny_mlp', ['--reconstruct', 'ls', '--calib-samples', '4']],
  ];
  const out: PlanFixture[] = [];
  for (const [base, args] of specs) {
    if (!bases[base]) continue;
    const model = path.join(dir, `${base}.onnx`);
    fs.writeFileSync(model, bases[base]);
    const plan = path.join(dir, `${base}.plan.json`);
    const r = spawnSync(process.execPath, [cli, model, path.join(dir, `${base}.out.onnx`), '--ratio', '0.3', '--save-plan', plan, '-q', ...args], { encoding: 'utf8', env: cliEnv(dir) });
    if (r.status !== 0 || !fs.existsSync(plan)) throw new Error(`cannot make the plan fixture for ${base}: exit ${r.status}: ${r.stderr}`);
    const side = path.join(dir, `${base}.plan.refit.npz`);
    const sidecar = fs.existsSync(side) ? new Uint8Array(fs.readFileSync(side)) : undefined;
    if (sidecar) fs.rmSync(side);
    out.push({ base, text: fs.readFileSync(plan, 'utf8'), args: sidecar ? [] : args.filter((a) => a !== 'wanda' && a !== 'l1' && a !== '--importance'), sidecar });
  }
  return out;
}

function cliEnv(tmp: string): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = { ...process.env, TMPDIR: tmp };
  delete env.ONNX_PRUNE_DEBUG;
  delete env.NODE_OPTIONS;
  return env;
}

// ------------------------------------------------------------------------------------------ case folders

/** Creates the case folder. Returns false when a special file cannot be made here (mkfifo/mknod refused). */
export function materialize(c: FuzzCase, dir: string, secret: Uint8Array): boolean {
  fs.rmSync(dir, { recursive: true, force: true });
  for (const d of ['work', 'outside', 'tmp']) fs.mkdirSync(path.join(dir, d), { recursive: true });
  fs.writeFileSync(path.join(dir, 'outside', 'secret.bin'), secret);
  for (const f of c.files) {
    const p = path.join(dir, f.path);
    fs.mkdirSync(path.dirname(p), { recursive: true });
    switch (f.kind) {
      case 'file': fs.writeFileSync(p, f.data ?? ''); break;
      case 'dir': fs.mkdirSync(p, { recursive: true }); break;
      case 'symlink': fs.symlinkSync(f.target!, p); break;
      case 'fifo': if (spawnSync('mkfifo', [p]).status !== 0) return false; break;
      case 'chardev': if (spawnSync('mknod', [p, 'c', String(f.dev![0]), String(f.dev![1])]).status !== 0) return false; break;
    }
  }
  return true;
}

interface Entry {
  kind: string;
  size: number;
  hash?: string;
  target?: string;
  rdev?: number;
}

function sha256(p: string): string {
  return createHash('sha256').update(fs.readFileSync(p)).digest('hex');
}

/** Every path under `dir` (lstat: no symlink followed, no FIFO opened), with a hash of each regular file. */
export function snapshot(dir: string): Map<string, Entry> {
  const out = new Map<string, Entry>();
  const stack = [''];
  while (stack.length) {
    const rel = stack.pop()!;
    const abs = path.join(dir, rel);
    let names: string[];
    try {
      names = fs.readdirSync(abs);
    } catch {
      continue;
    }
    for (const n of names) {
      const r = rel ? `${rel}/${n}` : n;
      const p = path.join(dir, r);
      let st: fs.Stats;
      try {
        st = fs.lstatSync(p);
      } catch {
        continue;
      }
      if (st.isDirectory()) {
        out.set(r, { kind: 'dir', size: 0 });
        stack.push(r);
      } else if (st.isFile()) out.set(r, { kind: 'file', size: st.size, hash: sha256(p) });
      else if (st.isSymbolicLink()) out.set(r, { kind: 'symlink', size: 0, target: fs.readlinkSync(p) });
      else out.set(r, { kind: st.isFIFO() ? 'fifo' : st.isCharacterDevice() ? 'chardev' : st.isSocket() ? 'socket' : 'other', size: 0, rdev: st.rdev });
    }
  }
  return out;
}

function sameEntry(a: Entry, b: Entry): boolean {
  return a.kind === b.kind && a.hash === b.hash && a.target === b.target && a.rdev === b.rdev && (a.kind !== 'file' || a.size === b.size);
}

function describe(e: Entry | undefined): string {
  if (!e) return 'missing';
  return e.kind === 'file' ? `file of ${e.size} bytes` : e.kind === 'symlink' ? `symlink to ${e.target}` : e.kind;
}

// ------------------------------------------------------------------------------------------ secret

/** The secret: one random block (unique per run) repeated; any 16-byte window of it is found by `findSecret`. */
export function makeSecret(): Uint8Array {
  const block = randomBytes(SECRET_BLOCK);
  const out = Buffer.alloc(SECRET_SIZE);
  for (let i = 0; i < SECRET_SIZE; i += SECRET_BLOCK) block.copy(out, i);
  return out;
}

class SecretIndex {
  private readonly keys = new Map<number, number[]>();

  constructor(private readonly secret: Uint8Array) {
    const b = Buffer.from(secret.buffer, secret.byteOffset, SECRET_BLOCK + 16);
    for (let i = 0; i < SECRET_BLOCK; i++) {
      const k = b.readUIntLE(i, 6);
      const list = this.keys.get(k);
      if (list) list.push(i);
      else this.keys.set(k, [i]);
    }
  }

  /** Offset in `data` of a 16-byte window of the secret, or -1. */
  find(data: Uint8Array): number {
    const d = Buffer.from(data.buffer, data.byteOffset, data.byteLength);
    for (let i = 0; i + 16 <= d.length; i++) {
      const starts = this.keys.get(d.readUIntLE(i, 6));
      if (!starts) continue;
      for (const s of starts) {
        let k = 6;
        while (k < 16 && d[i + k] === this.secret[s + k]) k++;
        if (k === 16) return i;
      }
    }
    return -1;
  }
}

// ------------------------------------------------------------------------------------------ running

interface RunResult {
  code: number | null;
  signal: string | null;
  ms: number;
  peakBytes: number;
  timedOut: boolean;
  memoryKilled: boolean;
  stdout: string;
  stderr: string;
  /** The complete streams, capped (for the secret search). */
  rawOut: Buffer;
}

const TIME = '/usr/bin/time';
const HAVE_TIME = fs.existsSync(TIME);
/** util-linux prlimit: cases with a file size limit (EFBIG) run under it. */
const PRLIMIT = '/usr/bin/prlimit';
const HAVE_PRLIMIT = fs.existsSync(PRLIMIT);
const STREAM_CAP = 4 * MiB;
/** Wall-time limit as a multiple of the CPU-time limit. */
const WALL_FACTOR = 4;

/** Clock ticks per second of /proc/<pid>/stat times (USER_HZ: 100 on Linux). */
const TICKS = 100;

/** CPU time (user + system, all threads) of `pid` in ms, from /proc/<pid>/stat. */
function procCpuMs(pid: number): number | undefined {
  try {
    const s = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
    // Fields after the command name (which may hold spaces, in parentheses): state is field 3, utime 14, stime 15.
    const f = s.slice(s.lastIndexOf(')') + 2).split(' ');
    return ((Number(f[11]) + Number(f[12])) * 1000) / TICKS;
  } catch {
    return undefined;
  }
}

function procStatus(pid: number): { rss: number; hwm: number } | undefined {
  try {
    const s = fs.readFileSync(`/proc/${pid}/status`, 'utf8');
    const kb = (k: string) => Number(new RegExp(`^${k}:\\s+(\\d+)`, 'm').exec(s)?.[1] ?? 0) * 1024;
    return { rss: kb('VmRSS'), hwm: kb('VmHWM') };
  } catch {
    return undefined;
  }
}

/** The node process under /usr/bin/time (and prlimit, which execs in place). */
function childPid(pid: number): number | undefined {
  try {
    const first = fs.readFileSync(`/proc/${pid}/task/${pid}/children`, 'utf8').trim().split(/\s+/)[0];
    return first ? Number(first) : undefined;
  } catch {
    return undefined;
  }
}

/**
 * Runs the CLI in `cwd` (its own process group): killed after `timeoutMs` of CPU time, after WALL_FACTOR ×
 * `timeoutMs` of wall time (a process blocked without using CPU), or above `hardCap` resident bytes. CPU time, not
 * wall time, is the limit so that a busy machine (jest workers beside the fuzz run on two cores) does not turn a
 * slow but progressing case into a hang. Peak memory from GNU time's maximum resident size when /usr/bin/time
 * exists, else from polling VmHWM.
 */
function runCli(cli: string, args: string[], cwd: string, tmp: string, timeFile: string, timeoutMs: number, hardCap: number, fsize?: number): Promise<RunResult> {
  return new Promise((resolve) => {
    // prlimit (a file size limit) goes inside time, which must still write its own report.
    const node = fsize !== undefined ? [PRLIMIT, `--fsize=${fsize}`, '--', process.execPath] : [process.execPath];
    const [cmd, ...argv] = HAVE_TIME ? [TIME, '-f', '%e %M', '-o', timeFile, ...node, cli, ...args] : [...node, cli, ...args];
    const t0 = Date.now();
    const child = spawn(cmd, argv, { cwd, env: cliEnv(tmp), detached: true, stdio: ['ignore', 'pipe', 'pipe'] });
    const out: Buffer[] = [];
    const err: Buffer[] = [];
    let outLen = 0;
    let errLen = 0;
    child.stdout!.on('data', (d: Buffer) => { if (outLen < STREAM_CAP) out.push(d); outLen += d.length; });
    child.stderr!.on('data', (d: Buffer) => { if (errLen < STREAM_CAP) err.push(d); errLen += d.length; });
    let timedOut = false;
    let memoryKilled = false;
    let polled = 0;
    const kill = () => {
      try {
        process.kill(-child.pid!, 'SIGKILL');
      } catch {
        /* already gone */
      }
    };
    const poll = setInterval(() => {
      const pid = HAVE_TIME ? childPid(child.pid!) : child.pid!;
      if (!pid) return;
      const st = procStatus(pid);
      if (!st) return;
      polled = Math.max(polled, st.hwm);
      if (st.rss > hardCap && !memoryKilled) {
        memoryKilled = true;
        kill();
      }
      const cpu = procCpuMs(pid);
      if (cpu !== undefined && cpu > timeoutMs && !timedOut && !memoryKilled) {
        timedOut = true;
        kill();
      }
    }, 50);
    const timer = setTimeout(() => {
      timedOut = true;
      kill();
    }, timeoutMs * WALL_FACTOR);
    child.on('close', (code, signal) => {
      clearInterval(poll);
      clearTimeout(timer);
      let peak = polled;
      let elapsed = Date.now() - t0;
      let sig = signal as string | null;
      let exit = code;
      if (HAVE_TIME) {
        try {
          const lines = fs.readFileSync(timeFile, 'utf8').trim().split('\n');
          const [secs, kb] = lines[lines.length - 1].split(' ').map(Number);
          peak = Math.max(peak, kb * 1024 || 0);
          if (Number.isFinite(secs)) elapsed = secs * 1000;
          const m = /terminated by signal (\d+)/.exec(lines.join('\n'));
          if (m) {
            sig = Object.entries(os.constants.signals).find(([, n]) => n === Number(m[1]))?.[0] ?? `signal ${m[1]}`;
            exit = null;
          }
          fs.rmSync(timeFile, { force: true });
        } catch {
          /* time killed too */
        }
      }
      // The timer may fire late when the harness is busy: only a run that we killed is a hang.
      if (timedOut && exit !== null && !memoryKilled) timedOut = false;
      if (timedOut || memoryKilled) elapsed = Date.now() - t0;
      const rawOut = Buffer.concat([...out, ...err]);
      resolve({
        code: exit,
        signal: sig,
        ms: elapsed,
        peakBytes: peak,
        timedOut,
        memoryKilled,
        stdout: Buffer.concat(out).toString('utf8'),
        stderr: Buffer.concat(err).toString('utf8'),
        rawOut,
      });
    });
  });
}

interface OrtCheck {
  model: string;
  loaded: boolean;
  error?: string;
  finite?: boolean;
  refFinite?: boolean;
}

/** Loads each model in onnxruntime (in a child process: a crash there must not take the harness down). */
function ortCheck(items: { model: string; ref?: string }[], cwd: string, timeoutMs: number): Promise<OrtCheck[]> {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, [ORT_CHECK, JSON.stringify(items)], { cwd, env: cliEnv(os.tmpdir()), detached: true, stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    let err = '';
    child.stdout!.on('data', (d: Buffer) => { out += d.toString(); });
    child.stderr!.on('data', (d: Buffer) => { err += d.toString(); });
    const timer = setTimeout(() => {
      try {
        process.kill(-child.pid!, 'SIGKILL');
      } catch {
        /* gone */
      }
    }, timeoutMs);
    child.on('close', (code, signal) => {
      clearTimeout(timer);
      // The last line per model counts (a load line, then one with the outputs' finiteness).
      const byModel = new Map<string, OrtCheck>();
      for (const line of out.split('\n')) {
        if (line.startsWith('{')) {
          const r = JSON.parse(line) as OrtCheck;
          byModel.set(r.model, r);
        }
      }
      const results: OrtCheck[] = [];
      for (const it of items) {
        const r = byModel.get(it.model);
        if (r) results.push(r);
        else {
          // The checker crashed or hung while loading this model: unloadable too.
          results.push({ model: it.model, loaded: false, error: `onnxruntime check ${signal ? `killed by ${signal}` : `exited ${code}`}: ${err.split('\n')[0]}` });
          break;
        }
      }
      resolve(results);
    });
  });
}

// ------------------------------------------------------------------------------------------ classification

const CONTROL = /[\x00-\x08\x0b-\x1f\x7f\x9b]/;

/** The first stderr line that is not a warning (else the first line). */
function firstLine(s: string): string {
  const lines = s.split('\n').filter((l) => l.trim() !== '');
  return lines.find((l) => !l.startsWith('onnx-prune: warning:')) ?? lines[0] ?? '';
}

function printable(s: string, max = 300): string {
  const j = JSON.stringify(s.length > max ? `${s.slice(0, max)}…` : s);
  return j.slice(1, -1);
}

export function shellQuote(a: string): string {
  if (/^[A-Za-z0-9_\-.,/=:@%+]+$/.test(a)) return a;
  if (!/[\x00-\x1f\x7f-\uffff']/.test(a)) return `'${a}'`;
  let s = "$'";
  for (const ch of a) {
    const c = ch.codePointAt(0)!;
    if (ch === "'" || ch === '\\') s += `\\${ch}`;
    else if (c < 0x20 || c === 0x7f) s += `\\x${c.toString(16).padStart(2, '0')}`;
    else s += ch;
  }
  return `${s}'`;
}

function region(rel: string): 'work' | 'outside' | 'tmp' | 'root' {
  const top = rel.split('/')[0];
  return top === 'work' || top === 'outside' || top === 'tmp' ? top : 'root';
}

/** Paths (relative to the case folder) of the case's inputs and their parent folders. */
function roles(c: FuzzCase): Map<string, CaseFile['role']> {
  const m = new Map<string, CaseFile['role']>();
  m.set('outside/secret.bin', 'outside');
  for (const f of c.files) {
    m.set(f.path, f.role);
    let d = path.posix.dirname(f.path);
    while (d !== '.' && d !== 'work' && d !== 'outside') {
      if (!m.has(d)) m.set(d, 'input');
      d = path.posix.dirname(d);
    }
  }
  return m;
}

function inputBytes(c: FuzzCase): number {
  return c.files.reduce((a, f) => a + (f.kind === 'file' ? (typeof f.data === 'string' ? Buffer.byteLength(f.data) : f.data?.length ?? 0) : 0), 0);
}

interface Classified {
  findings: Finding[];
  /** New or changed regular files under work/ (relative to work/). */
  written: string[];
}

function classify(c: FuzzCase, r: RunResult, before: Map<string, Entry>, after: Map<string, Entry>, dir: string, secret: SecretIndex, budget: number): Classified {
  const findings: Finding[] = [];
  const add = (cls: FailureClass, detail: string) => findings.push({ cls, detail });
  if (r.timedOut) add('hang', `no exit after ${r.ms} ms wall time (killed at the CPU- or wall-time limit)`);
  if (r.memoryKilled) add('memory', `killed above the hard cap (peak ≥ ${(r.peakBytes / GiB).toFixed(2)} GiB)`);
  else if (r.peakBytes > budget && inputBytes(c) < 64 * MiB) add('memory', `peak ${(r.peakBytes / GiB).toFixed(2)} GiB > ${(budget / GiB).toFixed(1)} GiB budget`);
  const killedByUs = r.timedOut || r.memoryKilled;
  if (!killedByUs) {
    if (r.signal) add('internal', `killed by ${r.signal}`);
    else if (r.code === 2) add('internal', `exit 2: ${printable(firstLine(r.stderr))}`);
    else if (r.code !== 0 && r.code !== 1 && r.code !== 3) add('internal', `exit ${r.code}: ${printable(firstLine(r.stderr))}`);
    else if (r.code === 1 || r.code === 3) {
      const lines = r.stderr.split('\n').filter((l) => l.trim() !== '' && !l.startsWith('onnx-prune: warning:'));
      if (lines.length !== 1 || !lines[0].startsWith('onnx-prune: error:')) {
        const trace = lines.some((l) => /^\s+at /.test(l)) ? ' (a stack trace: uncaught exception)' : '';
        add('internal', `exit ${r.code} with ${lines.length} lines on stderr, not one error line${trace}: ${printable(lines.slice(0, 3).join(' ⏎ '))}`);
      } else if (/:\s*$/.test(lines[0])) {
        add('internal', `exit ${r.code} with a cut-off error line: ${printable(lines[0])}`);
      }
    }
    if (CONTROL.test(r.stderr)) add('internal', `control character on stderr: ${printable(r.stderr.split('\n').find((l) => CONTROL.test(l)) ?? '')}`);
  }

  const role = roles(c);
  const ignore = new Set(c.ignore ?? []);
  const written: string[] = [];
  const failed = r.code !== 0;
  const allowedAfterFailure = new Set(r.code === 3 ? (c.keepInvalid ?? []).flatMap((p) => [`work/${p}`, `work/${p}.data`]) : []);
  for (const p of new Set([...before.keys(), ...after.keys()])) {
    if (ignore.has(p)) continue;
    const b = before.get(p);
    const a = after.get(p);
    if (b && a && sameEntry(b, a)) continue;
    const reg = region(p);
    if (reg === 'outside' || reg === 'root') {
      add('escape', `${p} changed outside the case's work folder (${describe(b)} → ${describe(a)})`);
      continue;
    }
    if (reg === 'tmp') {
      // onnxruntime's own telemetry files (1DS SDK: `.ses`, `mat-debug-<pid>.log`) are not the project's.
      if (/^tmp\/(\.ses|mat-debug-\d+\.log)$/.test(p)) continue;
      // A process we killed with SIGKILL (hang, memory: already a finding) cannot remove its temp files.
      if (a && !killedByUs) add('leftover', `temp file left in TMPDIR: ${p} (${describe(a)})`);
      continue;
    }
    const rl = role.get(p);
    if (a?.kind === 'file') written.push(p.slice('work/'.length));
    if (b && rl === 'input') {
      add('escape', `input ${p} modified (${describe(b)} → ${describe(a)})`);
      continue;
    }
    if (failed && killedByUs && a?.kind === 'file' && /\.onnx-prune-\d+-[0-9a-f]+\.tmp$/.test(p)) {
      // Our own temp file (named by the write path) left by the SIGKILL of a hang or memory kill: not a second finding.
    } else if (failed && !allowedAfterFailure.has(p)) {
      add('leftover', `${b ? 'changed' : 'new'} after exit ${r.code ?? r.signal}: ${p} (${describe(a)})`);
    } else if (!failed && b && rl !== 'existing' && a?.kind !== 'dir') {
      add('escape', `${p} replaced (${describe(b)} → ${describe(a)})`);
    }
  }
  // Secret bytes in anything the command wrote.
  const scan: [string, Uint8Array][] = [['stdout/stderr', r.rawOut]];
  for (const w of written) {
    try {
      scan.push([`work/${w}`, fs.readFileSync(path.join(dir, 'work', w))]);
    } catch {
      /* vanished */
    }
  }
  for (const [name, data] of scan) {
    const at = secret.find(data);
    if (at >= 0) add('escape', `bytes of outside/secret.bin in ${name} (at offset ${at})`);
  }
  return { findings, written };
}

// ------------------------------------------------------------------------------------------ one case

export interface RunContext {
  opts: Required<Omit<HarnessOptions, 'onOutcome' | 'families' | 'plans'>> & Pick<HarnessOptions, 'onOutcome' | 'families'>;
  gen: GenContext;
  secret: Uint8Array;
  index: SecretIndex;
}

export function caseDir(ctx: RunContext, c: FuzzCase): string {
  return path.join(ctx.opts.root, 'cases', c.id);
}

export function reproCommand(ctx: RunContext, c: FuzzCase): string {
  const dir = caseDir(ctx, c);
  const limit = c.fsize !== undefined ? `prlimit --fsize=${c.fsize} -- ` : '';
  return `cd ${shellQuote(path.join(dir, 'work'))} && TMPDIR=${shellQuote(path.join(dir, 'tmp'))} ${limit}node ${shellQuote(ctx.opts.cli)} ${c.args.map(shellQuote).join(' ')}`;
}

export function generate(ctx: RunContext, index: number): FuzzCase {
  const id = `${ctx.opts.seed}-${index}`;
  return generateCase(ctx.opts.seed, index, { ...ctx.gen, caseDir: path.join(ctx.opts.root, 'cases', id) }, ctx.opts.families ?? FAMILIES);
}

export async function runCase(ctx: RunContext, c: FuzzCase): Promise<Outcome> {
  const o = ctx.opts;
  const dir = caseDir(ctx, c);
  const base: Outcome = { case: c, code: null, ms: 0, peakBytes: 0, stdout: '', stderr: '', findings: [], command: reproCommand(ctx, c) };
  if ((c.fsize !== undefined && !HAVE_PRLIMIT) || !materialize(c, dir, ctx.secret)) {
    fs.rmSync(dir, { recursive: true, force: true });
    return { ...base, stderr: 'skipped: cannot make a FIFO or device, or limit the file size here' };
  }
  const work = path.join(dir, 'work');
  const tmp = path.join(dir, 'tmp');
  const before = snapshot(dir);
  const timeFile = path.join(o.root, `time-${c.id}.out`);
  const r = await runCli(o.cli, c.args, work, tmp, timeFile, o.timeoutMs, o.hardCap, c.fsize);
  const after = snapshot(dir);
  const { findings, written } = classify(c, r, before, after, dir, ctx.index, o.memoryBudget);

  if (r.code === 0 && findings.every((f) => f.cls !== 'hang')) {
    const models = written.filter((w) => w.endsWith('.onnx'));
    const outArg = c.args[0] !== 'inspect' && c.args[0] !== 'groups' && c.args[1] ? path.posix.normalize(c.args[1]) : undefined;
    if (outArg && written.includes(outArg) && !models.includes(outArg)) models.push(outArg);
    if (models.length) {
      const ref = c.model && after.get(`work/${c.model}`)?.kind === 'file' ? path.join(work, c.model) : undefined;
      const checks = await ortCheck(models.map((m) => ({ model: path.join(work, m), ref })), work, Math.max(60_000, o.timeoutMs));
      for (const ch of checks) {
        const rel = path.relative(work, ch.model);
        if (!ch.loaded) findings.push({ cls: 'unloadable', detail: `exit 0 but onnxruntime cannot load ${rel}: ${printable(firstLine(ch.error ?? ''))}` });
        else if (ch.finite === false && ch.refFinite === true) findings.push({ cls: 'nonfinite', detail: `exit 0 but ${rel} gives NaN/Inf on seeded inputs where ${c.model} does not` });
      }
    }
    if (o.determinism && !c.nondeterministicOk) {
      const first = new Map(written.map((w) => [w, after.get(`work/${w}`)!.hash]));
      materialize(c, dir, ctx.secret);
      const r2 = await runCli(o.cli, c.args, work, tmp, timeFile, o.timeoutMs, o.hardCap, c.fsize);
      const after2 = snapshot(dir);
      if (r2.timedOut) findings.push({ cls: 'hang', detail: `exit 0 in ${r.ms} ms, then no exit after ${r2.ms} ms on a second run (killed)` });
      else if (r2.memoryKilled) findings.push({ cls: 'memory', detail: 'exit 0, then killed above the hard cap on a second run' });
      else if (r2.code !== 0) findings.push({ cls: 'nondeterministic', detail: `exit 0, then exit ${r2.code ?? r2.signal} on a second run: ${printable(firstLine(r2.stderr))}` });
      else {
        const second = new Map<string, string | undefined>();
        for (const [p, e] of after2) if (p.startsWith('work/') && e.kind === 'file' && !sameEntry(before.get(p) ?? { kind: '', size: -1 }, e)) second.set(p.slice(5), e.hash);
        const ignored = new Set((c.ignore ?? []).map((p) => p.slice('work/'.length)));
        const diff = [...new Set([...first.keys(), ...second.keys()])].filter((p) => !ignored.has(p) && first.get(p) !== second.get(p)).sort();
        if (diff.length) findings.push({ cls: 'nondeterministic', detail: `a second run wrote other bytes: ${diff.join(', ')}` });
      }
    }
  }
  const outcome: Outcome = { ...base, code: r.code, signal: r.signal ?? undefined, ms: r.ms, peakBytes: r.peakBytes, stdout: r.stdout, stderr: r.stderr, findings };
  if (findings.length && o.keepFailures) {
    materialize(c, dir, ctx.secret);
    fs.writeFileSync(path.join(dir, 'case.json'), JSON.stringify({ id: c.id, family: c.family, desc: c.desc, args: c.args, findings, code: r.code, signal: r.signal, stderr: r.stderr.slice(0, 4000), command: outcome.command }, null, 2));
  } else {
    fs.rmSync(dir, { recursive: true, force: true });
  }
  return outcome;
}

// ------------------------------------------------------------------------------------------ corpus

export function createRun(opts: HarnessOptions): RunContext {
  const cli = opts.cli ?? BUILT_CLI;
  if (!fs.existsSync(cli)) throw new Error(`the built CLI ${cli} is missing: run \`npm run build\` first`);
  if (!fs.existsSync(ORT_CHECK)) throw new Error(`${ORT_CHECK} is missing: run \`npm run build\` first`);
  fs.mkdirSync(path.join(opts.root, 'cases'), { recursive: true });
  const bases = loadBases();
  const plans = opts.plans === false ? [] : makePlans(cli, opts.root, bases);
  const secret = makeSecret();
  return {
    opts: {
      seed: opts.seed,
      root: opts.root,
      cli,
      timeoutMs: opts.timeoutMs ?? 30_000,
      memoryBudget: opts.memoryBudget ?? 2 * GiB,
      hardCap: opts.hardCap ?? 4 * GiB,
      concurrency: opts.concurrency ?? 2,
      keepFailures: opts.keepFailures ?? false,
      determinism: opts.determinism ?? true,
      families: opts.families,
      onOutcome: opts.onOutcome,
    },
    gen: { bases, plans, caseDir: '', secretSize: SECRET_SIZE },
    secret,
    index: new SecretIndex(secret),
  };
}

/** Runs cases `indices` (generated one at a time, `concurrency` at once); outcomes in index order. */
export async function runCorpus(ctx: RunContext, indices: number[]): Promise<Outcome[]> {
  const results: Outcome[] = new Array(indices.length);
  let next = 0;
  let done = 0;
  const worker = async () => {
    while (next < indices.length) {
      const k = next++;
      const c = generate(ctx, indices[k]);
      results[k] = await runCase(ctx, c);
      done++;
      ctx.opts.onOutcome?.(results[k], done, indices.length);
    }
  };
  await Promise.all(Array.from({ length: Math.max(1, ctx.opts.concurrency) }, worker));
  return results;
}

export function cleanup(ctx: RunContext): void {
  fs.rmSync(ctx.opts.root, { recursive: true, force: true });
}

// ------------------------------------------------------------------------------------------ reports

/** Cases per family and class (a case counts once per class it shows), plus ok, skipped, and peak memory. */
export function summaryTable(outcomes: Outcome[]): string {
  const fams = [...new Set(outcomes.map((o) => o.case.family))];
  const cols = ['cases', 'ok', ...CLASSES, 'skipped', 'max MB', 'max s'];
  const rows: string[][] = [];
  const row = (name: string, os: Outcome[]) => {
    const count = (cls: FailureClass) => os.filter((o) => o.findings.some((f) => f.cls === cls)).length;
    const skipped = os.filter((o) => o.stderr.startsWith('skipped:')).length;
    rows.push([
      name,
      String(os.length),
      String(os.filter((o) => o.findings.length === 0).length - skipped),
      ...CLASSES.map((c) => String(count(c))),
      String(skipped),
      String(Math.round(Math.max(0, ...os.map((o) => o.peakBytes)) / MiB)),
      (Math.max(0, ...os.map((o) => o.ms)) / 1000).toFixed(1),
    ]);
  };
  for (const f of fams) row(f, outcomes.filter((o) => o.case.family === f));
  row('total', outcomes);
  const widths = ['family', ...cols].map((h, i) => Math.max(h.length, ...rows.map((r) => r[i].length)));
  const fmt = (cells: string[]) => cells.map((c, i) => (i === 0 ? c.padEnd(widths[i]) : c.padStart(widths[i]))).join('  ');
  return [fmt(['family', ...cols]), ...rows.map(fmt)].join('\n');
}

/** One block per failing case: id, class, detail, command line, first stderr line. */
export function failureReport(outcomes: Outcome[]): string[] {
  const out: string[] = [];
  for (const o of outcomes) {
    for (const f of o.findings) {
      out.push(
        `[${f.cls}] case ${o.case.id} (${o.case.family}): ${f.detail}\n` +
        `    what: ${printable(o.case.desc, 200)}\n` +
        `    exit: ${o.code ?? o.signal ?? 'killed'} in ${(o.ms / 1000).toFixed(1)} s, peak ${Math.round(o.peakBytes / MiB)} MB; stderr: ${printable(firstLine(o.stderr), 200)}\n` +
        `    run:  ${o.command}`,
      );
    }
  }
  return out;
}

/** A fresh temp folder for a run. */
export function tempRoot(prefix = 'onnx-prune-fuzz-'): string {
  return fs.mkdtempSync(path.join(os.tmpdir(), prefix));
}
