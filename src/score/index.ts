/**
 * scoreGroups: importance of every unit of every group (see types.ts for the contract).
 */
import type { GroupAnalysis } from '../analysis/types';
import { UserError } from '../ir/errors';
import type { Model } from '../ir/model';
import type { ScoreContext } from './context';
import { SCORE_METHODS, importanceMethod } from './methods';
import { WeightCache } from './tensor-math';
import type { GroupScores, ScoreInfo, ScoreOptions, ScoreResult } from './types';

export * from './types';
export { IMPORTANCE_METHODS, importanceMethod, type ImportanceMethod } from './methods';
export { activationRequests, inputSite } from './sites';

export function scoreGroupsDetailed(model: Model, analysis: GroupAnalysis, opts: ScoreOptions): ScoreResult {
  const method = importanceMethod(opts.method);
  if (!method) throw new UserError(`unknown importance '${opts.method}' (known: ${SCORE_METHODS.join(', ')})`);
  const info: ScoreInfo = { method: method.name as ScoreInfo['method'], normalized: method.normalized, fallbacks: [] };
  const ctx: ScoreContext = {
    graph: model.graph,
    weights: new WeightCache(model),
    reduce: opts.reduce ?? 'mean',
    seed: opts.seed ?? 0,
    stats: opts.stats,
    grams: opts.grams,
    fallback: (g, reason) => {
      info.fallbacks.push({ group: g.id, reason });
    },
  };
  const scores: GroupScores = {};
  // A decoded weight is kept only until the last group that lists it is scored (a model with gigabytes of
  // weights would otherwise hold a float32 copy of all of them); a weight read again later is decoded again.
  const lastUse = new Map<string, number>();
  analysis.groups.forEach((g, gi) => { for (const m of g.members) if (m.kind === 'weight') lastUse.set(m.tensor, gi); });
  for (const [gi, g] of analysis.groups.entries()) {
    const s = method.score(ctx, g);
    if (s.length !== g.size) throw new Error(`scoring '${g.id}': ${s.length} scores for ${g.size} units`);
    for (let u = 0; u < s.length; u++) if (!Number.isFinite(s[u])) s[u] = 0;
    scores[g.id] = s;
    for (const m of g.members) if (m.kind === 'weight' && lastUse.get(m.tensor) === gi) ctx.weights.release(m.tensor);
  }
  logFallbacks(info, opts.log);
  return { scores, info };
}

/** One message per fallback reason: `importance M: N group(s): reason`. */
export function logFallbacks(info: ScoreInfo, log?: (message: string) => void): void {
  if (!info.fallbacks.length || !log) return;
  const byReason = new Map<string, number>();
  for (const f of info.fallbacks) byReason.set(f.reason, (byReason.get(f.reason) ?? 0) + 1);
  for (const [r, n] of byReason) log(`importance ${info.method}: ${n} group(s): ${r}`);
}

/** One score per unit (higher = more important), by group id. */
export function scoreGroups(model: Model, analysis: GroupAnalysis, opts: ScoreOptions): GroupScores {
  return scoreGroupsDetailed(model, analysis, opts).scores;
}
