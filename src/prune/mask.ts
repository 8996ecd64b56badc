/**
 * The masked dense model: the same graph with, for every group, the removed units' positions zeroed in each
 * weight that *consumes* the group's channels (members with role 'in'). The producers still compute the
 * pruned channels but nothing downstream reads them, so the physically pruned model must compute exactly the
 * same function (up to float summation order). Shared weights masked differently get private copies.
 */
import type { GroupAnalysis } from '../analysis/types';
import type { Model } from '../ir/model';
import { collectGroupEdits } from './apply';
import { EditSet, type CommitSummary } from './edits';
import { checkPlanGroups, type PlanGroups } from './plan';

/** Zeroes the consumers' inputs of every planned unit, in place. */
export function maskPlan(model: Model, analysis: GroupAnalysis, planGroups: PlanGroups): CommitSummary {
  const plan = checkPlanGroups(planGroups, analysis);
  const edits = new EditSet(model.graph);
  for (const group of analysis.groups) collectGroupEdits(edits, group, plan[group.id] ?? [], 'mask');
  return edits.commit();
}
