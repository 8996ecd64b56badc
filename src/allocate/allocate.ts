/**
 * Allocation under a budget.
 *
 * Every group's units are ordered by score (ascending; ties by unit index). Groups are put into pools:
 *   uniform: each group is its own pool, so every group loses the same fraction of its units;
 *   global:  one pool per family of comparable units — width units (channels and neurons) and attention units
 *            (heads and kv-groups); units in a pool are ranked together by their score divided by the mean score
 *            of their group (skipped for scores that are already comparable, like LAMP).
 * For a sparsity level s ∈ [0, 1] each pool removes its round(s · poolSize) lowest-ranked units, skipping units
 * of groups that reached their cap (at most maxRatio of the group, at least max(1, roundTo) units kept). Each
 * group's count is then rounded so that the kept count is a multiple of roundTo (nearest multiple; groups with
 * fewer than roundTo units stay whole). The removed quantity grows with s, and s is found by bisection so that
 * the removed fraction of the target (params or MACs of the whole model) is as close as possible to the ratio.
 * A target above what the unprotected groups can give is a UserError — unless the analysis left no group of two
 * units or more at all (every group declined, none found, or single-unit groups): then nothing is prunable
 * whatever the options, nothing is removed, and the prune pass reports why (src/prune/explain.ts).
 */
import type { Group, GroupAnalysis } from '../analysis/types';
import { countMacs } from '../analysis/flops';
import { normalizedStream } from '../analysis/groups';
import { UserError } from '../ir/errors';
import { CostModel } from './cost';
import { protectedGroups } from './protect';
import type { AllocateOptions, Allocation, AllocationMode, BudgetTarget } from './types';

export * from './types';

type Candidate = Slot;

function checkOptions(opts: AllocateOptions, modes: readonly string[]): { target: BudgetTarget; mode: AllocationMode; maxRatio: number; roundTo: number } {
  const target = opts.target ?? 'params';
  const mode = opts.mode ?? 'uniform';
  const maxRatio = opts.maxRatio ?? 0.9;
  const roundTo = opts.roundTo ?? 1;
  if (!Number.isFinite(opts.ratio) || opts.ratio < 0 || opts.ratio >= 1) throw new UserError(`ratio must be in [0, 1), got ${opts.ratio}`);
  if (target !== 'params' && target !== 'flops') throw new UserError(`target must be params or flops, got '${target}'`);
  if (!modes.includes(mode)) throw new UserError(`allocation must be ${modes.join(' or ')}, got '${mode}'`);
  if (!(maxRatio > 0 && maxRatio <= 1)) throw new UserError(`max-ratio must be in (0, 1], got ${maxRatio}`);
  if (!Number.isInteger(roundTo) || roundTo < 1) throw new UserError(`round-to must be a positive integer, got ${roundTo}`);
  return { target, mode, maxRatio, roundTo };
}

/** The kept count for `remove` requested removals: rounded to a multiple of roundTo, within [minKept, size]. */
export function roundedKept(size: number, remove: number, roundTo: number, minKept: number): number {
  if (remove <= 0) return size;
  let kept = size - remove;
  if (roundTo > 1) {
    kept = Math.round(kept / roundTo) * roundTo;
    if (kept >= size) return size; // rounds back to the whole group (size is a multiple of roundTo)
    kept = Math.min(kept, Math.floor(size / roundTo) * roundTo);
  }
  return Math.max(kept, minKept);
}

function minKeptFor(size: number, maxRatio: number, roundTo: number): number {
  let k = Math.max(1, Math.ceil(size * (1 - maxRatio) - 1e-9));
  if (roundTo > 1) k = Math.max(roundTo, Math.ceil(k / roundTo) * roundTo);
  return k;
}

/** A group the allocation may take units from, with its units in removal order. */
export interface Slot {
  group: Group;
  /** Index of the group in analysis.groups. */
  gi: number;
  /** Units in ascending score order (ties by index): the first r are the ones removed when r go. */
  order: number[];
  /** rank[u] = position of unit u in `order`. */
  rank: Int32Array;
  /** Scores divided by the group mean (or as given when already comparable). */
  norm: Float64Array;
  /** Most units that may go. */
  maxRemove: number;
  /** Fewest units kept (max-ratio, round-to, at least one). */
  minKept: number;
}

export interface Slots {
  slots: Slot[];
  cost: CostModel;
  target: BudgetTarget;
  mode: AllocationMode;
  maxRatio: number;
  roundTo: number;
  /** Total of the target quantity (params or MACs). */
  total: number;
  protectedMap: Map<string, string>;
  /** Fraction of the target that `removed` removes. */
  measure: (removed: Map<string, number[]> | Record<string, number[]>) => number;
}

