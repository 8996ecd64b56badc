/**
 * `analyze`: coupled-group analysis of the model (src/analysis). Puts the GroupAnalysis into
 * `ctx.artifacts.groups` and a short summary into `ctx.report.groups`.
 *
 * Options: `dim` (values for symbolic input dims, e.g. { batch: 1, seq: 16 }), `shapes` ('auto' | 'static' |
 * 'ort': where concrete shapes come from), `pruneHidden` (channels a normalization reduces over are prunable, the
 * norm then running over the kept ones; default on), `rewriteShapes` (let groups whose Reshape target is computed from an
 * unpruned dim be pruned by rewriting that element to −1, which apply supports; default on), `gqaQueryHeads`.
 * `verifyBatch` / `verifySeq` (the verification input sizes) are also tried as probe sizes when onnxruntime must
 * measure shapes and the model does not run on tiny inputs (src/analysis/shape-source.ts).
 */
import { modelOf } from '../src/pipeline/artifacts';
import type { PruneOptions } from '../src/pipeline/options';
import type { Pass } from '../src/pipeline/pass';
import { analyzeGroups } from '../src/pipeline/stages';
import { depthAnalysis } from '../src/prune/depth';

export function analyzePass(options: PruneOptions): Pass {
  return {
    name: 'analyze',
    description: 'find coupled groups of channels, heads and neurons (declined groups with reasons)',
    reads: ['model'],
    writes: ['artifacts.groups'],
    async run(ctx) {
      const analysis = await analyzeGroups(modelOf(ctx, 'analyze'), {
        dims: options.dim,
        mode: options.shapes,
        batch: options.verifyBatch,
        seq: options.verifySeq,
        rewriteComputedShapes: options.rewriteShapes !== false,
        gqaQueryHeads: options.gqaQueryHeads === true,
        normStatistics: options.pruneHidden !== false,
      });
      // --depth-only: the units are whole residual blocks (src/prune/depth.ts).
      ctx.artifacts.groups = options.depthOnly ? depthAnalysis(modelOf(ctx, 'analyze'), analysis) : analysis;
      const s = analysis.summary;
      ctx.report.groups = { found: s.groups, declined: s.declined, prunableParams: s.prunableParams, totalParams: s.totalParams };
      ctx.log(`analyze: ${s.groups} groups, ${s.declined} declined, prunable ${s.prunableParams}/${s.totalParams} params`);
    },
  };
}
