/**
 * `prune`: removes units from the model. Until group analysis lands, only ratio 0 (a lossless no-op) is
 * accepted; any other ratio is refused rather than silently ignored.
 */
import { UserError } from '../src/ir/errors';
import type { Pass } from '../src/pipeline/pass';

export function prunePass(options: Record<string, unknown>): Pass {
  return {
    name: 'prune',
    description: 'structured pruning (no-op at ratio 0)',
    reads: ['model'],
    writes: ['model'],
    run(ctx) {
      const ratio = Number(options.ratio ?? 0);
      if (ratio !== 0) throw new UserError(`--ratio ${ratio}: pruning is not implemented yet; only --ratio 0 is accepted`);
      ctx.report.prune = { ratio, groupsPruned: 0 };
    },
  };
}
