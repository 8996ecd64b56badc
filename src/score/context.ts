/** State shared by the scoring methods during one scoreGroups call. */
import type { Group } from '../analysis/types';
import type { Graph } from '../ir/graph';
import type { ActivationStats } from '../ort/capture';
import type { GramStats } from '../ort/gram';
import type { MemberReduce } from './types';
import { WeightCache } from './tensor-math';

export interface ScoreContext {
  graph: Graph;
  weights: WeightCache;
  reduce: MemberReduce;
  seed: number;
  stats?: ActivationStats;
  /** Gram statistics by gramKey (src/score/obs.ts), for the methods that need them. */
  grams?: ReadonlyMap<string, GramStats>;
  /** Records that a group was scored by a fallback, with the reason. */
  fallback(group: Group, reason: string): void;
}
