/** Shape inference (placeholder until the per-op rules land: infers nothing yet). */
import type { Model } from '../model';

export interface ShapeInferenceOptions {
  /** Concrete shapes for graph inputs (overrides symbolic dims), by input name. */
  inputShapes?: Record<string, (number | string)[]>;
}

export interface ShapeInferenceResult {
  /** Tensors whose shape is fully known after inference. */
  known: number;
  /** Tensors whose shape is still unknown (partly or wholly). */
  unknown: number;
  /** Op types that have no shape rule. */
  unsupportedOps: string[];
}

export function inferShapes(_model: Model, _opts: ShapeInferenceOptions = {}): ShapeInferenceResult {
  return { known: 0, unknown: 0, unsupportedOps: [] };
}
