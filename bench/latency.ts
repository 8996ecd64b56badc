/**
 * ORT latency of dense vs pruned models (default: 50 % uniform L2 pruning) next to the FLOPs and params
 * ratios. Build first (`npm run build`), then:
 *
 *   node dist/bench/latency.js [--ratio 0.5] [--runs 50] [--batch 1] [--seq 32] [MODEL.onnx ...]
 *
 * Without model arguments it measures resnet50_b, mobilenet_v2_050, vit_s and llama_s from ../shared/models.
 * One intra-op thread (as everywhere in onnx-prune); median of `runs` timed runs after 5 warm-up runs,
 * dense and pruned interleaved so that machine noise hits both alike.
 */
import * as fs from 'fs';
import * as path from 'path';
import { countMacs } from '../src/analysis/flops';
import { loadModel } from '../src/ir/io';
import type { Model } from '../src/ir/model';
import { Pipeline, newContext } from '../src/pipeline/pipeline';
import { registerBuiltinPasses } from '../passes';
registerBuiltinPasses();
import { createSession, modelBytes } from '../src/ort/session';
import { median, timeSessions } from '../src/ort/latency';
import { verificationFeeds } from '../src/verify/verify';

const DEFAULT_MODELS = ['resnet50_b', 'mobilenet_v2_050', 'vit_s', 'llama_s'];

interface Args { ratio: number; runs: number; batch: number; seq: number; models: string[] }

function parseArgs(argv: string[]): Args {
  const a: Args = { ratio: 0.5, runs: 200, batch: 1, seq: 32, models: [] };
  for (let i = 0; i < argv.length; i++) {
    const k = argv[i];
    if (k === '--ratio') a.ratio = Number(argv[++i]);
    else if (k === '--runs') a.runs = Number(argv[++i]);
    else if (k === '--batch') a.batch = Number(argv[++i]);
    else if (k === '--seq') a.seq = Number(argv[++i]);
    else a.models.push(k);
  }
  if (!a.models.length) {
    const dir = path.resolve(__dirname, '..', '..', '..', 'shared', 'models');
    const dir2 = path.resolve(__dirname, '..', '..', 'shared', 'models');
    const base = fs.existsSync(dir) ? dir : dir2;
    a.models = DEFAULT_MODELS.map((m) => path.join(base, `${m}.onnx`));
  }
  return a;
}

async function prune(file: string, ratio: number): Promise<{ pruned: Model; report: Record<string, unknown> }> {
  const options = { ratio, verify: false };
  const ctx = newContext({ inputPath: file, options });
  await Pipeline.fromNames(['load', 'analyze', 'importance-l2', 'plan', 'prune'], options).run(ctx);
  return { pruned: ctx.model!, report: ctx.report };
}

async function main(): Promise<void> {
  const args = parseArgs(process.argv.slice(2));
  const rows: string[][] = [['model', 'params', 'FLOPs', 'dense ms', 'pruned ms', 'latency', 'groups']];
  for (const file of args.models) {
    const name = path.basename(file, '.onnx');
    const dense = loadModel(file);
    const { pruned, report } = await prune(file, args.ratio);
    const params = report.params as { before: number; after: number };
    const groups = report.groups as { pruned: number; total: number };
    const feeds = verificationFeeds(dense, { batch: args.batch, seq: args.seq, seed: 0 });
    const sd = await createSession(modelBytes(dense));
    const sp = await createSession(modelBytes(pruned));
    const [td, tp] = (await timeSessions([sd, sp], feeds, { repeats: args.runs })).times;
    await sd.release();
    await sp.release();
    const md = median(td), mp = median(tp);
    const pr = (params.after / params.before).toFixed(3);
    // FLOPs at the measured input size (symbolic dims: batch → --batch, others → --seq).
    const dims: Record<string, number> = {};
    for (const vi of dense.graph.realInputs) {
      (vi.type?.tensorType?.shape?.dim ?? []).forEach((d, axis) => { if (d.dimParam) dims[d.dimParam] = axis === 0 ? args.batch : args.seq; });
    }
    const fd = countMacs(dense, { dims }).macs;
    const fp = countMacs(pruned, { dims }).macs;
    const fr = fd && fp !== undefined ? (fp / fd).toFixed(3) : 'n/a';
    rows.push([name, pr, fr, md.toFixed(3), mp.toFixed(3), (mp / md).toFixed(3), `${groups.pruned}/${groups.total}`]);
  }
  const widths = rows[0].map((_, c) => Math.max(...rows.map((r) => r[c].length)));
  process.stdout.write(`ratio ${args.ratio}, batch ${args.batch}, seq ${args.seq}, median of ${args.runs} runs, 1 thread; params/FLOPs/latency are pruned ÷ dense\n`);
  for (const r of rows) process.stdout.write(`${r.map((x, c) => x.padEnd(widths[c])).join('  ')}\n`);
}

main().catch((e) => {
  process.stderr.write(`${(e as Error).stack ?? e}\n`);
  process.exitCode = 1;
});
