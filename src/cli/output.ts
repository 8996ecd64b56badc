/** Lines the command line writes on stderr (errors, warnings, progress). */
import { escapeControl } from '../util/text';

/**
 * Writes `text` as one line on stderr with control characters escaped (escapeControl): names from models and
 * config files can neither split the line nor reach the terminal as escape sequences.
 */
export function printLine(text: string): void {
  process.stderr.write(`${escapeControl(text)}\n`);
}
