/**
 * The built-in passes, by pipeline name. One file per pass in this folder; the `importance-<method>` passes are
 * made from the importance-method registry (src/score/methods.ts).
 */
import type { PassFactory } from '../src/pipeline/pass';
import { registerPass } from '../src/pipeline/registry';
import { IMPORTANCE_METHODS } from '../src/score/methods';
import { allocatePass } from './allocate';
import { analyzePass } from './analyze';
import { compensatePass } from './compensate';
import { importancePass } from './importance';
import { latencyPass } from './latency';
import { loadPass } from './load';
import { planPass } from './plan';
import { prunePass } from './prune';
import { reconstructPass } from './reconstruct';
import { savePass } from './save';
import { verifyPass } from './verify';

export const builtinPasses: Record<string, PassFactory> = {
  load: loadPass,
  analyze: analyzePass,
  prune: prunePass,
  save: savePass,
  ...Object.fromEntries(IMPORTANCE_METHODS.map((m) => [`importance-${m.name}`, importancePass(m)])),
  allocate: allocatePass,
  plan: planPass,
  compensate: compensatePass,
  reconstruct: reconstructPass,
  verify: verifyPass,
  latency: latencyPass,
};

/** Registers every built-in pass (idempotent; a pass registered under a built-in name before is kept). */
export function registerBuiltinPasses(): void {
  for (const [name, factory] of Object.entries(builtinPasses)) registerPass(name, factory, { builtin: true });
}
