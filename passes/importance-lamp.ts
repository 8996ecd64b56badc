/** `importance-lamp`: LAMP: layer-adaptive magnitude, comparable across groups. Writes ctx.artifacts.scores (see src/score/types.ts). */
import { importancePass } from './importance';

export const importanceLampPass = importancePass('lamp', 'LAMP: layer-adaptive magnitude, comparable across groups');
