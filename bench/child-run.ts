/**
 * Runs a node script in a child process of its own, sampling its resident memory: the benches' way to give a run
 * its own wall time and peak RSS (a process's maxRSS is a high-water mark over its whole life). Progress lines
 * `pass NAME: N ms` on the child's stderr (optionally after a `[12.3 s] ` stamp) end a pass: each pass gets the
 * peak RSS sampled (every 100 ms, from /proc: Linux) while it ran.
 */
import { spawn } from 'child_process';
import * as fs from 'fs';

/** Resident set size of a process in KiB (Linux /proc), or undefined. */
export function rssKb(pid: number): number | undefined {
  try {
    const m = /VmRSS:\s+(\d+) kB/.exec(fs.readFileSync(`/proc/${pid}/status`, 'utf8'));
    return m ? Number(m[1]) : undefined;
  } catch {
    return undefined;
  }
}

export interface PassTiming {
  name: string;
  ms: number;
  /** Peak RSS (KiB) sampled while the pass ran (undefined when no sample was taken). */
  peakRssKb?: number;
}

export interface ChildRun {
  code: number | null;
  wallMs: number;
  stdout: string;
  stderr: string;
  passes: PassTiming[];
  /** The other non-empty stderr lines, stamps removed. */
  log: string[];
}

export interface ChildRunOptions {
  /** Kill the child after this many ms (code null). */
  timeoutMs?: number;
  /** Each stderr line as it arrives (with the pass it ended, if any) and the ms since the spawn. */
  onLine?: (line: string, pass: PassTiming | undefined, elapsedMs: number) => void;
}

/** Spawns `node ...args` and collects its output, pass timings and sampled memory. */
export function runNodeChild(args: string[], o: ChildRunOptions = {}): Promise<ChildRun> {
  return new Promise((resolve, reject) => {
    const t0 = Date.now();
    const child = spawn(process.execPath, args, { stdio: ['ignore', 'pipe', 'pipe'] });
    const out: Buffer[] = [];
    const err: Buffer[] = [];
    const passes: PassTiming[] = [];
    const log: string[] = [];
    let peakSincePass = 0;
    let pending = '';
    const sampler = setInterval(() => {
      const kb = child.pid !== undefined ? rssKb(child.pid) : undefined;
      if (kb !== undefined) peakSincePass = Math.max(peakSincePass, kb);
    }, 100);
    const timer = o.timeoutMs ? setTimeout(() => child.kill('SIGKILL'), o.timeoutMs) : undefined;
    child.stdout.on('data', (d: Buffer) => out.push(d));
    child.stderr.on('data', (d: Buffer) => {
      err.push(d);
      pending += d.toString('utf8');
      const lines = pending.split('\n');
      pending = lines.pop() ?? '';
      for (const line of lines) {
        const msg = line.replace(/^\[[\d.]+ s\] /, '');
        const p = /^pass (\S+): (\d+) ms$/.exec(msg);
        let pass: PassTiming | undefined;
        if (p) {
          pass = { name: p[1], ms: Number(p[2]), peakRssKb: peakSincePass || undefined };
          passes.push(pass);
          peakSincePass = 0;
        } else if (msg.trim()) {
          log.push(msg);
        }
        o.onLine?.(line, pass, Date.now() - t0);
      }
    });
    child.on('error', reject);
    child.on('close', (code) => {
      clearInterval(sampler);
      if (timer) clearTimeout(timer);
      resolve({ code, wallMs: Date.now() - t0, stdout: Buffer.concat(out).toString('utf8'), stderr: Buffer.concat(err).toString('utf8'), passes, log });
    });
  });
}
