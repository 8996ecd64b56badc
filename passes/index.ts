/** The built-in passes, by pipeline name. One file per pass in this folder. */
import type { PassFactory } from '../src/pipeline/pass';
import { loadPass } from './load';
import { prunePass } from './prune';
import { savePass } from './save';

export const builtinPasses: Record<string, PassFactory> = {
  load: loadPass,
  prune: prunePass,
  save: savePass,
};
