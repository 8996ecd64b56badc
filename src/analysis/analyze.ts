/**
 * Group analysis entry points.
 *
 *   const analysis = await analyzeGroups(model);             // shapes: static inference, ORT fallback
 *   const analysis = analyzeGroupsWithShapes(model, shapes);  // you provide concrete shapes
 *
 * The model is not modified. Concrete shapes come from src/analysis/shape-source.ts (static shape inference
 * with concrete input dims; tensors it cannot size are measured once with onnxruntime).
 */
import type { Model } from '../ir/model';
import type { GroupAnalysis } from './types';
import { type BuildOptions, buildGroups } from './groups';
import { propagate } from './propagate';
import { Plumbing } from './shape-plumbing';
import { type ShapeSourceOptions, concreteShapes } from './shape-source';

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
  const st = propagate(g, shapes, plumb, model.opset() ?? 17);
  const result = buildGroups(st, plumb, opts);
  if (source) result.summary.shapeSource = source;
  return result;
}
