/**
 * `save`: writes ctx.model to ctx.outputPath (external data per options.externalData), staged in ctx.outputs: the
 * files are renamed into place when the whole pipeline has succeeded. Every model written has been loaded by
 * onnxruntime: by verification (ctx.artifacts.loadedInOrt), else (ratio 0, nothing pruned, --no-verify) here,
 * first; a model onnxruntime rejects is a UserError and nothing is written.
 */
import { UserError } from '../src/ir/errors';
import { saveModel } from '../src/ir/io';
import { checkLoads } from '../src/ort/session';
import { modelOf } from '../src/pipeline/artifacts';
import type { Pass } from '../src/pipeline/pass';

export function savePass(): Pass {
  return {
    name: 'save',
    description: 'write the output model',
    reads: ['model', 'outputPath'],
    writes: [],
    async run(ctx) {
      const model = modelOf(ctx, 'save');
      if (!ctx.outputPath) throw new UserError('no output path given');
      if (ctx.artifacts.loadedInOrt !== model) await checkLoads(model);
      const files = saveModel(model, ctx.outputPath, { externalData: ctx.options.externalData ?? 'auto', outputs: ctx.outputs });
      ctx.report.output = { files };
    },
  };
}
