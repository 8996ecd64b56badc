/** `importance-fluctuation`: Var(X)·‖W‖² from calibration activations (FLAP); bias compensation in prune. Writes ctx.artifacts.scores (see src/score/types.ts). */
import { importancePass } from './importance';

export const importanceFluctuationPass = importancePass('fluctuation', 'Var(X)·‖W‖² from calibration activations (FLAP); bias compensation in prune');
