/**
 * `onnx-prune IN OUT [--ratio R] ...`: runs the pass pipeline. Ratio 0 (and no plan) is load → prune (no-op)
 * → save; pruning is load → analyze → importance-<method> → allocate → plan → compensate → prune → verify → save
 * (see `pruningPipeline`). Options come from the command line and `--config FILE` (command line wins).
 * Verification is on by default when pruning: a pruned model that does not match the masked dense model in
 * onnxruntime is not written (exit ≠ 0), unless --keep-invalid.
 */
import * as path from 'path';
import type { CommandModule } from 'yargs';
import { UserError } from '../ir/errors';
import { Pipeline, newContext } from '../pipeline/pipeline';
import { loadPassModule } from '../pipeline/registry';
import { registerBuiltinPasses } from '../../passes';
import { resolveOptions } from '../pipeline/config';
import { addPruneOptions, explicitOptions } from './prune-options';
import { DEFAULT_RTOL, VerificationError, isVerificationError } from '../verify/verify';

interface PruneArgs {
  input: string;
  output: string;
  ratio?: number;
  config?: string;
  'external-data'?: boolean;
  pass?: string[];
  passes?: string;
  json?: boolean;
  quiet?: boolean;
  verbose?: boolean;
  plan?: string;
  'save-plan'?: string;
  verify?: boolean;
  'keep-invalid'?: boolean;
  seed?: number;
  tolerance: number;
  'verify-batch'?: number;
  'verify-seq'?: number;
}

registerBuiltinPasses();

export const DEFAULT_PIPELINE = ['load', 'prune', 'save'];

export interface PipelineChoice {
  ratio: number;
  planFile?: string;
  savePlan?: string;
  verify: boolean;
  /** Importance method (default l2). */
  importance?: string;
}

/** The pass names for a prune run: the lossless no-op pipeline at ratio 0, else analyze/score/plan/prune/verify. */
export function pruningPipeline(o: PipelineChoice): string[] {
  if (o.ratio === 0 && !o.planFile && !o.savePlan) return DEFAULT_PIPELINE.slice();
  const names = ['load', 'analyze'];
  if (!o.planFile) names.push(`importance-${o.importance ?? 'l2'}`, 'allocate');
  names.push('plan');
  names.push('compensate');
  names.push('prune');
  if (o.verify && (o.ratio !== 0 || o.planFile)) names.push('verify');
  names.push('save');
  return names;
}

function fmt(n: number | null | undefined): string {
  if (n === null || n === undefined) return '?';
  return n >= 1e9 ? `${(n / 1e9).toFixed(2)}G` : n >= 1e6 ? `${(n / 1e6).toFixed(2)}M` : n >= 1e3 ? `${(n / 1e3).toFixed(1)}k` : String(n);
}

/** One human-readable summary line of a prune report (stdout without --json). */
export function summaryLine(report: Record<string, unknown>): string | undefined {
  const params = report.params as { before: number; after: number } | undefined;
  if (!params) return undefined;
  const flops = report.flops as { before: number | null; after: number | null } | undefined;
  const groups = report.groups as { pruned: number; total: number; declined: number; unitsRemoved: number; note?: string } | undefined;
  const verify = report.verify as { passed: boolean; maxRelDiff: number; skipped?: string } | undefined;
  const fid = report.fidelity as { cosine: number; top1?: number } | undefined;
  const pct = (a: number, b: number) => (b > 0 ? `${(100 * (a - b) / b).toFixed(1)}%` : '?');
  const parts = [
    `pruned ${groups?.pruned ?? 0}/${groups?.total ?? 0} groups (${groups?.unitsRemoved ?? 0} units; ${groups?.declined ?? 0} declined)`,
    `params ${fmt(params.before)} → ${fmt(params.after)} (${pct(params.after, params.before)})`,
  ];
  if (flops && flops.before !== null && flops.after !== null) parts.push(`FLOPs ${fmt(flops.before)} → ${fmt(flops.after)} (${pct(flops.after, flops.before)})`);
  if (verify) parts.push(verify.skipped ? 'not verified (nothing pruned)' : verify.passed ? `verified (max rel diff ${verify.maxRelDiff.toExponential(1)})` : 'VERIFICATION FAILED');
  if (fid) parts.push(`vs dense: cosine ${fid.cosine.toFixed(4)}${fid.top1 !== undefined ? `, top-1 ${(100 * fid.top1).toFixed(1)}%` : ''}`);
  return `${parts.join('; ')}${groups?.note ? `\n${groups.note}` : ''}`;
}

