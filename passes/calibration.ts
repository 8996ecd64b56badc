/**
 * The run's calibration data, loaded once: from --calib (or seeded random inputs at the verification sizes, with
 * a warning) and kept in ctx.artifacts.calibration for every pass that needs it (data-aware importance, bias
 * compensation after a data-free importance, least-squares reconstruction).
 */
import type { PassContext } from '../src/pipeline/pass';
import { prepareCalibration, type CalibOptions, type CalibSet } from '../src/ort/calib';
import { modelOf } from '../src/pipeline/artifacts';

/** Calibration options from the run's options (random inputs use --verify-seq / --verify-batch sizes). */
export function calibOptions(ctx: PassContext): CalibOptions & { batch?: number } {
  const o = ctx.options;
  return {
    file: o.calib,
    seq: o.verifySeq,
    batch: o.verifyBatch,
    shape: o.calibShape,
    dtype: o.calibDtype,
    randomSamples: o.calibSamples,
    warn: ctx.warn,
  };
}

export async function calibrationSet(ctx: PassContext, pass: string): Promise<CalibSet> {
  if (!ctx.artifacts.calibration) {
    ctx.artifacts.calibration = await prepareCalibration(modelOf(ctx, pass), { ...calibOptions(ctx), seed: ctx.options.seed ?? 0 });
  }
  return ctx.artifacts.calibration;
}