/**
 * The groups allocation may prune (not protected or excluded, two units or more, some removable under max-ratio),
 * their removal orders, and the cost model that measures a removal. Shared by allocate and the search.
 */
export function allocationSlots(analysis: GroupAnalysis, scores: Record<string, ArrayLike<number>>, opts: AllocateOptions, modes: readonly string[] = ['uniform', 'global']): Slots {
  const { target, mode, maxRatio, roundTo } = checkOptions(opts, modes);
  const model = opts.model;
  let flops = opts.flops;
  if (target === 'flops' && !flops) {
    if (!model) throw new Error('allocate: a FLOPs target needs the model');
    flops = countMacs(model);
  }
  if (target === 'flops' && (flops?.macs === undefined || !(flops.macs > 0))) {
    throw new UserError(`--target flops: the model's MACs cannot be counted (unknown shapes at ${flops?.unknown.slice(0, 3).join(', ') || 'some nodes'})`);
  }
  const cost = new CostModel(analysis, model, flops);
  const protectedMap = protectedGroups(analysis, model, opts);
  for (const [id, why] of Object.entries(opts.keepWhole ?? {})) if (!protectedMap.has(id)) protectedMap.set(id, why);

  const candidates: Candidate[] = [];
  analysis.groups.forEach((g, gi) => {
    if (protectedMap.has(g.id) || g.size < 2) return;
    const s = scores[g.id];
    if (!s || s.length !== g.size) throw new Error(`allocate: group '${g.id}' has ${s?.length ?? 0} scores for ${g.size} units`);
    const val = (u: number) => (Number.isNaN(s[u]) ? Infinity : s[u]);
    const order = Array.from({ length: g.size }, (_, u) => u).sort((a, b) => val(a) - val(b) || a - b);
    let mean = 0;
    for (let u = 0; u < g.size; u++) mean += Number.isFinite(val(u)) ? val(u) : 0;
    mean /= g.size;
    const norm = Float64Array.from({ length: g.size }, (_, u) => (opts.normalized || !(mean > 0) ? val(u) : val(u) / mean));
    const minKept = minKeptFor(g.size, maxRatio, roundTo);
    const maxRemove = Math.max(0, g.size - minKept);
    const rank = new Int32Array(g.size);
    order.forEach((u, i) => { rank[u] = i; });
    if (maxRemove > 0) candidates.push({ group: g, gi, order, rank, norm, maxRemove, minKept });
  });
  const total = target === 'params' ? cost.totalParams : cost.totalMacs ?? 0;
  const measure = (r: Map<string, number[]> | Record<string, number[]>) =>
    (target === 'params' ? cost.paramsRemoved(r, analysis.groups) : cost.macsRemoved(r)) / (total || 1);
  return { slots: candidates, cost, target, mode: mode as AllocationMode, maxRatio, roundTo, total, protectedMap, measure };
}

/**
 * Uniform allocation keeps normalized streams (groups with statistics members: a transformer's hidden size) whole
 * while the budget can be met without them, and cuts them by the common fraction only when it cannot (vit_s at
 * 50 %). Cutting the hidden size by the same fraction as every head and MLP group was measured to cost quality:
 * llama_py 30 % wanda+ls 5.986 with it vs 5.697 without, llama8_py 50 % 7.703 vs 6.756. Global and search rank it
 * with the other groups (there it helps: llama_py 50 % global 7.228 vs 8.121).
 */
export function allocate(analysis: GroupAnalysis, scores: Record<string, ArrayLike<number>>, opts: AllocateOptions): Allocation {
  if ((opts.mode ?? 'uniform') === 'uniform' && !opts.keepWhole) {
    const streams = analysis.groups.filter(normalizedStream);
    if (streams.length && opts.ratio > 0) {
      const keepWhole = Object.fromEntries(streams.map((g) => [g.id, 'normalized stream (hidden size): uniform allocation keeps it whole while the budget allows']));
      try {
        return allocateWith(analysis, scores, { ...opts, keepWhole });
      } catch (e) {
        if (!(e instanceof UserError)) throw e;
      }
    }
  }
  return allocateWith(analysis, scores, opts);
}

