/**
 * What verification checked less strictly than "every output within rtol of the masked model's, at its position".
 *
 * Verification never weakens silently: every check that was reduced or skipped becomes one entry of
 * `verify.weakened` in the report (and one warning line, passes/verify.ts). The kinds:
 *  - `rounding-budget`: a tensor computed in float16/bfloat16 after the pruned nodes was allowed more than rtol for
 *    half-precision rounding (rounding.ts); `tolerance` is the relative tolerance used.
 *  - `tap-failed`: a saturating output behind a main-graph If could not be compared at its activation's input
 *    (inlining the branch failed, or the inlined copies did not run): it was compared at its own scale only.
 *  - `empty-output`: an output with no elements on the verification inputs (e.g. 0 detections): nothing compared.
 *  - `constant-output`: an output (of 2 or more elements) whose elements are all equal in the masked model's run
 *    (e.g. a zero-initialized head): a wrong prune upstream of it may not show in it.
 *  - `vacuous`: every output is empty or constant: the outputs verified nothing (the detail says whether tensors
 *    in front of them — activation or selection inputs — were compared and vary).
 *  - `non-finite`: elements that are NaN or ±Infinity in the dense model, and the same in the masked and pruned
 *    models, were skipped (not compared). Any other non-finite value fails verification (compare.ts `expected`).
 *  - `selection-order`: an output behind NonMaxSuppression / TopK / NonZero differed by position and was compared
 *    as a set (its items matched in another order, within tolerance; selection.ts).
 *  - `selection-tie`: an output behind such an op differs even as a set (other items selected, or another count);
 *    accepted because every tensor the selection reads matches strictly and no pruned node lies between the
 *    selection and the output: the difference comes from near-ties in the selection's decisions.
 *  - `branch-skipped`: a value of a branch-selecting input was not verified (the dense model does not run with it,
 *    or the inputs were given): the groups inside the branch it selects were not compared on it.
 *
 * Not listed (a principled re-scaling, not a weakening; reported in `verify.rescaled`): an output of a saturating
 * activation judged at the scale of its input, which is itself compared strictly (tolerance.ts).
 */

export type WeakenedKind =
  | 'rounding-budget' | 'tap-failed' | 'empty-output' | 'constant-output' | 'vacuous' | 'non-finite'
  | 'selection-order' | 'selection-tie' | 'branch-skipped';

export interface WeakenedCheck {
  kind: WeakenedKind;
  /** The output (or compared intermediate tensor) concerned; absent when the entry is about the whole run. */
  output?: string;
  detail: string;
  /** For `rounding-budget`: the tolerance used, relative to the tensor's scale. */
  tolerance?: number;
}

/**
 * The entries of one verification, each (kind, output) once: runs on other branch values add the same entries
 * again; a `rounding-budget` entry keeps the largest tolerance used, other kinds the first detail.
 */
export class WeakenedList {
  private readonly entries: WeakenedCheck[] = [];

  add(entry: WeakenedCheck): void {
    const i = this.entries.findIndex((e) => e.kind === entry.kind && e.output === entry.output);
    if (i < 0) this.entries.push(entry);
    else if ((entry.tolerance ?? -Infinity) > (this.entries[i].tolerance ?? -Infinity)) this.entries[i] = entry;
  }

  has(kind: WeakenedKind, output?: string): boolean {
    return this.entries.some((e) => e.kind === kind && e.output === output);
  }

  list(): WeakenedCheck[] {
    return this.entries.slice();
  }
}

/** One-line summaries of `entries` for warnings: a `vacuous` entry first, at most `max` lines in all. */
export function weakenedWarnings(entries: WeakenedCheck[], max = 8): string[] {
  const ordered = [...entries.filter((e) => e.kind === 'vacuous'), ...entries.filter((e) => e.kind !== 'vacuous')];
  const lines = ordered.map((e) => (e.kind === 'vacuous'
    ? `verification of the outputs is vacuous: ${e.detail}`
    : `verification weakened (${e.kind}${e.output !== undefined ? ` '${e.output}'` : ''}): ${e.detail}`));
  if (lines.length <= max) return lines;
  return [...lines.slice(0, max - 1), `verification weakened in ${lines.length - max + 1} more checks (see verify.weakened in the report)`];
}
