/** The default pipelines, by pass name. */
import type { PruneOptions } from './options';

/** The lossless no-op: ratio 0 and no plan. */
export const NOOP_PIPELINE = ['load', 'prune', 'save'];

/**
 * The pass names for a prune run: the lossless no-op pipeline at ratio 0 (without a plan to apply or save), else
 * load → analyze → importance-<method> → allocate → plan → compensate → reconstruct → prune → verify → save (a saved plan
 * replaces importance and allocation; --no-verify drops verify); with --depth-only load → analyze → allocate → plan →
 * prune → verify → save (the analysis offers the blocks, the allocation scores them).
 */
export function pruningPipeline(o: PruneOptions): string[] {
  const ratio = o.ratio ?? 0;
  if (ratio === 0 && !o.plan && !o.savePlan) return NOOP_PIPELINE.slice();
  const names = ['load', 'analyze'];
  if (o.depthOnly) {
    // Depth: blocks are scored by the allocation itself; nothing to compensate or refit (a branch goes whole).
    if (!o.plan) names.push('allocate');
    names.push('plan', 'prune');
  } else {
    if (!o.plan) names.push(`importance-${o.importance ?? 'l2'}`, 'allocate');
    names.push('plan', 'compensate', 'reconstruct', 'prune');
  }
  if (o.verify !== false && (ratio !== 0 || o.plan)) names.push('verify');
  if (o.measureLatency && (ratio !== 0 || o.plan)) names.push('latency');
  names.push('save');
  return names;
}
