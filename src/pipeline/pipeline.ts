/** Builds a pipeline from pass names and runs it on a shared context. */
import { UserError } from '../ir/errors';
import { OutputSet } from '../ir/files';
import { Model } from '../ir/model';
import type { PruneOptions } from './options';
import type { Pass, PassContext } from './pass';
import { isVerificationError } from '../verify/verify';
import { createPass, pluginError, pluginOrigin } from './registry';

/** Context keys every context has. */
const ALWAYS = ['options', 'artifacts', 'report'];

export class Pipeline {
  /**
   * `given`: the context keys present before the first pass (default: the input and output paths; a pipeline that
   * starts from a model in memory gives 'model').
   */
  constructor(public readonly passes: Pass[], given: string[] = ['inputPath', 'outputPath']) {
    this.checkOrder(given);
  }

  static fromNames(names: string[], options: PruneOptions, given?: string[]): Pipeline {
    return new Pipeline(names.map((n) => createPass(n, options)), given);
  }

  /** Every key a pass reads must be written by an earlier pass or be given in the initial context. */
  private checkOrder(given: string[]): void {
    const available = new Set<string>([...ALWAYS, ...given]);
    for (const p of this.passes) {
      for (const r of p.reads) {
        if (!available.has(r)) throw new UserError(`pass '${p.name}' reads '${r}', which no earlier pass writes`);
      }
      for (const w of p.writes) available.add(w);
    }
  }

  /**
   * Runs the passes in order, then writes the files they staged in `ctx.outputs` (all together, at the end); when
   * a pass fails, the staged files are removed and nothing is written.
   */
  async run(ctx: PassContext): Promise<PassContext> {
    const outputs = (ctx.outputs ??= new OutputSet());
    try {
      for (const p of this.passes) {
        const t0 = Date.now();
        const origin = pluginOrigin(p);
        const hadModel = ctx.model !== undefined;
        try {
          await p.run(ctx);
        } catch (e) {
          // What a pass from user code throws is a one-line UserError naming it (a VerificationError stays one).
          if (origin === undefined || isVerificationError(e)) throw e;
          throw pluginError(`pass '${p.name}' (from ${origin})`, e);
        }
        // A pass from user code must leave a model where it found one (the passes after it read it).
        if (origin !== undefined && hadModel && !(ctx.model instanceof Model)) {
          throw new UserError(`pass '${p.name}' (from ${origin}) left no model in the context (ctx.model must stay a Model)`);
        }
        ctx.log(`pass ${p.name}: ${Date.now() - t0} ms`);
      }
      outputs.commit();
    } catch (e) {
      outputs.abort();
      throw e;
    }
    return ctx;
  }
}

/**
 * A fresh context. `warn` records warnings in report.warnings and then calls `init.warn` (if given) to show
 * them; `log` defaults to dropping messages.
 */
export function newContext(init: Partial<PassContext> = {}): PassContext {
  const show = init.warn;
  const ctx: PassContext = {
    log: () => {},
    ...init,
    options: init.options ?? {},
    artifacts: init.artifacts ?? {},
    report: init.report ?? {},
    warn: (message: string) => {
      (ctx.report.warnings ??= []).push(message);
      show?.(message);
    },
  };
  return ctx;
}
