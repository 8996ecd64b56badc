/**
 * The public API of onnx-prune (`require('onnx-prune')`).
 *
 *   import { prune } from 'onnx-prune';
 *   const { model, report, plan } = await prune('in.onnx', { ratio: 0.3, output: 'out.onnx' });
 *
 * - `prune(model | path, options)`: the whole pipeline, as the CLI runs it (options = the CLI's, camelCase).
 * - The stages one by one: `analyzeGroups`, `scoreGroups`, `allocate`, `applyPlan`, `verifyPruned`.
 * - The pipeline for toolchains: `Pipeline`, `newContext`, `pruningPipeline`, `registerPass`, the `Pass` type;
 *   the built-in passes are registered when this module loads.
 * - The IR: `loadModel`, `saveModel`, `Model`, `Graph`, `Node`, … and the model builder.
 */
import { registerBuiltinPasses } from '../passes';

registerBuiltinPasses();

// The whole pipeline
export { prune, checkOptions, type PruneRunOptions, type PruneResult, type RunError } from './pipeline/prune';
export {
  type PruneOptions, type OptionName, OPTION_SPECS, OPTION_NAMES, DEFAULTS, validateOptions, loadConfig, resolveOptions, configSchema,
} from './pipeline/options';

// The stages
export { analyzeGroups, scoreGroups, allocate, applyPlan, verifyPruned, type ScoreStageOptions, type ScoreStageResult } from './pipeline/stages';
export { analyzeGroupsWithShapes, type GroupAnalysisOptions } from './analysis/analyze';
export type { GroupAnalysis, Group, DeclinedGroup, Member, WeightMember, ShapeMember, AttrMember, StatMember, UnitKind } from './analysis/types';
export { toGroupsJson, fromGroupsJson } from './analysis/groups-json';
export { countMacs, type FlopsReport } from './analysis/flops';
export { summarizeModel, type ModelSummary } from './analysis/inspect';
export { IMPORTANCE_METHODS, importanceMethod, type ImportanceMethod } from './score/methods';
export type { GroupScores, ScoreInfo, ScoreMethod, ScoreResult, MemberReduce } from './score/types';
export type { AllocateOptions, Allocation, Achieved, AllocationMode, BudgetTarget } from './allocate/types';
export { makePlan, readPlanFile, writePlanFile, validatePlan, type PlanGroups, type PrunePlan, type BiasAdjustment } from './prune/plan';
export { maskPlan } from './prune/mask';
export type { ApplySummary } from './prune/apply';
export { findFailingGroups, VerificationError, isVerificationError, DEFAULT_RTOL } from './verify/verify';
export type { VerifyOptions, VerifyResult, VerifyReport, FidelityReport, GroupFailure } from './verify/verify';

// The pipeline, for toolchains and plugin passes
export type { Pass, PassContext, PassFactory, Artifacts, Report } from './pipeline/pass';
export { Pipeline, newContext } from './pipeline/pipeline';
export { registerPass, createPass, passNames, loadPassModule } from './pipeline/registry';
export { pruningPipeline, NOOP_PIPELINE } from './pipeline/default';
export { builtinPasses } from '../passes';

// The IR
export * from './ir';
export { cloneModel } from './ir/clone';
