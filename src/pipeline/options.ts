/**
 * THE list of options: one entry per option, by its long name. The command line (`--max-ratio 0.5`), the config
 * file (`{ "max-ratio": 0.5 }`, schemas/config.schema.json, generated from this table by
 * `npm run gen:schemas`) and the passes (`options.maxRatio`, the camelCase name) all read this table; the
 * `PruneOptions` type is derived from it. Choices that are registries of their own (importance methods) come
 * from those registries.
 *
 * Validation turns raw values (by long name) into typed options; every problem is a one-line UserError that
 * names the flag (`--ratio must …`) or the config file and key. Defaults are documented here and applied by the
 * passes through `DEFAULTS` (an option left undefined means "not given": some behaviours depend on that, e.g.
 * compensation follows the importance method unless `compensate` is given).
 */
import * as fs from 'fs';
import * as path from 'path';
import { UserError } from '../ir/errors';
import { fsError, kindOf, readJsonText } from '../ir/files';
import { RECONSTRUCT_MODES, type ReconstructMode } from '../prune/reconstruct';
import { DATA_AWARE, SCORE_METHODS } from '../score/methods';
import { checkSchema, type JsonSchema } from '../util/json-schema';

type Kind = 'boolean' | 'number' | 'integer' | 'string' | 'path' | 'strings' | 'paths' | 'shape' | 'dims';

/** The commands an option applies to (`groups` takes the analysis options; everything applies to `prune`). */
type Command = 'prune' | 'groups';

interface OptionSpec {
  kind: Kind;
  describe: string;
  /** Allowed values (strings). */
  choices?: readonly string[];
  minimum?: number;
  maximum?: number;
  exclusiveMinimum?: number;
  exclusiveMaximum?: number;
  /** A documented default (applied by the code that reads the option; see DEFAULTS). */
  default?: unknown;
  /** Short flag. */
  alias?: string;
  /** Also an option of these commands besides `prune`. */
  also?: readonly Command[];
  /** Command line only: not a key of the config file (`config` itself). */
  cliOnly?: boolean;
}

const DTYPES = ['float32', 'float', 'float16', 'float64', 'double', 'int64', 'int32', 'int16', 'int8', 'uint8', 'bool'] as const;

