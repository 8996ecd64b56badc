/** `onnx-prune IN OUT [--ratio R] ...`: runs the pass pipeline load → prune → save. */
import type { CommandModule } from 'yargs';
import { UserError } from '../ir/errors';
import { Pipeline, newContext } from '../pipeline/pipeline';
import { loadPassModule } from '../pipeline/registry';

interface PruneArgs {
  input: string;
  output: string;
  ratio: number;
  'external-data'?: boolean;
  pass?: string[];
  passes?: string;
  json?: boolean;
  quiet?: boolean;
}

export const DEFAULT_PIPELINE = ['load', 'prune', 'save'];

export const pruneCommand: CommandModule<object, PruneArgs> = {
  command: '$0 <input> <output>',
  describe: 'prune a model (IN → OUT)',
  builder: (y) =>
    y
      .positional('input', { type: 'string', describe: 'input .onnx model', demandOption: true })
      .positional('output', { type: 'string', describe: 'output .onnx path', demandOption: true })
      .option('ratio', { type: 'number', default: 0, describe: 'fraction to remove (0 = lossless no-op)' })
      .option('external-data', { type: 'boolean', describe: 'write weights to OUT.data (default: when the input had external data or the model is over ~1.8 GB)' })
      .option('pass', { type: 'string', array: true, describe: 'extra pass module(s) (JS file exporting a pass); runs before save' })
      .option('passes', { type: 'string', describe: `comma-separated pipeline (default ${DEFAULT_PIPELINE.join(',')})` })
      .option('json', { type: 'boolean', describe: 'print the report as JSON on stdout' })
      .option('quiet', { type: 'boolean', alias: 'q', describe: 'no progress messages' }) as never,
  handler: async (args) => {
    const ratio = args.ratio;
    if (!Number.isFinite(ratio) || ratio < 0 || ratio >= 1) throw new UserError(`--ratio must be in [0, 1), got ${args.ratio}`);
    if (args.input === args.output) throw new UserError('input and output must be different files');
    const options: Record<string, unknown> = { ratio, externalData: args['external-data'] ?? 'auto' };
    const names = args.passes ? args.passes.split(',').map((s) => s.trim()).filter(Boolean) : DEFAULT_PIPELINE.slice();
    const extra = (args.pass ?? []).flatMap((p) => loadPassModule(p, options).map((x) => x.name));
    if (extra.length) {
      const at = names.lastIndexOf('save');
      names.splice(at === -1 ? names.length : at, 0, ...extra);
    }
    const ctx = newContext({
      inputPath: args.input,
      outputPath: args.output,
      options,
      log: (m) => { if (!args.quiet && !args.json) process.stderr.write(`${m}\n`); },
    });
    await Pipeline.fromNames(names, options).run(ctx);
    if (args.json) process.stdout.write(`${JSON.stringify(ctx.report, null, 2)}\n`);
  },
};
