/**
 * One `prune()` run (the public API, the whole pipeline as the CLI runs it: load, analyze, calibration, importance,
 * allocation, reconstruction, prune, verify, save) in a child process of its own, so that its wall time and peak
 * RSS are that run's alone (a process's maxRSS is a high-water mark over its whole life). Used by
 * bench/quality.ts (resource table) and bench/reconstruct-scale.ts.
 *
 * Parent side: `runPruneChild(input, options)` spawns `node dist/bench/prune-child.js INPUT OPTIONS_JSON`, samples
 * the child's VmRSS from /proc every 100 ms (Linux; the peak seen while each pass ran), and returns
 *  - wallMs: spawn to exit (includes node start-up and module loading, ~0.3 s);
 *  - pruneMs: the prune() call alone, timed in the child;
 *  - peakRssKb: the child's process.resourceUsage().maxRSS at exit (the kernel's high-water mark: exact, unlike
 *    the 100 ms samples);
 *  - passes: [pass name, ms] from the pipeline's progress messages, with the peak sampled RSS during each pass;
 *  - report: prune()'s report, or error: the message of what it threw.
 * Child side: prints progress lines on stderr (`[12.3 s] pass analyze: 812 ms`) and one result line on stdout.
 */
import { spawn } from 'child_process';
import * as fs from 'fs';
import * as path from 'path';

const RESULT = 'prune-child-result ';

export interface ChildResult {
  code: number | null;
  wallMs: number;
  pruneMs?: number;
  peakRssKb?: number;
  passes: { name: string; ms: number; peakRssKb?: number }[];
  /** Other progress messages of the run (e.g. what calibration and reconstruction logged). */
  log: string[];
  report?: Record<string, any>;
  error?: string;
  stderr: string;
}

export interface ChildOptions {
  /** Echo each progress line as it arrives, prefixed (e.g. for runs of minutes). */
  echo?: string;
  /** Kill the child after this many ms (its result is then code null and whatever it printed). */
  timeoutMs?: number;
}

/** Resident set size of a process in KiB (Linux /proc), or undefined. */
function rssKb(pid: number): number | undefined {
  try {
    const m = /VmRSS:\s+(\d+) kB/.exec(fs.readFileSync(`/proc/${pid}/status`, 'utf8'));
    return m ? Number(m[1]) : undefined;
  } catch {
    return undefined;
  }
}

export function runPruneChild(input: string, options: Record<string, unknown>, co: ChildOptions = {}): Promise<ChildResult> {
  const script = path.join(__dirname, 'prune-child.js');
  return new Promise((resolve, reject) => {
    const t0 = Date.now();
    const child = spawn(process.execPath, [script, input, JSON.stringify(options)], { stdio: ['ignore', 'pipe', 'pipe'] });
    const out: Buffer[] = [];
    const err: Buffer[] = [];
    const passes: ChildResult['passes'] = [];
    const log: string[] = [];
    let peakSincePass = 0;
    let pending = '';
    const sampler = setInterval(() => {
      const kb = child.pid !== undefined ? rssKb(child.pid) : undefined;
      if (kb !== undefined) peakSincePass = Math.max(peakSincePass, kb);
    }, 100);
    const timer = co.timeoutMs ? setTimeout(() => child.kill('SIGKILL'), co.timeoutMs) : undefined;
    child.stdout.on('data', (d: Buffer) => out.push(d));
    child.stderr.on('data', (d: Buffer) => {
      err.push(d);
      pending += d.toString('utf8');
      const lines = pending.split('\n');
      pending = lines.pop() ?? '';
      for (const line of lines) {
        const msg = line.replace(/^\[[\d.]+ s\] /, '');
        const p = /^pass (\S+): (\d+) ms$/.exec(msg);
        if (p) {
          passes.push({ name: p[1], ms: Number(p[2]), peakRssKb: peakSincePass || undefined });
          peakSincePass = 0;
        } else if (msg.trim()) {
          log.push(msg);
        }
        if (co.echo !== undefined && line.trim()) console.log(`${co.echo}${line}${p && passes[passes.length - 1].peakRssKb ? `; peak RSS ${(passes[passes.length - 1].peakRssKb! / 1024).toFixed(0)} MiB` : ''}`);
      }
    });
    child.on('error', reject);
    child.on('close', (code) => {
      clearInterval(sampler);
      if (timer) clearTimeout(timer);
      const stdout = Buffer.concat(out).toString('utf8');
      const stderr = Buffer.concat(err).toString('utf8');
      const r: ChildResult = { code, wallMs: Date.now() - t0, passes, log, stderr };
      const line = stdout.split('\n').find((l) => l.startsWith(RESULT));
      if (line) {
        const j = JSON.parse(line.slice(RESULT.length)) as { pruneMs: number; maxRssKb: number; report?: Record<string, any>; error?: string };
        r.pruneMs = j.pruneMs;
        r.peakRssKb = j.maxRssKb;
        r.report = j.report;
        r.error = j.error;
      } else {
        r.error = code === null ? 'killed (timeout or signal)' : `exit ${code} without a result: ${stderr.trim().split('\n').slice(-3).join(' | ')}`;
      }
      resolve(r);
    });
  });
}

/** The child: `node prune-child.js INPUT OPTIONS_JSON`. */
async function childMain(): Promise<void> {
  const [input, json] = process.argv.slice(2);
  // Loaded here, not at the top: the parent side must not pull in onnxruntime.
  // eslint-disable-next-line @typescript-eslint/no-require-imports
  const api = require('../src/index') as typeof import('../src/index');
  const options = JSON.parse(json) as import('../src/index').PruneRunOptions;
  const t0 = Date.now();
  const stamp = () => `[${((Date.now() - t0) / 1000).toFixed(1)} s]`;
  let report: Record<string, any> | undefined;
  let error: string | undefined;
  try {
    const r = await api.prune(input, { ...options, log: (m) => process.stderr.write(`${stamp()} ${m}\n`), onWarning: (m) => process.stderr.write(`${stamp()} warning: ${m}\n`) });
    report = r.report as Record<string, any>;
  } catch (e) {
    error = (e as Error).message;
    report = (e as { runReport?: Record<string, any> }).runReport;
  }
  const pruneMs = Date.now() - t0;
  process.stdout.write(`${RESULT}${JSON.stringify({ pruneMs, maxRssKb: process.resourceUsage().maxRSS, report, error })}\n`);
}

if (require.main === module) {
  childMain().catch((e) => {
    console.error(e);
    process.exit(1);
  });
}
