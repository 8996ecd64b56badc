/**
 * Budgeted allocation: which units of which groups to remove.
 *
 * CONTRACT (shared with the prune pass, issue 4):
 *   allocate(analysis, scores, opts) → { removed: Record<groupId, number[]>, achieved }
 *   - removed[g] lists unit indices (ascending) to remove from group g; groups losing nothing are left out;
 *   - never all units of a group (at least max(1, roundTo) stay), never a protected or excluded group;
 *   - an impossible budget throws UserError, except when the analysis has no group of ≥ 2 units (nothing removed).
 * The pass `allocate` writes ctx.artifacts.removed (and ctx.report.allocation = achieved).
 */
import type { FlopsReport } from '../analysis/flops';
import type { Model } from '../ir/model';

/** 'search' is the evolutionary search (src/prune/search.ts); allocate() itself makes uniform and global. */
export type AllocationMode = 'uniform' | 'global' | 'search';
export type BudgetTarget = 'params' | 'flops';

export interface AllocateOptions {
  /** Fraction of the target quantity (whole-model params or MACs) to remove, in [0, 1). */
  ratio: number;
  /** Default 'params'. */
  target?: BudgetTarget;
  /** Default 'uniform'. */
  mode?: AllocationMode;
  /** Largest fraction of any one group's units that may go (default 0.9). */
  maxRatio?: number;
  /** Kept unit counts are multiples of this (default 1). */
  roundTo?: number;
  /** Group ids, group labels, node names / first outputs, or weight tensor names whose groups stay whole. */
  protect?: string[];
  /** Protect the first convolution's output group and the classifier's group (default true). */
  protectDefaults?: boolean;
  /** Op types: a group with any member on such a node stays whole. */
  excludeOp?: string[];
  /**
   * The model the analysis was made on: needed for exact parameter accounting, FLOPs, default protection and
   * protection by node name / op type. Without it, params are counted by paramsPerUnit (an upper bound when
   * groups share weights) and only group ids and labels can be protected.
   */
  model?: Model;
  /** Per-node MACs (default: countMacs(model) after shape inference). */
  flops?: FlopsReport;
  /**
   * Groups kept whole, with the reason (reported like protected ones). Internal: uniform allocation holds
   * normalized streams this way while the budget allows (allocate.ts); given, it replaces that rule.
   */
  keepWhole?: Record<string, string>;
  /** Scores are already comparable across groups (LAMP): skip per-group mean normalization in 'global'. */
  normalized?: boolean;
}

export interface QuantityReport {
  before: number;
  after: number;
  /** Fraction removed, (before − after) / before. */
  removedRatio: number;
}

export interface Achieved {
  target: BudgetTarget;
  mode: AllocationMode;
  /** Fraction of the target quantity asked to be removed (--ratio). */
  requested: number;
  /** Fraction of the target quantity removed (estimated from the allocation). */
  achieved: number;
  /** Largest fraction of the target that the unprotected groups could remove. */
  maxAchievable: number;
  params: QuantityReport;
  flops?: QuantityReport;
  groupsPruned: number;
  unitsRemoved: number;
  protected: { group: string; reason: string }[];
}

export interface Allocation {
  removed: Record<string, number[]>;
  achieved: Achieved;
}
