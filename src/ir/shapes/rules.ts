/**
 * The shape-rule table: one entry per ONNX op type (default domain). Each rule reads its inputs' types, shapes
 * and tracked small values through a RuleCtx and sets its outputs; an op without an entry gets unknown outputs
 * and is reported in `unsupportedOps`.
 */
import type { Rule } from './context';
import { ELEMENTWISE_RULES } from './ops-elementwise';
import { MATH_RULES } from './ops-math';
import { NN_RULES } from './ops-nn';
import { TENSOR_RULES } from './ops-tensor';

export const RULES: Readonly<Record<string, Rule>> = Object.freeze({
  ...ELEMENTWISE_RULES,
  ...TENSOR_RULES,
  ...NN_RULES,
  ...MATH_RULES,
});

/** The rule for a node's op, or undefined (non-default domains have no rules). */
export function ruleFor(opType: string, domain: string): Rule | undefined {
  if (domain !== '' && domain !== 'ai.onnx') return undefined;
  return Object.prototype.hasOwnProperty.call(RULES, opType) ? RULES[opType] : undefined;
}
