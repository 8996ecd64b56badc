/**
 * Bench: reconstruction at full model size. Builds (once, cached in os.tmpdir()/onnx-prune-scale, shared with
 * bench/scale.ts) a ResNet-50 (224×224, ~25.6 M params, BatchNormalization unfolded) and a BERT-base-sized encoder
 * (~85.6 M params, 12 layers, hidden 768: the size of a ViT-B encoder; input = embeddings [batch, seq, 768])
 * from bench/scale-models.ts; writes a calibration file of `--samples` seeded Gaussian samples (N(0, 1), float32;
 * [256, 3, 224, 224] = 154 MB, and [256, seq, 768] with seq = 197 as in ViT-B/16 at 224 = 155 MB) to a temp dir;
 * then runs the public `prune()` (the whole pipeline: load, analysis, calibration capture, importance, allocation,
 * reconstruction, prune, verification, save to the temp dir) with `reconstruct: 'ls'` at `--ratio` (0.3) of params,
 * one child process per run (bench/prune-child.ts). Printed per run: the pipeline's progress lines as they come
 * (with the peak RSS sampled from /proc every 100 ms while each pass ran), then the wall time (spawn to exit), the
 * child's peak RSS (its process.resourceUsage().maxRSS: that run's alone), the pass timings, params before → after
 * and the verification outcome; a run over 4 GiB peak RSS is flagged with the pass where the sampled peak was.
 * Random inputs exercise the cost (time, memory), not the quality, of reconstruction.
 *
 * Run: `npm run build && node dist/bench/reconstruct-scale.js [options]`. Not part of `npm test`.
 *   --only a,b        resnet50, bert (default both)
 *   --recon a,b       none, bias, ls (default ls)
 *   --importance a,b  importance methods (default wanda)
 *   --ratio R         default 0.3
 *   --samples N       calibration samples (default 256)
 *   --seq N           sequence length of the encoder's calibration samples (default 197)
 *   --no-sequential   ls from the dense model in one calibration pass (default: sequential, stage by stage)
 *   --timeout-min M   kill a run after M minutes (default 40; the last finished pass and stage are printed)
 *   --json FILE       results as JSON
 *   --rebuild         rebuild the cached models
 *   --allocation A    uniform (default), global or search;  --search-generations N  (search; default the CLI's)
 * Runs are sequential (one big model at a time).
 */
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { parseArgs as parseCliArgs } from 'util';
import { rng } from '../src/util/rng';
import { runPruneChild, type ChildResult } from './prune-child';
import { bertBase, resnet50 } from './scale-models';

type Recon = 'none' | 'bias' | 'ls';

interface Args {
  only: string[];
  recon: Recon[];
  importance: string[];
  ratio: number;
  samples: number;
  seq: number;
  timeoutMin: number;
  sequential: boolean;
  json?: string;
  rebuild: boolean;
  allocation?: 'uniform' | 'global' | 'search';
  searchGenerations?: number;
}

function parseArgs(argv: string[]): Args {
  const { values: v } = parseCliArgs({
    args: argv,
    options: {
      only: { type: 'string' }, recon: { type: 'string' }, importance: { type: 'string' }, ratio: { type: 'string' },
      samples: { type: 'string' }, seq: { type: 'string' }, 'timeout-min': { type: 'string' },
      'no-sequential': { type: 'boolean' }, json: { type: 'string' }, rebuild: { type: 'boolean' },
      allocation: { type: 'string' }, 'search-generations': { type: 'string' },
    },
  });
  const list = (s: string) => s.split(',').map((x) => x.trim()).filter(Boolean);
  const a: Args = { only: ['resnet50', 'bert'], recon: ['ls'], importance: ['wanda'], ratio: 0.3, samples: 256, seq: 197, timeoutMin: 40, sequential: true, rebuild: false };
  if (v.only !== undefined) a.only = list(v.only);
  if (v.recon !== undefined) a.recon = list(v.recon) as Recon[];
  if (v.importance !== undefined) a.importance = list(v.importance);
  if (v.ratio !== undefined) a.ratio = Number(v.ratio);
  if (v.samples !== undefined) a.samples = Number(v.samples);
  if (v.seq !== undefined) a.seq = Number(v.seq);
  if (v['timeout-min'] !== undefined) a.timeoutMin = Number(v['timeout-min']);
  if (v['no-sequential']) a.sequential = false;
  if (v.json !== undefined) a.json = v.json;
  if (v.rebuild) a.rebuild = true;
  if (v.allocation !== undefined) a.allocation = v.allocation as Args['allocation'];
  if (v['search-generations'] !== undefined) a.searchGenerations = Number(v['search-generations']);
  for (const r of a.recon) if (!['none', 'bias', 'ls'].includes(r)) throw new Error(`unknown --recon '${r}' (none, bias, ls)`);
  return a;
}

