/**
 * Verification of a pruned model in onnxruntime.
 *
 * Equivalence: the pruned model must compute the *masked dense* model (same graph as the dense one, with the
 * removed units zeroed in every weight that consumes them) on seeded inputs. It passes when, for every output,
 * max|pruned − masked| ≤ rtol · max|masked| (rtol defaults to 1e-4: the pruned model sums fewer terms, in a
 * different order, so float32 rounding differs slightly) and integer/bool outputs are equal.
 * Fidelity: separately, how close the pruned model stays to the original dense model (cosine, top-1 agreement,
 * KL of softmax(last axis)); fidelity is reported, never a pass/fail criterion.
 */
import type { Group, GroupAnalysis } from '../analysis/types';
import { DataType } from '../ir/dtype';
import { UserError } from '../ir/errors';

import { valueTypeOf } from '../ir/graph';
import type { Model } from '../ir/model';
import { encodeModelProto } from '../ir/proto';
import { applyPlan } from '../prune/apply';
import { cloneModel } from '../prune/clone';
import { maskPlan } from '../prune/mask';
import type { PlanGroups } from '../prune/plan';
import { compareOutputs, type OutputComparison } from './compare';
import { createSession, modelBytes, ort, randomInputs } from './ort';

export type Feeds = Record<string, ort.Tensor>;

export const DEFAULT_RTOL = 1e-4;

export interface VerifyOptions {
  seed?: number;
  /** Value of the first symbolic dim of each input (batch); default 2. */
  batch?: number;
  /** Value of the other symbolic dims (sequence length...); default 8. */
  seq?: number;
  /** Relative tolerance w.r.t. each output's scale; default 1e-4. */
  rtol?: number;
  /** Inputs to use instead of seeded random ones (e.g. calibration data). */
  feeds?: Feeds;
  /**
   * The model fidelity is measured against, when it is not `dense` (e.g. the model before bias compensation
   * edited the dense one); default `dense`.
   */
  original?: Model;
}

export interface VerifyReport {
  passed: boolean;
  /** Why it failed, in one line. */
  error?: string;
  rtol: number;
  inputs: { seed: number; shapes: Record<string, number[]> };
  maxAbsDiff: number;
  maxRelDiff: number;
  cosine: number;
  argmaxAgreement?: number;
  outputs: OutputComparison[];
}

export interface FidelityReport {
  cosine: number;
  /** Top-1 (argmax over the last axis) agreement with the dense model. */
  top1?: number;
  /** Mean KL(softmax(dense) ‖ softmax(pruned)) over the last axis. */
  kl?: number;
  outputs: OutputComparison[];
}

export interface VerifyResult {
  verify: VerifyReport;
  fidelity?: FidelityReport;
}

export { cloneModel };

/** Bytes ORT can load, without changing `model` (external data is inlined in a copy). */
function ortBytes(model: Model): Uint8Array {
  const external = model.graph.allGraphs().some((g) => [...g.initializers.values()].some((t) => t.external));
  return external ? modelBytes(cloneModel(model)) : encodeModelProto(model.toProto());
}

/**
 * Upper bound for integer inputs: the row count of an embedding table the input indexes (Gather with a constant
 * data input), else 2.
 */
function intHighFor(model: Model, input: string): number {
  const g = model.graph;
  let high: number | undefined;
  for (const c of g.consumers(input)) {
    if (c.opType !== 'Gather' || c.inputs[1] !== input) continue;
    const table = g.resolveConstant(c.inputs[0]);
    if (!table) continue;
    const rank = table.dims.length;
    const axis = ((c.attrInt('axis', 0) % rank) + rank) % rank;
    high = Math.min(high ?? Infinity, table.dims[axis]);
  }
  return high ?? 2;
}

