/**
 * The shape-rule table, derived from the op spec registry (src/ir/ops: one entry per ONNX op type of the
 * default domain). Each rule reads its inputs' types, shapes and tracked small values through a RuleCtx and
 * sets its outputs; an op without a rule gets unknown outputs and is reported in `unsupportedOps`.
 */
import { OP_SPECS, opSpec } from '../ops';
import type { Rule } from './context';

export const RULES: Readonly<Record<string, Rule>> = Object.freeze(Object.fromEntries(
  Object.entries(OP_SPECS).flatMap(([op, s]) => (s.shape ? [[op, s.shape] as const] : [])),
));

/** The rule for a node's op, or undefined (non-default domains have no rules). */
export function ruleFor(opType: string, domain: string): Rule | undefined {
  return opSpec(opType, domain)?.shape;
}
