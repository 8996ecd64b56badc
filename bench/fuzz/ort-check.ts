/**
 * Child process of the fuzz harness: `node dist/bench/fuzz/ort-check.js '[{"model": PATH, "ref": PATH?}, ...]'`.
 * For each model prints one JSON line: whether onnxruntime loads it, and whether its outputs on seeded inputs
 * are finite (and those of the reference model, the case's input, on the same inputs). Runs in its own process
 * so that a crash in onnxruntime cannot take the harness down.
 */
import * as fs from 'fs';
import { onnx, decodeModelProto } from '../../src/ir/proto';
import { toNumber } from '../../src/ir/long';
import { ort } from '../../src/ort/session';
import { rng } from '../../src/util/rng';

/** Feeds for the graph inputs (not initializers): symbolic dims 2 (first) or 8; none when a type is unusual or big. */
function feeds(file: string): Record<string, ort.Tensor> | undefined {
  const m = decodeModelProto(fs.readFileSync(file));
  const g = m.graph;
  if (!g) return undefined;
  const inits = new Set((g.initializer ?? []).map((t) => t.name));
  const next = rng(1234);
  const out: Record<string, ort.Tensor> = {};
  for (const vi of g.input ?? []) {
    if (inits.has(vi.name)) continue;
    const t = vi.type?.tensorType;
    if (!t || !t.shape) return undefined;
    const dims = (t.shape.dim ?? []).map((d: onnx.TensorShapeProto.IDimension, i: number) => (d.dimValue !== undefined && d.dimValue !== null && toNumber(d.dimValue) > 0 ? toNumber(d.dimValue) : i === 0 ? 2 : 8));
    const n = dims.reduce((a: number, x: number) => a * x, 1);
    if (!Number.isSafeInteger(n) || n > 1e7) return undefined;
    switch (t.elemType) {
      case 1: out[vi.name ?? ''] = new ort.Tensor('float32', Float32Array.from({ length: n }, () => next() * 2 - 1), dims); break;
      case 7: out[vi.name ?? ''] = new ort.Tensor('int64', BigInt64Array.from({ length: n }, () => BigInt(Math.floor(next() * 4))), dims); break;
      case 6: out[vi.name ?? ''] = new ort.Tensor('int32', Int32Array.from({ length: n }, () => Math.floor(next() * 4)), dims); break;
      case 9: out[vi.name ?? ''] = new ort.Tensor('bool', new Uint8Array(n), dims); break;
      default: return undefined;
    }
  }
  return out;
}

async function finiteOutputs(file: string, f: Record<string, ort.Tensor>): Promise<boolean | undefined> {
  try {
    const s = await ort.InferenceSession.create(file);
    const res = await s.run(f);
    for (const t of Object.values(res)) {
      if (t.type !== 'float32' && t.type !== 'float64') continue;
      for (const v of t.data as Float32Array) if (!Number.isFinite(v)) return false;
    }
    return true;
  } catch {
    return undefined;
  }
}

async function main(): Promise<void> {
  const items = JSON.parse(process.argv[2]) as { model: string; ref?: string }[];
  for (const it of items) {
    const res: { model: string; loaded: boolean; error?: string; finite?: boolean; refFinite?: boolean } = { model: it.model, loaded: false };
    try {
      await ort.InferenceSession.create(it.model);
      res.loaded = true;
    } catch (e) {
      res.error = String((e as Error)?.message ?? e).split('\n')[0];
    }
    // One line as soon as the load is known (a hang later must not read as a failed load), then the full one.
    process.stdout.write(`${JSON.stringify(res)}\n`);
    if (res.loaded) {
      let f: Record<string, ort.Tensor> | undefined;
      try {
        f = feeds(it.model);
      } catch {
        f = undefined;
      }
      if (f) {
        res.finite = await finiteOutputs(it.model, f);
        if (res.finite === false && it.ref) res.refFinite = await finiteOutputs(it.ref, f);
      }
      process.stdout.write(`${JSON.stringify(res)}\n`);
    }
  }
}

main().catch((e) => {
  process.stderr.write(`${String((e as Error)?.stack ?? e)}\n`);
  process.exit(1);
});