const CACHE = path.join(os.tmpdir(), 'onnx-prune-scale');
/** The same file names as bench/scale.ts (same builders), so either bench reuses the other's models. */
const MODELS_VERSION = 1;
const GIB4_KB = 4 * 2 ** 20;

interface ModelEntry {
  name: string;
  file: string;
  build: () => Uint8Array;
  /** Calibration sample shape (without the sample axis). */
  sample: (a: Args) => number[];
}

const MODELS: ModelEntry[] = [
  { name: 'resnet50', file: path.join(CACHE, `resnet50-v${MODELS_VERSION}.onnx`), build: resnet50, sample: () => [3, 224, 224] },
  { name: 'bert', file: path.join(CACHE, `bert-base-v${MODELS_VERSION}.onnx`), build: () => bertBase(), sample: (a) => [a.seq, 768] },
];

const mib = (kb: number) => `${(kb / 1024).toFixed(0)} MiB`;

function ensureModel(m: ModelEntry, rebuild: boolean): void {
  if (!rebuild && fs.existsSync(m.file)) return;
  fs.mkdirSync(CACHE, { recursive: true });
  const t0 = Date.now();
  const tmp = `${m.file}.${process.pid}.tmp`;
  fs.writeFileSync(tmp, m.build());
  fs.renameSync(tmp, m.file);
  console.log(`built ${m.name}: ${(fs.statSync(m.file).size / 2 ** 20).toFixed(0)} MiB in ${((Date.now() - t0) / 1000).toFixed(1)} s`);
}

/** Seeded N(0, 1) float32 samples, written in chunks (never all in memory). */
function writeCalib(file: string, count: number, seed: number): void {
  const r = rng(seed);
  const fd = fs.openSync(file, 'w');
  try {
    const chunk = new Float32Array(1 << 20);
    for (let left = count; left > 0;) {
      const n = Math.min(left, chunk.length);
      for (let i = 0; i < n; i += 2) {
        // Box–Muller: two normals per pair of uniforms.
        const u = Math.max(r(), 1e-300), v = r();
        const m = Math.sqrt(-2 * Math.log(u));
        chunk[i] = m * Math.cos(2 * Math.PI * v);
        if (i + 1 < n) chunk[i + 1] = m * Math.sin(2 * Math.PI * v);
      }
      fs.writeSync(fd, chunk, 0, n * 4);
      left -= n;
    }
  } finally {
    fs.closeSync(fd);
  }
}

interface Run {
  model: string;
  importance: string;
  recon: Recon;
  sequential: boolean;
  ratio: number;
  samples: number;
  calibShape: number[];
  wallS?: number;
  pipelineS?: number;
  peakRssMiB?: number;
  passes?: ChildResult['passes'];
  params?: { before: number; after: number };
  verify?: string;
  reconstructionLog?: string[];
  report?: Record<string, unknown>;
  error?: string;
}

function verdict(rep: Record<string, any> | undefined): string {
  const v = rep?.verify;
  if (!v) return 'not verified';
  if (v.skipped) return `verify skipped (${v.skipped})`;
  return v.passed ? `verified (max rel diff ${Number(v.maxRelDiff).toExponential(1)})` : `VERIFY FAILED: ${v.error ?? ''}`;
}

