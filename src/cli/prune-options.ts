/**
 * Command-line options of issue 5 (importance, allocation, calibration, config), for the prune command's
 * builder: `addPruneOptions(yargs)`. No yargs defaults, so that only explicitly given flags override a config
 * file; `explicitOptions(args)` collects them by long name for resolveOptions() (src/pipeline/config.ts).
 */
import type { Argv } from 'yargs';
import { OPTION_NAMES } from '../pipeline/config';

export function addPruneOptions<T>(y: Argv<T>): Argv<T> {
  return y
    .option('importance', { type: 'string', choices: ['l1', 'l2', 'bn', 'lamp', 'random', 'wanda', 'fluctuation', 'obs'], describe: 'unit importance (default l2)' })
    .option('compensate', { type: 'boolean', describe: 'bias compensation with wanda / fluctuation, or from a --plan that carries it (default on; --no-compensate)' })
    .option('reduce', { type: 'string', choices: ['mean', 'sum', 'max'], describe: 'combine a group\'s member scores (default mean)' })
    .option('allocation', { type: 'string', choices: ['uniform', 'global'], describe: 'same ratio per group, or ranked across comparable groups (default uniform)' })
    .option('target', { type: 'string', choices: ['params', 'flops'], describe: 'quantity --ratio removes (default params)' })
    .option('max-ratio', { type: 'number', describe: 'largest fraction of one group removed (default 0.9)' })
    .option('round-to', { type: 'number', describe: 'kept unit counts are multiples of N' })
    .option('protect', { type: 'string', array: true, describe: 'group ids, node or weight names never pruned' })
    .option('protect-defaults', { type: 'boolean', describe: 'protect the first conv and the classifier (default on)' })
    .option('exclude-op', { type: 'string', array: true, describe: 'op types whose groups are never pruned' })
    .option('calib', { type: 'string', describe: 'calibration inputs: .npy, .npz (one array per input) or raw .bin' })
    .option('calib-shape', { type: 'string', describe: 'shape of a raw .bin, e.g. 256,1,28,28' })
    .option('calib-dtype', { type: 'string', describe: 'element type of a raw .bin (default: the input\'s)' })
    .option('calib-batch', { type: 'number', describe: 'samples per onnxruntime run (default 16)' })
    .option('calib-samples', { type: 'number', describe: 'random samples without --calib (default 16)' })
    .option('seed', { type: 'number', describe: 'seed for random inputs and random importance (default 0)' })
    .option('config', { type: 'string', describe: 'JSON config file with the same options (schemas/config.schema.json)' });
}

/** The explicitly given options among OPTION_NAMES, by long name (yargs also sets camelCase aliases). */
export function explicitOptions(args: Record<string, unknown>): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const k of OPTION_NAMES) if (args[k] !== undefined) out[k] = args[k];
  return out;
}
