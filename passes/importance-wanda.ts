/** `importance-wanda`: structured Wanda, Σ|W_:,j|·‖X_j‖ at each consumer's input. Writes ctx.artifacts.scores (see src/score/types.ts). */
import { importancePass } from './importance';

export const importanceWandaPass = importancePass('wanda', 'Σ|W_:,j|·‖X_j‖ over the consumers, X at their inputs (structured Wanda)');
