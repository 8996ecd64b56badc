/**
 * Importance scoring: the contract between importance passes and allocation.
 *
 * CONTRACT (shared with the prune pass, issue 4):
 *   scoreGroups(model, analysis, opts) → GroupScores = Record<groupId, Float64Array>
 *   - one score per unit of the group (length = group.size); HIGHER = MORE IMPORTANT;
 *   - scores are raw per group (comparable within a group); allocation normalizes them before ranking units of
 *     several groups together (see src/allocate). LAMP scores are already comparable across groups and say so
 *     through `ScoreResult.normalized`.
 *   Each importance pass writes ctx.artifacts.scores (GroupScores) and ctx.artifacts.scoreInfo (ScoreInfo).
 */
import type { ActivationStats } from '../ort/capture';
import type { GramStats } from '../ort/gram';
import type { ScoreMethod } from './methods';

export type { ScoreMethod };
export { DATA_AWARE, SCORE_METHODS } from './methods';

/** How the per-member unit scores of one group are combined into one score per unit. */
export type MemberReduce = 'mean' | 'sum' | 'max';

export type GroupScores = Record<string, Float64Array>;

export interface ScoreOptions {
  method: ScoreMethod;
  /** Member reduction (default 'mean'). */
  reduce?: MemberReduce;
  /** Seed for `random` (default 0). */
  seed?: number;
  /** Activation statistics (required by wanda and fluctuation; see src/ort/capture.ts). */
  stats?: ActivationStats;
  /**
   * Gram statistics of consumer inputs by gramKey (src/score/obs.ts; required by obs, for the groups it scores:
   * see the method's `gramRequests`).
   */
  grams?: ReadonlyMap<string, GramStats>;
  /** Diagnostic messages (fallbacks taken). */
  log?: (message: string) => void;
}

export interface ScoreInfo {
  method: ScoreMethod;
  /** True when scores are already comparable across groups (allocation then ranks them as they are). */
  normalized: boolean;
  /** Groups scored by a fallback (e.g. bn on a group without an unfolded BatchNormalization), with why. */
  fallbacks: { group: string; reason: string }[];
}

export interface ScoreResult {
  scores: GroupScores;
  info: ScoreInfo;
}
