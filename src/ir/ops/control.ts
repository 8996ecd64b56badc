/**
 * Op specs that src/ir/shapes' inferShapes handles itself (no shape rule): Constant (its value), If and Loop
 * (their subgraphs); Scan has no shape inference (its outputs stay unknown). Group analysis analyzes
 * subgraphs on their own (src/analysis/subgraphs.ts) and declines channels that enter them.
 */
import type { OpSpec } from './types';

export const CONTROL_OPS: Record<string, OpSpec> = {
  Constant: { channels: 'inert' },
  If: { channels: { decline: 'controlFlow' } },
  Loop: { channels: { decline: 'controlFlow' } },
  Scan: { channels: { decline: 'controlFlow' } },
};
