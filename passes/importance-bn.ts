/** `importance-bn`: |gamma| of unfolded BatchNormalization (L2 elsewhere). Writes ctx.artifacts.scores (see src/score/types.ts). */
import { importancePass } from './importance';

export const importanceBnPass = importancePass('bn', '|gamma| of unfolded BatchNormalization (L2 elsewhere)');
