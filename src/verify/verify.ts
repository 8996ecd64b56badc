/**
 * Verification of a pruned model in onnxruntime.
 *
 * Equivalence: the pruned model must compute the *masked dense* model (same graph as the dense one, with the
 * removed units zeroed in every weight that consumes them) on seeded inputs. It passes when, for every output,
 * max|pruned − masked| ≤ rtol · max|masked| (rtol defaults to 1e-4: the pruned model sums fewer terms, in a
 * different order, so float32 rounding differs slightly) and integer/bool outputs are equal. An output produced
 * by a saturating activation (Sigmoid, Softmax, ...) is judged against the scale of the activation's input, and
 * that input is checked too (src/runtime/tolerance.ts); when the activation sits inside a main-graph If, each run
 * is compared on copies of both models with the branch it takes inlined, where the input can be fetched
 * (src/runtime/inline-if.ts). Outputs computed in float16/bfloat16 after the pruned
 * nodes are allowed their half-precision rounding budget instead of rtol when it is larger (src/runtime/rounding.ts).
 * Inputs: seeded random ones (src/runtime/verify-inputs.ts; larger sizes are tried when the model does not run
 * on the default ones and the user did not choose them), or given feeds (calibration data). An integer scalar
 * input that selects If branches by comparison with constants (Silero VAD's `sr` == 16000) is also fed each
 * compared value, so that groups inside every branch are compared (`inputs.branches` in the report).
 * Fidelity: separately, how close the pruned model stays to the original dense model (cosine, top-1 agreement,
 * KL of softmax(last axis)); fidelity is reported, never a pass/fail criterion.
 */
import type { Group, GroupAnalysis } from '../analysis/types';
import type { Model } from '../ir/model';
import { applyPlan } from '../prune/apply';
import { cloneModel } from '../ir/clone';
import { maskPlan } from '../prune/mask';
import type { PlanGroups } from '../prune/plan';
import { compareOutputs, type OutputComparison } from './compare';
import type { ort } from '../ort/session';
import { conditionValue, inlineIfs, type IfChoice } from './inline-if';
import { roundingBudgets, type RoundingBudget } from './rounding';
import { type ActivationTap, activationTaps, ifTapSites, widenToActivationInput, widenToRoundingBudget } from './tolerance';
import { type Feeds, type FeedOptions, branchSelectors, runModel, runOnAcceptedInputs, scalarValue, withInputValue } from '../ort/feeds';

export { type Feeds, runModel, verificationFeeds } from '../ort/feeds';

export const DEFAULT_RTOL = 1e-4;

export interface VerifyOptions extends FeedOptions {
  /** Relative tolerance w.r.t. each output's scale; default 1e-4. */
  rtol?: number;
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
  /**
   * The inputs used; `note` when the default sizes did not run and larger ones were used; `branches` when an
   * input selects If branches by value (e.g. a sample rate): the values verified (the random one first).
   */
  inputs: { seed: number; shapes: Record<string, number[]>; note?: string; branches?: BranchRun[] };
  maxAbsDiff: number;
  /** Largest difference relative to its tolerance scale, over outputs and activation inputs (≤ rtol ⇔ pass). */
  maxRelDiff: number;
  cosine: number;
  argmaxAgreement?: number;
  outputs: OutputComparison[];
  /** Inputs of the saturating activations that produce outputs, compared as well (see tolerance.ts). */
  activationInputs?: OutputComparison[];
}

/** One verified value of a branch-selecting input (maxRelDiff as in VerifyReport), or why it was not run. */
export interface BranchRun {
  input: string;
  value: number;
  maxRelDiff?: number;
  skipped?: string;
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
  /** The inputs verification ran on (to diagnose failing groups on the same ones). */
  feeds?: Feeds;
}

export { cloneModel };

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

/** The difference of `c` as a problem string, or undefined when within tolerance. */
function problemOf(c: OutputComparison, ref: ort.Tensor, rtol: number): string | undefined {
  const what = c.activationOf ? `'${c.name}' (input of ${c.activationOf})` : `output '${c.name}'`;
  if (c.mismatch) return `${what}: ${c.mismatch}`;
  if (isIntType(ref) ? c.maxAbsDiff === 0 : c.maxRelDiff <= rtol) return undefined;
  const scale = c.toleranceScale ?? c.scale;
  const of = c.toleranceScale !== undefined ? `its tolerance scale ${scale.toPrecision(3)} (max|output| ${c.scale.toPrecision(3)})` : `its scale ${scale.toPrecision(3)}`;
  const half = c.rounding ? `, widened to the half-precision rounding budget ${c.rounding.rtol.toPrecision(3)} of ${c.rounding.stages} float16/bfloat16 stage(s)` : '';
  return `${what} differs from the masked model: max abs diff ${c.maxAbsDiff.toPrecision(3)} = ${c.maxRelDiff.toPrecision(3)} of ${of} (tolerance ${rtol}${half})`;
}

