/**
 * `load`: reads ctx.inputPath into ctx.model (external data resolved relative to the model's folder, each data file
 * checked once). The model file and its data files are protected in ctx.outputs: no output may replace them.
 */
import { UserError } from '../src/ir/errors';
import { loadModel, protectModelFiles } from '../src/ir/io';
import type { Pass } from '../src/pipeline/pass';

export function loadPass(): Pass {
  return {
    name: 'load',
    description: 'read the input model',
    reads: ['inputPath'],
    writes: ['model'],
    run(ctx) {
      if (!ctx.inputPath) throw new UserError('no input model given');
      ctx.model = loadModel(ctx.inputPath);
      if (ctx.outputs) protectModelFiles(ctx.model, ctx.outputs);
    },
  };
}
