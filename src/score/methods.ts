/**
 * THE list of importance methods: one entry per method. Everything else is derived from it — the CLI's
 * `--importance` choices and the config schema's enum (src/pipeline/options.ts), the `importance-<name>` passes
 * (passes/index.ts), which methods capture calibration activations, which are comparable across groups, and
 * which get bias compensation by default.
 *
 * Adding a method is adding one entry here (its scoring function may live in a file of its own beside this one)
 * and a test.
 */
import type { Group } from '../analysis/types';
import type { Graph } from '../ir/graph';
import type { GramRequest } from '../ort/gram';
import { activationScores } from './activation';
import type { ScoreContext } from './context';
import { lampScores } from './lamp';
import { bnScaleScores, magnitudeScores } from './magnitude';
import { obsGramRequests, obsScores } from './obs';
import { obsWeightsScores } from './obs-weights';
import { randomScores } from './random';

export interface ImportanceMethod {
  /** The name users type (`--importance NAME`) and the pass name's suffix (`importance-NAME`). */
  readonly name: string;
  /** One line for `--help` and the README. */
  readonly description: string;
  /**
   * Needs activation statistics of calibration data (captured in onnxruntime before scoring). Bias compensation
   * (src/score/compensate.ts) uses the same statistics, so data-aware methods compensate by default.
   */
  readonly dataAware: boolean;
  /** Scores are comparable across groups as they are (global allocation skips its per-group normalization). */
  readonly normalized: boolean;
  /**
   * The reconstruction the method's ranking assumes, used when the run gives none (`--reconstruct`): OBS ranks
   * units by the error left *after* the least-squares refit, so it defaults to ls.
   */
  readonly reconstruct?: 'ls';
  /**
   * The Gram statistics (src/ort/gram.ts) the method needs to score `group`, besides the activation statistics
   * of data-aware methods. The scoring stage captures them a chunk of groups at a time and passes them as
   * ScoreOptions.grams (keyed by gramKey).
   */
  readonly gramRequests?: (graph: Graph, group: Group) => GramRequest[];
  /** One score per unit of `group` (length group.size), higher = more important. */
  score(ctx: ScoreContext, group: Group): Float64Array;
}

const method = <N extends string>(m: ImportanceMethod & { name: N }) => m;

export const IMPORTANCE_METHODS = [
  method({
    name: 'l1', dataAware: false, normalized: false,
    description: 'L1 magnitude of each unit’s weights',
    score: (ctx, g) => magnitudeScores(ctx, g, 1),
  }),
  method({
    name: 'l2', dataAware: false, normalized: false,
    description: 'L2 magnitude of each unit’s weights (the default)',
    score: (ctx, g) => magnitudeScores(ctx, g, 2),
  }),
  method({
    name: 'bn', dataAware: false, normalized: false,
    description: '|gamma| of unfolded BatchNormalization (L2 where a group has none)',
    score: bnScaleScores,
  }),
  method({
    name: 'lamp', dataAware: false, normalized: true,
    description: 'LAMP: layer-adaptive magnitude, comparable across groups',
    score: lampScores,
  }),
  method({
    name: 'random', dataAware: false, normalized: false,
    description: 'random scores (a baseline)',
    score: randomScores,
  }),
  method({
    name: 'wanda', dataAware: true, normalized: false,
    description: 'Σ|W_:,j|·‖X_j‖ over the consumers, X at their inputs (structured Wanda); bias compensation by default',
    score: (ctx, g) => activationScores(ctx, g, 'wanda'),
  }),
  method({
    name: 'fluctuation', dataAware: true, normalized: false,
    description: 'Var(X)·‖W‖² from calibration activations (FLAP); bias compensation by default',
    score: (ctx, g) => activationScores(ctx, g, 'fluctuation'),
  }),
  method({
    name: 'obs', dataAware: true, normalized: true, gramRequests: obsGramRequests, reconstruct: 'ls',
    description: 'greedy group OBS path over the consumers\' calibration Grams (least output error with refit); least-squares reconstruction by default',
    score: obsScores,
  }),
  method({
    name: 'obs-weights', dataAware: false, normalized: false,
    description: 'data-free OBS-style score from a weight-covariance model: consumer energy over producer-Gram redundancy',
    score: obsWeightsScores,
  }),
] as const;

/** A method's name (`'l1' | 'l2' | …`). */
export type ScoreMethod = (typeof IMPORTANCE_METHODS)[number]['name'];

/** Method names, in the order above. */
export const SCORE_METHODS: ScoreMethod[] = IMPORTANCE_METHODS.map((m) => m.name);

/** The method called `name`, or undefined. */
export function importanceMethod(name: string): ImportanceMethod | undefined {
  return IMPORTANCE_METHODS.find((m) => m.name === name);
}

/** Names of the methods that need calibration activations. */
export const DATA_AWARE: ScoreMethod[] = IMPORTANCE_METHODS.filter((m) => m.dataAware).map((m) => m.name);
