/**
 * `analyze`: coupled-group analysis of the model (src/analysis). Puts the GroupAnalysis into
 * `ctx.artifacts.groups` and a short summary into `ctx.report.groups`.
 *
 * Options: `dims` (values for symbolic input dims, e.g. { batch: 1, seq: 16 }), `shapes` ('auto' | 'static' |
 * 'ort': where concrete shapes come from), `rewriteComputedShapes` (let groups whose Reshape target is
 * computed from an unpruned dim be pruned by rewriting that element to −1; apply must support
 * ShapeMember.replaceWith, which it does); on unless set to false. `verifyBatch` / `verifySeq` (the verification
 * input sizes) are also tried as probe sizes when onnxruntime must measure shapes and the model does not run on
 * tiny inputs (src/analysis/shape-source.ts).
 */
import { analyzeGroups } from '../src/pipeline/stages';
import type { Pass } from '../src/pipeline/pass';

export function analyzePass(options: Record<string, unknown>): Pass {
  return {
    name: 'analyze',
    description: 'find coupled groups of channels, heads and neurons (declined groups with reasons)',
    reads: ['model'],
    writes: ['artifacts.groups'],
    async run(ctx) {
      if (!ctx.model) throw new Error("pass 'analyze': no model in context");
      const mode = options.shapes as 'auto' | 'static' | 'ort' | undefined;
      const analysis = await analyzeGroups(ctx.model, {
        dims: options.dims as Record<string, number> | undefined,
        mode,
        batch: options.verifyBatch !== undefined ? Number(options.verifyBatch) : undefined,
        seq: options.verifySeq !== undefined ? Number(options.verifySeq) : undefined,
        rewriteComputedShapes: options.rewriteComputedShapes !== false,
        gqaQueryHeads: options.gqaQueryHeads === true,
      });
      ctx.artifacts.groups = analysis;
      const s = analysis.summary;
      ctx.report.groups = { found: s.groups, declined: s.declined, prunableParams: s.prunableParams, totalParams: s.totalParams };
      ctx.log(`analyze: ${s.groups} groups, ${s.declined} declined, prunable ${s.prunableParams}/${s.totalParams} params`);
    },
  };
}
