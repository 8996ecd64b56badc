/**
 * `--allocation search`: how much to prune where, found by an evolutionary search over per-group kept widths
 * (Týr-the-Pruner / EvoPress / DarwinLM; reference notes /work/shared/docs/search-reconstruction-reference.md §1–2, 6).
 *
 * - Slots: the groups allocation may prune (src/allocate/allocate.ts allocationSlots). A slot's units go in its
 *   importance order (lowest first; with `obs` that is the greedy OBS path), so the levels of a slot are nested.
 * - Levels: per slot a ladder of kept widths around the centre allocation, `levels` steps each way, the step
 *   12.5 % of the slot at first (multiples of round-to, at least one unit, within max-ratio), halved after each
 *   iteration around the best allocation found (coarse to fine).
 * - Reconstruction: with `ls`, every consumer's calibration Gram is captured at the centre (sequentially: each
 *   stage from the model with the earlier stages pruned to the centre and refit, as Týr installs its centre level),
 *   and a candidate's consumer weights are the least-squares refit of its removal from that Gram (a consumer of one
 *   slot factors its Gram once per centre: NestedRefit; the centre reuses its own reconstruction); with `bias` the
 *   removed inputs' mean goes into the bias; with `none` the removed inputs are zeroed.
 * - Candidates are fed to one onnxruntime session of the search model (src/prune/search-model.ts; float32 or float16
 *   weights) and scored by src/prune/search-fitness.ts (KL to the dense model's distributions, normalized MSE for
 *   other outputs). No slot that can be fed: the search does not run (uniform, with a warning).
 * - Evolution: (1+λ) elitist. Offspring switch levels in 1–3 pairs (one slot down, another up), repaired greedily to
 *   stay within the budget tolerance; duplicates are skipped. Multi-stage selection: offspring are scored on a
 *   seeded eighth of the calibration batches, the best four on half of them (nested), the best of those on all of
 *   them, where the parent's fitness is already known — so the parent's fitness never gets worse. After an
 *   iteration, the winner's reconstruction is captured exactly (its own Grams) and the best exactly measured
 *   allocation so far is the result. The start is the better of uniform and global within the budget tolerance (or
 *   moved onto the budget when one misses it): on the calibration data the result is never worse than the start,
 *   hence never worse than a baseline that meets the budget.
 * - Deterministic for a seed: one seeded generator, ties broken by index, one intra-op thread, generations as the
 *   limit (a run cut short by the `time` backstop is not reproducible, and the pass warns).
 */
import type { GroupAnalysis } from '../analysis/types';
import { allocate, allocationSlots, type AllocateOptions, type Allocation, type Slot, type Slots } from '../allocate/allocate';
import { DataType, float32ToFloat16 } from '../ir/dtype';
import { UserError } from '../ir/errors';
import type { Model } from '../ir/model';
import type { CalibSet } from '../ort/calib';
import type { GramStats } from '../ort/gram';
import { ort } from '../ort/session';
import { rng } from '../util/rng';
import { compensable } from '../score/compensate';
import { channelColumns, removedChannels, type Consumer } from '../score/consumers';
import { NestedRefit } from '../score/refit';
import { keptPositions, scatterPositions } from './mask';
import { meanBiasDelta, planReconstruction, refitConsumer, type ReconstructMode } from './reconstruct';
import { buildSearchModel, feedSites, type SearchModel, type WeightFeed } from './search-model';
import { zeroAlongAxis } from './tensor-edit';
import { combine, FitnessEvaluator, type BatchLoss, type OutputFitness } from './search-fitness';

export interface SearchOptions {
  seed?: number;
  /** Wall-clock limit in seconds from the search's start (default 600): a backstop; the generations decide a normal run. */
  time?: number;
  /** Generations over all iterations (default 60). */
  generations?: number;
  /** Offspring per generation (default 16). */
  offspring?: number;
  /** Coarse-to-fine iterations (default 3). */
  iterations?: number;
  /** Levels each way from the centre (default 4: 9 levels). */
  levels?: number;
  /** First level step as a fraction of the slot (default 0.125). */
  step?: number;
  /** Generations without improvement before an iteration ends (default 10). */
  patience?: number;
  /** Survivors of the first selection stage (an eighth of the batches; default 4); one survives the second (half). */
  survivors?: number;
  /** Reconstruction the candidates get (default ls). */
  reconstruct?: ReconstructMode;
  sequential?: boolean;
  /** Samples per calibration batch (default: an eighth of the set, at most 64). */
  batch?: number;
  /**
   * Largest total of Gram bytes kept for refitting candidates, shared factors included (default 2 GiB): consumers
   * beyond it are searched zeroed; factors beyond it are not shared (each level then factors its own kept set).
   */
  maxGramBytes?: number;
  quiet?: boolean;
  log?: (message: string) => void;
  /** Called after each generation (progress line). */
  progress?: (p: SearchProgress) => void;
}