export const pruneCommand: CommandModule<object, PruneArgs> = {
  command: '$0 <input> <output>',
  describe: 'prune a model (IN → OUT)',
  builder: (y) =>
    addPruneOptions(y)
      .positional('input', { type: 'string', describe: 'input .onnx model', demandOption: true })
      .positional('output', { type: 'string', describe: 'output .onnx path', demandOption: true })
      .option('ratio', { type: 'number', describe: 'fraction of --target (params) to remove, 0 ≤ R < 1 (default 0 = lossless no-op)' })
      .option('external-data', { type: 'boolean', describe: 'write weights to OUT.data (default: when the input had external data or the model is over ~1.8 GB)' })
      .option('pass', { type: 'string', array: true, describe: 'extra pass module(s) (JS file exporting a pass); runs before save' })
      .option('passes', { type: 'string', describe: `comma-separated pipeline (default ${DEFAULT_PIPELINE.join(',')} at ratio 0, else ${pruningPipeline({ ratio: 0.5, verify: true }).join(',')})` })
      .option('plan', { type: 'string', describe: 'apply a saved plan (JSON, schemas/plan.schema.json) instead of --ratio' })
      .option('save-plan', { type: 'string', describe: 'write the plan (units removed per group) to this JSON file' })
      .option('verify', { type: 'boolean', describe: 'check the pruned model against the masked dense model in onnxruntime (--no-verify skips)' })
      .option('keep-invalid', { type: 'boolean', describe: 'write the output even when verification fails (still exits non-zero)' })
      .option('tolerance', { type: 'number', default: DEFAULT_RTOL, describe: 'verification tolerance: max |pruned − masked| / max |masked| per output (outputs of Sigmoid/Softmax/...: relative to their input\'s scale, input checked too; float16 outputs: at least their rounding budget, src/runtime/rounding.ts)' })
      .option('verify-batch', { type: 'number', describe: 'batch size of the verification inputs (default 2)' })
      .option('verify-seq', { type: 'number', describe: 'value of the other symbolic input dims, e.g. sequence length (default 8, then 64, 256, ... while the model rejects them); also tried for shape measurement' })
      .option('gqa-query-heads', { type: 'boolean', describe: 'grouped-query attention: prune query head r of every kv-group instead of whole kv-groups' })
      .option('json', { type: 'boolean', describe: 'print the report as JSON on stdout' })
      .option('verbose', { type: 'boolean', describe: 'print progress messages (pass timings) on stderr' })
      .option('quiet', { type: 'boolean', alias: 'q', describe: 'no progress messages (overrides --verbose)' }) as never,
  handler: async (args) => {
    // Command-line flags override the config file; both are validated against schemas/config.schema.json.
    const o = resolveOptions(explicitOptions(args as unknown as Record<string, unknown>), args.config);
    const ratio = o.ratio ?? 0;
    const verify = o.verify ?? true;
    const seed = o.seed ?? 0;
    if (!Number.isFinite(ratio) || ratio < 0 || ratio >= 1) throw new UserError(`--ratio must be in [0, 1), got ${ratio}`);
    if (path.resolve(args.input) === path.resolve(args.output)) throw new UserError('input and output must be different files');
    if (o.plan !== undefined && ratio !== 0) throw new UserError('--plan and --ratio are exclusive: the plan says which units to remove');
    if (!Number.isInteger(seed)) throw new UserError(`--seed must be an integer, got ${seed}`);
    if (!(args.tolerance > 0)) throw new UserError(`--tolerance must be a positive number, got ${args.tolerance}`);
    for (const k of ['verify-batch', 'verify-seq'] as const) {
      const v = args[k];
      if (v !== undefined && !(Number.isInteger(v) && v >= 1)) throw new UserError(`--${k} must be a positive integer, got ${v}`);
    }
    for (const f of [o.plan, o.savePlan]) if (f !== undefined && (path.resolve(f) === path.resolve(args.output) || path.resolve(f) === path.resolve(args.input))) throw new UserError(`plan file '${f}' is also the model input or output`);
    const options: Record<string, unknown> = {
      ...o,
      ratio,
      externalData: o.externalData ?? 'auto',
      planFile: o.plan,
      savePlan: o.savePlan,
      verify,
      keepInvalid: !!o.keepInvalid,
      seed,
      tolerance: args.tolerance,
      verifyBatch: args['verify-batch'],
      verifySeq: args['verify-seq'],
      quiet: !!o.quiet || !!o.json,
      // Apply supports replacing computed shape elements (ShapeMember.replaceWith), which lets the analysis
      // prune heads whose merge-back Reshape reads the embedding size from a graph shape.
      rewriteComputedShapes: true,
      gqaQueryHeads: o.gqaQueryHeads === true,
    };
    const names = o.passes
      ? o.passes.split(',').map((s) => s.trim()).filter(Boolean)
      : pruningPipeline({ ratio, planFile: o.plan, savePlan: o.savePlan, verify, importance: o.importance });
    const extra = (o.pass ?? []).flatMap((p) => loadPassModule(p, options).map((x) => x.name));
    if (extra.length) {
      const at = names.lastIndexOf('save');
      names.splice(at === -1 ? names.length : at, 0, ...extra);
    }
    const ctx = newContext({
      inputPath: args.input,
      outputPath: args.output,
      options,
      // Progress only on request, so that a user error is exactly one line on stderr.
      log: (m) => { if (o.verbose && !o.quiet) process.stderr.write(`${m}\n`); },
    });
    try {
      await Pipeline.fromNames(names, options).run(ctx);
    } catch (e) {
      // A failed verification still prints its report (which groups failed) for tools that parse --json.
      if (isVerificationError(e) && o.json) process.stdout.write(`${JSON.stringify(ctx.report, null, 2)}\n`);
      throw e;
    }
    if (o.json) process.stdout.write(`${JSON.stringify(ctx.report, null, 2)}\n`);
    else if (!o.quiet) {
      const line = summaryLine(ctx.report);
      if (line) process.stdout.write(`${line}\n`);
    }
    const verdict = ctx.report.verify as { passed?: boolean; error?: string } | undefined;
    if (verdict && verdict.passed === false) {
      throw new VerificationError(`verification failed (output kept: --keep-invalid): ${verdict.error ?? ''}`);
    }
  },
};
