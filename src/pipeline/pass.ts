/**
 * The pass interface. A pipeline is a list of passes that run in order on one shared context; each pass
 * declares the context keys it reads and writes, so the pipeline can check the order before running anything.
 *
 * The context is typed: `options` (PruneOptions, the same type as the CLI flags and the config file),
 * `artifacts` (what passes hand to later passes: the group analysis, scores with the method that produced them,
 * the plan, …) and `report` (what the run prints with --json, schemas/report.schema.json). A plugin pass may add
 * artifacts and report sections of its own under other keys.
 */
import type { Achieved } from '../allocate/types';
import type { GroupAnalysis } from '../analysis/types';
import type { OutputSet } from '../ir/files';
import type { Model } from '../ir/model';
import type { CalibSet } from '../ort/calib';
import type { ActivationStats } from '../ort/capture';
import type { ReconstructionPlan } from '../prune/reconstruct';
import type { SearchReport } from '../prune/search';
import type { BlockScore } from '../prune/depth';
import type { CostReport } from '../prune/accounting';
import type { ApplySummary } from '../prune/apply';
import type { PlanGroups, PrunePlan } from '../prune/plan';
import type { ScoreResult } from '../score/types';
import type { FidelityReport, GroupFailure, VerifyReport, VerifyResult } from '../verify/verify';
import type { PruneOptions } from './options';

/** What passes hand to later passes. */
export interface Artifacts {
  /** The coupled-group analysis (`analyze`). */
  groups?: GroupAnalysis;
  /** Unit scores, with the method that produced them in `info.method` (`importance-<method>`). */
  scores?: ScoreResult;
  /** Calibration activation statistics (data-aware importance methods); bias compensation reuses them. */
  activationStats?: ActivationStats;
  /** Units to remove per group, chosen under the budget (`allocate`). */
  removed?: PlanGroups;
  /** The plan (`plan`): units removed per group, and the bias compensation made with it (`compensate`). */
  plan?: PrunePlan;
  /** The calibration set loaded for this run (by a data-aware importance or by reconstruction), reused by later passes. */
  calibration?: CalibSet;
  /** The reconstruction made (`reconstruct`): refit weights and bias changes, with its report. */
  reconstruction?: ReconstructionPlan;
  /** The model before bias compensation or reconstruction edited it (fidelity is measured against it). */
  original?: Model;
  /** The dense model, kept by `prune` for verification. */
  dense?: Model;
  /** Verification result (`verify`). */
  verify?: VerifyResult;
  /**
   * The model verification loaded and ran in onnxruntime and passed (`verify`); `save` loads any other model in
   * onnxruntime before writing it, so that every model written is one onnxruntime loads.
   */
  loadedInOrt?: Model;
  /** Artifacts of plugin passes. */
  [key: string]: unknown;
}

/** The report of a run (`--json`; schemas/report.schema.json). Every ratio in it is a fraction *removed*. */
export interface Report {
  prune?: {
    /** The --ratio asked for (fraction of the target to remove). */
    ratio: number;
    plan?: string;
    groupsPruned?: number;
    copies?: ApplySummary['copies'];
    attributes?: ApplySummary['attrs'];
    replaced?: ApplySummary['replaced'];
  };
  params?: CostReport['params'];
  flops?: CostReport['flops'];
  layers?: CostReport['layers'];
  groups?: {
    total?: number;
    found?: number;
    pruned?: number;
    declined: number;
    unitsRemoved?: number;
    declinedReasons?: Record<string, number>;
    prunableParams?: number;
    totalParams?: number;
    note?: string;
  };
  importance?: { method: string; groups: number; fallbacks: number };
  allocation?: Achieved;
  /** `--allocation search`: the search's trace, baselines and chosen widths (src/prune/search.ts SearchReport). */
  search?: SearchReport;
  /** `--measure-latency` (passes/latency.ts): medians in ms, pruned ÷ dense, where and on what inputs. */
  latency?: { dense_ms: number; pruned_ms: number; ratio: number; ep: string; threads: number; rounds: number; inputs: Record<string, number[]> };
  /** `--depth-only`: every block's score (KL with it masked) and the blocks removed (src/prune/depth.ts). */
  depth?: { blocks: BlockScore[]; removed: string[] };
  compensation?: { consumers: number; biasesAdded: number; skipped: number; from: 'calibration' | 'plan' };
  /**
   * Least-squares reconstruction (`reconstruct`): from calibration (the fields of src/prune/reconstruct.ts
   * ReconstructReport, with `skipped` and `biasOnly` as counts) or replayed from a plan.
   */
  reconstruction?: {
    mode: 'ls';
    from: 'calibration' | 'plan';
    consumers: number;
    refit?: number;
    skipped?: number;
    skippedReasons?: Record<string, number>;
    biasOnly?: number;
    stages?: number;
    samples?: number;
    sequential?: boolean;
    calibration?: string;
    errorZeroed?: number;
    errorRefit?: number;
    dampingRaised?: number;
    deadColumns?: number;
    biases?: { consumers: number; added: number; skipped: number };
  };
  /** Verification (`verify`); `skipped` when nothing was compared (nothing pruned: `inputs` is then absent). */
  verify?: Omit<VerifyReport, 'inputs'> & { inputs?: VerifyReport['inputs']; skipped?: string; failingGroups?: GroupFailure[] };
  fidelity?: FidelityReport;
  output?: { files: string[] };
  /** Every warning of the run (also printed on stderr by the CLI unless --quiet). */
  warnings?: string[];
  /** Report sections of plugin passes. */
  [key: string]: unknown;
}

export interface PassContext {
  /** Path of the input model (the `load` pass reads it). */
  inputPath?: string;
  /** Path to write the result to (the `save` pass writes it). */
  outputPath?: string;
  /** The model being compiled (set by `load`, or given). */
  model?: Model;
  /**
   * The files the run writes (the model, its external data, the plan): passes stage them here and the pipeline
   * renames them into place together when every pass succeeded (`Pipeline.run`); a failed run writes nothing.
   * The files the run reads are protected in it: no output may replace them.
   */
  outputs?: OutputSet;
  /** Options from the CLI / config file / API, shared by all passes. */
  options: PruneOptions;
  artifacts: Artifacts;
  report: Report;
  /** Progress / diagnostic messages (stderr in the CLI with --verbose). */
  log: (message: string) => void;
  /** A warning: recorded in report.warnings and shown to the user (stderr in the CLI unless --quiet). */
  warn: (message: string) => void;
}

export interface Pass {
  /** Unique name, used in pipeline lists (`--passes load,save`). */
  name: string;
  description?: string;
  /** Context keys this pass needs (e.g. 'model', 'artifacts.groups'). */
  reads: string[];
  /** Context keys this pass sets. */
  writes: string[];
  run(ctx: PassContext): void | Promise<void>;
}

/** A factory makes a pass from the run's options. */
export type PassFactory = (options: PruneOptions) => Pass;
