/**
 * The pass interface. A pipeline is a list of passes that run in order on one shared context; each pass
 * declares the context keys it reads and writes, so the pipeline can check the order before running anything.
 */
import type { Model } from '../ir/model';

export interface PassContext {
  /** Path of the input model (the `load` pass reads it). */
  inputPath?: string;
  /** Path to write the result to (the `save` pass writes it). */
  outputPath?: string;
  /** The model being compiled (set by `load`). */
  model?: Model;
  /** Options from the CLI / config, shared by all passes. */
  options: Record<string, unknown>;
  /** Free-form results that later passes and the final report read (e.g. `groups`, `plan`, `verify`). */
  artifacts: Record<string, unknown>;
  /** The report printed at the end (`--json`), filled by passes. */
  report: Record<string, unknown>;
  /** Progress / diagnostic messages (stderr in the CLI). */
  log: (message: string) => void;
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

/** A factory makes a pass from its options (the CLI passes the shared options object). */
export type PassFactory = (options: Record<string, unknown>) => Pass;
