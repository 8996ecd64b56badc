/** MAC counting per node from inferred shapes (placeholder until the counting rules land). */
import type { Model } from '../ir/model';

export interface FlopsReport {
  /** Total multiply-accumulates for one run with the shapes inferred, or undefined when shapes are unknown. */
  macs?: number;
  perNode: { node: string; opType: string; macs: number }[];
  /** Nodes whose cost could not be computed (unknown shapes). */
  unknown: string[];
}

export function countMacs(_model: Model): FlopsReport {
  return { macs: undefined, perNode: [], unknown: [] };
}