/** Every option, by long name. The order is the order of `--help` and of the config schema. */
export const OPTION_SPECS = {
  ratio: { kind: 'number', minimum: 0, exclusiveMaximum: 1, default: 0, describe: 'fraction of --target to remove, 0 ≤ R < 1 (0 = lossless no-op)' },
  target: { kind: 'string', choices: ['params', 'flops'], default: 'params', describe: 'what --ratio measures' },
  importance: { kind: 'string', choices: SCORE_METHODS, default: 'l2', describe: `unit importance; the data-aware ones (${DATA_AWARE.join(', ')}) include bias compensation unless --reconstruct says otherwise` },
  compensate: { kind: 'boolean', describe: 'bias compensation: same as --reconstruct bias (--no-compensate: --reconstruct none); kept for older command lines' },
  reconstruct: { kind: 'string', choices: RECONSTRUCT_MODES, describe: 'refit the layers that read removed channels: none, bias (FLAP: fold the removed inputs\' mean into the bias) or ls (least squares on the kept inputs and the bias, from calibration data); default ls with --calib, else bias for data-aware importances and none otherwise' },
  sequential: { kind: 'boolean', default: true, describe: 'ls reconstruction layer by layer, each from the model with the earlier layers already pruned and refit (--no-sequential: all layers from the dense model, one calibration pass)' },
  reduce: { kind: 'string', choices: ['mean', 'sum', 'max'], default: 'mean', describe: 'how a group\'s member scores combine into one score per unit' },
  allocation: { kind: 'string', choices: ['uniform', 'global', 'search'], default: 'uniform', describe: 'same ratio per group, units ranked across comparable groups, or an evolutionary search of the per-group widths on calibration data (KL to the dense outputs)' },
  'search-time': { kind: 'number', exclusiveMinimum: 0, default: 600, describe: '--allocation search: stop the search this many seconds after it starts, baseline measurements included (whichever of this and --search-generations comes first; a search the clock stops depends on the machine\'s speed and is warned about)' },
  'search-generations': { kind: 'integer', minimum: 1, default: 60, describe: '--allocation search: generations over all coarse-to-fine iterations' },
  'search-offspring': { kind: 'integer', minimum: 1, default: 16, describe: '--allocation search: offspring per generation' },
  'search-iterations': { kind: 'integer', minimum: 1, default: 3, describe: '--allocation search: coarse-to-fine iterations (the level step halves after each)' },
  'max-ratio': { kind: 'number', exclusiveMinimum: 0, maximum: 1, default: 0.9, describe: 'largest fraction of one group\'s units removed (≥ 1 unit always stays)' },
  'round-to': { kind: 'integer', minimum: 1, default: 1, describe: 'kept unit counts are multiples of N' },
  protect: { kind: 'strings', describe: 'group ids, node or weight names never pruned' },
  'protect-defaults': { kind: 'boolean', default: true, describe: 'protect the first conv and the classifier (--no-protect-defaults allows pruning them)' },
  'exclude-op': { kind: 'strings', describe: 'op types whose groups are never pruned' },
  calib: { kind: 'path', describe: 'calibration inputs: .npy, .npz (one array per graph input) or raw .bin (with --calib-shape)' },
  'calib-shape': { kind: 'shape', describe: 'shape of a raw .bin file, sample axis first, e.g. 256,1,28,28' },
  'calib-dtype': { kind: 'string', choices: DTYPES, describe: 'element type of a raw .bin file (default: the input\'s)' },
  'calib-batch': { kind: 'integer', minimum: 1, default: 16, describe: 'samples per onnxruntime run when capturing calibration statistics' },
  'calib-samples': { kind: 'integer', minimum: 1, default: 16, describe: 'random samples when no calibration file is given' },
  seed: { kind: 'integer', minimum: 0, default: 0, describe: 'seed for random inputs and random importance' },
  'gqa-query-heads': { kind: 'boolean', default: false, also: ['groups'], describe: 'grouped-query attention: prune query head r of every kv-group (keeps all kv heads) instead of whole kv-groups' },
  dim: { kind: 'dims', also: ['groups'], describe: 'value of a symbolic input dim for shape analysis, NAME=N (repeatable)' },
  shapes: { kind: 'string', choices: ['auto', 'static', 'ort'], default: 'auto', also: ['groups'], describe: 'where analysis takes concrete shapes from: static inference, onnxruntime, or static with onnxruntime for the rest' },
  'measure-latency': { kind: 'boolean', default: false, describe: 'measure the dense and pruned models\' latency in onnxruntime (CPU, 1 thread, interleaved medians on inputs of the verification sizes, batch 1 unless --verify-batch) and report it (report.latency); warns when the pruned model is not faster' },
  'depth-only': { kind: 'boolean', default: false, describe: 'remove whole residual blocks (attention / MLP sub-blocks, residual CNN branches) instead of width: those whose masking changes the outputs least (KL on the calibration data) go until --ratio is reached' },
  'prune-hidden': { kind: 'boolean', default: true, also: ['groups'], describe: 'prune channels that a normalization reduces over (a transformer\'s hidden size through LayerNorm / RMSNorm, also decomposed); the norms then run over the kept channels (--no-prune-hidden declines them)' },
  'rewrite-shapes': { kind: 'boolean', default: true, also: ['groups'], describe: 'allow −1 rewrites of Reshape elements computed from unpruned dims (--no-rewrite-shapes declines such groups)' },
  plan: { kind: 'path', describe: 'apply a saved plan (schemas/plan.schema.json) instead of --ratio' },
  'save-plan': { kind: 'path', describe: 'write the plan used (units removed per group; with a data-aware importance also the bias compensation) to this JSON file' },
  verify: { kind: 'boolean', default: true, describe: 'check the pruned model against the masked dense model in onnxruntime (--no-verify skips)' },
  'keep-invalid': { kind: 'boolean', default: false, describe: 'write the output even when verification fails (still exits 3)' },
  tolerance: { kind: 'number', exclusiveMinimum: 0, default: 1e-4, describe: 'verification tolerance: max |pruned − masked| / the output\'s scale' },
  'verify-batch': { kind: 'integer', minimum: 1, describe: 'batch size of the verification inputs (default 2)' },
  'verify-seq': { kind: 'integer', minimum: 1, describe: 'value of the other symbolic input dims, e.g. sequence length (default 8, then 64, 256, … while the model rejects them); also tried for shape measurement' },
  'external-data': { kind: 'boolean', describe: 'write weights to OUT.data (default: when the input had external data or the output would be over ~1.8 GB)' },
  pass: { kind: 'paths', describe: 'extra pass module(s) (a JS file exporting a pass); they run before verification (before save without it)' },
  passes: { kind: 'string', describe: 'the pipeline, as comma-separated pass names' },
  json: { kind: 'boolean', also: ['groups'], describe: 'print the report as JSON on stdout' },
  quiet: { kind: 'boolean', alias: 'q', describe: 'no progress messages or warnings on stderr (overrides --verbose)' },
  verbose: { kind: 'boolean', describe: 'print progress messages (pass timings) on stderr' },
  config: { kind: 'path', cliOnly: true, describe: 'JSON config file with the same options (schemas/config.schema.json); flags override it' },
} as const satisfies Record<string, OptionSpec>;

