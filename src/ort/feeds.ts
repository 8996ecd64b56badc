/**
 * Inputs for verification, and running models on them.
 *
 * Seeded random inputs: the first symbolic dim of each input (when named and on axis 0) = batch (default 2),
 * every other symbolic dim = seq (default 8); token-id inputs stay below the embedding table's row count.
 *
 * When the user did not choose `seq`, the model may not run on the default: real models reject tiny inputs (a
 * reflect Pad needs more samples than its padding, an STFT a whole window, a U-Net sides divisible by 32).
 * Then the sizes of VERIFY_SEQ_LADDER are tried in turn, on one onnxruntime session, and the first the model
 * runs on is used (the report says so). Candidates over VERIFY_MAX_ELEMENTS input elements are skipped. Sizes
 * the user chose are used as given: a model that does not run on them is a UserError naming the options.
 */
import { numel } from '../ir/dims';
import { formatInputShapes, uniformInputShapes } from '../ir/input-shapes';
import { DataType } from '../ir/dtype';
import { UserError } from '../ir/errors';
import { valueTypeOf } from '../ir/graph';
import type { Model } from '../ir/model';
import { runtimeModel, type RuntimeModel } from '../ir/io';
import { createSession, ort, randomInputs } from './session';
import { ortErrorSummary } from './errors';

export type Feeds = Record<string, ort.Tensor>;

/** Values of the non-batch symbolic dims tried, in order, when the user did not set them. */
export const VERIFY_SEQ_LADDER = [8, 64, 256, 1024, 4096];
/** Ladder candidates with more input elements than this (all inputs together) are skipped. */
export const VERIFY_MAX_ELEMENTS = 1 << 22;

export interface FeedOptions {
  seed?: number;
  /** Value of the first symbolic dim of each input (batch); default 2. */
  batch?: number;
  /** Value of the other symbolic dims (sequence length...); default 8, larger ones tried when unset. */
  seq?: number;
  /** Inputs to use instead of seeded random ones (e.g. calibration data). */
  feeds?: Feeds;
}

/**
 * Upper bound for integer inputs: the row count of an embedding table the input indexes (Gather with a constant
 * data input), else 2.
 */
function intHighFor(model: Model, input: string): number {
  const g = model.graph;
  let high: number | undefined;
  for (const c of g.consumers(input)) {
    if (c.opType !== 'Gather' || c.inputs[1] !== input) continue;
    const table = g.resolveConstant(c.inputs[0]);
    if (!table) continue;
    const rank = table.dims.length;
    const axis = ((c.attrInt('axis', 0) % rank) + rank) % rank;
    high = Math.min(high ?? Infinity, table.dims[axis]);
  }
  return high ?? 2;
}

/** Seeded inputs: the first symbolic dim of each input = batch, other symbolic dims = seq. */
export function verificationFeeds(model: Model, opts: FeedOptions = {}): Feeds {
  const batch = opts.batch ?? 2;
  const seq = opts.seq ?? 8;
  const dims: Record<string, number> = {};
  let intHigh = Infinity;
  for (const vi of model.graph.realInputs) {
    const t = valueTypeOf(vi);
    (t?.shape ?? []).forEach((d, axis) => {
      if (typeof d === 'string' && dims[d] === undefined) dims[d] = axis === 0 ? batch : seq;
    });
    if (t && (t.dtype === DataType.INT64 || t.dtype === DataType.INT32)) intHigh = Math.min(intHigh, intHighFor(model, vi.name ?? ''));
  }
  return randomInputs(model, { seed: opts.seed ?? 0, dims, defaultDim: seq, intHigh: Number.isFinite(intHigh) ? intHigh : 2 });
}

/**
 * The model as ORT loads it, without changing `model` (large initializers as in-memory external data, see
 * runtimeModel); `extraOutputs` are added as graph outputs (intermediate tensors to fetch) in the bytes only.
 */
export function ortModel(model: Model, extraOutputs: string[] = []): RuntimeModel {
  return runtimeModel(model, { extraOutputs });
}

// ORT's own error log is silenced (level 4 = fatal only): failures come back as errors we report in one line.
const QUIET = { logSeverityLevel: 4 as const };

/** Runs a model once on `feeds` and releases the session; throws UserError when ORT cannot load it. */
export async function runModel(model: Model | Uint8Array, feeds: Feeds, extraOutputs: string[] = []): Promise<Record<string, ort.Tensor>> {
  const session = await createSession(model instanceof Uint8Array ? model : ortModel(model, extraOutputs), QUIET);
  try {
    return await session.run(feeds, QUIET);
  } finally {
    await session.release();
  }
}


function shapesOf(feeds: Feeds): Record<string, number[]> {
  return Object.fromEntries(Object.entries(feeds).map(([k, v]) => [k, v.dims.map(Number)]));
}

export interface AcceptedRun {
  feeds: Feeds;
  outputs: Record<string, ort.Tensor>;
  /** Set when the default sizes did not run and larger ones were used. */
  note?: string;
  /** The value of the non-batch symbolic dims that ran (NaN when `feeds` were given). */
  seq: number;
}