export interface SearchProgress {
  iteration: number;
  iterations: number;
  generation: number;
  generations: number;
  best: number;
  budget: number;
  elapsed: number;
  eta: number;
}

export interface SearchReport {
  fitness: { output: string; kind: OutputFitness }[];
  reconstruct: ReconstructMode;
  slots: number;
  /**
   * Slots kept at the start allocation's width, with the reason (their weights cannot be fed to the search model:
   * their removal is not in any fitness here, so `result` and the baselines are then not the pruned model's KL).
   */
  fixed: { group: string; reason: string }[];
  /** Consumers whose Gram was over the memory cap (zeroed, not refit, while searching). */
  unrefit: number;
  /** Exact fitness (own reconstruction) of the uniform and global allocations, measured in this run, and the fraction each removes. */
  baselines: { uniform: number; uniformRemoved?: number; global?: number; globalRemoved?: number; globalNote?: string };
  /** The search starts from the better baseline within the tolerance, else from it moved onto the budget. */
  startFitness?: number;
  /** Largest |removed − ratio| allowed (0.5 % of the ratio unless no allocation in reach lands there: then widened). */
  tolerance: number;
  toleranceWidened?: boolean;
  /** Fitness of the result (exact: its own reconstruction). */
  result: number;
  start: 'uniform' | 'global';
  /**
   * Per coarse-to-fine iteration: the level step and the centre's kept units per group, the centre's fitness, the
   * winner's fitness under the centre's statistics and with its own reconstruction (exact), and generations run.
   */
  iterations: { step: Record<string, number>; kept: Record<string, number>; centre: number; winner: number; exact: number; generations: number }[];
  /** Best fitness after each generation (on the full calibration set; exact only at iteration ends). */
  trace: { iteration: number; generation: number; best: number; evaluations: number; seconds: number }[];
  evaluations: number;
  batches: number;
  seconds: number;
  stoppedBy: 'generations' | 'time' | 'patience' | 'no-offspring';
  /** Kept units per searched group. */
  kept: Record<string, number>;
  seed: number;
}

export interface SearchResult extends Allocation {
  /** Absent when there was nothing to search (no prunable group, ratio 0): the result is the uniform allocation. */
  report?: SearchReport;
  /** Why the search did not run although there were groups (none can be fed to the search model): uniform is used. */
  skipped?: string;
}

/** Kept counts per slot (index = slot index). */
export type Config = number[];

/** Largest total of candidate tensors kept for reuse. */
const MEMO_BYTES = 512 * 2 ** 20;

const keyOf = (c: Config) => c.join(',');

/**
 * Searches the allocation. `alloc` are the allocation options (ratio, target, max-ratio, round-to, protection);
 * `scores` the importance scores (their order is each slot's removal order).
 */
