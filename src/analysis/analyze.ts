/**
 * Group analysis entry points.
 *
 *   const analysis = await analyzeGroups(model);             // shapes: static inference, ORT fallback
 *   const analysis = analyzeGroupsWithShapes(model, shapes);  // you provide concrete shapes
 *
 * Groups inside control-flow subgraphs are analyzed per subgraph and merged (src/analysis/subgraphs.ts).
 * The model is not modified. Concrete shapes come from src/analysis/shape-source.ts (static shape inference
 * with concrete input dims; tensors it cannot size are measured once with onnxruntime).
 */
import type { Model } from '../ir/model';
import type { GroupAnalysis } from './types';
import { queryHeadGroups, withQueryHeadGroups } from './gqa-query-heads';
import { type BuildOptions, buildGroups } from './groups';
import { unaccountedParams } from './accounting';
import { findBlocks } from './blocks';
import { propagate } from './propagate';
import { Plumbing } from './shape-plumbing';
import { type ShapeSourceOptions, concreteShapes } from './shape-source';
import { addSubgraphGroups } from './subgraphs';

export interface GroupAnalysisOptions extends ShapeSourceOptions, BuildOptions {}

export async function analyzeGroups(model: Model, opts: GroupAnalysisOptions = {}): Promise<GroupAnalysis> {
  const table = await concreteShapes(model, opts);
  return analyzeGroupsWithShapes(model, table.shapes, opts, table.source);
}

export function analyzeGroupsWithShapes(
  model: Model, shapes: Map<string, number[]>, opts: BuildOptions = {}, source?: 'static' | 'ort' | 'mixed',
): GroupAnalysis {
  const g = model.graph;
  const plumb = new Plumbing(g, shapes, g.topoSort());
  const opset = model.opset() ?? 17;
  const st = propagate(g, shapes, plumb, opset, { normStats: opts.normStatistics });
  let result = buildGroups(st, plumb, opts);
  if (opts.gqaQueryHeads) result = withQueryHeadGroups(result, queryHeadGroups(model, shapes, opts, result));
  // Groups inside If branches and Loop/Scan bodies (see subgraphs.ts); nothing changes without subgraphs.
  addSubgraphGroups(model, shapes, opset, opts, result);
  result.blocks = findBlocks(g, shapes);
  result.unaccounted = unaccountedParams(model, result);
  if (source) result.summary.shapeSource = source;
  return result;
}
