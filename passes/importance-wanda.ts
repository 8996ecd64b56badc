/** `importance-wanda`: |W|·‖X‖ from calibration activations (Wanda). Writes ctx.artifacts.scores (see src/score/types.ts). */
import { importancePass } from '../src/score/importance-pass';

export const importanceWandaPass = importancePass('wanda', '|W|·‖X‖ from calibration activations (Wanda)');
