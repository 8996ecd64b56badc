/**
 * Running models in onnxruntime for tests: seeded inputs (token models get seq 8 and ids < 256), one run per
 * session (released afterwards), and a bit-exact comparison of outputs.
 */
import { DataType } from '../../src/ir/dtype';
import { valueTypeOf } from '../../src/ir/graph';
import { loadModel } from '../../src/ir/io';
import type { Model } from '../../src/ir/model';
import { createSession, ort, randomInputs } from '../../src/ort/session';

export type Feeds = Record<string, ort.Tensor>;
export type Outputs = Record<string, ort.Tensor>;

/** Symbolic dim values used for every model in the tests. */
export const TEST_DIMS: Record<string, number> = { batch: 2, N: 2, seq: 8, T: 8 };

/**
 * Seeded random feeds for a model: symbolic dims from TEST_DIMS (others 2), floats ~ N(0,1)-ish,
 * integer inputs (token ids) in [0, 256).
 */
export function seededFeeds(model: Model | string, seed = 1234): Feeds {
  const m = typeof model === 'string' ? loadModel(model) : model;
  const hasInt = m.graph.realInputs.some((i) => {
    const t = valueTypeOf(i);
    return t?.dtype === DataType.INT64 || t?.dtype === DataType.INT32;
  });
  return randomInputs(m, { seed, dims: TEST_DIMS, defaultDim: 2, intHigh: hasInt ? 256 : 2 });
}

/** Runs a model (path, bytes or Model) once and releases the session. */
export async function runOnce(source: string | Uint8Array | Model, feeds: Feeds): Promise<Outputs> {
  const session = await createSession(source);
  try {
    return await session.run(feeds);
  } finally {
    await session.release();
  }
}

/** The raw bytes of an ORT tensor's data (numeric tensors only). */
export function tensorBytes(t: ort.Tensor): Buffer {
  const d = t.data as unknown as ArrayBufferView;
  return Buffer.from(d.buffer, d.byteOffset, d.byteLength);
}

/**
 * Describes the first difference between two output sets, or returns undefined when they are bit-identical
 * (same names, types, dims and raw bytes).
 */
export function bitDifference(a: Outputs, b: Outputs): string | undefined {
  const ka = Object.keys(a).sort();
  const kb = Object.keys(b).sort();
  if (ka.join('\n') !== kb.join('\n')) return `output names differ: [${ka}] vs [${kb}]`;
  for (const k of ka) {
    const x = a[k];
    const y = b[k];
    if (x.type !== y.type) return `output '${k}': type ${x.type} vs ${y.type}`;
    if (x.dims.join(',') !== y.dims.join(',')) return `output '${k}': dims [${x.dims}] vs [${y.dims}]`;
    const bx = tensorBytes(x);
    const by = tensorBytes(y);
    if (bx.length === 0) return `output '${k}' is empty`;
    if (!bx.equals(by)) {
      let i = 0;
      while (i < bx.length && bx[i] === by[i]) i++;
      return `output '${k}': bytes differ from byte ${i} of ${bx.length}`;
    }
  }
  return undefined;
}

/** Max |a - b| over float outputs (for reporting when bytes differ). */
export function maxAbsDiff(a: ort.Tensor, b: ort.Tensor): number {
  const x = a.data as Float32Array;
  const y = b.data as Float32Array;
  let m = 0;
  for (let i = 0; i < x.length; i++) m = Math.max(m, Math.abs(x[i] - y[i]));
  return m;
}
