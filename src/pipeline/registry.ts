/**
 * Pass registry: passes by name. The built-in passes (passes/) are registered by the entry points (src/index.ts,
 * the CLI) through `registerBuiltinPasses`; passes loaded from user JS modules (`--pass ./my-pass.js`) join them.
 */
import * as fs from 'fs';
import * as path from 'path';
import { UserError, isUserError } from '../ir/errors';
import { kindOf } from '../ir/files';
import type { PruneOptions } from './options';
import type { Pass, PassFactory } from './pass';

const registry = new Map<string, PassFactory>();
const builtin = new Set<string>();
/** Passes from user code (`--pass` modules, `extraPasses`), with where they come from, for error messages. */
const pluginOrigins = new WeakMap<Pass, string>();

/** Marks `pass` as user code from `origin` (e.g. `module './p.js'`): what it throws becomes a UserError naming it. */
export function markPluginPass(pass: Pass, origin: string): void {
  pluginOrigins.set(pass, origin);
}

export function pluginOrigin(pass: Pass): string | undefined {
  return pluginOrigins.get(pass);
}

/** One line describing any thrown value (an Error's first message line, a string, undefined...). */
export function describeThrown(e: unknown): string {
  try {
    if (e instanceof Error) {
      const first = String(e.message ?? '').split('\n')[0];
      const kind = e.name && e.name !== 'Error' && e.name !== 'UserError' ? `${e.name}: ` : '';
      return first ? `${kind}${first}` : e.name || 'an error without a message';
    }
    if (e === undefined || e === null) return `it threw ${String(e)}`;
    if (typeof e === 'string') return e.split('\n')[0] || 'it threw an empty string';
    const text = typeof e === 'object' ? JSON.stringify(e) ?? String(e) : String(e);
    return `it threw ${text.split('\n')[0]}`;
  } catch {
    return 'it threw a value that cannot be printed';
  }
}

/** The UserError for a value thrown by user code of `what` (a pass or pass module). */
export function pluginError(what: string, e: unknown): UserError {
  const err = new UserError(`${what} failed: ${describeThrown(e)}`);
  (err as Error & { cause?: unknown }).cause = e;
  return err;
}

/**
 * Registers a pass factory under `name`, replacing any pass of that name (a toolchain may replace a built-in
 * pass). With `builtin`, the name is marked built-in (pass modules loaded with --pass cannot take it) and an
 * existing registration is kept.
 */
export function registerPass(name: string, factory: PassFactory, opts: { builtin?: boolean } = {}): void {
  if (opts.builtin) {
    builtin.add(name);
    if (registry.has(name)) return;
  }
  registry.set(name, factory);
}

export function passNames(): string[] {
  return [...registry.keys()];
}

export function createPass(name: string, options: PruneOptions): Pass {
  const f = registry.get(name);
  if (!f) throw new UserError(`unknown pass '${name}' (known: ${passNames().join(', ')})`);
  return f(options);
}

function isPass(x: unknown): x is Pass {
  const p = x as Pass;
  return !!p && typeof p === 'object' && typeof p.name === 'string' && typeof p.run === 'function';
}

/**
 * Loads passes from a CommonJS module. The module may export a Pass, a factory `(options) => Pass`, an array
 * of either, or `{ default: ... }`. Loaded passes are registered under their names and returned.
 */
export function loadPassModule(modulePath: string, options: PruneOptions): Pass[] {
  const abs = path.resolve(modulePath);
  let mod: unknown;
  try {
    // A FIFO or device would block require's read (or never end): only a regular file is loaded.
    const file = require.resolve(abs);
    const st = fs.statSync(file);
    if (!st.isFile()) throw new UserError(`cannot load pass module '${modulePath}': it is ${kindOf(st)}, not a regular file`);
    // eslint-disable-next-line @typescript-eslint/no-require-imports
    mod = require(file);
  } catch (e) {
    if (e instanceof UserError) throw e;
    const code = (e as NodeJS.ErrnoException).code;
    if (code === 'MODULE_NOT_FOUND' && String((e as Error).message).includes(abs)) throw new UserError(`cannot load pass module '${modulePath}': file not found`);
    throw new UserError(`cannot load pass module '${modulePath}': ${(e as Error).message.split('\n')[0]}`);
  }
  const out: Pass[] = [];
  try {
    const m = (mod as { default?: unknown }).default ?? mod;
    const items = Array.isArray(m) ? m : [m];
    for (const it of items) {
      const p = typeof it === 'function' ? (it as PassFactory)(options) : it;
      if (!isPass(p)) throw new UserError(`pass module '${modulePath}' must export a pass ({ name, run }) or a factory returning one`);
      p.reads ??= [];
      p.writes ??= [];
      if (builtin.has(p.name)) throw new UserError(`pass module '${modulePath}' defines '${p.name}', the name of a built-in pass; choose another name`);
      registry.set(p.name, () => p);
      markPluginPass(p, `module '${modulePath}'`);
      out.push(p);
    }
  } catch (e) {
    // Whatever the module's code throws (its factory, a getter) is the module's failure, not ours.
    if (isUserError(e)) throw e;
    throw pluginError(`pass module '${modulePath}'`, e);
  }
  return out;
}
