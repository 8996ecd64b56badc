/** Typed access to the pipeline artifacts the pruning passes share (with clear errors when one is missing). */
import type { GroupAnalysis } from '../analysis/types';
import type { Model } from '../ir/model';
import type { PrunePlan } from '../prune/plan';
import type { PassContext } from './pass';

export function analysisOf(ctx: PassContext, pass: string): GroupAnalysis {
  const a = ctx.artifacts.groups;
  if (!a || !Array.isArray(a.groups) || !Array.isArray(a.declined)) {
    throw new Error(`pass '${pass}' needs the group analysis (ctx.artifacts.groups): run the 'analyze' pass before it`);
  }
  return a;
}

export function planOf(ctx: PassContext, pass: string): PrunePlan {
  const p = ctx.artifacts.plan;
  if (!p || typeof p.groups !== 'object') throw new Error(`pass '${pass}' needs a plan (ctx.artifacts.plan): run the 'plan' pass before it`);
  return p;
}

export function modelOf(ctx: PassContext, pass: string): Model {
  if (!ctx.model) throw new Error(`pass '${pass}': no model in context`);
  return ctx.model;
}
