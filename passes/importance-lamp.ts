/** `importance-lamp`: LAMP: layer-adaptive magnitude, comparable across groups. Writes ctx.artifacts.scores (see src/score/types.ts). */
import { importancePass } from '../src/score/importance-pass';

export const importanceLampPass = importancePass('lamp', 'LAMP: layer-adaptive magnitude, comparable across groups');
