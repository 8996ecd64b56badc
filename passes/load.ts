/** `load`: reads ctx.inputPath into ctx.model (external data resolved relative to the model's folder). */
import { UserError } from '../src/ir/errors';
import { loadModel } from '../src/ir/io';
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
    },
  };
}
