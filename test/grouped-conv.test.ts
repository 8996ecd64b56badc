/**
 * Grouped convolutions (1 < group < channels; RegNet / ResNeXt bottlenecks, as torchvision exports them): a unit is
 * one whole conv group — its input block (channels of the 1×1 conv before it), its output rows and bias — and the
 * group count drops by one per unit. Built here, pruned, and verified against the masked model in onnxruntime;
 * the removed group's rows, the producer's channels and the consumer's columns all go.
 */
import { DECLINE } from '../src/analysis/decline';
import { prune } from '../src/index';
import { G, analyze } from './analysis-kit';

/** x → 1×1 conv (C→D) → BN → ReLU → 3×3 conv (D→D, groups) → BN → ReLU → 1×1 conv (D→C) (+ x) → head. */
function bottleneck(groups: number, residual: boolean): G {
  const g = new G();
  const C = 8, D = 12;
  const x = g.input('x', ['batch', C, 6, 6]);
  const bn = (t: string, c: number) => g.op('BatchNormalization', [t, g.floats(Array.from({ length: c }, (_, i) => 1 + 0.1 * i)), g.floats(Array(c).fill(0.05)), g.floats(Array(c).fill(0)), g.floats(Array(c).fill(1))]);
  const a = g.op('Relu', [bn(g.conv(x, C, D, { k: 1 }), D)]);
  const b = g.op('Relu', [bn(g.conv(a, D, D, { k: 3, group: groups }), D)]);
  let c = g.conv(b, D, C, { k: 1 });
  if (residual) c = g.op('Add', [c, x]);
  g.output(g.conv(g.op('Relu', [c]), C, 3, { k: 1 }));
  return g;
}

test.each([[3, false], [4, true], [6, true]] as const)('groups %d (residual %s): whole groups prune and verify', async (groups, residual) => {
  const g = bottleneck(groups, residual);
  const m = g.model();
  const a = await analyze(m);
  const grouped = a.groups.find((x) => x.members.some((mm) => mm.kind === 'attr' && mm.attr === 'group'));
  expect(grouped?.size).toBe(groups);
  expect(a.declined.some((d) => d.reason === DECLINE.groupedConv)).toBe(false);
  const r = await prune(m, { ratio: 0.2, quiet: true, protectDefaults: false, importance: 'l1' });
  expect(r.report.verify?.passed).toBe(true);
  expect(r.report.verify?.weakened ?? []).toEqual([]);
  const conv = r.model.graph.nodes.find((n) => n.opType === 'Conv' && r.model.graph.constant(n.inputs[1])?.dims[2] === 3)!;
  const kept = conv.attrInt('group', 1);
  expect(kept).toBeLessThan(groups);
  const wd = r.model.graph.constant(conv.inputs[1])!.dims;
  expect(wd[0]).toBe((12 / groups) * kept);
  expect(wd[1]).toBe(12 / groups);
});

test('the search takes grouped convolutions too', async () => {
  const m = bottleneck(4, true).model();
  const r = await prune(m, { ratio: 0.3, quiet: true, protectDefaults: false, allocation: 'search', searchGenerations: 3, calibSamples: 8 });
  expect(r.report.verify?.passed).toBe(true);
});
