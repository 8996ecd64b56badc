/** `importance-obs`: data-free OBS-style: consumer energy over producer-Gram redundancy. Writes ctx.artifacts.scores (see src/score/types.ts). */
import { importancePass } from './importance';

export const importanceObsPass = importancePass('obs', 'data-free OBS-style: consumer energy over producer-Gram redundancy');
