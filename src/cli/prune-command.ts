/**
 * `onnx-prune IN OUT [options]`: runs `prune()` (src/pipeline/prune.ts) — the lossless no-op pipeline at ratio 0
 * (load → prune → save), else load → analyze → importance-<method> → allocate → plan → compensate → prune → verify
 * → save. Options come from the command line and `--config FILE` (command line wins), both checked against the
 * option registry (src/pipeline/options.ts). A pruned model that does not match the masked dense model in
 * onnxruntime is not written (exit 3), unless --keep-invalid.
 */
import type { CommandModule } from 'yargs';
import { prune, pruningPipeline, resolveOptions, VerificationError, isVerificationError, type Report, type RunError } from '../index';
import { addOptions, explicitOptions } from './prune-options';
import { printLine } from './output';

interface PruneArgs {
  input: string;
  output: string;
  config?: string;
  [key: string]: unknown;
}

function fmt(n: number | null | undefined): string {
  if (n === null || n === undefined) return '?';
  return n >= 1e9 ? `${(n / 1e9).toFixed(2)}G` : n >= 1e6 ? `${(n / 1e6).toFixed(2)}M` : n >= 1e3 ? `${(n / 1e3).toFixed(1)}k` : String(n);
}

/** One human-readable summary line of a prune report (stdout without --json). */
export function summaryLine(report: Report): string | undefined {
  const { params, flops, groups, verify, fidelity: fid } = report;
  if (!params) return undefined;
  const pct = (a: number, b: number) => (b > 0 ? `${(100 * (a - b) / b).toFixed(1)}%` : '?');
  const parts = [
    report.depth ? `removed ${report.depth.removed.length}/${groups?.total ?? report.depth.blocks.length} blocks${report.depth.blocks.length ? ` (${report.depth.removed.map((id) => report.depth!.blocks.find((b) => b.id === id)?.kind).join(', ')})` : ''}`
      : `pruned ${groups?.pruned ?? 0}/${groups?.total ?? 0} groups (${groups?.unitsRemoved ?? 0} units; ${groups?.declined ?? 0} declined)`,
    `params ${fmt(params.before)} → ${fmt(params.after)} (${pct(params.after, params.before)})`,
  ];
  if (flops && flops.before !== null && flops.after !== null) parts.push(`FLOPs ${fmt(flops.before)} → ${fmt(flops.after)} (${pct(flops.after, flops.before)})`);
  if (report.latency) parts.push(`latency ${report.latency.dense_ms.toFixed(2)} → ${report.latency.pruned_ms.toFixed(2)} ms (${report.latency.ratio.toFixed(2)}×)`);
  const se = report.search;
  if (se) {
    const f = (v: number) => v.toPrecision(3);
    const what = se.fitness.every((x) => x.kind !== 'mse') ? 'KL' : se.fitness.every((x) => x.kind === 'mse') ? 'normalized MSE' : 'fitness';
    const unsearched = se.fixed.length ? `; ${se.fixed.length} group(s) not searched, not in the fitness` : '';
    parts.push(`searched allocation: ${what} ${f(se.result)} (uniform ${f(se.baselines.uniform)}${se.baselines.global !== undefined ? `, global ${f(se.baselines.global)}` : ''}; ${se.evaluations} evaluations, ${se.seconds.toFixed(0)} s${unsearched})`);
  }
  const rec = report.reconstruction;
  if (rec?.from === 'calibration' && rec.refit !== undefined) parts.push(`ls reconstruction: ${rec.refit}/${rec.consumers} layers refit`);
  else if (rec?.from === 'plan') parts.push(`ls reconstruction from the plan: ${rec.consumers} layers`);
  else if (report.compensation) parts.push(`bias compensation: ${report.compensation.consumers} layers`);
  if (verify) parts.push(verify.skipped ? 'not verified (nothing pruned)' : verify.passed ? `verified (max rel diff ${verify.maxRelDiff.toExponential(1)})` : 'VERIFICATION FAILED');
  if (fid) parts.push(`vs dense: cosine ${fid.cosine.toFixed(4)}${fid.top1 !== undefined ? `, top-1 ${(100 * fid.top1).toFixed(1)}%` : ''}`);
  return `${parts.join('; ')}${groups?.note ? `\n${groups.note}` : ''}`;
}

export const pruneCommand: CommandModule<object, PruneArgs> = {
  command: '$0 <input> <output>',
  describe: 'prune a model (IN → OUT)',
  builder: (y) =>
    addOptions(y, 'prune')
      .positional('input', { type: 'string', describe: 'input .onnx model', demandOption: true })
      .positional('output', { type: 'string', describe: 'output .onnx path', demandOption: true })
      .epilogue(`Pipeline: ${pruningPipeline({ ratio: 0 }).join(' → ')} at --ratio 0 (lossless no-op), else ${pruningPipeline({ ratio: 0.5 }).join(' → ')}.`) as never,
  handler: async (args) => {
    // Command-line flags override the config file; both are checked against the option registry.
    const o = resolveOptions(explicitOptions(args), args.config);
    const quiet = !!o.quiet || !!o.json;
    let result;
    try {
      result = await prune(args.input, {
        ...o,
        output: args.output,
        // Progress only on request, so that a user error is exactly one line on stderr (with --json too: stdout
        // holds only the report).
        log: o.verbose && !o.quiet ? (m) => printLine(m) : undefined,
        onWarning: quiet ? undefined : (m) => printLine(`onnx-prune: warning: ${m}`),
      });
    } catch (e) {
      // A failed verification still prints its report (which groups failed) for tools that parse --json.
      const report = (e as RunError).runReport;
      if (isVerificationError(e) && o.json && report) process.stdout.write(`${JSON.stringify(report, null, 2)}\n`);
      throw e;
    }
    const { report } = result;
    if (o.json) process.stdout.write(`${JSON.stringify(report, null, 2)}\n`);
    else if (!o.quiet) {
      const line = summaryLine(report);
      if (line) process.stdout.write(`${line}\n`);
    }
    if (report.verify?.passed === false) {
      throw new VerificationError(`verification failed (output kept: --keep-invalid): ${report.verify.error ?? ''}`);
    }
  },
};
