/**
 * Pass registry: passes by name. The built-in passes (passes/) are registered by the entry points (src/index.ts,
 * the CLI) through `registerBuiltinPasses`; passes loaded from user JS modules (`--pass ./my-pass.js`) join them.
 */
import * as fs from 'fs';
import * as path from 'path';
import { UserError } from '../ir/errors';
import { kindOf } from '../ir/files';
import type { PruneOptions } from './options';
import type { Pass, PassFactory } from './pass';

const registry = new Map<string, PassFactory>();
const builtin = new Set<string>();

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
  const m = (mod as { default?: unknown }).default ?? mod;
  const items = Array.isArray(m) ? m : [m];
  const out: Pass[] = [];
  for (const it of items) {
    const p = typeof it === 'function' ? (it as PassFactory)(options) : it;
    if (!isPass(p)) throw new UserError(`pass module '${modulePath}' must export a pass ({ name, run }) or a factory returning one`);
    p.reads ??= [];
    p.writes ??= [];
    if (builtin.has(p.name)) throw new UserError(`pass module '${modulePath}' defines '${p.name}', the name of a built-in pass; choose another name`);
    registry.set(p.name, () => p);
    out.push(p);
  }
  return out;
}
