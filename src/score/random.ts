/** Random scores (a baseline): uniform in [0, 1), seeded by the seed and the group id, so group order does not matter. */
import type { Group } from '../analysis/types';
import { rng } from '../util/rng';
import type { ScoreContext } from './context';

function hash(s: string): number {
  let h = 2166136261;
  for (let i = 0; i < s.length; i++) h = Math.imul(h ^ s.charCodeAt(i), 16777619);
  return h >>> 0;
}

export function randomScores(ctx: ScoreContext, group: Group): Float64Array {
  const next = rng((hash(group.id) ^ Math.imul(ctx.seed | 0, 0x9e3779b1)) >>> 0);
  return Float64Array.from({ length: group.size }, () => next());
}
