/**
 * The pipeline's stages as functions, wired to onnxruntime where a stage needs it. These are the stage
 * functions of the public API (src/index.ts); the passes call them too.
 */
import { analyzeGroups as analyzeStatic, type GroupAnalysisOptions } from '../analysis/analyze';
import type { GroupAnalysis } from '../analysis/types';
import type { Model } from '../ir/model';
import { OrtShapeProbe } from '../ort/shape-probe';

/**
 * Coupled-group analysis (src/analysis). Shapes come from static inference; tensors it cannot size are measured
 * once in onnxruntime (unless `mode: 'static'`, or another `probe` is given).
 */
export function analyzeGroups(model: Model, opts: GroupAnalysisOptions = {}): Promise<GroupAnalysis> {
  return analyzeStatic(model, { probe: OrtShapeProbe.open, ...opts });
}
