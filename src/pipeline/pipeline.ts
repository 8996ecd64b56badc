/** Builds a pipeline from pass names and runs it on a shared context. */
import { UserError } from '../ir/errors';
import type { Pass, PassContext } from './pass';
import { createPass } from './registry';

export class Pipeline {
  constructor(public readonly passes: Pass[]) {
    this.checkOrder();
  }

  static fromNames(names: string[], options: Record<string, unknown>): Pipeline {
    return new Pipeline(names.map((n) => createPass(n, options)));
  }

  /** Every key a pass reads must be written by an earlier pass or be given in the initial context. */
  private checkOrder(): void {
    const available = new Set<string>(['options', 'inputPath', 'outputPath', 'artifacts', 'report']);
    for (const p of this.passes) {
      for (const r of p.reads) {
        if (!available.has(r)) throw new UserError(`pass '${p.name}' reads '${r}', which no earlier pass writes`);
      }
      for (const w of p.writes) available.add(w);
    }
  }

  async run(ctx: PassContext): Promise<PassContext> {
    for (const p of this.passes) {
      const t0 = Date.now();
      await p.run(ctx);
      ctx.log(`pass ${p.name}: ${Date.now() - t0} ms`);
    }
    return ctx;
  }
}

export function newContext(init: Partial<PassContext> = {}): PassContext {
  return { options: {}, artifacts: {}, report: {}, log: () => {}, ...init };
}