async function main(): Promise<void> {
  const a = parseArgs(process.argv.slice(2));
  const work = fs.mkdtempSync(path.join(os.tmpdir(), 'onnx-prune-recon-scale-'));
  const runs: Run[] = [];
  const t0 = Date.now();
  console.log(`node ${process.version}, ${os.cpus().length} cores, ${(os.totalmem() / 2 ** 30).toFixed(0)} GiB RAM; models cached in ${CACHE}`);
  try {
    for (const m of MODELS.filter((x) => a.only.includes(x.name))) {
      ensureModel(m, a.rebuild);
      const shape = [a.samples, ...m.sample(a)];
      const calib = path.join(work, `${m.name}-calib.bin`);
      writeCalib(calib, shape.reduce((x, y) => x * y, 1), 1234);
      console.log(`${m.name}: calibration ${shape.join('×')} float32 N(0,1), ${(fs.statSync(calib).size / 2 ** 20).toFixed(0)} MiB`);
      for (const importance of a.importance) {
        for (const recon of a.recon) {
          const run: Run = { model: m.name, importance, recon, sequential: a.sequential, ratio: a.ratio, samples: a.samples, calibShape: shape };
          runs.push(run);
          console.log(`\n${m.name} --importance ${importance} --reconstruct ${recon}${a.sequential ? '' : ' --no-sequential'} --ratio ${a.ratio}`);
          const output = path.join(work, `${m.name}-out.onnx`);
          const r = await runPruneChild(m.file, {
            ratio: a.ratio, importance, allocation: a.allocation ?? 'uniform', ...(a.searchGenerations ? { searchGenerations: a.searchGenerations } : {}), calib, calibShape: shape, calibDtype: 'float32', reconstruct: recon, ...(a.sequential ? {} : { sequential: false }), output,
          }, { echo: '    ', timeoutMs: a.timeoutMin * 60_000 });
          fs.rmSync(output, { force: true });
          fs.rmSync(`${output}.data`, { force: true });
          run.wallS = r.wallMs / 1000;
          run.pipelineS = r.pruneMs !== undefined ? r.pruneMs / 1000 : undefined;
          run.peakRssMiB = r.peakRssKb !== undefined ? r.peakRssKb / 1024 : undefined;
          run.passes = r.passes;
          run.reconstructionLog = r.log.filter((l) => /reconstruct|refit|gram|least/i.test(l));
          const rep = r.report;
          if (rep?.params) run.params = { before: rep.params.before, after: rep.params.after };
          run.verify = verdict(rep);
          run.report = rep;
          if (r.error) run.error = r.error;
          console.log(`  wall ${run.wallS.toFixed(1)} s (prune() ${run.pipelineS?.toFixed(1) ?? '?'} s); peak RSS ${r.peakRssKb !== undefined ? mib(r.peakRssKb) : '?'}; exit ${r.code}`);
          console.log(`  passes (ms): ${r.passes.map((p) => `${p.name} ${p.ms}`).join(', ') || '(none)'}`);
          console.log(`  peak RSS sampled during each pass (MiB): ${r.passes.map((p) => `${p.name} ${p.peakRssKb ? (p.peakRssKb / 1024).toFixed(0) : '?'}`).join(', ')}`);
          if (run.params) console.log(`  params ${run.params.before} → ${run.params.after}; ${run.verify}`);
          const recRep = rep?.reconstruction ?? rep?.reconstruct;
          if (recRep) console.log(`  report.reconstruction: ${JSON.stringify(recRep).slice(0, 600)}`);
          if (r.peakRssKb !== undefined && r.peakRssKb > GIB4_KB) {
            const worst = r.passes.reduce<ChildResult['passes'][number] | undefined>((w, p) => (!w || (p.peakRssKb ?? 0) > (w.peakRssKb ?? 0) ? p : w), undefined);
            console.log(`  PEAK RSS OVER 4 GiB (highest sampled during pass ${worst?.name ?? '?'}: ${worst?.peakRssKb ? mib(worst.peakRssKb) : '?'})`);
          }
          if (r.error) {
            const lastStage = r.log.filter((l) => /reconstruct: stage/.test(l)).at(-1);
            console.log(`  error: ${r.error.split('\n')[0].slice(0, 300)}${r.code === null ? ` (last pass finished: ${r.passes.at(-1)?.name ?? 'none'}${lastStage ? `; last progress: ${lastStage}` : ''})` : ''}`);
          }
          if (a.json) fs.writeFileSync(a.json, `${JSON.stringify({ runs, totalS: (Date.now() - t0) / 1000 }, null, 1)}\n`);
        }
      }
      fs.rmSync(calib, { force: true });
    }
  } finally {
    fs.rmSync(work, { recursive: true, force: true });
  }
  console.log('\nsummary');
  for (const r of runs) {
    console.log(`  ${r.model.padEnd(9)} ${r.importance.padEnd(12)} ${r.recon.padEnd(5)} ${r.error && r.wallS === undefined ? `n/a: ${r.error}`
      : `wall ${r.wallS!.toFixed(1)} s, peak RSS ${r.peakRssMiB?.toFixed(0) ?? '?'} MiB${r.peakRssMiB !== undefined && r.peakRssMiB * 1024 > GIB4_KB ? ' (> 4 GiB)' : ''}, ${r.error ? `error: ${r.error.split('\n')[0].slice(0, 120)}` : r.verify}`}`);
  }
  console.log(`total ${((Date.now() - t0) / 1000).toFixed(0)} s`);
}

main().catch((e) => {
  console.error(`reconstruct-scale: ${(e as Error).stack ?? e}`);
  process.exitCode = 1;
});
