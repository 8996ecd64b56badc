/**
 * Shapes measured by onnxruntime: the model is run on seeded random inputs of the given shapes with every
 * main-graph tensor added as an output. Group analysis (src/analysis/shape-source.ts) takes `OrtShapeProbe.open`
 * as its ShapeProbe factory when static inference leaves a tensor unknown.
 */
import { numel } from '../ir/dims';
import { DataType, ortTypeName } from '../ir/dtype';
import { UserError } from '../ir/errors';
import { checkGeneratedInputs } from '../ir/limits';
import { valueTypeOf } from '../ir/graph';
import { formatInputShapes } from '../ir/input-shapes';
import { runtimeModel } from '../ir/io';
import type { Model } from '../ir/model';
import { rng } from '../util/rng';
import { ortErrorSummary } from './errors';
import { createSession, ort } from './session';

/** Seeded random feeds of the given shapes (floats in [-1, 1), ints in [0, intHigh)). */
function probeFeeds(model: Model, inputShapes: Record<string, number[]>, intHigh: number): Record<string, ort.Tensor> {
  const next = rng(1);
  const feeds: Record<string, ort.Tensor> = {};
  checkGeneratedInputs(model.graph.realInputs.map((vi) => ({ name: vi.name ?? '', dims: inputShapes[vi.name ?? ''] ?? [], dtype: valueTypeOf(vi)?.dtype ?? 0 })), 'cannot make shape-probe inputs');
  for (const vi of model.graph.realInputs) {
    const t = valueTypeOf(vi)!;
    const dims = inputShapes[vi.name ?? ''];
    const n = numel(dims);
    let data: ort.Tensor.DataType;
    switch (t.dtype) {
      case DataType.FLOAT: data = Float32Array.from({ length: n }, () => next() * 2 - 1); break;
      case DataType.DOUBLE: data = Float64Array.from({ length: n }, () => next() * 2 - 1); break;
      case DataType.INT64: data = BigInt64Array.from({ length: n }, () => BigInt(Math.floor(next() * intHigh))); break;
      case DataType.INT32: data = Int32Array.from({ length: n }, () => Math.floor(next() * intHigh)); break;
      case DataType.BOOL: data = Uint8Array.from({ length: n }, () => (next() < 0.5 ? 1 : 0)); break;
      case DataType.FLOAT16: data = new Uint16Array(n).fill(0x3c00); break;
      default: throw new UserError(`cannot make an input of type ${ortTypeName(t.dtype)} for '${vi.name}'`);
    }
    feeds[vi.name ?? ''] = new ort.Tensor(ortTypeName(t.dtype) as 'float32', data as Float32Array, dims);
  }
  return feeds;
}

/**
 * One ORT session of the model with every main-graph tensor as an output, run on as many probe sizes as needed
 * (the ShapeProbe of src/analysis/shape-source.ts). `run` throws an Error with onnxruntime's message summarized.
 */
export class OrtShapeProbe {
  private constructor(private readonly model: Model, private readonly session: ort.InferenceSession) {}

  static async open(model: Model): Promise<OrtShapeProbe> {
    const outputs = new Set(model.graph.outputs.map((o) => o.name ?? ''));
    const extra: string[] = [];
    for (const n of model.graph.nodes) {
      for (const o of n.outputs) {
        if (!o || outputs.has(o)) continue;
        outputs.add(o);
        extra.push(o);
      }
    }
    // ORT's own error log is silenced (fatal only): a failed probe is retried or reported in one line.
    return new OrtShapeProbe(model, await createSession(runtimeModel(model, { extraOutputs: extra }), { logSeverityLevel: 4 }));
  }

  /** Measured shapes of every main-graph tensor for these input shapes; throws ORT's error when the run fails. */
  async run(inputShapes: Record<string, number[]>, intHigh: number): Promise<Map<string, number[]>> {
    let result: Record<string, ort.Tensor>;
    try {
      result = await this.session.run(probeFeeds(this.model, inputShapes, intHigh), { logSeverityLevel: 4 });
    } catch (e) {
      throw new Error(ortErrorSummary(e));
    }
    const out = new Map<string, number[]>();
    for (const [name, t] of Object.entries(result)) {
      out.set(name, t.dims.map(Number));
      t.dispose?.();
    }
    return out;
  }

  release(): Promise<void> {
    return this.session.release();
  }
}

/** Runs the model once with every main-graph tensor as an output and returns the measured shapes. */
export async function measureShapesWithOrt(model: Model, inputShapes: Record<string, number[]>, intHigh = 2): Promise<Map<string, number[]>> {
  const probe = await OrtShapeProbe.open(model);
  try {
    return await probe.run(inputShapes, intHigh);
  } catch (e) {
    throw new UserError(`onnxruntime cannot run the model to measure shapes on ${formatInputShapes(inputShapes)}: ${(e as Error).message}`);
  } finally {
    await probe.release();
  }
}
