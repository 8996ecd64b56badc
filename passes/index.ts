/** The built-in passes, by pipeline name. One file per pass in this folder. */
import type { PassFactory } from '../src/pipeline/pass';
import { registerPass } from '../src/pipeline/registry';
import { allocatePass } from './allocate';
import { analyzePass } from './analyze';
import { compensatePass } from './compensate';
import { importanceBnPass } from './importance-bn';
import { importanceFluctuationPass } from './importance-fluctuation';
import { importanceL1Pass } from './importance-l1';
import { importanceL2Pass } from './importance-l2';
import { importanceLampPass } from './importance-lamp';
import { importanceObsPass } from './importance-obs';
import { importanceRandomPass } from './importance-random';
import { importanceWandaPass } from './importance-wanda';
import { loadPass } from './load';
import { planPass } from './plan';
import { prunePass } from './prune';
import { savePass } from './save';
import { verifyPass } from './verify';

export const builtinPasses: Record<string, PassFactory> = {
  load: loadPass,
  analyze: analyzePass,
  prune: prunePass,
  save: savePass,
  'importance-l1': importanceL1Pass,
  'importance-l2': importanceL2Pass,
  'importance-bn': importanceBnPass,
  'importance-lamp': importanceLampPass,
  'importance-random': importanceRandomPass,
  'importance-wanda': importanceWandaPass,
  'importance-fluctuation': importanceFluctuationPass,
  'importance-obs': importanceObsPass,
  allocate: allocatePass,
  plan: planPass,
  compensate: compensatePass,
  verify: verifyPass,
};

/** Registers every built-in pass (idempotent); the entry points call it. */
export function registerBuiltinPasses(): void {
  for (const [name, factory] of Object.entries(builtinPasses)) registerPass(name, factory, { builtin: true });
}
