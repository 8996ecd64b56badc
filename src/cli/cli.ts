/**
 * The `onnx-prune` command line (yargs 17). Exit codes: 0 ok, 1 user error, 2 internal error, 3 the pruned model
 * failed verification against the masked dense model (nothing written unless --keep-invalid).
 */
import yargs from 'yargs';
import { isUserError } from '../index';
import { isVerificationError } from '../index';
import { pruneCommand } from './prune-command';
import { inspectCommand } from './inspect-command';
import { groupsCommand } from './groups-command';
import { VERSION } from './version';

export async function runCli(argv: string[]): Promise<number> {
  let code = 0;
  const fail = (e: unknown) => {
    if (isVerificationError(e)) {
      process.stderr.write(`onnx-prune: error: ${e.message.split('\n')[0]}\n`);
      code = 3;
    } else if (isUserError(e)) {
      process.stderr.write(`onnx-prune: error: ${e.message}\n`);
      code = 1;
    } else {
      const err = e as Error;
      process.stderr.write(`onnx-prune: internal error: ${err?.message ?? String(e)}\n`);
      if (process.env.ONNX_PRUNE_DEBUG) process.stderr.write(`${err?.stack ?? ''}\n`);
      code = 2;
    }
  };
  try {
    await yargs(argv)
      .scriptName('onnx-prune')
      .usage('$0 IN OUT [options]    prune a model\n$0 inspect MODEL [--json]    describe a model')
      .command(pruneCommand)
      .command(inspectCommand)
      .command(groupsCommand)
      .version(VERSION)
      .alias('h', 'help')
      .strictOptions()
      .wrap(Math.min(110, process.stdout.columns || 110))
      .fail((msg, err) => {
        // yargs validation messages (missing/unknown arguments) are user errors.
        if (err) throw err;
        const e = new Error(msg.split('\n')[0]);
        e.name = 'UserError';
        throw e;
      })
      .parseAsync();
  } catch (e) {
    fail(e);
  }
  return code;
}
