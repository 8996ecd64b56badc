/**
 * The op spec registry: one entry per ONNX op type of the default domain, holding its shape rule, channel
 * behaviour, weighted-layer facts and MACs (./types.ts). The entries live in family files (elementwise, nn,
 * math, tensor, control); an op type appears in exactly one. Every stage reads them through `opSpec`:
 * src/ir/shapes (RULES), src/analysis (op rules, units, FLOPs), src/score (activation sites, compensation),
 * src/allocate (protection, cost model).
 */
import type { Node } from '../node';
import { CONTROL_OPS } from './control';
import { ELEMENTWISE_OPS } from './elementwise';
import { MATH_OPS } from './math';
import { NN_OPS } from './nn';
import type { OpSpec } from './types';
import { TENSOR_OPS } from './tensor';

export * from './types';
export { DECLINE, type DeclineKey } from './decline';

function merge(families: Record<string, OpSpec>[]): Readonly<Record<string, OpSpec>> {
  const out: Record<string, OpSpec> = {};
  for (const f of families) {
    for (const [op, spec] of Object.entries(f)) {
      if (Object.prototype.hasOwnProperty.call(out, op)) throw new Error(`op spec '${op}' is defined twice`);
      out[op] = spec;
    }
  }
  return Object.freeze(out);
}

export const OP_SPECS: Readonly<Record<string, OpSpec>> = merge([ELEMENTWISE_OPS, TENSOR_OPS, NN_OPS, MATH_OPS, CONTROL_OPS]);

/** The spec of an op, or undefined (unknown op, or any op of a non-default domain). */
export function opSpec(opType: string, domain: string): OpSpec | undefined {
  if (domain !== '' && domain !== 'ai.onnx') return undefined;
  return Object.prototype.hasOwnProperty.call(OP_SPECS, opType) ? OP_SPECS[opType] : undefined;
}

/** The spec of a node's op (see opSpec). */
export function specOf(n: Node): OpSpec | undefined {
  return opSpec(n.opType, n.domain);
}
