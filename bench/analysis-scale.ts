/**
 * Bench: group-analysis cost of a model whose head outputs are concatenated into one big tensor. Builds a
 * RetinaNet-shaped detector (bench/retinanet-model.ts: ResNet-50 + FPN P3–P7 at 320x320, 9 anchors, 91 classes;
 * the classification output [1, 19206, 91] holds 1.75 M labels) and its twin whose per-level head outputs are
 * graph outputs (no Reshape/Transpose/Concat), analyzes both (`analyzeGroups`, as `onnx-prune groups` does: static
 * shape inference, propagation, groups) and prints the times and their ratio. Each model is analyzed `--runs`
 * times (default 3), alternating, and the fastest run counts (the machine may be shared); CPU time of the process
 * is printed next to the wall time.
 *
 * Run: `npm run build && node dist/bench/analysis-scale.js [--runs N] [--small] [--spec '{"classes": 200}']`.
 * Not part of `npm test`.
 */
import { analyzeGroups } from '../src/pipeline/stages';
import type { GroupAnalysis } from '../src/analysis/types';
import { loadModel } from '../src/ir/io';
import type { Model } from '../src/ir/model';
import { RETINA_BENCH, RETINA_SMALL, type RetinaSpec, levelSizes, retinaNet } from './retinanet-model';

function parseArgs(argv: string[]): { runs: number; spec: RetinaSpec } {
  let runs = 3;
  let spec = RETINA_BENCH;
  for (let i = 0; i < argv.length; i++) {
    const k = argv[i];
    if (k === '--runs') runs = Number(argv[++i]);
    else if (k === '--small') spec = RETINA_SMALL;
    else if (k === '--spec') spec = { ...spec, ...(JSON.parse(argv[++i]) as Partial<RetinaSpec>) };
    else throw new Error(`unknown option ${k} (--runs N, --small, --spec JSON)`);
  }
  if (!(runs >= 1)) throw new Error('--runs must be at least 1');
  return { runs, spec };
}

interface Timing { wall: number; cpu: number; analysis: GroupAnalysis }

async function time(model: Model): Promise<Timing> {
  const c0 = process.cpuUsage();
  const t0 = process.hrtime.bigint();
  const analysis = await analyzeGroups(model);
  const wall = Number(process.hrtime.bigint() - t0) / 1e6;
  const c = process.cpuUsage(c0);
  return { wall, cpu: (c.user + c.system) / 1e3, analysis };
}

async function main(): Promise<void> {
  const { runs, spec } = parseArgs(process.argv.slice(2));
  const locations = levelSizes(spec).reduce((a, n) => a + n, 0);
  console.log(`RetinaNet-like: ${spec.size}x${spec.size}, blocks [${spec.blocks}], width ${spec.width}, FPN ${spec.fpn}, ` +
    `${spec.levels} levels (${locations} locations), A=${spec.anchors}, K=${spec.classes}: ` +
    `cls_logits [1, ${locations * spec.anchors}, ${spec.classes}] = ${(locations * spec.anchors * spec.classes / 1e6).toFixed(2)} M elements`);
  const models = {
    retina: loadModel(retinaNet(spec)),
    twin: loadModel(retinaNet({ ...spec, concat: false })),
  };
  const best: Record<string, Timing> = {};
  for (let r = 0; r < runs; r++) {
    for (const [name, model] of Object.entries(models)) {
      const t = await time(model);
      console.log(`  run ${r + 1} ${name.padEnd(6)} ${t.wall.toFixed(0).padStart(6)} ms wall ${t.cpu.toFixed(0).padStart(6)} ms cpu`);
      if (!best[name] || t.wall < best[name].wall) best[name] = t;
    }
  }
  const row = (name: string) => {
    const t = best[name];
    const s = t.analysis.summary;
    return `${name.padEnd(6)} ${t.wall.toFixed(0).padStart(6)} ms (cpu ${t.cpu.toFixed(0)} ms), ${s.groups} groups, ${s.declined} declined, ${models[name as keyof typeof models].graph.nodes.length} nodes`;
  };
  console.log(`\nfastest of ${runs}:`);
  console.log(`  ${row('retina')}`);
  console.log(`  ${row('twin')}`);
  console.log(`ratio retina / twin: ${(best.retina.wall / best.twin.wall).toFixed(2)} (wall), ${(best.retina.cpu / best.twin.cpu).toFixed(2)} (cpu)`);
}

main().catch((e) => {
  console.error(e);
  process.exit(2);
});