export async function searchAllocation(model: Model, analysis: GroupAnalysis, scores: Record<string, ArrayLike<number>>, calib: CalibSet,
  alloc: AllocateOptions, opts: SearchOptions = {}): Promise<SearchResult> {
  const t0 = Date.now();
  const seed = opts.seed ?? 0;
  const random = rng(seed ^ 0x5ea7c4);
  const recon = opts.reconstruct ?? 'ls';
  const nLevels = opts.levels ?? 4;
  const iterations = opts.iterations ?? 3;
  const totalGenerations = opts.generations ?? 60;
  const perIteration = Math.max(1, Math.ceil(totalGenerations / iterations));
  const lambda = opts.offspring ?? 16;
  const patience = opts.patience ?? 10;
  const survivors = opts.survivors ?? 4;
  const deadline = t0 + (opts.time ?? 600) * 1000;
  const log = opts.log ?? (() => undefined);

  const uniform = allocate(analysis, scores, { ...alloc, mode: 'uniform' });
  let global: Allocation | undefined;
  let globalNote: string | undefined;
  try {
    global = allocate(analysis, scores, { ...alloc, mode: 'global' });
  } catch (e) {
    if (!(e instanceof UserError)) throw e;
    globalNote = e.message;
  }
  const S = allocationSlots(analysis, scores, { ...alloc, mode: 'uniform' });
  const slots = S.slots;
  const ratio = alloc.ratio;
  const empty = (): SearchResult => ({ ...uniform, achieved: { ...uniform.achieved, mode: 'search' } });
  if (!slots.length || ratio <= 0) return empty();

  // No slot whose weights can be fed: nothing to search (a fitness that cannot see the removal would be meaningless).
  const unfed = feedSites(model.graph, slots).fixed;
  if (unfed.size === slots.length) {
    const [si, why] = [...unfed][0];
    return { ...empty(), skipped: `search: no group can be searched (${slots[si].group.id}: ${why}); the uniform allocation is used` };
  }
  const ss = await openSearch(model, analysis, S, calib, { reconstruct: recon, sequential: opts.sequential, batch: opts.batch, maxGramBytes: opts.maxGramBytes });
  const { sm, ev, nb, measure, removedOf, configOf, exact, fitness, allBatches } = ss;
  const uniformC = configOf(uniform.removed);
  // The budget holds within 0.5 % of the target (relative); widened only when no allocation in reach lands there.
  let tolerance = 0.005 * ratio;
  const within = (c: Config) => Math.abs(measure(c) - ratio) <= tolerance;
  const snap = snapper(S);
  const unitCost = unitCosts(S, uniformC, measure);

  const report: SearchReport = {
    fitness: ev.outputs.map((o, i) => ({ output: o, kind: ev.kinds[i] })), reconstruct: recon, slots: slots.length,
    fixed: [...sm.fixed].map(([si, reason]) => ({ group: slots[si].group.id, reason })), unrefit: 0,
    baselines: { uniform: NaN }, result: NaN, start: 'uniform', tolerance, iterations: [], trace: [], evaluations: 0, batches: nb,
    seconds: 0, stoppedBy: 'generations', kept: {}, seed,
  };
  const searchable = slots.map((_, si) => !sm.fixed.has(si));
  try {
    const fU = await exact(uniformC);
    report.baselines.uniform = fU;
    report.baselines.uniformRemoved = measure(uniformC);
    const starts: { c: Config; fit: number; from: 'uniform' | 'global' }[] = [{ c: uniformC, fit: fU, from: 'uniform' }];
    if (global) {
      const gc = configOf(global.removed);
      const fG = await exact(gc);
      report.baselines.global = fG;
      report.baselines.globalRemoved = measure(gc);
      starts.push({ c: gc, fit: fG, from: 'global' });
    } else report.baselines.globalNote = globalNote;
    starts.sort((a, b) => a.fit - b.fit);
    // The start: the best of the baselines within the budget tolerance and of those outside it moved onto the
    // budget (a baseline that removes less than asked would otherwise win by removing less).
    const wide: Space = { step: [], lo: slots.map((s) => s.minKept), hi: slots.map((s) => s.group.size), searchable, snap, ratio, tolerance, measure, unitCost };
    let best: { c: Config; fit: number; from: 'uniform' | 'global' } | undefined;
    for (const x of starts) {
      let cand: { c: Config; fit: number; from: 'uniform' | 'global' } | undefined = x;
      if (!within(x.c)) {
        const r = repair(x.c.slice(), wide);
        cand = r ? { c: r, fit: await exact(r), from: x.from } : undefined;
      }
      if (cand && (!best || cand.fit < best.fit)) best = cand;
    }
    if (!best) {
      // Nothing in reach lands within 0.5 %: the tolerance becomes the baselines' distance from the target.
      tolerance = Math.min(...starts.map((x) => Math.abs(measure(x.c) - ratio))) + 1e-12;
      best = starts.find((x) => within(x.c))!;
      report.toleranceWidened = true;
    }
    report.tolerance = tolerance;
    report.start = best.from;
    report.startFitness = best.fit;
    log(`search: ${slots.length} slot(s), ${nb} calibration batch(es); uniform ${fU.toPrecision(4)}${report.baselines.global !== undefined ? `, global ${report.baselines.global.toPrecision(4)}` : ''}, start ${best.fit.toPrecision(4)}`);

    let gen = 0;
    let stepFrac = opts.step ?? 0.125;
    for (let it = 0; it < iterations; it++) {
      if (Date.now() > deadline) { report.stoppedBy = 'time'; break; }
      // What ended the last iteration run (generations unless time, patience or a lack of new offspring).
      report.stoppedBy = 'generations';
      const centre: Config = best.c;
      const parentFit0 = await exact(centre);
      // Levels: kept counts within `levels` steps of the centre (multiples of round-to, within max-ratio).
      const steps: Record<string, number> = {};
      const space: Space = {
        step: [], lo: [], hi: [], searchable, snap, ratio, tolerance, measure, unitCost,
      };
      slots.forEach((s, si) => {
        const step = Math.max(S.roundTo, Math.round((stepFrac * s.group.size) / S.roundTo) * S.roundTo, 1);
        steps[s.group.id] = step;
        space.step.push(step);
        space.lo.push(Math.max(s.minKept, snap(si, centre[si] - nLevels * step)));
        space.hi.push(Math.min(s.group.size, centre[si] + nLevels * step));
      });
      let parent: Config = centre.slice();
      let parentFit = parentFit0;
      const seen = new Set<string>([keyOf(parent)]);
      let still = 0;
      let gensHere = 0;
      while (gensHere < perIteration && gen < totalGenerations) {
        if (Date.now() > deadline) { report.stoppedBy = 'time'; break; }
        // Offspring.
        const kids: Config[] = [];
        for (let attempt = 0; kids.length < lambda && attempt < lambda * 20; attempt++) {
          const k = mutate(parent, space, random);
          if (!k) continue;
          const key = keyOf(k);
          if (seen.has(key)) continue;
          seen.add(key);
          kids.push(k);
        }
        if (!kids.length) { report.stoppedBy = 'no-offspring'; break; }
        gen++;
        gensHere++;
        // Selection in stages on nested seeded subsets of the batches (an eighth, then half): each keeps its best
        // few; the last survivor meets the parent on every batch, where the parent's fitness is already known.
        const perm = shuffled(nb, random);
        let pool = kids.map((c, i) => ({ c, f: 0, i }));
        for (const [part, keep] of [[1 / 8, survivors], [1 / 2, 1]] as const) {
          const sub = perm.slice(0, Math.max(1, Math.round(nb * part))).sort((a, b) => a - b);
          for (const x of pool) x.f = await fitness(x.c, sub);
          pool.sort((a, b) => a.f - b.f || a.i - b.i);
          pool = pool.slice(0, keep);
        }
        let improved = false;
        for (const x of pool) {
          const f = await fitness(x.c, allBatches);
          if (f < parentFit) { parent = x.c; parentFit = f; improved = true; }
        }
        still = improved ? 0 : still + 1;
        const elapsed = (Date.now() - t0) / 1000;
        report.trace.push({ iteration: it + 1, generation: gen, best: parentFit, evaluations: ss.evaluations(), seconds: elapsed });
        opts.progress?.({
          iteration: it + 1, iterations, generation: gen, generations: totalGenerations, best: parentFit, budget: measure(parent), elapsed,
          eta: Math.min(Math.max(0, (deadline - Date.now()) / 1000), (elapsed / gen) * (totalGenerations - gen)),
        });
        if (still >= patience) { report.stoppedBy = 'patience'; break; }
      }
      const winner = parent;
      const exactFit: number = keyOf(winner) === keyOf(centre) ? parentFit0 : await exact(winner);
      report.iterations.push({ step: steps, kept: Object.fromEntries(slots.map((x, si) => [x.group.id, centre[si]])), centre: parentFit0, winner: parentFit, exact: exactFit, generations: gensHere });
      log(`search: iteration ${it + 1}: ${gensHere} generation(s), fitness ${parentFit0.toPrecision(4)} → ${parentFit.toPrecision(4)} (exact ${exactFit.toPrecision(4)})`);
      if (exactFit < best.fit) best = { c: winner, fit: exactFit, from: best.from };
      if (gen >= totalGenerations) break;
      stepFrac /= 2;
    }
    report.result = best.fit;
    report.unrefit = ss.unrefit();
    report.evaluations = ss.evaluations();
    report.seconds = (Date.now() - t0) / 1000;
    slots.forEach((s, si) => { report.kept[s.group.id] = best.c[si]; });

    const removed: Record<string, number[]> = {};
    let unitsRemoved = 0;
    const r = removedOf(best.c);
    for (const g of analysis.groups) if (r[g.id]?.length) { removed[g.id] = r[g.id]; unitsRemoved += r[g.id].length; }
    const base = uniform.achieved;
    const pRemoved = S.cost.paramsRemoved(removed, analysis.groups);
    const macs = S.cost.totalMacs;
    const mRemoved = macs !== undefined ? S.cost.macsRemoved(removed) : 0;
    const params = { before: base.params.before, after: base.params.before - pRemoved, removedRatio: base.params.before ? pRemoved / base.params.before : 0 };
    const flops = macs !== undefined ? { before: macs, after: macs - mRemoved, removedRatio: macs ? mRemoved / macs : 0 } : undefined;
    return {
      removed,
      achieved: {
        ...base, mode: 'search', achieved: S.target === 'params' ? params.removedRatio : flops!.removedRatio, params, flops,
        groupsPruned: Object.keys(removed).length, unitsRemoved,
      },
      report,
    };
  } finally {
    await ss.release();
  }
}

