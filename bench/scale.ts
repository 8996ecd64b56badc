/**
 * Bench: the CLI at full model sizes. Builds (once, cached in os.tmpdir()/onnx-prune-scale) a ResNet-50
 * (224x224, ~25.6M params, BatchNormalization unfolded), a BERT-base encoder (~85.6M params, symbolic seq) and,
 * with --big, a ~1B-param LLaMA decoder saved as fp32 with external data (bench/scale-models.ts), then runs
 * `onnx-prune IN OUT --ratio 0.3 --verbose --json [--importance M]` on each in a child process and prints the
 * per-pass wall times (from --verbose), the peak RSS sampled while each pass ran (Linux /proc, every 100 ms), the
 * total wall time, the child's peak RSS (process.resourceUsage().maxRSS, from a preloaded hook) and the outcome.
 * The cached models (~0.5 GB, ~4.3 GB with --big) stay in the temp folder between runs: delete the folder to free
 * the space.
 *
 * Run: `npm run build && node dist/bench/scale.js [options]`. Not part of `npm test`.
 *   --big                 also the 1B LLaMA (~3.9 GB on disk; its pruned output is written then deleted)
 *   --only a,b            models among resnet50, bert, llama1b
 *   --importance a,b      importance methods (default l2,wanda; wanda calibrates on seeded random inputs)
 *   --ratio R             default 0.3
 *   --args="..."          extra CLI arguments (e.g. --args="--no-verify"; the = is needed for a value starting with -)
 *   --prof                run each child under `node --cpu-prof` and print its hottest functions
 *   --rebuild             rebuild the cached models
 * Runs are sequential (one big model at a time).
 */
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { parseArgs as parseCliArgs } from 'util';
import { runNodeChild } from './child-run';
import { LLAMA_1B, bertBase, resnet50, writeLlama } from './scale-models';

interface Args {
  big: boolean;
  only?: string[];
  importance: string[];
  ratio: number;
  extra: string[];
  prof: boolean;
  rebuild: boolean;
}

function parseArgs(argv: string[]): Args {
  const { values: v } = parseCliArgs({
    args: argv,
    options: {
      big: { type: 'boolean' }, only: { type: 'string' }, importance: { type: 'string' }, ratio: { type: 'string' },
      args: { type: 'string' }, prof: { type: 'boolean' }, rebuild: { type: 'boolean' },
    },
  });
  return {
    big: !!v.big,
    only: v.only?.split(','),
    importance: v.importance?.split(',') ?? ['l2', 'wanda'],
    ratio: v.ratio !== undefined ? Number(v.ratio) : 0.3,
    extra: v.args?.split(/\s+/).filter(Boolean) ?? [],
    prof: !!v.prof,
    rebuild: !!v.rebuild,
  };
}

const CACHE = path.join(os.tmpdir(), 'onnx-prune-scale');
const CLI = path.join(__dirname, '..', 'src', 'cli', 'main.js');
/** Bump when the model builders change, so that stale cached models are not reused. */
const MODELS_VERSION = 1;

const mib = (bytes: number) => `${(bytes / 2 ** 20).toFixed(0)} MiB`;

interface ModelEntry {
  name: string;
  file: string;
  build: (file: string) => void;
}

function models(a: Args): ModelEntry[] {
  const all: ModelEntry[] = [
    { name: 'resnet50', file: path.join(CACHE, `resnet50-v${MODELS_VERSION}.onnx`), build: (f) => fs.writeFileSync(f, resnet50()) },
    { name: 'bert', file: path.join(CACHE, `bert-base-v${MODELS_VERSION}.onnx`), build: (f) => fs.writeFileSync(f, bertBase()) },
    { name: 'llama1b', file: path.join(CACHE, 'llama1b', `llama1b-v${MODELS_VERSION}.onnx`), build: (f) => void writeLlama(f, LLAMA_1B) },
  ];
  const wanted = a.only ?? (a.big ? ['resnet50', 'bert', 'llama1b'] : ['resnet50', 'bert']);
  for (const w of wanted) if (!all.some((m) => m.name === w)) throw new Error(`unknown model '${w}' (resnet50, bert, llama1b)`);
  return all.filter((m) => wanted.includes(m.name));
}