/** The candidate input sizes: the user's, or the default seq then the ladder (deduplicated, capped). */
function candidates(model: Model, opts: FeedOptions): { seq: number; make: () => Feeds }[] {
  if (opts.feeds) return [{ seq: NaN, make: () => opts.feeds! }];
  if (opts.seq !== undefined) return [{ seq: opts.seq, make: () => verificationFeeds(model, opts) }];
  const batch = opts.batch ?? 2;
  const seen = new Set<string>();
  const out: { seq: number; make: () => Feeds }[] = [];
  for (const seq of VERIFY_SEQ_LADDER) {
    const shapes = uniformInputShapes(model, batch, seq);
    const key = JSON.stringify(shapes);
    if (seen.has(key)) continue;
    seen.add(key);
    const elements = Object.values(shapes).reduce((acc, s) => acc + numel(s), 0);
    if (out.length > 0 && elements > VERIFY_MAX_ELEMENTS) continue;
    out.push({ seq, make: () => verificationFeeds(model, { ...opts, seq }) });
  }
  return out;
}

/**
 * Runs `model` (plus `extraOutputs`) on the first candidate inputs it accepts, on one session. Throws a
 * UserError when it runs on none (a model that does not load at all is a UserError from createSession).
 */
export async function runOnAcceptedInputs(model: Model, opts: FeedOptions = {}, extraOutputs: string[] = []): Promise<AcceptedRun> {
  const list = candidates(model, opts);
  const session = await createSession(ortModel(model, extraOutputs), QUIET);
  const failures: string[] = [];
  try {
    for (const c of list) {
      const feeds = c.make();
      try {
        const outputs = await session.run(feeds, QUIET);
        const note = failures.length
          ? `the model does not run with the default input sizes (${failures[0]}); verified with symbolic dims = ${c.seq} (set --verify-seq to choose)`
          : undefined;
        return { feeds, outputs, note, seq: c.seq };
      } catch (e) {
        failures.push(`${formatInputShapes(shapesOf(feeds))}: ${ortErrorSummary(e)}`);
      }
    }
  } finally {
    await session.release();
  }
  const tried = failures.length === 1 ? failures[0] : `${failures.length} sizes, largest ${failures[failures.length - 1]}`;
  const hint = opts.feeds
    ? 'check the calibration inputs'
    : opts.seq !== undefined || opts.batch !== undefined
      ? 'set --verify-seq / --verify-batch to sizes the model accepts, or use --no-verify'
      : 'set --verify-seq N (and --verify-batch N) to sizes the model accepts, or use --no-verify';
  throw new UserError(`verification: the model does not run on the verification inputs (${tried}); ${hint}`);
}

/** Ops that keep the value of a one-element tensor (reading it as their data input 0). */
const KEEPS_VALUE = new Set(['Reshape', 'Squeeze', 'Unsqueeze', 'Flatten', 'Identity', 'Cast', 'Gather', 'Expand']);

/** A scalar integer input that selects If branches by comparison with constants (e.g. Silero VAD's sample rate `sr`). */
export interface BranchSelector {
  input: string;
  /** The constants it is compared with (each takes the If's then-branch); any other value takes the else-branch. */
  values: number[];
}

/**
 * Scalar (or one-element) integer graph inputs that an `Equal` with a one-element constant compares (directly or
 * after Reshape / Gather / Cast... of the one element), where the
 * comparison (through Cast / Not / Identity) is the condition of a main-graph If. Random verification inputs
 * take one branch only (a random `sr` equals no sample rate); feeding each compared value as well covers the
 * others.
 */
export function branchSelectors(model: Model): BranchSelector[] {
  const g = model.graph;
  const out: BranchSelector[] = [];
  const decidesIf = (name: string): boolean => {
    const stack = [name];
    const seen = new Set<string>();
    while (stack.length) {
      const cur = stack.pop()!;
      if (seen.has(cur)) continue;
      seen.add(cur);
      for (const c of g.consumers(cur)) {
        if (c.opType === 'If' && c.inputs[0] === cur) return true;
        if (['Cast', 'Not', 'Identity'].includes(c.opType) && c.inputs[0] === cur) stack.push(c.outputs[0]);
      }
    }
    return false;
  };
  for (const vi of g.realInputs) {
    const t = valueTypeOf(vi);
    const name = vi.name ?? '';
    if (!t || (t.dtype !== DataType.INT64 && t.dtype !== DataType.INT32)) continue;
    if (!t.shape || t.shape.length > 1 || (t.shape.length === 1 && t.shape[0] !== 1)) continue;
    const values = new Set<number>();
    // The input's value, carried by ops that keep a one-element tensor's value (Reshape, Gather, Cast...).
    const carriers = [name];
    for (let k = 0; k < carriers.length && k < 16; k++) {
      const cur = carriers[k];
      for (const c of g.consumers(cur)) {
        if (c.domain !== '') continue;
        if (KEEPS_VALUE.has(c.opType) && c.inputs[0] === cur) {
          if (!carriers.includes(c.outputs[0])) carriers.push(c.outputs[0]);
          continue;
        }
        if (c.opType !== 'Equal') continue;
        const other = c.inputs[0] === cur ? c.inputs[1] : c.inputs[0];
        const kt = g.resolveConstant(other);
        if (!kt || kt.size !== 1 || !decidesIf(c.outputs[0])) continue;
        values.add(kt.toNumbers()[0]);
      }
    }
    if (values.size) out.push({ input: name, values: [...values].sort((a, b) => a - b) });
  }
  return out;
}

/** `feeds` with the scalar integer input `input` set to `value` (same type and dims as the random one). */
export function withInputValue(feeds: Feeds, input: string, value: number): Feeds {
  const t = feeds[input];
  const data = t.type === 'int64' ? BigInt64Array.of(BigInt(value)) : Int32Array.of(value);
  return { ...feeds, [input]: new ort.Tensor(t.type as 'int64', data as BigInt64Array, t.dims.slice()) };
}

/** The first element of an integer feed, as a number. */
export function scalarValue(t: ort.Tensor): number {
  return Number((t.data as ArrayLike<number | bigint>)[0]);
}