/** Evaluation of allocations on the search model: budget measure, candidate feeds, fitness (see the file comment). */
export interface SearchSession {
  sm: SearchModel;
  ev: FitnessEvaluator;
  /** Calibration batches, and all of their indices. */
  nb: number;
  allBatches: number[];
  /** Fraction of the target a configuration (kept units per slot) removes. */
  measure: (c: Config) => number;
  removedOf: (c: Config) => Record<string, number[]>;
  configOf: (removed: Record<string, number[]>) => Config;
  /** Fitness on the given batches with the statistics captured last (memoized per configuration). */
  fitness: (c: Config, batches: number[]) => Promise<number>;
  /** Fitness on every batch with the configuration's own reconstruction (statistics captured at it). */
  exact: (c: Config) => Promise<number>;
  evaluations: () => number;
  unrefit: () => number;
  release: () => Promise<void>;
}

export async function openSearch(model: Model, analysis: GroupAnalysis, S: Slots, calib: CalibSet,
  opts: { reconstruct: ReconstructMode; sequential?: boolean; batch?: number; maxGramBytes?: number; /** Shared factorizations for nested levels (default true; false: refitConsumer per level). */ nested?: boolean }): Promise<SearchSession> {
  const slots = S.slots;
  const recon = opts.reconstruct;
  // Removal of a slot at a kept count: the first size − kept units of its order (memoized).
  const removalMemo = new Map<string, number[]>();
  const removal = (si: number, kept: number): number[] => {
    const k = `${si}:${kept}`;
    let r = removalMemo.get(k);
    if (!r) removalMemo.set(k, (r = slots[si].order.slice(0, slots[si].group.size - kept).sort((a, b) => a - b)));
    return r;
  };
  const removedOf = (c: Config): Record<string, number[]> => {
    const out: Record<string, number[]> = {};
    c.forEach((kept, si) => { if (kept < slots[si].group.size) out[slots[si].group.id] = removal(si, kept); });
    return out;
  };
  const configOf = (removed: Record<string, number[]>): Config => slots.map((s) => s.group.size - (removed[s.group.id]?.length ?? 0));
  const measureMemo = new Map<string, number>();
  const measure = (c: Config): number => {
    const k = keyOf(c);
    let m = measureMemo.get(k);
    if (m === undefined) measureMemo.set(k, (m = S.measure(removedOf(c))));
    return m;
  };
  const sm: SearchModel = buildSearchModel(model, analysis, slots, { bias: recon !== 'none' });
  const batch = opts.batch ?? Math.max(1, Math.min(64, Math.ceil(calib.samples / 8)));
  const ev = await FitnessEvaluator.create(model, sm.model, calib, batch);
  const nb = ev.batches.length;
  const allBatches = Array.from({ length: nb }, (_, b) => b);
  let evaluations = 0;
  let unrefit = 0;

  // Statistics of the current centre: consumer key → Gram; feed values memoized per (feed, kept counts).
  let grams = new Map<string, GramStats>();
  let gramsAt = '';
  let valueMemo = new Map<string, { w: Float32Array; b?: Float32Array }>();
  let memoBytes = 0;
  const feedConsumerKey = (f: WeightFeed) => f.consumer?.key;
  const capture = async (c: Config): Promise<void> => {
    // Bias compensation reads the dense model's input means whatever the allocation: one capture serves all.
    const key = recon === 'bias' ? 'dense' : keyOf(c);
    if (recon === 'none' || gramsAt === key) return;
    grams = new Map();
    valueMemo = new Map();
    nested = new Map();
    memoBytes = 0;
    bytes = 0;
    unrefit = 0;
    const keep = (cons: Consumer, s: GramStats) => {
      const size = s.blockDiagonal ? s.blocks.length * 8 : s.gram.length * 8;
      if (bytes + size > cap) { unrefit++; return; }
      bytes += size;
      grams.set(cons.key, s);
    };
    const plan = await planReconstruction(model, analysis, removedOf(c), calib, {
      sequential: recon === 'ls' && opts.sequential !== false, quiet: true, onGram: keep, captureGroups: slots.map((s) => s.group.id),
    });
    // The centre's own refit (what the pipeline will build for it): reused as is, no factorization needed.
    centre = { c: c.slice(), refit: new Map() };
    for (const w of plan.weights) centre.refit.set(`${w.node}#${w.input}`, { values: w.values });
    for (const b of plan.biases) {
      const e = centre.refit.get(`${b.node}#${b.input}`);
      if (e) e.delta = b.delta;
    }
    gramsAt = key;
  };
  let centre: { c: Config; refit: Map<string, { values: Float32Array; delta?: number[] }> } | undefined;
  // Bytes of Grams and shared factors held: both count against one cap.
  let bytes = 0;
  const cap = opts.maxGramBytes ?? 2 ** 31;

  // A consumer of one slot's units: its levels are nested, one factorization serves them all (NestedRefit).
  let nested = new Map<string, NestedRefit | undefined>();
  const nestedFor = (f: WeightFeed, gram: GramStats): NestedRefit | undefined => {
    if (nested.has(f.name)) return nested.get(f.name);
    let nr: NestedRefit | undefined;
    const cons = f.consumer!;
    const si = f.slots[0];
    const gid = slots[si].group.id;
    const need = (cons.dIn + 1) ** 2 * 8;
    if (opts.nested !== false && f.slots.length === 1 && !gram.blockDiagonal && cons.members.every((m) => m.group === gid) && bytes + need <= cap) {
      bytes += need;
      const units = slots[si].order.map((u) => channelColumns(cons, removedChannels(cons, { [gid]: [u] })));
      const affine = compensable(model.graph, cons.node, cons.input, cons.dims.length);
      nr = new NestedRefit(f.dense, cons.dOut, cons.dIn, gram.gram, units, { layout: cons.layout, lambda: 0.01, ...(affine ? { affine: { sum: gram.sum, count: gram.count } } : {}) });
    }
    nested.set(f.name, nr);
    return nr;
  };
  const feedValue = (f: WeightFeed, c: Config): { w: Float32Array; b?: Float32Array } => {
    const mk = `${f.name}|${f.slots.map((si) => c[si]).join(',')}`;
    const hit = valueMemo.get(mk);
    if (hit) return hit;
    const removed: Record<string, number[]> = {};
    for (const si of f.slots) if (c[si] < slots[si].group.size) removed[slots[si].group.id] = removal(si, c[si]);
    let w: Float32Array = f.dense;
    let b: Float32Array | undefined = f.bias ? new Float32Array(f.bias.dims.reduce((a, d) => a * d, 1)) : undefined;
    const ck = feedConsumerKey(f);
    const gram = ck ? grams.get(ck) : undefined;
    const anyRemoved = Object.keys(removed).length > 0;
    const atCentre = recon === 'ls' && !!centre && f.slots.every((si) => c[si] === centre!.c[si]);
    const own = atCentre && f.consumer && gram ? centre!.refit.get(f.consumer.key) : undefined;
    const nr = !own && anyRemoved && f.consumer && gram && recon === 'ls' ? nestedFor(f, gram) : undefined;
    if (own) {
      w = own.values;
      if (own.delta && b) b.set(own.delta);
    } else if (nr) {
      const si = f.slots[0];
      const r = nr.level(slots[si].group.size - c[si]);
      w = Float32Array.from(r.W);
      if (r.biasDelta && b) b.set(r.biasDelta);
    } else if (anyRemoved && f.consumer && gram && recon === 'ls') {
      const r = refitConsumer(model, f.consumer, gram, removed, 0.01, { errors: false, weights: f.dense });
      if (!('skip' in r)) {
        if (r.weight) w = r.weight.values;
        if (r.bias && b) b.set(r.bias.delta);
      }
    } else if (anyRemoved && f.consumer && gram && recon === 'bias' && b) {
      b.set(meanBiasDelta(f.consumer, f.dense, gram, channelColumns(f.consumer, removedChannels(f.consumer, removed))));
    }
    // The removed units' positions zeroed, as the masked reference has them (a new array: `w` may be shared).
    for (const m of f.masks) {
      if (c[m.slot] >= slots[m.slot].group.size) continue;
      const t = zeroAlongAxis({ dtype: DataType.FLOAT, dims: f.dims, bytes: new Uint8Array(w.buffer, w.byteOffset, w.byteLength) },
        m.axis, removal(m.slot, c[m.slot]).flatMap((u) => m.indices[u]), f.name);
      w = new Float32Array(t.bytes.buffer, t.bytes.byteOffset, w.length);
    }
    const v = { w, b };
    // The memo is dropped whole when it would hold more than MEMO_BYTES of tensors.
    memoBytes += w === f.dense ? 0 : w.byteLength;
    if (memoBytes > MEMO_BYTES) { valueMemo = new Map(); memoBytes = 0; }
    valueMemo.set(mk, v);
    return v;
  };
  const half16 = new WeakMap<Float32Array, Uint16Array>();
  const tensorOf = (f: WeightFeed, values: Float32Array, dims: number[]): ort.Tensor => {
    if (!f.half) return new ort.Tensor('float32', values, dims);
    let h = half16.get(values);
    if (!h) half16.set(values, (h = Uint16Array.from(values, (x) => float32ToFloat16(x))));
    return new ort.Tensor('float16', h, dims);
  };
  const weightsOf = (c: Config): Record<string, ort.Tensor> => {
    const out: Record<string, ort.Tensor> = {};
    for (const s of sm.stats) {
      const removed = new Set<number>();
      for (const m of s.members) {
        if (c[m.slot] < slots[m.slot].group.size) for (const u of removal(m.slot, c[m.slot])) for (const p of m.indices[u]) removed.add(p);
      }
      const kept = keptPositions(s.size, removed);
      out[s.kept] = new ort.Tensor('int64', BigInt64Array.from(kept, BigInt), [kept.length]);
      if (s.map) out[s.map] = new ort.Tensor('int64', BigInt64Array.from(scatterPositions(s.size, kept), BigInt), [s.size]);
    }
    for (const f of sm.feeds) {
      const v = feedValue(f, c);
      out[f.name] = tensorOf(f, v.w, f.dims);
      if (f.bias) out[f.bias.name] = tensorOf(f, v.b!, f.bias.dims);
    }
    return out;
  };
  // Per-batch losses of candidates under the current statistics.
  let lossMemo = new Map<string, (BatchLoss | undefined)[]>();
  const fitness = async (c: Config, batches: number[]): Promise<number> => {
    const k = keyOf(c);
    let per = lossMemo.get(k);
    if (!per) lossMemo.set(k, (per = new Array(nb)));
    let w: Record<string, ort.Tensor> | undefined;
    for (const b of batches) {
      if (per[b]) continue;
      w ??= weightsOf(c);
      per[b] = await ev.batchLoss(w, b);
      evaluations++;
    }
    return combine(batches.map((b) => per![b]!));
  };
  /** Fitness of `c` with its own reconstruction (statistics captured at c). */
  const exact = async (c: Config): Promise<number> => {
    await capture(c);
    lossMemo = new Map();
    return fitness(c, allBatches);
  };

  return { sm, ev, nb, allBatches, measure, removedOf, configOf, fitness, exact, evaluations: () => evaluations, unrefit: () => unrefit, release: () => ev.release() };
}

