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
import * as path from 'path';
import { runNodeChild } from './child-run';

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

export async function runPruneChild(input: string, options: Record<string, unknown>, co: ChildOptions = {}): Promise<ChildResult> {
  const script = path.join(__dirname, 'prune-child.js');
  const run = await runNodeChild([script, input, JSON.stringify(options)], {
    timeoutMs: co.timeoutMs,
    onLine: (line, pass) => {
      if (co.echo !== undefined && line.trim()) console.log(`${co.echo}${line}${pass?.peakRssKb ? `; peak RSS ${(pass.peakRssKb / 1024).toFixed(0)} MiB` : ''}`);
    },
  });
  const { code, wallMs, passes, log, stdout, stderr } = run;
  const r: ChildResult = { code, wallMs, passes, log, stderr };
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
  return r;
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
