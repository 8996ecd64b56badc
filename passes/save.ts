/** `save`: writes ctx.model to ctx.outputPath (temp file + rename; external data per options.externalData). */
import { UserError } from '../src/ir/errors';
import { saveModel } from '../src/ir/io';
import type { Pass } from '../src/pipeline/pass';

export function savePass(): Pass {
  return {
    name: 'save',
    description: 'write the output model',
    reads: ['model', 'outputPath'],
    writes: [],
    run(ctx) {
      if (!ctx.model) throw new Error('save: no model in context');
      if (!ctx.outputPath) throw new UserError('no output path given');
      const ext = ctx.options.externalData;
      const files = saveModel(ctx.model, ctx.outputPath, { externalData: ext === undefined ? 'auto' : (ext as boolean | 'auto') });
      ctx.report.output = { files };
    },
  };
}
