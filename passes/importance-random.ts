/** `importance-random`: random scores (a baseline). Writes ctx.artifacts.scores (see src/score/types.ts). */
import { importancePass } from './importance';

export const importanceRandomPass = importancePass('random', 'random scores (a baseline)');
