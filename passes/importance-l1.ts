/** `importance-l1`: L1 magnitude of each unit’s weights. Writes ctx.artifacts.scores (see src/score/types.ts). */
import { importancePass } from './importance';

export const importanceL1Pass = importancePass('l1', 'L1 magnitude of each unit’s weights');
