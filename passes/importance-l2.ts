/** `importance-l2` (the default): L2 magnitude of each unit's weights. Writes ctx.artifacts.scores (see src/score/types.ts). */
import { importancePass } from './importance';

export const importanceL2Pass = importancePass('l2', 'L2 magnitude of each unit’s weights');
