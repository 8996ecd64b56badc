/**
 * The command line's options, made from the option registry (src/pipeline/options.ts): `addOptions(yargs,
 * command)` declares them (no yargs defaults, so that only explicitly given flags override a config file);
 * `explicitOptions(args)` collects the given ones by long name for resolveOptions().
 */
import type { Argv, Options } from 'yargs';
import { OPTION_SPECS, optionsOf, type OptionName } from '../pipeline/options';

function yargsOption(name: OptionName): Options {
  const s = OPTION_SPECS[name] as (typeof OPTION_SPECS)[OptionName] & { choices?: readonly string[]; alias?: string; default?: unknown };
  const describe = s.default !== undefined && s.kind !== 'boolean' ? `${s.describe} (default ${String(s.default)})` : s.describe;
  const o: Options = { describe };
  switch (s.kind) {
    case 'boolean': o.type = 'boolean'; break;
    case 'number': case 'integer': o.type = 'number'; break;
    case 'strings': case 'paths': case 'dims': o.type = 'string'; o.array = true; break;
    default: o.type = 'string';
  }
  if (s.choices) o.choices = [...s.choices];
  if (s.alias) o.alias = s.alias;
  return o;
}

/** Declares the options of `command` (every option of the registry for `prune`). */
export function addOptions<T>(y: Argv<T>, command: 'prune' | 'groups'): Argv<T> {
  let out = y;
  for (const name of optionsOf(command)) out = out.option(name, yargsOption(name));
  return out;
}

/** The explicitly given options among the registry's, by long name (yargs also sets camelCase aliases). */
export function explicitOptions(args: Record<string, unknown>, command: 'prune' | 'groups' = 'prune'): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const k of optionsOf(command)) if (k !== 'config' && args[k] !== undefined) out[k] = args[k];
  return out;
}
