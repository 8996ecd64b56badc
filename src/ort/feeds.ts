/**
 * Inputs for verification, and running models on them.
 *
 * Seeded random inputs: the first symbolic dim of each input (when named and on axis 0) = batch (default 2),
 * every other symbolic dim = seq (default 8). Each integer input gets its own valid range (intInputRanges): token
 * ids stay below the row count of the table they index, lengths within the sequence, others in {0, 1}.
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

/** A half-open range [low, high) of values for an integer input, and what it comes from. */
export interface IntRange {
  low: number;
  high: number;
  /** e.g. `Gather(embed)[0] rows` or `compared with Range (a length)`; `default` when nothing bounds it. */
  from: string;
}

/** The range of integer inputs that nothing bounds: {0, 1} (masks, flags, segment ids of two segments). */
export const DEFAULT_INT_RANGE: IntRange = { low: 0, high: 2, from: 'default' };

/** Ops that pass an integer input's values on unchanged (reading them as input 0). */
const INT_CARRIERS = new Set(['Cast', 'Reshape', 'Unsqueeze', 'Squeeze', 'Flatten', 'Identity', 'Expand']);
const COMPARISONS = new Set(['Less', 'LessOrEqual', 'Greater', 'GreaterOrEqual']);

/** Whether `name` is computed from a Range node through carrier ops (positions 0..n−1 of a sequence). */
function fromRange(model: Model, name: string): boolean {
  const g = model.graph;
  let cur = name;
  for (let hops = 0; hops < 8; hops++) {
    const p = g.producer(cur);
    if (!p || p.domain !== '') return false;
    if (p.opType === 'Range') return true;
    if (!INT_CARRIERS.has(p.opType)) return false;
    cur = p.inputs[0];
  }
  return false;
}

/** The value of a one-element constant `name`, else undefined. */
function scalarConstant(model: Model, name: string): number | undefined {
  const k = model.graph.resolveConstant(name);
  return k && k.size === 1 ? k.toNumbers()[0] : undefined;
}

/**
 * The valid range of each integer graph input of `model`, from how it is used (following its values through
 * Cast / Reshape / Unsqueeze / Squeeze / Flatten / Identity / Expand, and Add / Sub of a one-element constant,
 * which shifts them; at most 16 such steps):
 *   - indices of a Gather whose data is a constant (an embedding table): [0, rows on the gathered axis), shifted
 *     back by the constant added on the way (position ids + 2 into a table of 514 rows: [0, 512));
 *   - compared (Less / Greater / ...OrEqual) with positions made by a Range (a sequence length): [1, seq + 1);
 *   - otherwise DEFAULT_INT_RANGE. Several bounds: the tightest.
 * `seq` is the value of the non-batch symbolic dims the inputs will have.
 */
export function intInputRanges(model: Model, seq: number): Record<string, IntRange> {
  const g = model.graph;
  const out: Record<string, IntRange> = {};
  for (const vi of g.realInputs) {
    const t = valueTypeOf(vi);
    if (!t || (t.dtype !== DataType.INT64 && t.dtype !== DataType.INT32)) continue;
    const name = vi.name ?? '';
    let low = -Infinity, high = Infinity;
    const from: string[] = [];
    // Tensors carrying the input's values, each with the constant added to them on the way.
    const todo: { tensor: string; offset: number }[] = [{ tensor: name, offset: 0 }];
    const seen = new Set<string>();
    for (let k = 0; k < todo.length && k < 16; k++) {
      const { tensor, offset } = todo[k];
      if (seen.has(tensor)) continue;
      seen.add(tensor);
      for (const c of g.consumers(tensor)) {
        if (c.domain !== '') continue;
        const other = c.inputs[0] === tensor ? c.inputs[1] : c.inputs[0];
        if (INT_CARRIERS.has(c.opType) && c.inputs[0] === tensor) {
          todo.push({ tensor: c.outputs[0], offset });
        } else if ((c.opType === 'Add' || (c.opType === 'Sub' && c.inputs[0] === tensor)) && other !== undefined) {
          const v = scalarConstant(model, other);
          if (v !== undefined && Number.isInteger(v)) todo.push({ tensor: c.outputs[0], offset: offset + (c.opType === 'Add' ? v : -v) });
        } else if (c.opType === 'Gather' && c.inputs[1] === tensor) {
          const table = g.resolveConstant(c.inputs[0]);
          if (!table || !table.dims.length) continue;
          const rank = table.dims.length;
          const axis = ((c.attrInt('axis', 0) % rank) + rank) % rank;
          low = Math.max(low, -offset);
          high = Math.min(high, table.dims[axis] - offset);
          from.push(`Gather(${c.label}) rows`);
        } else if (COMPARISONS.has(c.opType) && other && fromRange(model, other)) {
          low = Math.max(low, 1 - offset);
          high = Math.min(high, seq + 1 - offset);
          from.push(`compared with Range (a length)`);
        }
      }
    }
    low = Math.max(0, low);
    out[name] = from.length && high > low ? { low, high, from: from.join(', ') } : { ...DEFAULT_INT_RANGE };
  }
  return out;
}

/**
 * Seeded inputs: the first symbolic dim of each input = batch, other symbolic dims = seq; integer inputs in their
 * own ranges (intInputRanges).
 */
export function verificationFeeds(model: Model, opts: FeedOptions = {}): Feeds {
  const batch = opts.batch ?? 2;
  const seq = opts.seq ?? 8;
  const dims: Record<string, number> = {};
  for (const vi of model.graph.realInputs) {
    const t = valueTypeOf(vi);
    (t?.shape ?? []).forEach((d, axis) => {
      if (typeof d === 'string' && dims[d] === undefined) dims[d] = axis === 0 ? batch : seq;
    });
  }
  return randomInputs(model, { seed: opts.seed ?? 0, dims, defaultDim: seq, intRanges: intInputRanges(model, seq) });
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