/** A kept count made valid for slot `si`: a multiple of round-to within [min kept, size), or the whole group. */
export function snapper(S: Slots): (si: number, kept: number) => number {
  return (si, kept) => {
    const size = S.slots[si].group.size, rt = S.roundTo;
    if (kept >= size) return size;
    return Math.max(S.slots[si].minKept, Math.floor(kept / rt) * rt);
  };
}

/** What one more removed unit of each slot is worth (fraction of the budget), measured one round-to step from `base`. */
export function unitCosts(S: Slots, base: Config, measure: (c: Config) => number): number[] {
  const snap = snapper(S);
  return S.slots.map((s, si) => {
    const c = base.slice();
    const down = snap(si, c[si] - S.roundTo);
    if (down === c[si]) {
      const up = Math.min(s.group.size, c[si] + S.roundTo);
      if (up === c[si]) return 0;
      c[si] = up;
      return (measure(base) - measure(c)) / (up - base[si]);
    }
    c[si] = down;
    return (measure(c) - measure(base)) / (base[si] - down);
  });
}

/** The batch indices in a seeded random order. */
function shuffled(nb: number, random: () => number): number[] {
  const all = Array.from({ length: nb }, (_, b) => b);
  for (let i = nb - 1; i > 0; i--) {
    const j = Math.floor(random() * (i + 1));
    [all[i], all[j]] = [all[j], all[i]];
  }
  return all;
}

