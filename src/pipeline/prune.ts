/**
 * `prune(model | path, options)`: the whole pruning pipeline in one call — what the `onnx-prune IN OUT` command
 * runs. The built-in passes must be registered (src/index.ts does it when loaded).
 *
 *   const { model, report, plan } = await prune('in.onnx', { ratio: 0.3, importance: 'l2', output: 'out.onnx' });
 *
 * Options are the CLI's (PruneOptions, camelCase: `maxRatio` is `--max-ratio`), checked the same way, plus
 * `output` (write the result there; without it nothing is written) and hooks for toolchains. The input model
 * object is not modified. Errors: UserError (bad input or options; nothing written), VerificationError (the
 * pruned model does not match the masked dense model; nothing written unless `keepInvalid`), both carrying the
 * run's report so far in `runReport`.
 */
import * as path from 'path';
import { cloneModel } from '../ir/clone';
import { UserError } from '../ir/errors';
import { OutputSet } from '../ir/files';
import { protectModelFiles } from '../ir/io';
import type { Model } from '../ir/model';
import type { PrunePlan } from '../prune/plan';
import { pruningPipeline } from './default';
import { DEFAULTS, OPTION_SPECS, loadConfig, reconstructMode, validateOptions, type OptionName, type PruneOptions } from './options';
import type { Artifacts, Pass, PassContext, Report } from './pass';
import { Pipeline, newContext } from './pipeline';
import { createPass, loadPassModule, markPluginPass, pluginOrigin } from './registry';

export interface PruneRunOptions extends PruneOptions {
  /** Where to write the pruned model (temp file + rename); nothing is written without it. */
  output?: string;
  /**
   * Pass objects to run after the built-in ones, before `verify` (else before `save`), like `pass` modules: the
   * model they leave is verified (a pass that changes what the model computes fails verification).
   */
  extraPasses?: Pass[];
  /** Progress messages (pass timings). */
  log?: (message: string) => void;
  /** Called with each warning (they are in report.warnings too). */
  onWarning?: (message: string) => void;
}

export interface PruneResult {
  /** The pruned model (the input unchanged when nothing was pruned). */
  model: Model;
  report: Report;
  /** The plan applied: units removed per group (and bias compensation); absent for the ratio-0 no-op. */
  plan?: PrunePlan;
  /** Everything the passes produced (group analysis, scores, …). */
  artifacts: Artifacts;
}

/** An error of a prune run, with the run's report so far (e.g. which groups failed verification). */
export interface RunError extends Error {
  runReport?: Report;
}

/** `maxRatio` → `max-ratio`. */
function kebab(name: string): string {
  return name.replace(/[A-Z]/g, (c) => `-${c.toLowerCase()}`);
}

const API_KEYS = new Set(['output', 'extraPasses', 'log', 'onWarning']);

/** Typed options checked like the command line's (the same one-line errors, naming the option). */
export function checkOptions(o: PruneOptions, source = 'options'): PruneOptions {
  const raw: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(o)) {
    if (v === undefined || API_KEYS.has(k) || k === 'config') continue;
    const name = kebab(k);
    if (!(name in OPTION_SPECS)) throw new UserError(`${source}: unknown option '${k}'`);
    raw[name] = OPTION_SPECS[name as OptionName].kind === 'dims' && v && typeof v === 'object' && !Array.isArray(v)
      ? Object.entries(v as Record<string, number>).map(([d, n]) => `${d}=${n}`)
      : v;
  }
  return validateOptions(raw, source === 'options' ? 'command line' : source);
}

