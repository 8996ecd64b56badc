export type { Pass, PassContext, PassFactory } from './pass';
export { Pipeline, newContext } from './pipeline';
export { registerPass, createPass, passNames, loadPassModule } from './registry';
