/** Human-readable listing of a GroupAnalysis (`onnx-prune groups MODEL`). */
import type { GroupAnalysis } from './types';
import { escapeControl } from '../util/text';

function human(n: number): string {
  if (n >= 1e6) return `${(n / 1e6).toFixed(2)}M`;
  if (n >= 1e3) return `${(n / 1e3).toFixed(1)}K`;
  return String(n);
}

export function formatGroups(a: GroupAnalysis, file: string): string {
  const lines: string[] = [`model ${file}`];
  lines.push(`groups (${a.groups.length}):`);
  for (const g of a.groups) {
    const w = g.members.filter((m) => m.kind === 'weight').length;
    const s = g.members.filter((m) => m.kind === 'shape').length;
    const at = g.members.filter((m) => m.kind === 'attr').length;
    const sn = g.members.filter((m) => m.kind === 'stat').length;
    const unit = g.unitSize > 1 ? `${g.unit} of ${g.unitSize}` : g.unit;
    lines.push(`  ${g.id}`);
    lines.push(`      ${g.size} × ${unit}, ${human(g.paramsPerUnit)} params/unit, members: ${w} weights${s ? `, ${s} shape` : ''}${at ? `, ${at} attr` : ''}${sn ? `, ${sn} norm statistics over kept` : ''} — ${g.label}`);
  }
  if (a.blocks?.length) {
    lines.push(`blocks (${a.blocks.length}, removable whole with --depth-only):`);
    for (const b of a.blocks) lines.push(`  ${b.id}: ${b.kind}, ${human(b.params)} params, ${b.nodes.length} nodes`);
  }
  lines.push(`declined (${a.declined.length}):`);
  for (const d of a.declined) {
    const op = d.op ? ` (${d.op}${d.input !== undefined ? `, input ${d.input}` : ''})` : '';
    const where = d.node ? `${d.node}${op}` : d.tensor ?? '';
    lines.push(`  ${d.producers?.[0] ?? '?'}${d.producers && d.producers.length > 1 ? ` (+${d.producers.length - 1})` : ''}: ${d.reason}${where ? ` at ${where}` : ''}`);
  }
  if (a.unaccounted?.length) {
    const total = a.unaccounted.reduce((t, u) => t + u.params, 0);
    lines.push(`in no group (${human(total)} params in ${a.unaccounted.length} tensor(s), not a weight of a declined group's producers either):`);
    for (const u of [...a.unaccounted].sort((x, y) => y.params - x.params).slice(0, 5)) {
      const r = u.readers.map((x) => `${x.op}(${x.node})${x.input < 0 ? ' inside its subgraph' : `[${x.input}]`}`).join(', ');
      lines.push(`  ${u.tensor}: ${human(u.params)} params${r ? `, read by ${r}` : ', not read'}`);
    }
    if (a.unaccounted.length > 5) lines.push(`  … ${a.unaccounted.length - 5} more (--json lists them)`);
  }
  const s = a.summary;
  const pct = s.totalParams ? ((100 * s.prunableParams) / s.totalParams).toFixed(1) : '0.0';
  lines.push(`summary: prunable params ${s.prunableParams} / ${s.totalParams} (${pct}%), ${s.groups} groups, ${s.declined} declined`);
  // Names from the model are shown escaped: one line each, no escape sequences reaching the terminal.
  return lines.map(escapeControl).join('\n');
}