type Specs = typeof OPTION_SPECS;
export type OptionName = keyof Specs;

/** `max-ratio` → `maxRatio`. */
type Camel<S extends string> = S extends `${infer H}-${infer T}` ? `${H}${Capitalize<Camel<T>>}` : S;

type ValueOf<S> = S extends { kind: 'boolean' } ? boolean
  : S extends { kind: 'number' | 'integer' } ? number
  : S extends { choices: readonly (infer C)[] } ? C
  : S extends { kind: 'string' | 'path' } ? string
  : S extends { kind: 'strings' | 'paths' } ? string[]
  : S extends { kind: 'shape' } ? number[]
  : S extends { kind: 'dims' } ? Record<string, number>
  : never;

/**
 * Validated options, by camelCase name: `max-ratio` is `maxRatio`. Undefined means "not given". The same type
 * for the command line, the config file, the passes and the API (`prune(model, options)`).
 */
export type PruneOptions = { [K in OptionName as Camel<K>]?: ValueOf<Specs[K]> };

/** The documented defaults, by camelCase name (for options that have one). */
export const DEFAULTS = Object.fromEntries(
  Object.entries(OPTION_SPECS).filter(([, s]) => 'default' in s).map(([k, s]) => [camel(k), (s as OptionSpec).default]),
) as { [K in OptionName as Specs[K] extends { default: unknown } ? Camel<K> : never]-?: ValueOf<Specs[K]> };

export function camel(name: string): string {
  return name.replace(/-([a-z])/g, (_, c: string) => c.toUpperCase());
}

/** Long option names (as in the CLI and the config file). */
export const OPTION_NAMES = Object.keys(OPTION_SPECS) as OptionName[];

/** The options of one command (everything is a prune option; `groups` takes those marked `also`). */
export function optionsOf(command: Command): OptionName[] {
  return OPTION_NAMES.filter((k) => command === 'prune' || ((OPTION_SPECS[k] as OptionSpec).also ?? []).includes(command));
}

export function optionSpec(name: OptionName): OptionSpec {
  return OPTION_SPECS[name];
}

const DIM_PATTERN = '^[^=]+=[1-9][0-9]*$';

function schemaOf(s: OptionSpec): JsonSchema {
  const out: JsonSchema = {};
  switch (s.kind) {
    case 'boolean': out.type = 'boolean'; break;
    case 'number': out.type = 'number'; break;
    case 'integer': out.type = 'integer'; break;
    case 'string': case 'path':
      if (s.choices) out.enum = [...s.choices];
      else { out.type = 'string'; out.minLength = 1; }
      break;
    case 'strings': case 'paths': out.type = 'array'; out.items = { type: 'string', minLength: 1 }; break;
    case 'shape':
      out.type = ['array', 'string'];
      out.items = { type: 'integer', minimum: 1 };
      out.minItems = 1;
      out.pattern = '^[0-9]+(,[0-9]+)*$';
      break;
    case 'dims': out.type = 'array'; out.items = { type: 'string', pattern: DIM_PATTERN }; break;
  }
  for (const k of ['minimum', 'maximum', 'exclusiveMinimum', 'exclusiveMaximum'] as const) if (s[k] !== undefined) out[k] = s[k];
  out.description = s.default !== undefined ? `${s.describe} (default ${JSON.stringify(s.default)})` : s.describe;
  return out;
}

/** The JSON schema of a config file (the committed schemas/config.schema.json is this, `npm run gen:schemas`). */
export function configSchema(): JsonSchema {
  const properties: Record<string, JsonSchema> = { $schema: { type: 'string' } };
  for (const k of OPTION_NAMES) if (!(OPTION_SPECS[k] as OptionSpec).cliOnly) properties[k] = schemaOf(OPTION_SPECS[k]);
  return {
    $schema: 'https://json-schema.org/draft/2020-12/schema',
    $id: 'onnx-prune/config.schema.json',
    title: 'onnx-prune configuration (--config FILE)',
    description: 'The same options as the command line, by their long names (generated from src/pipeline/options.ts). Command-line flags override the file. Relative paths are relative to the config file\'s folder.',
    type: 'object',
    additionalProperties: false,
    properties,
  };
}

const SCHEMA = configSchema();
/** Options of the config file (every option but `config`). */
const FILE_OPTIONS = Object.keys(SCHEMA.properties ?? {}).filter((k) => k !== '$schema');

function where(source: string, key: string): string {
  return source === 'command line' ? `--${key}` : `${source}: ${key}`;
}

/** `["batch=2", "seq=16"]` → { batch: 2, seq: 16 } (already pattern-checked). */
function parseDims(items: string[]): Record<string, number> {
  const out: Record<string, number> = {};
  for (const it of items) {
    const i = it.lastIndexOf('=');
    out[it.slice(0, i)] = Number(it.slice(i + 1));
  }
  return out;
}