function ensureModel(m: ModelEntry, rebuild: boolean): void {
  if (!rebuild && fs.existsSync(m.file)) return;
  fs.mkdirSync(path.dirname(m.file), { recursive: true });
  const t0 = Date.now();
  m.build(m.file);
  const data = fs.existsSync(`${m.file}.data`) ? fs.statSync(`${m.file}.data`).size : 0;
  console.log(`built ${m.name}: ${path.basename(m.file)} ${mib(fs.statSync(m.file).size)}${data ? ` + ${mib(data)} external data` : ''} in ${((Date.now() - t0) / 1000).toFixed(1)} s`);
}

interface RunResult {
  code: number | null;
  wallMs: number;
  peakRssKb?: number;
  passes: [string, number][];
  /** Peak RSS (KiB) sampled while each pass ran. */
  passRss: number[];
  report?: Record<string, any>;
  stderr: string;
}

/** Writes the preload script that reports the child's peak RSS on exit. */
function rssHook(dir: string): string {
  const f = path.join(dir, 'rss-hook.js');
  fs.writeFileSync(f, "process.on('exit', () => process.stderr.write(`scale-bench maxrss-kb ${process.resourceUsage().maxRSS}\\n`));\n");
  return f;
}

/**
 * Runs the CLI; echoes its pass lines as they come (with the elapsed time) and samples its RSS every 100 ms, so
 * that each pass gets the peak RSS seen while it ran (a pass's line is printed when it ends).
 */
async function runChild(nodeArgs: string[], cliArgs: string[]): Promise<RunResult> {
  const r = await runNodeChild([...nodeArgs, CLI, ...cliArgs], {
    onLine: (line, pass, ms) => {
      if (pass) console.log(`    [${(ms / 1000).toFixed(1)} s] ${line}; peak RSS ${mib((pass.peakRssKb ?? 0) * 1024)}`);
    },
  });
  let peakRssKb: number | undefined;
  for (const line of r.stderr.split('\n')) {
    const m = /^scale-bench maxrss-kb (\d+)$/.exec(line);
    if (m) peakRssKb = Number(m[1]);
  }
  let report: Record<string, any> | undefined;
  try {
    report = r.stdout.trim() ? JSON.parse(r.stdout) : undefined;
  } catch {
    report = undefined;
  }
  return { code: r.code, wallMs: r.wallMs, peakRssKb, passes: r.passes.map((p) => [p.name, p.ms]), passRss: r.passes.map((p) => p.peakRssKb ?? 0), report, stderr: r.stderr };
}

// CPU profiles -----------------------------------------------------------------------------------------------

interface ProfileNode {
  id: number;
  callFrame: { functionName: string; url: string; lineNumber: number };
  children?: number[];
}

interface CpuProfile {
  nodes: ProfileNode[];
  samples: number[];
  timeDeltas: number[];
}

/** Self and inclusive milliseconds per function (name + file:line), hottest first. */
export function summarizeProfile(file: string, top = 25): string[] {
  const p = JSON.parse(fs.readFileSync(file, 'utf8')) as CpuProfile;
  const byId = new Map(p.nodes.map((n) => [n.id, n] as const));
  const parent = new Map<number, number>();
  for (const n of p.nodes) for (const c of n.children ?? []) parent.set(c, n.id);
  const label = (n: ProfileNode) => {
    const f = n.callFrame;
    const where = f.url ? `${path.relative(path.join(__dirname, '..'), f.url.replace(/^file:\/\//, ''))}:${f.lineNumber + 1}` : '';
    return `${f.functionName || '(anonymous)'} ${where}`.trim();
  };
  const self = new Map<string, number>();
  const incl = new Map<string, number>();
  let total = 0;
  p.samples.forEach((id, i) => {
    const dt = (p.timeDeltas[i] ?? 0) / 1000;
    total += dt;
    const n = byId.get(id)!;
    self.set(label(n), (self.get(label(n)) ?? 0) + dt);
    const seen = new Set<string>();
    for (let cur: number | undefined = id; cur !== undefined; cur = parent.get(cur)) {
      const l = label(byId.get(cur)!);
      if (seen.has(l)) continue;
      seen.add(l);
      incl.set(l, (incl.get(l) ?? 0) + dt);
    }
  });
  const fmt = (m: Map<string, number>) => [...m.entries()].sort((a, b) => b[1] - a[1]).slice(0, top)
    .map(([l, ms]) => `  ${ms.toFixed(0).padStart(7)} ms ${(100 * ms / total).toFixed(1).padStart(5)}%  ${l}`);
  return [`profile ${path.basename(file)}: ${total.toFixed(0)} ms sampled`, ' self:', ...fmt(self), ' inclusive:',
    ...fmt(new Map([...incl.entries()].filter(([l]) => !/^\((root|program|idle)\)/.test(l))))];
}