/** Seeded inputs: the first symbolic dim of each input = batch, other symbolic dims = seq. */
export function verificationFeeds(model: Model, opts: VerifyOptions = {}): Feeds {
  const batch = opts.batch ?? 2;
  const seq = opts.seq ?? 8;
  const dims: Record<string, number> = {};
  let intHigh = Infinity;
  for (const vi of model.graph.realInputs) {
    const t = valueTypeOf(vi);
    (t?.shape ?? []).forEach((d, axis) => {
      if (typeof d === 'string' && dims[d] === undefined) dims[d] = axis === 0 ? batch : seq;
    });
    if (t && (t.dtype === DataType.INT64 || t.dtype === DataType.INT32)) intHigh = Math.min(intHigh, intHighFor(model, vi.name ?? ''));
  }
  return randomInputs(model, { seed: opts.seed ?? 0, dims, defaultDim: seq, intHigh: Number.isFinite(intHigh) ? intHigh : 2 });
}

/** Runs a model once on `feeds` and releases the session; throws UserError when ORT cannot load it. */
export async function runModel(model: Model | Uint8Array, feeds: Feeds): Promise<Record<string, ort.Tensor>> {
  // ORT's own error log is silenced (level 4 = fatal only): failures come back as errors we report in one line.
  const session = await createSession(model instanceof Uint8Array ? model : ortBytes(model), { logSeverityLevel: 4 });
  try {
    return await session.run(feeds, { logSeverityLevel: 4 });
  } finally {
    await session.release();
  }
}

function isIntType(t: ort.Tensor): boolean {
  return !['float32', 'float16', 'float64'].includes(t.type);
}

function summarize(outputs: OutputComparison[]) {
  const args = outputs.map((o) => o.argmaxAgreement).filter((x): x is number => x !== undefined);
  const kls = outputs.map((o) => o.kl).filter((x): x is number => x !== undefined);
  return {
    maxAbsDiff: Math.max(0, ...outputs.map((o) => o.maxAbsDiff)),
    maxRelDiff: Math.max(0, ...outputs.map((o) => o.maxRelDiff)),
    cosine: Math.min(1, ...outputs.map((o) => o.cosine)),
    argmax: args.length ? Math.min(...args) : undefined,
    kl: kls.length ? Math.max(...kls) : undefined,
  };
}

/**
 * Compares `pruned` with the masked version of `dense` (and with `dense` itself, for fidelity).
 * `dense` is not modified (the masked model is built on a copy).
 */
export async function verifyPruned(dense: Model, pruned: Model, analysis: GroupAnalysis, planGroups: PlanGroups, opts: VerifyOptions = {}): Promise<VerifyResult> {
  const rtol = opts.rtol ?? DEFAULT_RTOL;
  const seed = opts.seed ?? 0;
  const feeds = opts.feeds ?? verificationFeeds(dense, opts);
  const shapes = Object.fromEntries(Object.entries(feeds).map(([k, v]) => [k, v.dims.slice()]));
  const masked = cloneModel(dense);
  maskPlan(masked, analysis, planGroups);
  let maskedOut: Record<string, ort.Tensor>;
  try {
    maskedOut = await runModel(masked, feeds);
  } catch (e) {
    const shapeText = Object.entries(shapes).map(([k, v]) => `${k}[${v.join(',')}]`).join(', ');
    throw new UserError(`verification: the dense model does not run on the verification inputs ${shapeText} (${(e as Error).message.split('\n')[0]}); adjust --verify-batch / --verify-seq or use --no-verify`);
  }
  const report: VerifyReport = { passed: false, rtol, inputs: { seed, shapes }, maxAbsDiff: Infinity, maxRelDiff: Infinity, cosine: 0, outputs: [] };
  let prunedOut: Record<string, ort.Tensor>;
  try {
    prunedOut = await runModel(pruned, feeds);
  } catch (e) {
    report.error = `the pruned model does not run in onnxruntime: ${(e as Error).message.split('\n')[0]}`;
    return { verify: report };
  }
  const names = pruned.graph.outputs.map((o) => o.name ?? '');
  const problems: string[] = [];
  for (const name of names) {
    const ref = maskedOut[name];
    const got = prunedOut[name];
    if (!ref || !got) {
      problems.push(`output '${name}' is missing`);
      continue;
    }
    const c = compareOutputs(name, ref, got);
    report.outputs.push(c);
    if (c.mismatch) problems.push(`output '${name}': ${c.mismatch}`);
    else if (isIntType(ref) ? c.maxAbsDiff !== 0 : !(c.maxRelDiff <= rtol)) {
      problems.push(`output '${name}' differs from the masked model: max abs diff ${c.maxAbsDiff.toPrecision(3)} = ${c.maxRelDiff.toPrecision(3)} of its scale ${c.scale.toPrecision(3)} (tolerance ${rtol})`);
    }
  }
  const s = summarize(report.outputs);
  Object.assign(report, { maxAbsDiff: s.maxAbsDiff, maxRelDiff: s.maxRelDiff, cosine: s.cosine });
  if (s.argmax !== undefined) report.argmaxAgreement = s.argmax;
  report.passed = problems.length === 0;
  if (problems.length) report.error = problems.join('; ');

  const denseOut = await runModel(opts.original ?? dense, feeds);
  const fid: OutputComparison[] = [];
  for (const name of names) if (denseOut[name] && prunedOut[name]) fid.push(compareOutputs(name, denseOut[name], prunedOut[name], { kl: true }));
  const f = summarize(fid);
  const fidelity: FidelityReport = { cosine: f.cosine, outputs: fid };
  if (f.argmax !== undefined) fidelity.top1 = f.argmax;
  if (f.kl !== undefined) fidelity.kl = f.kl;
  return { verify: report, fidelity };
}

