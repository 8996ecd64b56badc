/**
 * Verification of a pruned model in onnxruntime.
 *
 * Equivalence: the pruned model must compute the *masked dense* model (same graph as the dense one, with the
 * removed units zeroed in every weight that consumes them) on seeded inputs. It passes when, for every output,
 * max|pruned − masked| ≤ rtol · max|masked| (rtol defaults to 1e-4: the pruned model sums fewer terms, in a
 * different order, so float32 rounding differs slightly) and integer/bool outputs are equal. An output produced
 * by a saturating activation (Sigmoid, Softmax, ...) is judged against the scale of the activation's input, and
 * that input is checked too (tolerance.ts); when the activation sits inside a main-graph If, each run is compared
 * on copies of both models with the branch it takes inlined, where the input can be fetched (inline-if.ts).
 * Outputs computed in float16/bfloat16 after the pruned nodes are allowed their half-precision rounding tolerance
 * instead of rtol when it is larger: the model's measured rounding noise floor, bounded (rounding.ts). Outputs
 * behind NonMaxSuppression / TopK / NonZero are verified at the tensors those ops read, and compared by
 * position, else as sets (selection.ts).
 * Non-finite values: a NaN or infinity in the pruned model's or the masked model's outputs (or in the activation
 * inputs and selection inputs compared) fails verification, unless the dense model itself has the same value (NaN,
 * +Infinity or −Infinity) at the same element on the same inputs: NaN never counts as matching NaN by itself.
 * Inputs: seeded random ones (src/ort/feeds.ts: each integer input in its own valid range; larger sizes are tried
 * when the model does not run on the default ones and the user did not choose them), or given feeds (calibration
 * data). An integer scalar input that selects If branches by comparison with constants (Silero VAD's `sr` ==
 * 16000) is also fed each compared value, so that groups inside every branch are compared (`inputs.branches`).
 * Every check that was reduced or skipped is listed in `weakened` (weakened.ts); verification never weakens
 * silently.
 * Fidelity: separately, how close the pruned model stays to the original dense model (cosine, top-1 agreement,
 * KL of softmax(last axis)); fidelity is reported, never a pass/fail criterion.
 */
import type { Group, GroupAnalysis } from '../analysis/types';
import type { Model } from '../ir/model';
import { applyPlan } from '../prune/apply';
import { cloneModel } from '../ir/clone';
import { maskPlan } from '../prune/mask';
import type { PlanGroups } from '../prune/plan';
import { asFloat64, compareOutputs, isConstant, type OutputComparison } from './compare';
import type { ort } from '../ort/session';
import { conditionValue, inlineIfs, type IfChoice } from './inline-if';
import { halfTolerance, noiseModel, roundingBudgets, NOISE_SAFETY, type RoundingBudget } from './rounding';
import { alignAsSet, selectionOutputs, type SelectionOutput } from './selection';
import {
  type ActivationTap, activationTaps, ifTapSites, relativeTo, tapOutputsOf, widenToActivationInput, widenToRoundingBudget,
} from './tolerance';
import { WeakenedList, type WeakenedCheck } from './weakened';
import {
  type Feeds, type FeedOptions, type IntRange, branchSelectors, intInputRanges, runModel, runOnAcceptedInputs, scalarValue, withInputValue,
} from '../ort/feeds';

export { type Feeds, runModel, verificationFeeds } from '../ort/feeds';
export type { WeakenedCheck, WeakenedKind } from './weakened';

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
   * input selects If branches by value (e.g. a sample rate): the values verified (the random one first);
   * `intRanges`: the range each integer input's random values were drawn from (src/ort/feeds.ts).
   */
  inputs: { seed: number; shapes: Record<string, number[]>; note?: string; branches?: BranchRun[]; intRanges?: Record<string, IntRange> };
  maxAbsDiff: number;
  /**
   * Largest difference relative to its tolerance scale, over outputs, activation inputs and selection inputs
   * (≤ rtol ⇔ pass); outputs accepted through their selection's inputs (`selection.comparedAs: 'inputs'`) do
   * not count.
   */
  maxRelDiff: number;
  cosine: number;
  argmaxAgreement?: number;
  outputs: OutputComparison[];
  /** Inputs of the saturating activations that produce outputs, compared as well (see tolerance.ts). */
  activationInputs?: OutputComparison[];
  /** Tensors read by NonMaxSuppression / TopK / NonZero in front of outputs, compared strictly (selection.ts). */
  selectionInputs?: OutputComparison[];
  /** Every check that was reduced or skipped (weakened.ts); empty when none was. */
  weakened: WeakenedCheck[];
  /** Outputs of saturating activations whose tolerance scale was raised to their input's (not a weakening). */
  rescaled?: RescaledOutput[];
}

