/**
 * Fitness of a candidate for the search: how far the candidate model's outputs are from the dense model's on
 * calibration batches. Distribution outputs (a Softmax / LogSoftmax, or logits of a linear head: the output of a
 * MatMul / Gemm, or of an Add right after one, rank ≥ 2 with ≥ 2 classes on the last axis) use the mean per
 * position of KL(dense ‖ candidate) over the last axis — over every class up to FULL_KL_CLASSES, else over the
 * dense model's top TOP_K classes, both renormalized there. Every other output uses the normalized squared error
 * ‖y − ŷ‖² / ‖y‖². The fitness is the mean over outputs. The dense outputs are computed once per batch and kept.
 */
import { float16ToFloat32 } from '../ir/dtype';
import { UserError } from '../ir/errors';
import { logSoftmaxRow } from '../util/softmax';
import type { Model } from '../ir/model';
import type { Node } from '../ir/node';
import { calibBatches, type CalibSet } from '../ort/calib';
import { createSession, ort, run } from '../ort/session';
import { ortModel } from '../ort/feeds';

export type OutputFitness = 'kl' | 'kl-top-k' | 'mse';

/** Classes up to which KL uses the whole distribution. */
export const FULL_KL_CLASSES = 4096;
/** Classes kept from the dense distribution beyond that. */
export const TOP_K = 512;

export interface OutputTarget {
  kind: OutputFitness;
  /** kl: log-probabilities [positions × classes]; kl-top-k: the dense top-K log-probabilities (renormalized). */
  logp?: Float32Array;
  /** kl-top-k: the top-K class indices per position. */
  top?: Int32Array;
  classes?: number;
  positions?: number;
  /** mse: the dense output and its energy. */
  values?: Float32Array;
  energy?: number;
}

/** Per output: Σ of the loss over the batch and its weight (positions, or energy for mse). */
export type BatchLoss = { num: number; den: number }[];

/** The node that computes output `name`, looking through a final Cast / Identity (a float16 model cast to float32). */
function outputProducer(model: Model, name: string): Node | undefined {
  let p = model.graph.producer(name);
  for (let k = 0; k < 4 && p && (p.opType === 'Cast' || p.opType === 'Identity'); k++) p = model.graph.producer(p.inputs[0]);
  return p;
}

function outputKind(model: Model, name: string, dims: readonly number[]): OutputFitness {
  const g = model.graph;
  const p = outputProducer(model, name);
  if (!p || dims.length < 2 || !(dims[dims.length - 1] >= 2)) return 'mse';
  const classes = dims[dims.length - 1];
  const kl: OutputFitness = classes > FULL_KL_CLASSES ? 'kl-top-k' : 'kl';
  if (p.opType === 'Softmax' || p.opType === 'LogSoftmax') {
    // A distribution over the last axis only (a segmentation map's softmax over channels is compared by MSE).
    const rank = dims.length;
    const axis = p.attrInt('axis', (model.opset('') ?? 13) >= 13 ? -1 : 1);
    const a = axis < 0 ? axis + rank : axis;
    return a === rank - 1 ? kl : 'mse';
  }
  const linear = (op: string) => op === 'MatMul' || op === 'Gemm';
  if (linear(p.opType)) return kl;
  if (p.opType === 'Add' && p.inputs.some((i) => linear(g.producer(i)?.opType ?? ''))) return kl;
  return 'mse';
}

/** Log-probabilities of row r (length V) of `x` into `out` at offset `o`: from logits (or log-probabilities), or from probabilities. */
function logProbRow(x: Float32Array, r: number, V: number, out: Float32Array, o: number, kind: 'logits' | 'probs' | 'logprobs'): void {
  const off = r * V;
  if (kind === 'probs') {
    let s = 0;
    for (let v = 0; v < V; v++) s += Math.max(x[off + v], 0);
    for (let v = 0; v < V; v++) out[o + v] = Math.log(Math.max(x[off + v], 1e-30) / (s || 1));
    return;
  }
  logSoftmaxRow(x, off, V, out, o);
}

export class FitnessEvaluator {
  private constructor(
    private readonly session: ort.InferenceSession,
    readonly batches: Record<string, ort.Tensor>[],
    readonly targets: OutputTarget[][],
    readonly outputs: string[],
    readonly kinds: OutputFitness[],
    private readonly probKind: ('logits' | 'probs' | 'logprobs')[],
  ) {}

  /** Runs `dense` on the calibration batches once and prepares the session of `search` (the search model). */
  static async create(dense: Model, search: Model, calib: CalibSet, batch: number): Promise<FitnessEvaluator> {
    const outputs = dense.graph.outputs.map((o) => o.name ?? '');
    let used: string[] | undefined;
    const batches = [...calibBatches(calib, batch)];
    if (!batches.length) throw new UserError(`--allocation search: the calibration set (${calib.samples} sample(s)) makes no batch for the model`);
    const denseSession = await createSession(ortModel(dense));
    const targets: OutputTarget[][] = [];
    let kinds: OutputFitness[] | undefined;
    const pk = (o: string) => {
      const op = outputProducer(dense, o)?.opType;
      return op === 'Softmax' ? 'probs' as const : op === 'LogSoftmax' ? 'logprobs' as const : 'logits' as const;
    };
    try {
      for (const feeds of batches) {
        const res = await run(denseSession, feeds, outputs);
        if (!used) {
          // Only float32 outputs are compared (an index or a mask output has no distance to speak of).
          used = outputs.filter((o) => FLOAT_TYPES.has(res[o].type));
          if (!used.length) throw new UserError(`--allocation search: the model has no float output to compare candidates on (outputs: ${outputs.join(', ')})`);
          kinds = used.map((o) => outputKind(dense, o, res[o].dims as number[]));
        }
        targets.push(used.map((o, i) => denseTarget(res[o], kinds![i], pk(o))));
      }
    } finally {
      await denseSession.release();
    }
    const session = await createSession(search);
    return new FitnessEvaluator(session, batches, targets, used ?? [], kinds ?? [], (used ?? []).map(pk));
  }