export interface GroupFailure {
  group: string;
  label: string;
  unit: string;
  removed: number[];
  /** Why it failed (ORT load error or the output difference). */
  error: string;
  maxRelDiff?: number;
  /** The group's members as `kind tensor@node[input] axis role` strings: the op path to look at. */
  members: string[];
}

export function describeMembers(g: Group, model?: Model): string[] {
  const op = (node: string) => (model ? model.graph.producer(node)?.opType ?? '?' : '');
  return g.members.map((m) => {
    if (m.kind === 'weight') return `weight ${m.tensor} @ ${op(m.node)}(${m.node})[${m.input}] axis ${m.axis} ${m.role}`;
    if (m.kind === 'shape') return `shape ${m.tensor} @ ${op(m.node)}(${m.node})[${m.input}] element ${m.position} -${m.perUnit}/unit`;
    return `attr ${op(m.node)}(${m.node}).${m.attr}${m.position !== undefined ? `[${m.position}]` : ''} -${m.perUnit}/unit`;
  });
}

/**
 * Finds which planned groups break equivalence: each group is pruned alone (on a copy of `dense`) and
 * verified against its own masked model. Slow (two ORT sessions per group); used to explain a failure.
 */
export async function findFailingGroups(dense: Model, analysis: GroupAnalysis, planGroups: PlanGroups, opts: VerifyOptions = {}): Promise<GroupFailure[]> {
  const feeds = opts.feeds ?? verificationFeeds(dense, opts);
  const failures: GroupFailure[] = [];
  for (const g of analysis.groups) {
    const units = planGroups[g.id];
    if (!units?.length) continue;
    const one = { [g.id]: units };
    const base: Omit<GroupFailure, 'error'> = { group: g.id, label: g.label, unit: g.unit, removed: units, members: describeMembers(g, dense) };
    let pruned: Model;
    try {
      pruned = cloneModel(dense);
      applyPlan(pruned, analysis, one);
    } catch (e) {
      failures.push({ ...base, error: `apply failed: ${(e as Error).message}` });
      continue;
    }
    try {
      const r = await verifyPruned(dense, pruned, analysis, one, { ...opts, feeds });
      if (!r.verify.passed) failures.push({ ...base, error: r.verify.error ?? 'failed', maxRelDiff: r.verify.maxRelDiff });
    } catch (e) {
      failures.push({ ...base, error: (e as Error).message });
    }
  }
  return failures;
}

/** Thrown when the pruned model fails verification (the CLI exits non-zero and writes nothing). */
export class VerificationError extends Error {
  constructor(message: string, readonly report?: VerifyReport, readonly failures?: GroupFailure[]) {
    super(message);
    this.name = 'VerificationError';
  }
}

export function isVerificationError(e: unknown): e is VerificationError {
  return e instanceof Error && e.name === 'VerificationError';
}

