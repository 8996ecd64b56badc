/**
 * Pruning options from a JSON config file (`--config FILE`, schemas/config.schema.json) and from the command
 * line, by the same long names, validated into one typed object. Command-line values override the file.
 * Relative paths in a config file are taken relative to the file's folder. Every problem is a one-line UserError.
 */
import * as fs from 'fs';
import * as path from 'path';
import { UserError } from '../ir/errors';
import { checkSchema, type JsonSchema } from '../util/json-schema';
import configSchema from '../../schemas/config.schema.json';

export const CONFIG_SCHEMA = configSchema as unknown as JsonSchema;

/** Validated options (camelCase); undefined means "not given" (defaults are applied by the passes). */
export interface PruneOptions {
  importance?: 'l1' | 'l2' | 'bn' | 'lamp' | 'random' | 'wanda' | 'fluctuation' | 'obs';
  compensate?: boolean;
  reduce?: 'mean' | 'sum' | 'max';
  allocation?: 'uniform' | 'global';
  target?: 'params' | 'flops';
  ratio?: number;
  maxRatio?: number;
  roundTo?: number;
  protect?: string[];
  protectDefaults?: boolean;
  excludeOp?: string[];
  calib?: string;
  calibShape?: number[];
  calibDtype?: string;
  calibBatch?: number;
  calibSamples?: number;
  seed?: number;
  gqaQueryHeads?: boolean;
  externalData?: boolean;
  verify?: boolean;
  keepInvalid?: boolean;
  plan?: string;
  savePlan?: string;
  passes?: string;
  pass?: string[];
  json?: boolean;
  quiet?: boolean;
  verbose?: boolean;
}

/** Long option names (as in the CLI and the config file). */
export const OPTION_NAMES = Object.keys(CONFIG_SCHEMA.properties ?? {}).filter((k) => k !== '$schema');

const PATH_KEYS = ['calib', 'plan', 'save-plan'];

export function camel(name: string): string {
  return name.replace(/-([a-z])/g, (_, c: string) => c.toUpperCase());
}

function where(source: string, key: string): string {
  return source === 'command line' ? `--${key}` : `${source}: ${key}`;
}

/** The checks JSON Schema subset of checkSchema does not do: exclusive bounds. */
function checkExclusive(raw: Record<string, unknown>, source: string): void {
  for (const [k, v] of Object.entries(raw)) {
    const s = CONFIG_SCHEMA.properties?.[k] as { exclusiveMaximum?: number; exclusiveMinimum?: number } | undefined;
    if (!s || typeof v !== 'number') continue;
    if (s.exclusiveMaximum !== undefined && !(v < s.exclusiveMaximum)) throw new UserError(`${where(source, k)} must be < ${s.exclusiveMaximum}, got ${v}`);
    if (s.exclusiveMinimum !== undefined && !(v > s.exclusiveMinimum)) throw new UserError(`${where(source, k)} must be > ${s.exclusiveMinimum}, got ${v}`);
  }
}

/**
 * Validates options keyed by their long names (kebab-case) and returns them typed. `source` names the origin in
 * messages ('command line' or the config file path); `baseDir` resolves relative paths.
 */
export function validateOptions(raw: Record<string, unknown>, source = 'command line', baseDir?: string): PruneOptions {
  const given: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(raw)) if (v !== undefined) given[k] = v;
  const problem = checkSchema(given, CONFIG_SCHEMA);
  if (problem) {
    const unknown = /unknown key '([^']*)'/.exec(problem)?.[1];
    if (unknown !== undefined) {
      const flat = (x: string) => x.toLowerCase().replace(/[-_]/g, '');
      const near = OPTION_NAMES.find((n) => flat(n) === flat(unknown)) ?? OPTION_NAMES.find((n) => editDistance(flat(n), flat(unknown)) <= 2);
      throw new UserError(`${source}: unknown option '${unknown}'${near ? ` (did you mean '${near}'?)` : ''}`);
    }
    const m = /^\$(?:\.([A-Za-z_][A-Za-z0-9_]*)|\["([^"]+)"\])?(\S*): (.*)$/.exec(problem);
    const key = m ? m[1] ?? m[2] : undefined;
    if (m && key) throw new UserError(`${where(source, key)}${m[3]}: ${m[4]}`);
    throw new UserError(`${source}: ${problem}`);
  }
  checkExclusive(given, source);
  const out: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(given)) {
    if (k === '$schema') continue;
    let val = v;
    if (k === 'calib-shape' && typeof v === 'string') val = v.split(',').map(Number);
    if (PATH_KEYS.includes(k) && typeof v === 'string' && baseDir) val = path.resolve(baseDir, v);
    out[camel(k)] = val;
  }
  const opts = out as PruneOptions;
  if (opts.calib !== undefined) checkFile(opts.calib, where(source, 'calib'), 'calibration file');
  if (opts.plan !== undefined) checkFile(opts.plan, where(source, 'plan'), 'plan file');
  if (opts.calibShape && opts.calibShape.some((d) => !Number.isInteger(d) || d < 1)) {
    throw new UserError(`${where(source, 'calib-shape')} must be positive integers, got ${JSON.stringify(raw['calib-shape'])}`);
  }
  return opts;
}

function editDistance(a: string, b: string): number {
  let prev = Array.from({ length: b.length + 1 }, (_, j) => j);
  for (let i = 1; i <= a.length; i++) {
    const cur = [i];
    for (let j = 1; j <= b.length; j++) cur[j] = Math.min(prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + (a[i - 1] === b[j - 1] ? 0 : 1));
    prev = cur;
  }
  return prev[b.length];
}

function checkFile(p: string, label: string, what: string): void {
  let st: fs.Stats;
  try {
    st = fs.statSync(p);
  } catch {
    throw new UserError(`${label}: ${what} '${p}' does not exist`);
  }
  if (!st.isFile()) throw new UserError(`${label}: ${what} '${p}' is not a regular file`);
}

/** Reads and validates a config file. */
export function loadConfig(file: string): PruneOptions {
  let text: string;
  try {
    text = fs.readFileSync(file, 'utf8');
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    throw new UserError(code === 'ENOENT' ? `config file '${file}' does not exist` : `cannot read config file '${file}': ${code ?? (e as Error).message}`);
  }
  let raw: unknown;
  try {
    raw = JSON.parse(text);
  } catch (e) {
    throw new UserError(`config file '${file}' is not valid JSON: ${(e as Error).message}`);
  }
  if (raw === null || typeof raw !== 'object' || Array.isArray(raw)) throw new UserError(`config file '${file}' must hold a JSON object`);
  return validateOptions(raw as Record<string, unknown>, `config '${file}'`, path.dirname(path.resolve(file)));
}

/** Config file options overridden by the command line's explicitly given options. */
export function resolveOptions(cli: Record<string, unknown>, configFile?: string): PruneOptions {
  const fromCli = validateOptions(cli, 'command line');
  const fromFile = configFile ? loadConfig(configFile) : {};
  const merged: PruneOptions = { ...fromFile };
  for (const [k, v] of Object.entries(fromCli)) if (v !== undefined) (merged as Record<string, unknown>)[k] = v;
  return merged;
}
