/**
 * `latency` (`--measure-latency`): the dense and the pruned model's latency in onnxruntime on the CPU, one intra-op
 * thread, measured end to end on seeded inputs of the verification sizes (batch --verify-batch or 1, other symbolic
 * dims --verify-seq or 8): 5 warm-up runs each, then up to 50 interleaved rounds (at most ~10 s), medians. Puts
 * `report.latency = { dense_ms, pruned_ms, ratio, ep, threads, rounds, inputs }`; warns when the pruned model is not
 * faster. The figures are this machine's, for this run: the benches, not tests, make speed claims.
 */
import { modelOf } from '../src/pipeline/artifacts';
import type { PruneOptions } from '../src/pipeline/options';
import type { Pass } from '../src/pipeline/pass';
import { verificationFeeds } from '../src/ort/feeds';
import { measureLatency } from '../src/ort/latency';

export function latencyPass(options: PruneOptions): Pass {
  return {
    name: 'latency',
    description: 'measure the dense and pruned models\' latency in onnxruntime (interleaved medians)',
    reads: ['model', 'artifacts.dense'],
    writes: [],
    async run(ctx) {
      const pruned = modelOf(ctx, 'latency');
      const dense = ctx.artifacts.original ?? ctx.artifacts.dense;
      if (!dense) throw new Error("pass 'latency' needs the dense model (ctx.artifacts.dense), kept by the 'prune' pass");
      const feeds = verificationFeeds(dense, { batch: options.verifyBatch ?? 1, seq: options.verifySeq, seed: options.seed ?? 0 });
      const r = await measureLatency([dense, pruned], feeds, { warmup: 5, repeats: 50, budgetMs: 10000 });
      const [d, p] = r.medians;
      ctx.report.latency = {
        dense_ms: d, pruned_ms: p, ratio: p / d, ep: 'cpu', threads: 1, rounds: r.rounds,
        inputs: Object.fromEntries(Object.entries(feeds).map(([k, v]) => [k, v.dims.slice()])),
      };
      ctx.log(`latency: dense ${d.toFixed(3)} ms, pruned ${p.toFixed(3)} ms (${(p / d).toFixed(2)}×; medians of ${r.rounds} interleaved rounds, 1 thread)`);
      if (p >= d) ctx.warn(`latency: the pruned model is not faster than the dense one here (${p.toFixed(3)} ms vs ${d.toFixed(3)} ms, ${(p / d).toFixed(2)}×)`);
    },
  };
}
