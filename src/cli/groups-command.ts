/** `onnx-prune groups MODEL [--json]`: the coupled groups of a model and the declined ones with reasons. */
import type { CommandModule } from 'yargs';
import { formatGroups } from '../analysis/groups-format';
import { analyzeGroups, loadModel, resolveOptions, toGroupsJson } from '../index';
import { addOptions, explicitOptions } from './prune-options';

interface GroupsArgs {
  model: string;
  [key: string]: unknown;
}

export const groupsCommand: CommandModule<object, GroupsArgs> = {
  command: 'groups <model>',
  describe: 'list coupled groups (channels, heads, neurons) and declined groups with reasons',
  builder: (y) =>
    addOptions(y, 'groups')
      .positional('model', { type: 'string', describe: '.onnx model', demandOption: true }) as never,
  handler: async (args) => {
    const o = resolveOptions(explicitOptions(args, 'groups'));
    const model = loadModel(args.model);
    const analysis = await analyzeGroups(model, {
      dims: o.dim,
      mode: o.shapes,
      rewriteComputedShapes: o.rewriteShapes !== false,
      gqaQueryHeads: !!o.gqaQueryHeads,
      normStatistics: o.pruneHidden !== false,
    });
    process.stdout.write(o.json ? `${JSON.stringify(toGroupsJson(analysis))}\n` : `${formatGroups(analysis, args.model)}\n`);
  },
};
