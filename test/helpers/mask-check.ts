/**
 * A quick onnxruntime sanity check of a group's coupling (a development and test aid; the physical
 * pruning + verification lives in src/prune and src/runtime).
 *
 * Model A zeroes the chosen units in every `in` member (the masked dense model). Model B does the same and
 * also scrambles the units in every `out` and `param` member. If the group lists every consumer of its
 * channels, the scrambled channels are never read and A and B give the same outputs; a missed coupling
 * shows up as a difference. Members are edited through private copies wired into their (node, input), so
 * weights shared with other nodes are left alone. Both run the group's normalization statistics over the kept
 * positions (StatMember, src/prune/mask.ts), as the pruned model does.
 */
import { DataType } from '../../src/ir/dtype';
import { loadModel } from '../../src/ir/io';
import type { Model } from '../../src/ir/model';
import { encodeModelProto, onnx } from '../../src/ir/proto';
import { makeTensorProto } from '../../src/ir/tensor';
import { createSession, ort, randomInputs, rng } from '../../src/ort/session';
import type { Group, GroupAnalysis, WeightMember } from '../../src/analysis/types';
import { statisticsOverKept } from '../../src/prune/mask';

export interface MaskCheckResult {
  /** Largest |A − B| over all outputs. */
  maxAbsDiff: number;
  /** Largest |A| over all outputs (for a relative reading). */
  scale: number;
}

function strideOf(dims: number[], axis: number): number {
  let s = 1;
  for (let a = dims.length - 1; a > axis; a--) s *= dims[a];
  return s;
}

function edited(model: Model, group: Group, members: WeightMember[], units: number[], mode: 'mask' | 'scramble', seed: number, observe: string[]): Model {
  const copy = loadModel(encodeModelProto(model.toProto()), { baseDir: model.baseDir });
  const g = copy.graph;
  for (const name of observe) if (!g.isGraphOutput(name)) g.proto.output.push(onnx.ValueInfoProto.create({ name }));
  const next = rng(seed);
  const work = new Map<string, { data: Float32Array; dims: number[] }>();
  for (const m of members) {
    if (mode === 'mask' && m.role !== 'in') continue;
    const t = g.constant(m.tensor);
    if (!t || t.dtype !== DataType.FLOAT) continue;
    const key = `${m.node}|${m.input}`;
    let w = work.get(key);
    if (!w) work.set(key, (w = { data: Float32Array.from(t.toFloat32()), dims: t.dims }));
    const stride = strideOf(w.dims, m.axis);
    const d = w.dims[m.axis];
    const pos = new Set(units.flatMap((u) => m.indices[u]));
    for (let i = 0; i < w.data.length; i++) {
      if (!pos.has(Math.floor(i / stride) % d)) continue;
      if (m.role === 'in') w.data[i] = 0;
      else if (mode === 'scramble') w.data[i] = m.role === 'out' ? w.data[i] + (next() - 0.5) * 2 : w.data[i] * (1 + next());
    }
  }
  let k = 0;
  for (const [key, w] of work) {
    const [node, input] = key.split('|');
    const n = g.producer(node);
    if (!n) continue;
    const name = g.uniqueName(`mask_check_${k++}`);
    g.setInitializer(makeTensorProto(name, DataType.FLOAT, w.dims, w.data));
    n.inputs[Number(input)] = name;
    g.invalidate();
  }
  const one: GroupAnalysis = { groups: [group], declined: [], summary: { totalParams: 0, prunableParams: 0, groups: 1, declined: 0 } };
  statisticsOverKept(copy, one, { [group.id]: units });
  return copy;
}

async function runAll(model: Model, feeds: Record<string, ort.Tensor>): Promise<Float32Array[]> {
  const s = await createSession(model);
  try {
    const r = await s.run(feeds);
    return Object.keys(r).sort().map((k) => Float32Array.from(r[k].data as Float32Array));
  } finally {
    await s.release();
  }
}

export interface MaskCheckOptions {
  seed?: number;
  dims?: Record<string, number>;
  intHigh?: number;
  /** Intermediate tensors compared too (e.g. when a zero-initialized head makes the outputs constant). */
  observe?: string[];
}

export async function maskCheck(model: Model, group: Group, units: number[], opts: MaskCheckOptions = {}): Promise<MaskCheckResult> {
  const members = group.members.filter((m): m is WeightMember => m.kind === 'weight');
  const observe = opts.observe ?? [];
  const a = edited(model, group, members, units, 'mask', opts.seed ?? 0, observe);
  const b = edited(model, group, members, units, 'scramble', opts.seed ?? 0, observe);
  const feeds = randomInputs(model, { seed: opts.seed ?? 0, dims: opts.dims, intHigh: opts.intHigh ?? 2 });
  const [ra, rb] = await Promise.all([runAll(a, feeds), runAll(b, feeds)]);
  let maxAbsDiff = 0, scale = 0;
  ra.forEach((x, i) => {
    for (let j = 0; j < x.length; j++) {
      maxAbsDiff = Math.max(maxAbsDiff, Math.abs(x[j] - rb[i][j]));
      scale = Math.max(scale, Math.abs(x[j]));
    }
  });
  return { maxAbsDiff, scale };
}