function allocateWith(analysis: GroupAnalysis, scores: Record<string, ArrayLike<number>>, opts: AllocateOptions): Allocation {
  const { slots: candidates, cost, target, mode, roundTo, protectedMap, maxRatio, measure } = allocationSlots(analysis, scores, opts);

  // Pools of candidates and their ranked units.
  const pools = new Map<string, { cands: Candidate[]; ranked: { c: Candidate; u: number }[] }>();
  for (const c of candidates) {
    const key = mode === 'uniform' ? `g:${c.group.id}` : c.group.unit === 'head' || c.group.unit === 'kv-group' ? 'attention' : 'width';
    let p = pools.get(key);
    if (!p) pools.set(key, (p = { cands: [], ranked: [] }));
    p.cands.push(c);
  }
  for (const p of pools.values()) {
    for (const c of p.cands) for (const u of c.order) p.ranked.push({ c, u });
    p.ranked.sort((a, b) => a.c.norm[a.u] - b.c.norm[b.u] || a.c.gi - b.c.gi || a.c.rank[a.u] - b.c.rank[b.u]);
  }

  // The removal depends on s only through each pool's count, round(s · size): removals (and their measure) are
  // memoized by those counts, so the bisection's late steps, which rarely change a count, cost nothing.
  const poolList = [...pools.values()];
  const memo = new Map<string, { removed: Map<string, number[]>; measured?: number }>();
  const removalAt = (s: number): Map<string, number[]> => entryAt(s).removed;
  const entryAt = (s: number) => {
    const wants = poolList.map((p) => Math.round(s * p.ranked.length));
    const key = wants.join(',');
    let e = memo.get(key);
    if (!e) memo.set(key, (e = { removed: removalFor(wants) }));
    return e;
  };
  const removalFor = (wants: number[]): Map<string, number[]> => {
    const counts = new Map<Candidate, number>();
    for (const [pi, p] of poolList.entries()) {
      const want = wants[pi];
      let taken = 0;
      for (const { c } of p.ranked) {
        if (taken >= want) break;
        const k = counts.get(c) ?? 0;
        if (k >= c.maxRemove) continue;
        counts.set(c, k + 1);
        taken++;
      }
    }
    const removed = new Map<string, number[]>();
    for (const [c, k] of counts) {
      const kept = roundedKept(c.group.size, k, roundTo, c.minKept);
      const r = c.group.size - kept;
      if (r > 0) removed.set(c.group.id, c.order.slice(0, r).sort((a, b) => a - b));
    }
    return removed;
  };

  const totalParams = cost.totalParams;
  const totalMacs = cost.totalMacs ?? 0;
  const measureAt = (s: number): number => {
    const e = entryAt(s);
    if (e.measured === undefined) e.measured = measure(e.removed);
    return e.measured;
  };

  const want = opts.ratio;
  const maxAchievable = candidates.length ? measureAt(1) : 0;
  let best = new Map<string, number[]>();
  // No group with two units or more: nothing is prunable at all (not a budget problem; the prune pass says why).
  const anyPrunable = analysis.groups.some((g) => g.size >= 2);
  if (want > 0 && anyPrunable) {
    if (maxAchievable + 1e-12 < want) {
      const byDefault = [...protectedMap.values()].some((r) => r.startsWith('first conv') || r.startsWith('classifier'));
      const prot = protectedMap.size
        ? `, ${protectedMap.size} group(s) protected${byDefault ? ' (--no-protect-defaults allows pruning the first conv and the classifier)' : ''}`
        : '';
      throw new UserError(`cannot remove ${(want * 100).toFixed(1)} % of ${target}: at most ${(maxAchievable * 100).toFixed(1)} % is removable ` +
        `(${candidates.length} prunable group(s), max-ratio ${maxRatio}${roundTo > 1 ? `, round-to ${roundTo}` : ''}${prot})`);
    }
    // Smallest s reaching the target; then take whichever of it and the step below lands closer.
    let lo = 0, hi = 1;
    for (let it = 0; it < 60; it++) {
      const mid = (lo + hi) / 2;
      if (measureAt(mid) >= want) hi = mid;
      else lo = mid;
    }
    const above = removalAt(hi), below = removalAt(lo);
    best = Math.abs(measureAt(lo) - want) < Math.abs(measureAt(hi) - want) ? below : above;
  }

  const removed: Record<string, number[]> = {};
  let unitsRemoved = 0;
  for (const g of analysis.groups) {
    const r = best.get(g.id);
    if (r && r.length) {
      removed[g.id] = r;
      unitsRemoved += r.length;
    }
  }
  const pRemoved = cost.paramsRemoved(removed, analysis.groups);
  const achievedParams = { before: totalParams, after: totalParams - pRemoved, removedRatio: totalParams ? pRemoved / totalParams : 0 };
  const achievedFlops = cost.totalMacs !== undefined
    ? { before: totalMacs, after: totalMacs - cost.macsRemoved(removed), removedRatio: totalMacs ? cost.macsRemoved(removed) / totalMacs : 0 }
    : undefined;
  return {
    removed,
    achieved: {
      target,
      mode,
      requested: want,
      achieved: target === 'params' ? achievedParams.removedRatio : achievedFlops!.removedRatio,
      maxAchievable,
      params: achievedParams,
      flops: achievedFlops,
      groupsPruned: Object.keys(removed).length,
      unitsRemoved,
      protected: [...protectedMap].map(([group, reason]) => ({ group, reason })),
    },
  };
}
