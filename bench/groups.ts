/**
 * Bench: coverage of coupled-group analysis over the shared models (../shared/models). For each model:
 * groups by unit kind, the prunable-parameter fraction (weight elements inside some group's slices), the
 * declined groups by reason, and the analysis time (shape inference included), with and without
 * `rewriteComputedShapes` (−1 rewrites of Reshape elements computed from unpruned dims).
 *
 * Run: `npm run build && node dist/bench/groups.js [MODELS_DIR]`. Not part of `npm test`.
 */
import * as fs from 'fs';
import * as path from 'path';
import { analyzeGroups } from '../src/pipeline/stages';
import type { GroupAnalysis } from '../src/analysis/types';
import { loadModel } from '../src/ir/io';

const dir = path.resolve(process.argv[2] ?? path.join(__dirname, '../../../shared/models'));

function kinds(a: GroupAnalysis): string {
  const c: Record<string, number> = {};
  for (const g of a.groups) c[g.unit] = (c[g.unit] ?? 0) + 1;
  return Object.entries(c).map(([k, n]) => `${n} ${k}`).join(', ') || '-';
}

function reasons(a: GroupAnalysis): string {
  const c: Record<string, number> = {};
  for (const d of a.declined) c[d.reason] = (c[d.reason] ?? 0) + 1;
  return Object.entries(c).sort((x, y) => y[1] - x[1]).map(([r, n]) => `${n}× ${r}`).join('; ');
}

const pct = (a: GroupAnalysis) => `${((100 * a.summary.prunableParams) / a.summary.totalParams).toFixed(1)}%`;

async function main(): Promise<void> {
  const files = fs.readdirSync(dir).filter((f) => f.endsWith('.onnx')).sort();
  if (!files.length) throw new Error(`no .onnx files in ${dir}`);
  const rows: string[][] = [['model', 'nodes', 'params', 'groups', 'prunable', 'prunable (rw)', 'declined: reasons', 'time']];
  let slowest = { file: '', ms: 0 };
  for (const f of files) {
    const model = loadModel(path.join(dir, f));
    const t0 = process.hrtime.bigint();
    const a = await analyzeGroups(model);
    const ms = Number(process.hrtime.bigint() - t0) / 1e6;
    const rw = await analyzeGroups(model, { rewriteComputedShapes: true });
    if (ms > slowest.ms) slowest = { file: f, ms };
    rows.push([
      f.replace(/\.onnx$/, ''), String(model.graph.nodes.length), String(a.summary.totalParams), kinds(a), pct(a),
      rw.groups.length !== a.groups.length ? `${pct(rw)} (+${rw.groups.length - a.groups.length} groups)` : pct(rw),
      `${a.declined.length}: ${reasons(a)}`, `${ms.toFixed(0)} ms`,
    ]);
  }
  const widths = rows[0].map((_, i) => Math.max(...rows.map((r) => r[i].length)));
  for (const [k, r] of rows.entries()) {
    console.log(r.map((c, i) => (i === 6 ? c : c.padEnd(widths[i]))).join(' | '));
    if (k === 0) console.log(widths.map((w) => '-'.repeat(w)).join('-|-'));
  }
  console.log(`\nslowest analysis: ${slowest.file} ${slowest.ms.toFixed(0)} ms (static shape inference + propagation + groups)`);
  console.log('prunable = weight elements inside some group member slice / all weight elements; (rw) = with rewriteComputedShapes');
}

main().catch((e) => {
  console.error(e);
  process.exit(2);
});
