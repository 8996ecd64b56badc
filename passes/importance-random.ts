/** `importance-random`: random scores (a baseline). Writes ctx.artifacts.scores (see src/score/types.ts). */
import { importancePass } from '../src/score/importance-pass';

export const importanceRandomPass = importancePass('random', 'random scores (a baseline)');