  async release(): Promise<void> {
    await this.session.release();
  }

  /** The loss of the candidate fed as `weights` on batch `b`. */
  async batchLoss(weights: Record<string, ort.Tensor>, b: number): Promise<BatchLoss> {
    const res = await run(this.session, { ...this.batches[b], ...weights }, this.outputs);
    return this.outputs.map((o, i) => lossOf(res[o], this.targets[b][i], this.probKind[i]));
  }
}

/** Mean over outputs of each output's loss over the batches given. */
export function combine(losses: BatchLoss[]): number {
  if (!losses.length) return NaN;
  let total = 0;
  const n = losses[0].length;
  for (let i = 0; i < n; i++) {
    let num = 0, den = 0;
    for (const l of losses) { num += l[i].num; den += l[i].den; }
    total += den > 0 ? num / den : 0;
  }
  return n ? total / n : 0;
}

const FLOAT_TYPES = new Set(['float32', 'float16', 'float64']);

/** A float output's values as float32 (float16 decoded). */
function floatData(t: ort.Tensor): Float32Array {
  if (t.type === 'float32') return t.data as Float32Array;
  const d = t.data as ArrayLike<number>;
  const out = new Float32Array(d.length);
  if (t.type === 'float16') for (let i = 0; i < d.length; i++) out[i] = float16ToFloat32(Number(d[i]));
  else for (let i = 0; i < d.length; i++) out[i] = d[i];
  return out;
}

function denseTarget(t: ort.Tensor, kind: OutputFitness, pk: 'logits' | 'probs' | 'logprobs'): OutputTarget {
  const x = Float32Array.from(floatData(t));
  if (kind === 'mse') {
    let e = 0;
    for (let i = 0; i < x.length; i++) e += x[i] * x[i];
    return { kind, values: x, energy: e };
  }
  const V = t.dims[t.dims.length - 1];
  const P = x.length / V;
  const row = new Float32Array(V);
  if (kind === 'kl') {
    const logp = new Float32Array(x.length);
    for (let r = 0; r < P; r++) logProbRow(x, r, V, logp, r * V, pk);
    return { kind, logp, classes: V, positions: P };
  }
  const top = new Int32Array(P * TOP_K);
  const logp = new Float32Array(P * TOP_K);
  const idx = Array.from({ length: V }, (_, v) => v);
  for (let r = 0; r < P; r++) {
    logProbRow(x, r, V, row, 0, pk);
    idx.sort((a, b) => row[b] - row[a] || a - b);
    let m = -Infinity;
    for (let k = 0; k < TOP_K; k++) m = Math.max(m, row[idx[k]]);
    let s = 0;
    for (let k = 0; k < TOP_K; k++) s += Math.exp(row[idx[k]] - m);
    const lse = m + Math.log(s);
    for (let k = 0; k < TOP_K; k++) {
      top[r * TOP_K + k] = idx[k];
      logp[r * TOP_K + k] = row[idx[k]] - lse;
    }
  }
  return { kind, top, logp, classes: V, positions: P };
}

function lossOf(t: ort.Tensor, target: OutputTarget, pk: 'logits' | 'probs' | 'logprobs'): { num: number; den: number } {
  const y = floatData(t);
  if (target.kind === 'mse') {
    const d = target.values!;
    let s = 0;
    for (let i = 0; i < d.length; i++) { const e = (y[i] ?? NaN) - d[i]; s += e * e; }
    return { num: Number.isFinite(s) ? s : Infinity, den: target.energy! || 1 };
  }
  const V = target.classes!, P = target.positions!;
  let kl = 0;
  if (target.kind === 'kl') {
    const row = new Float32Array(V);
    const lp = target.logp!;
    for (let r = 0; r < P; r++) {
      logProbRow(y, r, V, row, 0, pk);
      const off = r * V;
      for (let v = 0; v < V; v++) { const a = lp[off + v]; kl += Math.exp(a) * (a - row[v]); }
    }
  } else {
    const row = new Float32Array(V);
    const lp = target.logp!, top = target.top!;
    for (let r = 0; r < P; r++) {
      logProbRow(y, r, V, row, 0, pk);
      let m = -Infinity;
      for (let k = 0; k < TOP_K; k++) m = Math.max(m, row[top[r * TOP_K + k]]);
      let s = 0;
      for (let k = 0; k < TOP_K; k++) s += Math.exp(row[top[r * TOP_K + k]] - m);
      const lse = m + Math.log(s);
      for (let k = 0; k < TOP_K; k++) { const a = lp[r * TOP_K + k]; kl += Math.exp(a) * (a - (row[top[r * TOP_K + k]] - lse)); }
    }
  }
  return { num: Number.isFinite(kl) ? Math.max(0, kl) : Infinity, den: P };
}
