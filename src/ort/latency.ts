/**
 * Wall-clock latency of models in onnxruntime (one intra-op thread, as every session here): warm-up runs, then
 * `repeats` rounds in which every model runs once in turn (interleaved, so that machine drift hits them alike); the
 * result is each model's median. Used by `--measure-latency` and bench/latency.
 */
import type { Model } from '../ir/model';
import { createSession, type ort } from './session';

export interface LatencyOptions {
  /** Untimed runs of each model first (default 5). */
  warmup?: number;
  /** Timed rounds (default 50). */
  repeats?: number;
  /** Stop timing after this many ms of measurement (at least 5 rounds; default: no limit). */
  budgetMs?: number;
}

export interface Latency {
  /** Median ms per model, in the order given. */
  medians: number[];
  /** Every timed run, per model. */
  times: number[][];
  rounds: number;
}

export function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s.length % 2 ? s[(s.length - 1) >> 1] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2;
}

/** Interleaved medians of already open sessions on `feeds`. */
export async function timeSessions(sessions: ort.InferenceSession[], feeds: Record<string, ort.Tensor>, opts: LatencyOptions = {}): Promise<Latency> {
  for (let i = 0; i < (opts.warmup ?? 5); i++) for (const s of sessions) await s.run(feeds);
  const times = sessions.map(() => [] as number[]);
  const repeats = opts.repeats ?? 50;
  const start = process.hrtime.bigint();
  let rounds = 0;
  for (; rounds < repeats; rounds++) {
    if (opts.budgetMs !== undefined && rounds >= 5 && Number(process.hrtime.bigint() - start) / 1e6 > opts.budgetMs) break;
    for (let k = 0; k < sessions.length; k++) {
      const t0 = process.hrtime.bigint();
      await sessions[k].run(feeds);
      times[k].push(Number(process.hrtime.bigint() - t0) / 1e6);
    }
  }
  return { medians: times.map(median), times, rounds };
}

/** Interleaved medians of `models` on `feeds` (sessions opened and released here). */
export async function measureLatency(models: Model[], feeds: Record<string, ort.Tensor>, opts: LatencyOptions = {}): Promise<Latency> {
  const sessions: ort.InferenceSession[] = [];
  try {
    for (const m of models) sessions.push(await createSession(m));
    return await timeSessions(sessions, feeds, opts);
  } finally {
    for (const s of sessions) await s.release();
  }
}