/** One run of both models to compare, with the activation taps (and rounding budgets) of the models run. */
interface TappedRun {
  maskedRun: Record<string, ort.Tensor>;
  prunedRun: Record<string, ort.Tensor>;
  taps: ActivationTap[];
  budgets: Map<string, RoundingBudget>;
}

/** Masked and pruned copies with the same If branches inlined (inline-if.ts), and the taps of the inlined graph. */
interface InlinedPair {
  masked: Model;
  pruned: Model;
  taps: ActivationTap[];
  budgets: Map<string, RoundingBudget>;
}

/** Inlines `choices` in copies of both models; undefined when either cannot be inlined. */
function inlinePair(masked: Model, pruned: Model, choices: IfChoice[], touched: Set<string>): InlinedPair | undefined {
  try {
    const m = inlineIfs(masked, choices);
    const p = m && inlineIfs(pruned, choices);
    if (!m || !p) return undefined;
    return { masked: m, pruned: p, taps: activationTaps(m), budgets: roundingBudgets(m, touched) };
  } catch {
    return undefined; // e.g. a graph that does not sort after inlining: verify without the tap, as before
  }
}

/** Nodes (by member node id) that a plan changes: every member of a group with removed units. */
function touchedNodes(analysis: GroupAnalysis, planGroups: PlanGroups): Set<string> {
  const out = new Set<string>();
  for (const g of analysis.groups) if (planGroups[g.id]?.length) for (const m of g.members) out.add(m.node);
  return out;
}

/**
 * Compares `pruned` with the masked version of `dense` (and with `dense` itself, for fidelity).
 * `dense` is not modified (the masked model is built on a copy).
 */
