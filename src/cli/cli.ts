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
import { printLine } from './output';

/**
 * A yargs validation message in one line. Its "Invalid values:" message lists each bad option on a line of its
 * own (`Argument: importance, Given: "magic", Choices: "l1", "l2"`): it becomes the message the option registry
 * gives for a bad config value (`--importance: must be one of "l1", "l2", got "magic"`).
 */
export function yargsMessage(msg: string): string {
  const lines = String(msg ?? '').split('\n').map((l) => l.trim()).filter(Boolean);
  if (lines[0] === 'Invalid values:' && lines.length > 1) {
    return lines.slice(1).map((l) => {
      const m = /^Argument: (.*?), Given: (.*), Choices: (.*)$/.exec(l);
      return m ? `--${m[1]}: must be one of ${m[3]}, got ${m[2]}` : l;
    }).join('; ');
  }
  return lines.join(' ');
}

export async function runCli(argv: string[]): Promise<number> {
  let code = 0;
  const fail = (e: unknown) => {
    // Messages quote names from models and config files: printed escaped, always on one line.
    if (isVerificationError(e)) {
      printLine(`onnx-prune: error: ${e.message.split('\n')[0]}`);
      code = 3;
    } else if (isUserError(e)) {
      printLine(`onnx-prune: error: ${e.message}`);
      code = 1;
    } else {
      const err = e as Error;
      printLine(`onnx-prune: internal error: ${err?.message ?? String(e)}`);
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
        // yargs validation messages (missing/unknown arguments, bad choices) are user errors, in one line.
        if (err) throw err;
        const e = new Error(yargsMessage(msg));
        e.name = 'UserError';
        throw e;
      })
      .parseAsync();
  } catch (e) {
    fail(e);
  }
  return code;
}