/** The search space of one iteration. */
export interface Space {
  /** Per slot: level step, lowest and highest kept count. */
  step: number[];
  lo: number[];
  hi: number[];
  searchable: boolean[];
  /** A kept count made valid for the slot (a multiple of round-to, or the whole group). */
  snap: (si: number, kept: number) => number;
  ratio: number;
  tolerance: number;
  measure: (c: Config) => number;
  /** Fraction of the budget one more removed unit of the slot is worth (near the centre). */
  unitCost: number[];
}

/**
 * An offspring: 1–3 pairs of level switches (one slot a step down, another a step up), then repaired onto the
 * budget; undefined when it cannot be.
 */
function mutate(parent: Config, sp: Space, random: () => number): Config | undefined {
  const c = parent.slice();
  const n = c.length;
  const ri = (k: number) => Math.floor(random() * k);
  const flips = Math.min(1 + ri(3), 1 + ri(3));
  const touched: number[] = [];
  for (let f = 0; f < flips; f++) {
    const downs: number[] = [], ups: number[] = [];
    for (let si = 0; si < n; si++) {
      if (!sp.searchable[si]) continue;
      if (c[si] > sp.lo[si]) downs.push(si);
      if (c[si] < sp.hi[si]) ups.push(si);
    }
    if (!downs.length) break;
    const a = downs[ri(downs.length)];
    const upsB = ups.filter((x) => x !== a);
    if (!upsB.length) break;
    const b = upsB[ri(upsB.length)];
    c[a] = Math.max(sp.lo[a], sp.snap(a, c[a] - sp.step[a]));
    c[b] = Math.min(sp.hi[b], sp.snap(b, c[b] + sp.step[b]));
    touched.push(b, a);
  }
  return repair(c, sp, touched);
}