export async function verifyPruned(dense: Model, pruned: Model, analysis: GroupAnalysis, planGroups: PlanGroups, opts: VerifyOptions = {}): Promise<VerifyResult> {
  const rtol = opts.rtol ?? DEFAULT_RTOL;
  const seed = opts.seed ?? 0;
  const masked = cloneModel(dense);
  maskPlan(masked, analysis, planGroups);
  const taps = activationTaps(dense);
  const touched = touchedNodes(analysis, planGroups);
  const budgets = roundingBudgets(dense, touched);
  const extra = taps.map((t) => t.input);
  // If nodes that hide an activation tap (tolerance.ts): their conditions are fetched from the masked runs.
  const ifSites = ifTapSites(dense).map((n) => ({ ifOutput: n.outputs[0], cond: n.inputs[0] }));
  const maskedExtra = [...extra, ...ifSites.map((s) => s.cond).filter((c) => c && dense.graph.producer(c))];
  const accepted = await runOnAcceptedInputs(masked, opts, maskedExtra);
  const { feeds, outputs: maskedOut } = accepted;
  const shapes = Object.fromEntries(Object.entries(feeds).map(([k, v]) => [k, v.dims.slice()]));
  const report: VerifyReport = { passed: false, rtol, inputs: { seed, shapes }, maxAbsDiff: Infinity, maxRelDiff: Infinity, cosine: 0, outputs: [] };
  if (accepted.note) report.inputs.note = accepted.note;
  let prunedOut: Record<string, ort.Tensor>;
  try {
    prunedOut = await runModel(pruned, feeds, extra);
  } catch (e) {
    report.error = `the pruned model does not run in onnxruntime: ${(e as Error).message.split('\n')[0]}`;
    return { verify: report, feeds };
  }
  const names = pruned.graph.outputs.map((o) => o.name ?? '');
  /** Compares one run of the pruned model with the masked model's run on the same inputs. */
  const compareRun = (run: TappedRun) => {
    const { maskedRun, prunedRun, taps, budgets } = run;
    const outputs: OutputComparison[] = [];
    const inputs: OutputComparison[] = [];
    const problems: string[] = [];
    for (const name of names) {
      const ref = maskedRun[name];
      const got = prunedRun[name];
      if (!ref || !got) {
        problems.push(`output '${name}' is missing`);
        continue;
      }
      let c = compareOutputs(name, ref, got);
      const tap = taps.find((t) => t.output === name);
      if (tap && !c.mismatch && !isIntType(ref) && maskedRun[tap.input] && prunedRun[tap.input]) {
        const cx = compareOutputs(tap.input, maskedRun[tap.input], prunedRun[tap.input]);
        const x = { ...widenToRoundingBudget(cx, budgets.get(tap.input), rtol), activationOf: `${tap.op} → ${name}` };
        inputs.push(x);
        const p = problemOf(x, maskedRun[tap.input], rtol);
        if (p) problems.push(p);
        // The activation widening compares the raw difference of y with the scale of x (before any budget).
        if (!x.mismatch) c = widenToActivationInput(c, tap, cx);
      }
      c = widenToRoundingBudget(c, budgets.get(name), rtol);
      outputs.push(c);
      const p = problemOf(c, ref, rtol);
      if (p) problems.push(p);
    }
    return { outputs, inputs, problems };
  };
  const inlined = new Map<string, InlinedPair | undefined>();
  /**
   * The runs to compare: the given ones, or, when an If hides an activation tap, runs of masked and pruned copies
   * in which each such If is replaced by the branch this run takes (identically in both), tapped there.
   */
  const tapped = async (maskedRun: Record<string, ort.Tensor>, prunedRun: Record<string, ort.Tensor>, f: Feeds): Promise<TappedRun> => {
    const plain: TappedRun = { maskedRun, prunedRun, taps, budgets };
    if (!ifSites.length) return plain;
    const choices: IfChoice[] = [];
    for (const site of ifSites) {
      const then = conditionValue(masked, site.cond, maskedRun, f);
      if (then === undefined) return plain;
      choices.push({ ifOutput: site.ifOutput, then });
    }
    const key = choices.map((c) => (c.then ? 1 : 0)).join('');
    if (!inlined.has(key)) inlined.set(key, inlinePair(masked, pruned, choices, touched));
    const pair = inlined.get(key);
    if (!pair) return plain;
    const x = pair.taps.map((t) => t.input);
    try {
      return { maskedRun: await runModel(pair.masked, f, x), prunedRun: await runModel(pair.pruned, f, x), taps: pair.taps, budgets: pair.budgets };
    } catch {
      return plain;
    }
  };
  const main = compareRun(await tapped(maskedOut, prunedOut, feeds));
  const problems = main.problems;
  report.outputs.push(...main.outputs);
  const inputsCompared = main.inputs;
  const s = summarize(report.outputs);
  const sx = summarize(inputsCompared);
  Object.assign(report, { maxAbsDiff: s.maxAbsDiff, maxRelDiff: Math.max(s.maxRelDiff, sx.maxRelDiff), cosine: s.cosine });
  if (inputsCompared.length) report.activationInputs = inputsCompared;
  if (s.argmax !== undefined) report.argmaxAgreement = s.argmax;

  // Branches the random inputs did not take: an input that selects If branches by value (Silero's `sr`) is
  // fed each value it is compared with too, so that every branch with pruned groups is verified.
  if (!opts.feeds) {
    const branches: BranchRun[] = [];
    for (const sel of branchSelectors(dense)) {
      if (!feeds[sel.input]) continue;
      branches.push({ input: sel.input, value: scalarValue(feeds[sel.input]), maxRelDiff: report.maxRelDiff });
      for (const value of sel.values) {
        if (value === scalarValue(feeds[sel.input])) continue;
        const f = withInputValue(feeds, sel.input, value);
        let maskedRun: Record<string, ort.Tensor>;
        try {
          maskedRun = await runModel(masked, f, maskedExtra);
        } catch (e) {
          branches.push({ input: sel.input, value, skipped: `the dense model does not run with ${sel.input}=${value}: ${(e as Error).message.split('\n')[0]}` });
          continue;
        }
        let prunedRun: Record<string, ort.Tensor>;
        try {
          prunedRun = await runModel(pruned, f, extra);
        } catch (e) {
          problems.push(`with ${sel.input}=${value}: the pruned model does not run in onnxruntime: ${(e as Error).message.split('\n')[0]}`);
          continue;
        }
        const b = compareRun(await tapped(maskedRun, prunedRun, f));
        const rel = Math.max(summarize(b.outputs).maxRelDiff, summarize(b.inputs).maxRelDiff);
        branches.push({ input: sel.input, value, maxRelDiff: rel });
        report.maxRelDiff = Math.max(report.maxRelDiff, rel);
        for (const p of b.problems) problems.push(`with ${sel.input}=${value}: ${p}`);
      }
    }
    if (branches.length) report.inputs.branches = branches;
  }
  report.passed = problems.length === 0;
  if (problems.length) report.error = problems.join('; ');

  const denseOut = await runModel(opts.original ?? dense, feeds);
  const fid: OutputComparison[] = [];
  for (const name of names) if (denseOut[name] && prunedOut[name]) fid.push(compareOutputs(name, denseOut[name], prunedOut[name], { kl: true }));
  const f = summarize(fid);
  const fidelity: FidelityReport = { cosine: f.cosine, outputs: fid };
  if (f.argmax !== undefined) fidelity.top1 = f.argmax;
  if (f.kl !== undefined) fidelity.kl = f.kl;
  return { verify: report, fidelity, feeds };
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
  const op = (node: string) => (model ? model.graph.findNode(node)?.opType ?? '?' : '');
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
  // The same inputs for every group: the ones the dense model accepts (see verify-inputs.ts).
  const feeds = opts.feeds ?? (await runOnAcceptedInputs(dense, opts)).feeds;
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