/** The checks that involve several options or the files. */
function checkRun(input: string | undefined, output: string | undefined, o: PruneOptions): void {
  const ratio = o.ratio ?? 0;
  if (input !== undefined && output !== undefined && path.resolve(input) === path.resolve(output)) throw new UserError('input and output must be different files');
  if (o.plan !== undefined && ratio !== 0) throw new UserError('--plan and --ratio are exclusive: the plan says which units to remove');
  for (const f of [o.plan, o.savePlan]) {
    if (f === undefined) continue;
    const p = path.resolve(f);
    if ((output !== undefined && p === path.resolve(output)) || (input !== undefined && p === path.resolve(input))) throw new UserError(`plan file '${f}' is also the model input or output`);
  }
  reconstructMode(o); // contradictory --compensate / --reconstruct: an error before anything runs
  if (o.depthOnly) {
    // Blocks are chosen by their own score (masked KL) and removed whole: nothing to rank by importance, allocate
    // across groups or refit.
    const given = (['importance', 'allocation', 'reconstruct', 'compensate', 'roundTo'] as const).filter((k) => o[k] !== undefined && !(k === 'allocation' && o[k] === 'uniform'));
    if (given.length) throw new UserError(`--depth-only removes whole blocks by their own score: --${kebab(given[0])} does not apply to it`);
  }
}

/**
 * The run's outputs, with every file it reads protected (by device and inode: no output may be an input, through
 * a symlink or a hard link either) and the output paths checked before anything runs (not a directory, FIFO or
 * device). The load pass adds the input's external-data files.
 */
function runOutputs(input: Model | string, output: string | undefined, config: string | undefined, o: PruneOptions): OutputSet {
  const outputs = new OutputSet();
  if (typeof input === 'string') outputs.protect(input, 'the input model');
  else protectModelFiles(input, outputs);
  if (config !== undefined) outputs.protect(config, 'the config file');
  if (o.plan !== undefined) outputs.protect(o.plan, 'the plan file (--plan)');
  if (o.calib !== undefined) outputs.protect(o.calib, 'the calibration file');
  for (const p of o.pass ?? []) outputs.protect(p, 'a pass module');
  if (output !== undefined) outputs.declare(output, 'output model');
  if (o.savePlan !== undefined) outputs.declare(o.savePlan, 'plan file');
  return outputs;
}

export async function prune(input: Model | string, options: PruneRunOptions = {}): Promise<PruneResult> {
  const { output, extraPasses = [], log, onWarning } = options;
  // Options given in code are checked like flags; a config file's options come first, the given ones win.
  let o = checkOptions(options);
  if (options.config) o = { ...loadConfig(options.config), ...o };
  checkRun(typeof input === 'string' ? input : undefined, output, o);
  // Passes see the effective value of every option that has a default.
  o = { ...DEFAULTS, ...o };
  // The output paths are checked against every input before anything runs (pass modules included).
  const outputs = runOutputs(input, output, options.config, o);
  const inputPath = typeof input === 'string' ? input : undefined;

  let names = o.passes ? o.passes.split(',').map((s) => s.trim()).filter(Boolean) : pruningPipeline(o);
  if (!inputPath) names = names.filter((n) => n !== 'load');
  if (output === undefined) names = names.filter((n) => n !== 'save');
  const passes = names.map((n) => createPass(n, o));
  for (const p of extraPasses) if (!pluginOrigin(p)) markPluginPass(p, 'extraPasses');
  const extra = [...(o.pass ?? []).flatMap((p) => loadPassModule(p, o)), ...extraPasses];
  if (extra.length) {
    // Before verification, so that what a pass does to the model is checked (and loaded by onnxruntime) like the
    // prune itself; without `verify`, before `save` (which loads the model in onnxruntime first).
    const verify = names.indexOf('verify');
    const at = verify !== -1 ? verify : names.lastIndexOf('save');
    passes.splice(at === -1 ? passes.length : at, 0, ...extra);
  }
  const given = [...(inputPath ? ['inputPath'] : ['model']), ...(output !== undefined ? ['outputPath'] : [])];
  const pipeline = new Pipeline(passes, given);
  const ctx: PassContext = newContext({
    inputPath,
    outputPath: output,
    model: typeof input === 'string' ? undefined : cloneModel(input),
    outputs,
    options: o,
    log: log ?? (() => {}),
    warn: onWarning,
  });
  try {
    await pipeline.run(ctx);
  } catch (e) {
    if (e instanceof Error) (e as RunError).runReport = ctx.report;
    throw e;
  }
  if (!ctx.model) throw new Error('the pipeline produced no model');
  return { model: ctx.model, report: ctx.report, plan: ctx.artifacts.plan, artifacts: ctx.artifacts };
}
