/** The decline reasons live with the op specs (src/ir/ops/decline.ts), which name them; re-exported for analysis. */
export { DECLINE, type DeclineKey } from '../ir/ops/decline';
