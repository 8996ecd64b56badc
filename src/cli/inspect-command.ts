/** `onnx-prune inspect MODEL [--json]`. */
import type { CommandModule } from 'yargs';
import { formatSummary, summarizeModel } from '../analysis/inspect';
import { loadModel } from '../index';

interface InspectArgs {
  model: string;
  json?: boolean;
}

export const inspectCommand: CommandModule<object, InspectArgs> = {
  command: 'inspect <model>',
  describe: 'describe a model: opset, I/O, ops, params, bytes, MACs',
  builder: (y) =>
    y
      .positional('model', { type: 'string', describe: '.onnx model', demandOption: true })
      .option('json', { type: 'boolean', describe: 'print one JSON object on stdout' }) as never,
  handler: (args) => {
    const model = loadModel(args.model);
    const s = summarizeModel(model);
    process.stdout.write(args.json ? `${JSON.stringify(s, null, 2)}\n` : `${formatSummary(s, args.model)}\n`);
  },
};