/**
 * Moves kept counts until the budget is within the tolerance: each move takes one slot (the ones just switched
 * first, then the finest-grained) by as many units as the remaining gap is worth. Undefined when it does not land.
 */
export function repair(c: Config, sp: Space, prefer: number[] = []): Config | undefined {
  const order = [...new Set([...prefer, ...sp.unitCost.map((_, si) => si).sort((a, b) => sp.unitCost[a] - sp.unitCost[b] || a - b)])]
    .filter((si) => sp.searchable[si] && sp.unitCost[si] > 0);
  let k = 0;
  for (let moves = 0; moves < 8; moves++) {
    const gap = sp.ratio - sp.measure(c);
    if (Math.abs(gap) <= sp.tolerance) return c;
    // Next slot that can move in the gap's direction.
    let si = -1;
    for (let t = 0; t < order.length; t++) {
      const cand = order[(k + t) % order.length];
      if (gap > 0 ? c[cand] > sp.lo[cand] : c[cand] < sp.hi[cand]) { si = cand; k = (k + t + 1) % order.length; break; }
    }
    if (si < 0) return undefined;
    const units = Math.max(1, Math.round(Math.abs(gap) / sp.unitCost[si]));
    const next = gap > 0 ? Math.max(sp.lo[si], sp.snap(si, c[si] - units)) : Math.min(sp.hi[si], sp.snap(si, c[si] + units));
    if (next === c[si]) continue;
    c[si] = next;
  }
  return Math.abs(sp.ratio - sp.measure(c)) <= sp.tolerance ? c : undefined;
}

export type { Slot };