/** One verified value of a branch-selecting input (maxRelDiff as in VerifyReport), or why it was not run. */
export interface BranchRun {
  input: string;
  value: number;
  maxRelDiff?: number;
  skipped?: string;
}

/**
 * An output of a saturating activation judged at its input's scale (tolerance.ts): `decisive` when its difference
 * exceeds rtol of its own scale, i.e. it passed because of the re-scaling (its input passed the strict check).
 */
export interface RescaledOutput {
  output: string;
  input: string;
  op: string;
  scale: number;
  toleranceScale: number;
  decisive: boolean;
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

function summarize(all: OutputComparison[]) {
  // Outputs accepted through their selection's inputs are compared there; their own numbers are by position.
  const outputs = all.filter((o) => o.selection?.comparedAs !== 'inputs');
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
  const what = c.activationOf ? `'${c.name}' (input of ${c.activationOf})` : c.selectionOf ? `'${c.name}' (read by ${c.selectionOf})` : `output '${c.name}'`;
  if (c.mismatch) return `${what}: ${c.mismatch}`;
  const u = c.unexpectedNonFinite;
  if (u) {
    const at = u.first.index.length ? `[${u.first.index.join(', ')}]` : '(the scalar)';
    const dense = u.first.expected !== undefined ? `, dense ${u.first.expected}` : ', the dense model not run on it';
    return `${what}: ${u.count} element(s) NaN or infinite where the dense model has no such value (first at ${at}: pruned ${u.first.test}, masked ${u.first.reference}${dense})`;
  }
  if (isIntType(ref) ? c.maxAbsDiff === 0 : c.maxRelDiff <= rtol) return undefined;
  const scale = c.toleranceScale ?? c.scale;
  const of = c.toleranceScale !== undefined ? `its tolerance scale ${scale.toPrecision(3)} (max|output| ${c.scale.toPrecision(3)})` : `its scale ${scale.toPrecision(3)}`;
  const r = c.rounding;
  const floor = r?.noiseFloor !== undefined ? `; measured noise floor ${r.noiseFloor.toPrecision(3)}` : '';
  const half = r ? `, widened to the half-precision rounding budget ${r.rtol.toPrecision(3)} of ${r.stages} float16/bfloat16 stage(s)${floor}, limited by ${r.limitedBy}` : '';
  return `${what} differs from the masked model: max abs diff ${c.maxAbsDiff.toPrecision(3)} = ${c.maxRelDiff.toPrecision(3)} of ${of} (tolerance ${rtol}${half})`;
}

/** One run of both models to compare, with the activation taps (and rounding budgets) of the models run. */
interface TappedRun {
  maskedRun: Record<string, ort.Tensor>;
  prunedRun: Record<string, ort.Tensor>;
  /** The perturbed masked model's run (rounding.ts noiseModel), for models with half-precision stages. */
  noisyRun?: Record<string, ort.Tensor>;
  /**
   * The dense (uncompensated) model's run on the same inputs and the same fetched tensors, made only when a run
   * of the masked or pruned model holds a NaN or infinity: such a value passes only where the dense model has it.
   */
  denseRun?: Record<string, ort.Tensor>;
  taps: ActivationTap[];
  budgets: Map<string, RoundingBudget>;
}

/** Whether a float tensor holds a NaN or an infinity (float16: exponent bits all ones). */
function hasNonFinite(t: ort.Tensor): boolean {
  if (t.type === 'float16') {
    const d = t.data as Uint16Array;
    for (let i = 0; i < d.length; i++) if ((d[i] & 0x7c00) === 0x7c00) return true;
    return false;
  }
  if (t.type !== 'float32' && t.type !== 'float64') return false;
  const d = t.data as Float32Array | Float64Array;
  for (let i = 0; i < d.length; i++) if (!Number.isFinite(d[i])) return true;
  return false;
}

const anyNonFinite = (...runs: (Record<string, ort.Tensor> | undefined)[]) => runs.some((r) => !!r && Object.values(r).some(hasNonFinite));

/** Masked and pruned copies with the same If branches inlined (inline-if.ts), and the taps of the inlined graph. */
interface InlinedPair {
  masked: Model;
  pruned: Model;
  noisy?: Model;
  taps: ActivationTap[];
  budgets: Map<string, RoundingBudget>;
}

/** Inlines `choices` in copies of the models; a reason string when either cannot be inlined. */
function inlinePair(masked: Model, pruned: Model, noisy: Model | undefined, choices: IfChoice[], touched: Set<string>, also: string[]): InlinedPair | string {
  try {
    const m = inlineIfs(masked, choices);
    const p = m && inlineIfs(pruned, choices);
    const n = noisy && m && p ? inlineIfs(noisy, choices) : undefined;
    if (!m || !p || (noisy && !n)) return 'the If cannot be inlined (a branch name is defined elsewhere in the model, or a branch is missing)';
    return { masked: m, pruned: p, noisy: n, taps: activationTaps(m, also), budgets: roundingBudgets(m, touched) };
  } catch (e) {
    // e.g. a graph that does not sort after inlining: verify without the tap
    return `inlining the If failed: ${(e as Error).message.split('\n')[0]}`;
  }
}

/** Nodes (by member node id) that a plan changes: every member of a group with removed units. */
function touchedNodes(analysis: GroupAnalysis, planGroups: PlanGroups): Set<string> {
  const out = new Set<string>();
  for (const g of analysis.groups) if (planGroups[g.id]?.length) for (const m of g.members) out.add(m.node);
  return out;
}

const unique = (names: string[]) => [...new Set(names.filter((n) => n))];
const quoted = (names: string[]) => names.map((n) => `'${n}'`).join(', ');
const firstLine = (e: unknown) => (e as Error).message.split('\n')[0];

/**
 * Compares `pruned` with the masked version of `dense` (and with `dense` itself, for fidelity).
 * `dense` is not modified (the masked model is built on a copy).
 */
export async function verifyPruned(dense: Model, pruned: Model, analysis: GroupAnalysis, planGroups: PlanGroups, opts: VerifyOptions = {}): Promise<VerifyResult> {
  const rtol = opts.rtol ?? DEFAULT_RTOL;
  const seed = opts.seed ?? 0;
  const masked = cloneModel(dense);
  maskPlan(masked, analysis, planGroups);
  const touched = touchedNodes(analysis, planGroups);
  const selections = selectionOutputs(dense, touched);
  const selectionOf = new Map<string, SelectionOutput>(selections.map((s) => [s.output, s]));
  const frontier = unique(selections.flatMap((s) => s.frontier));
  const taps = activationTaps(dense, frontier);
  const budgets = roundingBudgets(dense, touched);
  // Half-precision stages after the pruned nodes: the perturbed masked model measures the rounding noise floor.
  const noisy = budgets.size ? noiseModel(masked, analysis, planGroups) : undefined;
  const extrasOf = (t: ActivationTap[]) => unique([...t.map((x) => x.input), ...frontier]);
  const extra = extrasOf(taps);
  // If nodes that hide an activation tap (tolerance.ts): their conditions are fetched from the masked runs.
  const ifNodes = ifTapSites(dense);
  const ifSites = ifNodes.map((n) => ({ ifOutput: n.outputs[0], cond: n.inputs[0], outputs: tapOutputsOf(dense, n) }));
  const maskedExtra = unique([...extra, ...ifSites.map((s) => s.cond).filter((c) => c && dense.graph.producer(c))]);
  const accepted = await runOnAcceptedInputs(masked, opts, maskedExtra);
  const { feeds, outputs: maskedOut } = accepted;
  const shapes = Object.fromEntries(Object.entries(feeds).map(([k, v]) => [k, v.dims.slice()]));
  const weakened = new WeakenedList();
  const report: VerifyReport = { passed: false, rtol, inputs: { seed, shapes }, maxAbsDiff: Infinity, maxRelDiff: Infinity, cosine: 0, outputs: [], weakened: [] };
  if (accepted.note) report.inputs.note = accepted.note;
  if (!opts.feeds) {
    const ranges = intInputRanges(masked, accepted.seq);
    if (Object.keys(ranges).length) report.inputs.intRanges = ranges;
  }
  let prunedOut: Record<string, ort.Tensor>;
  try {
    prunedOut = await runModel(pruned, feeds, extra);
  } catch (e) {
    report.error = `the pruned model does not run in onnxruntime: ${firstLine(e)}`;
    return { verify: report, feeds };
  }
  /** Why the perturbed model did not run, when it did not (not expected: it is the masked graph, which ran). */
  let noisyError: string | undefined;
  /** The noisy model's run on `f` (undefined when there is none, or it does not run: the ceiling is used then). */
  const noisyRunOf = async (model: Model | undefined, f: Feeds, names: string[]) => {
    if (!model) return undefined;
    try {
      return await runModel(model, f, names);
    } catch (e) {
      noisyError ??= firstLine(e);
      return undefined;
    }
  };
  const names = dense.graph.outputs.map((o) => o.name ?? '');
  const rescaled = new Map<string, RescaledOutput>();
  /**
   * The model whose non-finite values are expected: the user's dense model (before bias compensation, which must
   * not bring any). Its run fetches the tensors `fetch` that it computes too; undefined when it does not run.
   */
  const reference = opts.original ?? dense;
  const denseRunOf = async (model: Model, f: Feeds, fetch: string[]) => {
    try {
      return await runModel(model, f, fetch.filter((t) => model.graph.producer(t)));
    } catch {
      return undefined;
    }
  };

  /**
   * Compares one run of the pruned model with the masked model's run on the same inputs. `label` names the run
   * in weakened entries (a branch value); the main run has none.
   */
  const compareRun = (run: TappedRun, label = '') => {
    const { maskedRun, prunedRun, noisyRun, denseRun, taps, budgets } = run;
    const on = label ? ` (with ${label})` : '';
    const outputs: OutputComparison[] = [];
    const inputs: OutputComparison[] = [];
    const selInputs: OutputComparison[] = [];
    const problems: string[] = [];

    /** The half-precision tolerance of tensor `name` on this run (measured noise floor, bounded). */
    const halfOf = (name: string) => {
      const b = budgets.get(name);
      if (!b) return undefined;
      const ref = maskedRun[name], n = noisyRun?.[name];
      const floor = ref && n ? compareOutputs(name, ref, n, { expected: 'reference' }) : undefined;
      return halfTolerance(b, floor && !floor.mismatch ? floor.maxRelDiff : undefined);
    };
    /** `c` widened to its half-precision tolerance, listed in `weakened` when that is beyond rtol. */
    const widenHalf = (c: OutputComparison, name: string) => {
      const w = widenToRoundingBudget(c, halfOf(name), rtol);
      const r = w.rounding;
      if (r) {
        const floor = r.noiseFloor !== undefined ? `measured noise floor ${r.noiseFloor.toPrecision(2)} × ${NOISE_SAFETY}` : noisyError ? `noise floor not measured: the perturbed model does not run: ${noisyError}` : 'noise floor not finite (a masked tensor of zeros) or not measured';
        const limit = r.limitedBy === 'noise' ? '' : `, limited by ${r.limitedBy === 'epsilon' ? 'one rounding step' : r.limitedBy === 'stages' ? `the stage bound ${r.bound.toPrecision(2)}` : 'the cap'}`;
        weakened.add({
          kind: 'rounding-budget', output: name, tolerance: r.rtol,
          detail: `tolerance ${r.rtol.toPrecision(2)} of its scale instead of ${rtol} for float16/bfloat16 rounding (${r.stages} stage(s); ${floor}${limit})${on}`,
        });
      }
      return w;
    };
    const noteNonFinite = (c: OutputComparison) => {
      if (c.nonFinite) weakened.add({ kind: 'non-finite', output: c.name, detail: `${c.nonFinite} element(s) NaN or infinite in the dense, masked and pruned models alike were not compared${on}` });
    };
    /**
     * Compares the tensor `name` (an output or a selection input), with its activation tap: the tap input is
     * checked strictly (into `inputs`), and `name` is judged at the input's scale. Problems go to `problems`.
     */
    const compareTapped = (name: string, ref: ort.Tensor, got: ort.Tensor): { c: OutputComparison; tapInput?: string } => {
      let c = compareOutputs(name, ref, got, { expected: denseRun?.[name] });
      noteNonFinite(c);
      const tap = taps.find((t) => t.output === name);
      if (!tap || c.mismatch || isIntType(ref) || !maskedRun[tap.input] || !prunedRun[tap.input]) return { c };
      const cx = compareOutputs(tap.input, maskedRun[tap.input], prunedRun[tap.input], { expected: denseRun?.[tap.input] });
      noteNonFinite(cx);
      const x = { ...widenHalf(cx, tap.input), activationOf: `${tap.op} → ${name}` };
      if (!inputs.some((i) => i.name === x.name && i.activationOf === x.activationOf)) inputs.push(x);
      const p = problemOf(x, maskedRun[tap.input], rtol);
      if (p) problems.push(p);
      if (x.mismatch) return { c, tapInput: tap.input };
      // The activation widening compares the raw difference of y with the scale of x (before any budget).
      const w = widenToActivationInput(c, tap, cx);
      if (w.toleranceScale !== undefined) {
        const decisive = relativeTo(c.maxAbsDiff, c.scale) > rtol;
        const seen = rescaled.get(name);
        if (seen) seen.decisive ||= decisive;
        else rescaled.set(name, { output: name, input: tap.input, op: tap.op, scale: c.scale, toleranceScale: w.toleranceScale, decisive });
      }
      return { c: w, tapInput: tap.input };
    };

    // Tensors read by selections: compared strictly, first (their verdict decides near-tie acceptance below).
    const frontierOk = new Map<string, boolean>();
    for (const f of frontier) {
      const ref = maskedRun[f], got = prunedRun[f];
      if (!ref || !got) {
        frontierOk.set(f, false);
        continue;
      }
      const readers = selections.filter((s) => s.frontier.includes(f));
      const via = unique(readers.flatMap((s) => s.ops)).join(', ');
      let { c } = compareTapped(f, ref, got);
      c = { ...widenHalf(c, f), selectionOf: `${via} → ${quoted(readers.map((s) => s.output))}` };
      if (c.mismatch) {
        // Another shape (a tensor with a pruned axis): not comparable, so no near-tie can be accepted through it.
        frontierOk.set(f, false);
        continue;
      }
      selInputs.push(c);
      const p = problemOf(c, ref, rtol);
      frontierOk.set(f, !p);
      if (p) problems.push(p);
    }

    for (const name of names) {
      const ref = maskedRun[name];
      const got = prunedRun[name];
      if (!ref || !got) {
        problems.push(`output '${name}' is missing`);
        continue;
      }
      const tapped = compareTapped(name, ref, got);
      let c = widenHalf(tapped.c, name);
      let p = problemOf(c, ref, rtol);
      const sel = selectionOf.get(name);
      if (p && sel) {
        const tol = isIntType(ref) ? 0 : rtol * (c.toleranceScale ?? c.scale);
        const aligned = c.mismatch ? undefined : alignAsSet(ref, got, tol);
        if (aligned) {
          // Reordered, the elements no longer line up with the dense model's: its non-finite values are those
          // already accepted by position (none is accepted when any was unexpected there).
          const a = compareOutputs(name, ref, aligned.tensor, c.unexpectedNonFinite ? {} : { expected: 'reference' });
          const set: OutputComparison = {
            ...a, toleranceScale: c.toleranceScale, rounding: c.rounding,
            maxRelDiff: relativeTo(a.maxAbsDiff, c.toleranceScale ?? a.scale),
            selection: { comparedAs: 'set', ops: sel.ops, axis: aligned.axis, perRow: aligned.perRow },
          };
          if (c.toleranceScale === undefined) delete set.toleranceScale;
          if (!c.rounding) delete set.rounding;
          if (!problemOf(set, ref, rtol)) {
            c = set;
            p = undefined;
            weakened.add({
              kind: 'selection-order', output: name,
              detail: `behind ${sel.ops.join(', ')}: ${aligned.moved} item(s) along axis ${aligned.axis}${aligned.perRow ? ' (per row)' : ''} in another order; compared as a set${on}`,
            });
          }
        }
        if (p && !sel.touched && sel.frontier.length > 0 && sel.frontier.every((f) => frontierOk.get(f))) {
          const what = c.mismatch ? c.mismatch : `max abs diff ${c.maxAbsDiff.toPrecision(3)} by position`;
          weakened.add({
            kind: 'selection-tie', output: name,
            detail: `behind ${sel.ops.join(', ')}: another selection (${what}); accepted because its inputs ${quoted(sel.frontier)} match within tolerance and no pruned node lies between them and the output (near-tied decisions)${on}`,
          });
          c = { ...c, selection: { comparedAs: 'inputs', ops: sel.ops } };
          p = undefined;
        }
      }
      outputs.push(c);
      if (p) problems.push(p);
    }

    // Outputs that compared nothing: empty, or constant on these inputs.
    const varied = (t: string) => !!maskedRun[t] && maskedRun[t].dims.every((d) => Number(d) > 0) && !isConstant(maskedRun[t]);
    const vacuous: string[] = [];
    for (const name of names) {
      const ref = maskedRun[name];
      if (!ref) continue;
      const empty = ref.dims.some((d) => Number(d) === 0);
      if (!empty && !isConstant(ref)) continue;
      vacuous.push(name);
      const covering = unique([...taps.filter((t) => t.output === name).map((t) => t.input), ...(selectionOf.get(name)?.frontier ?? [])]).filter(varied);
      const also = covering.length ? `; ${quoted(covering)} in front of it ${covering.length > 1 ? 'were' : 'was'} compared and ${covering.length > 1 ? 'vary' : 'varies'}` : '';
      if (empty) weakened.add({ kind: 'empty-output', output: name, detail: `no elements (dims [${ref.dims.join(', ')}]): nothing compared${also}${on}` });
      else weakened.add({ kind: 'constant-output', output: name, detail: `all ${ref.dims.reduce((a, b) => a * Number(b), 1)} elements equal (${asFloat64(ref)[0]}) in the masked model: a wrong prune before it may not show${also}${on}` });
    }
    const variedTaps = unique([...inputs, ...selInputs].map((c) => c.name)).filter(varied);
    return { outputs, inputs, selInputs, problems, vacuous, variedTaps };
  };

  const inlined = new Map<string, InlinedPair | string>();
  /** The reference model with the same If branches inlined, by branch key (undefined: it cannot be inlined). */
  const inlinedRef = new Map<string, Model | undefined>();
  const inlineReference = (choices: IfChoice[]): Model | undefined => {
    try {
      return inlineIfs(reference, choices);
    } catch {
      return undefined;
    }
  };
  /** Records that the If `site` hides a tap that this run could not take. */
  const tapFailed = (site: (typeof ifSites)[number], why: string, label: string) => {
    const outs = site.outputs.length ? site.outputs : [site.ifOutput];
    for (const o of outs) {
      weakened.add({ kind: 'tap-failed', output: o, detail: `the activation inside the If producing '${site.ifOutput}' was not tapped: ${why}; compared at its own scale only${label ? ` (with ${label})` : ''}` });
    }
  };
  /**
   * The runs to compare: the given ones, or, when an If hides an activation tap, runs of masked and pruned copies
   * in which each such If is replaced by the branch this run takes (identically in both), tapped there.
   */
  const tapped = async (maskedRun: Record<string, ort.Tensor>, prunedRun: Record<string, ort.Tensor>, f: Feeds, label = ''): Promise<TappedRun> => {
    const plain = async (): Promise<TappedRun> => ({
      maskedRun, prunedRun, taps, budgets, noisyRun: await noisyRunOf(noisy, f, maskedExtra),
      denseRun: anyNonFinite(maskedRun, prunedRun) ? await denseRunOf(reference, f, extra) : undefined,
    });
    if (!ifSites.length) return plain();
    const choices: IfChoice[] = [];
    for (const site of ifSites) {
      const then = conditionValue(masked, site.cond, maskedRun, f);
      if (then === undefined) {
        for (const s of ifSites) tapFailed(s, `the value of the If condition '${site.cond}' is unknown on this run`, label);
        return plain();
      }
      choices.push({ ifOutput: site.ifOutput, then });
    }
    const key = choices.map((c) => (c.then ? 1 : 0)).join('');
    if (!inlined.has(key)) inlined.set(key, inlinePair(masked, pruned, noisy, choices, touched, frontier));
    const pair = inlined.get(key)!;
    if (typeof pair === 'string') {
      for (const s of ifSites) tapFailed(s, pair, label);
      return plain();
    }
    const x = extrasOf(pair.taps);
    try {
      const m = await runModel(pair.masked, f, x);
      const p = await runModel(pair.pruned, f, x);
      let denseRun: Record<string, ort.Tensor> | undefined;
      if (anyNonFinite(m, p)) {
        if (!inlinedRef.has(key)) inlinedRef.set(key, inlineReference(choices));
        const r = inlinedRef.get(key);
        denseRun = r ? await denseRunOf(r, f, x) : undefined;
      }
      return { maskedRun: m, prunedRun: p, taps: pair.taps, budgets: pair.budgets, noisyRun: await noisyRunOf(pair.noisy, f, x), denseRun };
    } catch (e) {
      for (const s of ifSites) tapFailed(s, `the inlined copies do not run: ${firstLine(e)}`, label);
      return plain();
    }
  };
  const main = compareRun(await tapped(maskedOut, prunedOut, feeds));
  const problems = main.problems;
  report.outputs.push(...main.outputs);
  const s = summarize(report.outputs);
  const sx = summarize([...main.inputs, ...main.selInputs]);
  Object.assign(report, { maxAbsDiff: s.maxAbsDiff, maxRelDiff: Math.max(s.maxRelDiff, sx.maxRelDiff), cosine: s.cosine });
  if (main.inputs.length) report.activationInputs = main.inputs;
  if (main.selInputs.length) report.selectionInputs = main.selInputs;
  if (s.argmax !== undefined) report.argmaxAgreement = s.argmax;
  if (names.length && main.vacuous.length === names.length) {
    const t = main.variedTaps;
    weakened.add({
      kind: 'vacuous',
      detail: `every output (${quoted(names)}) is empty or constant on the verification inputs${t.length ? `; only ${quoted(t)} in front of them ${t.length > 1 ? 'were' : 'was'} compared and ${t.length > 1 ? 'vary' : 'varies'}` : '; nothing that varies was compared'} (try another --seed or --verify-seq)`,
    });
  }

  // Branches the random inputs did not take: an input that selects If branches by value (Silero's `sr`) is
  // fed each value it is compared with too, so that every branch with pruned groups is verified.
  const selectors = branchSelectors(dense).filter((sel) => feeds[sel.input]);
  if (opts.feeds) {
    for (const sel of selectors) {
      const other = sel.values.filter((v) => v !== scalarValue(feeds[sel.input]));
      if (other.length) weakened.add({ kind: 'branch-skipped', detail: `the inputs were given: ${sel.input} = ${other.join(', ')} (other If branches) not tried` });
    }
  } else {
    const branches: BranchRun[] = [];
    for (const sel of selectors) {
      branches.push({ input: sel.input, value: scalarValue(feeds[sel.input]), maxRelDiff: report.maxRelDiff });
      for (const value of sel.values) {
        if (value === scalarValue(feeds[sel.input])) continue;
        const label = `${sel.input}=${value}`;
        const f = withInputValue(feeds, sel.input, value);
        let maskedRun: Record<string, ort.Tensor>;
        try {
          maskedRun = await runModel(masked, f, maskedExtra);
        } catch (e) {
          const why = `the dense model does not run with ${label}: ${firstLine(e)}`;
          branches.push({ input: sel.input, value, skipped: why });
          weakened.add({ kind: 'branch-skipped', detail: `${why}; the If branch it selects was not compared` });
          continue;
        }
        let prunedRun: Record<string, ort.Tensor>;
        try {
          prunedRun = await runModel(pruned, f, extra);
        } catch (e) {
          problems.push(`with ${label}: the pruned model does not run in onnxruntime: ${firstLine(e)}`);
          continue;
        }
        const b = compareRun(await tapped(maskedRun, prunedRun, f, label), label);
        const rel = Math.max(summarize(b.outputs).maxRelDiff, summarize([...b.inputs, ...b.selInputs]).maxRelDiff);
        branches.push({ input: sel.input, value, maxRelDiff: rel });
        report.maxRelDiff = Math.max(report.maxRelDiff, rel);
        for (const p of b.problems) problems.push(`with ${label}: ${p}`);
      }
    }
    if (branches.length) report.inputs.branches = branches;
  }
  report.passed = problems.length === 0;
  if (problems.length) report.error = problems.join('; ');
  report.weakened = weakened.list();
  if (rescaled.size) report.rescaled = [...rescaled.values()];

  const denseOut = await runModel(reference, feeds);
  const fid: OutputComparison[] = [];
  for (const name of names) if (denseOut[name] && prunedOut[name]) fid.push(compareOutputs(name, denseOut[name], prunedOut[name], { kl: true, expected: 'reference' }));
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
    if (m.kind === 'stat') return `statistics @ ${op(m.node)}(${m.node}) axis ${m.axis} of ${m.size}`;
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

