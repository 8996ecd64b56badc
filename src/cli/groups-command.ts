/** `onnx-prune groups MODEL [--json]`: the coupled groups of a model and the declined ones with reasons. */
import type { CommandModule } from 'yargs';
import { analyzeGroups } from '../pipeline/stages';
import { formatGroups } from '../analysis/groups-format';
import { toGroupsJson } from '../analysis/groups-json';
import { UserError } from '../ir/errors';
import { loadModel } from '../ir/io';

interface GroupsArgs {
  model: string;
  json?: boolean;
  dim?: string[];
  shapes?: string;
  'rewrite-shapes'?: boolean;
  'gqa-query-heads'?: boolean;
}

/** Parses `--dim batch=2 --dim seq=16`. */
export function parseDims(items: string[] | undefined): Record<string, number> {
  const out: Record<string, number> = {};
  for (const it of items ?? []) {
    const m = /^([^=]+)=(\d+)$/.exec(it);
    if (!m || Number(m[2]) < 1) throw new UserError(`--dim '${it}': expected NAME=N with N >= 1`);
    out[m[1]] = Number(m[2]);
  }
  return out;
}

export const groupsCommand: CommandModule<object, GroupsArgs> = {
  command: 'groups <model>',
  describe: 'list coupled groups (channels, heads, neurons) and declined groups with reasons',
  builder: (y) =>
    y
      .positional('model', { type: 'string', describe: '.onnx model', demandOption: true })
      .option('json', { type: 'boolean', describe: 'print one JSON object on stdout (schemas/groups.schema.json)' })
      .option('dim', { type: 'string', array: true, describe: 'value of a symbolic input dim, NAME=N (repeatable)' })
      .option('shapes', { type: 'string', choices: ['auto', 'static', 'ort'], default: 'auto', describe: 'where concrete shapes come from' })
      .option('gqa-query-heads', { type: 'boolean', describe: 'grouped-query attention: offer query head r of every kv-group instead of whole kv-groups' })
      .option('rewrite-shapes', { type: 'boolean', default: true, describe: 'allow -1 rewrites of Reshape elements computed from unpruned dims (pruning applies them; --no-rewrite-shapes declines such groups)' }) as never,
  handler: async (args) => {
    const model = loadModel(args.model);
    const analysis = await analyzeGroups(model, {
      dims: parseDims(args.dim),
      mode: args.shapes as 'auto' | 'static' | 'ort',
      rewriteComputedShapes: args['rewrite-shapes'] !== false,
      gqaQueryHeads: !!args['gqa-query-heads'],
    });
    process.stdout.write(args.json ? `${JSON.stringify(toGroupsJson(analysis))}\n` : `${formatGroups(analysis, args.model)}\n`);
  },
};
