/** State shared by the scoring methods during one scoreGroups call. */
import type { Group } from '../analysis/types';
import type { Graph } from '../ir/graph';
import type { ActivationStats } from '../ort/capture';
import type { MemberReduce } from './types';
import { WeightCache } from './tensor-math';

export interface ScoreContext {
  graph: Graph;
  weights: WeightCache;
  reduce: MemberReduce;
  seed: number;
  stats?: ActivationStats;
  /** Records that a group was scored by a fallback, with the reason. */
  fallback(group: Group, reason: string): void;
}
