/**
 * Coupling checked in onnxruntime on the shared models: for sampled groups, zeroing the units' consumer
 * weights (the masked model) gives the same outputs as also scrambling their producers and per-channel
 * parameters — so no reader of the pruned channels was missed. A group with one consumer left out must fail.
 */
import * as fs from 'fs';
import { maskCheck } from './helpers/mask-check';
import type { Group } from '../src/analysis/types';
import { SHARED, analyze, expectMaskOk, sharedModel } from './analysis-kit';

const files = fs.readdirSync(SHARED).filter((f) => f.endsWith('.onnx')).sort();

/** The first group, the one removing most params per unit, and the first head group if any. */
function sample(groups: Group[]): Group[] {
  const out = new Set<Group>();
  if (groups[0]) out.add(groups[0]);
  const big = [...groups].sort((a, b) => b.paramsPerUnit - a.paramsPerUnit)[0];
  if (big) out.add(big);
  const head = groups.find((g) => g.unit === 'head' || g.unit === 'kv-group');
  if (head) out.add(head);
  return [...out];
}

test.each(files)('%s: masked model ignores scrambled producers of sampled groups', async (file) => {
  const model = sharedModel(file);
  const a = await analyze(model, { rewriteComputedShapes: true });
  // torchvision's ViT head is zero-initialized (constant logits): also compare the classifier's input.
  const observe = file === 'vit_s.onnx' ? [model.graph.producer(model.graph.outputs[0].name ?? '')!.inputs[0]] : undefined;
  for (const g of sample(a.groups)) await expectMaskOk(model, g, undefined, observe);
});

test('the check notices a missing consumer (resnet stage group without its classifier member)', async () => {
  const model = sharedModel('resnet50_b.onnx');
  const a = await analyze(model);
  const g = a.groups.find((x) => x.members.some((m) => m.kind === 'weight' && m.tensor === 'fc.weight'))!;
  const broken = { ...g, members: g.members.filter((m) => !(m.kind === 'weight' && m.tensor === 'fc.weight')) };
  const r = await maskCheck(model, broken, [0, 1, 2], { dims: { batch: 2 } });
  expect(r.maxAbsDiff).toBeGreaterThan(1e-3 * r.scale);
});