/**
 * Validates options keyed by their long names (kebab-case) and returns them typed (camelCase). `source` names
 * the origin in messages ('command line' or the config file path); `baseDir` resolves relative paths.
 */
export function validateOptions(raw: Record<string, unknown>, source = 'command line', baseDir?: string): PruneOptions {
  const given: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(raw)) if (v !== undefined) given[k] = v;
  for (const [k, v] of Object.entries(given)) {
    // NAME=N items get a friendlier message than the schema pattern's.
    if ((OPTION_SPECS[k as OptionName] as OptionSpec | undefined)?.kind !== 'dims' || !Array.isArray(v)) continue;
    const bad = v.find((it) => typeof it !== 'string' || !new RegExp(DIM_PATTERN).test(it));
    if (bad !== undefined) throw new UserError(`${where(source, k)} '${String(bad)}': expected NAME=N with N ≥ 1`);
  }
  const problem = checkSchema(given, SCHEMA);
  if (problem) {
    const unknown = /unknown key '([^']*)'/.exec(problem)?.[1];
    if (unknown !== undefined) {
      const flat = (x: string) => x.toLowerCase().replace(/[-_]/g, '');
      const near = FILE_OPTIONS.find((n) => flat(n) === flat(unknown)) ?? FILE_OPTIONS.find((n) => editDistance(flat(n), flat(unknown)) <= 2);
      throw new UserError(`${source}: unknown option '${unknown}'${near ? ` (did you mean '${near}'?)` : ''}`);
    }
    const m = /^\$(?:\.([A-Za-z_][A-Za-z0-9_]*)|\["([^"]+)"\])?(\S*): (.*)$/.exec(problem);
    const key = m ? m[1] ?? m[2] : undefined;
    if (m && key) throw new UserError(`${where(source, key)}${m[3]}: ${m[4]}`);
    throw new UserError(`${source}: ${problem}`);
  }
  const out: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(given)) {
    if (k === '$schema') continue;
    const spec = OPTION_SPECS[k as OptionName] as OptionSpec;
    let val = v;
    if (spec.kind === 'shape' && typeof v === 'string') val = v.split(',').map(Number);
    if (spec.kind === 'dims') val = parseDims(v as string[]);
    if (spec.kind === 'path' && typeof v === 'string' && baseDir) val = path.resolve(baseDir, v);
    if (spec.kind === 'paths' && Array.isArray(v) && baseDir) val = v.map((x: string) => path.resolve(baseDir, x));
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

/** An early check of an input file named by an option (the file is opened and checked again when it is read). */
function checkFile(p: string, label: string, what: string): void {
  let st: fs.Stats | undefined;
  try {
    st = fs.statSync(p, { throwIfNoEntry: false });
  } catch (e) {
    throw fsError(e, `${label}: cannot read ${what} '${p}'`);
  }
  if (!st) throw new UserError(`${label}: ${what} '${p}' does not exist`);
  if (!st.isFile()) throw new UserError(`${label}: ${what} '${p}' is ${kindOf(st)}, not a regular file`);
}

/** Reads and validates a config file (a regular file of at most 16 MB, nesting at most 64 levels deep). */
export function loadConfig(file: string): PruneOptions {
  const label = `config file '${file}'`;
  const text = readJsonText(file, { label, missing: `${label} does not exist` });
  let raw: unknown;
  try {
    raw = JSON.parse(text);
  } catch (e) {
    throw new UserError(`${label} is not valid JSON: ${(e as Error).message}`);
  }
  if (raw === null || typeof raw !== 'object' || Array.isArray(raw)) throw new UserError(`${label} must hold a JSON object`);
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

/**
 * The reconstruction a run makes: `reconstruct` when given (`compensate` must agree with it), else
 * `--compensate` → bias, `--no-compensate` → none, else ls when calibration data is given or the importance
 * method's ranking assumes it (obs), bias after another data-aware importance method and none after a data-free
 * one. (A saved plan replays what it carries, unless this says none.)
 */
export function reconstructMode(o: PruneOptions, method?: { dataAware: boolean; reconstruct?: 'ls' }): ReconstructMode {
  const r = o.reconstruct as ReconstructMode | undefined;
  if (r !== undefined) {
    if (o.compensate === true && r !== 'bias') throw new UserError(`--compensate (bias compensation) contradicts --reconstruct ${r}`);
    if (o.compensate === false && r === 'bias') throw new UserError('--no-compensate contradicts --reconstruct bias');
    return r;
  }
  if (o.compensate !== undefined) return o.compensate ? 'bias' : 'none';
  if (o.calib !== undefined || method?.reconstruct === 'ls') return 'ls';
  return method?.dataAware ? 'bias' : 'none';
}