// Main ------------------------------------------------------------------------------------------------------

function describe(r: RunResult): string[] {
  const lines: string[] = [];
  const passes = r.passes.map(([n, ms]) => `${n} ${ms}`).join(', ');
  lines.push(`  passes (ms): ${passes || '(none reported)'}`);
  if (r.passRss.some((kb) => kb > 0)) lines.push(`  peak RSS during each pass (MiB): ${r.passes.map(([n], i) => `${n} ${(r.passRss[i] / 1024).toFixed(0)}`).join(', ')}`);
  lines.push(`  wall ${(r.wallMs / 1000).toFixed(1)} s; peak RSS ${r.peakRssKb !== undefined ? mib(r.peakRssKb * 1024) : '?'}; exit ${r.code}`);
  const rep = r.report;
  if (rep?.params) {
    const v = rep.verify;
    const verdict = v ? (v.skipped ? 'verify skipped' : v.passed ? `verified (max rel diff ${Number(v.maxRelDiff).toExponential(1)})` : `VERIFY FAILED: ${v.error}`) : 'not verified';
    lines.push(`  params ${rep.params.before} → ${rep.params.after}; groups pruned ${rep.groups?.pruned}/${rep.groups?.total} (declined ${rep.groups?.declined}); ${verdict}`);
  }
  if (r.code !== 0) {
    const errs = r.stderr.split('\n').filter((l) => l.startsWith('onnx-prune:') || /Error|error:/.test(l)).slice(0, 5);
    lines.push(...errs.map((l) => `  ${l}`));
  }
  return lines;
}

async function main(): Promise<void> {
  const a = parseArgs(process.argv.slice(2));
  if (!fs.existsSync(CLI)) throw new Error(`${CLI} not found: run npm run build`);
  fs.mkdirSync(CACHE, { recursive: true });
  const work = fs.mkdtempSync(path.join(os.tmpdir(), 'onnx-prune-scale-run-'));
  const hook = rssHook(work);
  console.log(`node ${process.version}, ${os.cpus().length} cores, ${mib(os.totalmem())} RAM; models in ${CACHE}`);
  try {
    for (const m of models(a)) {
      ensureModel(m, a.rebuild);
      for (const method of a.importance) {
        const outDir = fs.mkdtempSync(path.join(work, `${m.name}-${method}-`));
        const out = path.join(outDir, 'out.onnx');
        const nodeArgs = ['-r', hook];
        if (a.prof) nodeArgs.push('--cpu-prof', `--cpu-prof-dir=${outDir}`);
        const cliArgs = [m.file, out, '--ratio', String(a.ratio), '--verbose', '--json', '--importance', method, ...a.extra];
        console.log(`\n${m.name} --importance ${method} --ratio ${a.ratio}${a.extra.length ? ` ${a.extra.join(' ')}` : ''}`);
        const r = await runChild(nodeArgs, cliArgs);
        for (const l of describe(r)) console.log(l);
        if (a.prof) {
          for (const f of fs.readdirSync(outDir).filter((x) => x.endsWith('.cpuprofile'))) {
            const kept = path.join(CACHE, `${m.name}-${method}.cpuprofile`);
            fs.copyFileSync(path.join(outDir, f), kept);
            for (const l of summarizeProfile(kept)) console.log(l);
            console.log(`  (profile kept at ${kept})`);
          }
        }
        fs.rmSync(outDir, { recursive: true, force: true });
      }
    }
  } finally {
    fs.rmSync(work, { recursive: true, force: true });
  }
}

if (require.main === module) {
  main().catch((e) => {
    console.error(`scale: ${(e as Error).stack ?? e}`);
    process.exitCode = 1;
  });
}
