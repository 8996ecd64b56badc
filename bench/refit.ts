/**
 * Times of the reconstruction math (src/score/refit.ts, src/util/linalg.ts) at layer sizes d_in = 256, 1024, 3072
 * and d_out = 1024. Build first (`npm run build`), then:
 *
 *   node dist/bench/refit.js [--sizes 256,1024,3072] [--dout 1024] [--obs-steps 64]
 *
 * Per size: the damped Cholesky of H (d_in³/3), the SPD inverse, refitKept with 25 % and 50 % of the columns
 * removed, refitAffine at 50 %, the OBS path over single columns (`--obs-steps` steps; the full path at 256) and
 * over 64-column units (heads), and reconstructionError. H is a random SPD matrix (a correlated Toeplitz part plus
 * a random low-rank part), W Gaussian. Single-threaded JS; process CPU time (user + system), median of 3 runs,
 * 1 run above 2 s.
 */
import { dampedCholesky, inverseFromCholesky } from '../src/util/linalg';
import { blockUnits, obsPath, reconstructionError, refitAffine, refitKept } from '../src/score/refit';
import { rng } from '../src/util/rng';

function parseArgs(argv: string[]): { sizes: number[]; dOut: number; obsSteps: number } {
  const a = { sizes: [256, 1024, 3072], dOut: 1024, obsSteps: 64 };
  for (let i = 0; i < argv.length; i++) {
    if (argv[i] === '--sizes') a.sizes = argv[++i].split(',').map(Number);
    else if (argv[i] === '--dout') a.dOut = Number(argv[++i]);
    else if (argv[i] === '--obs-steps') a.obsSteps = Number(argv[++i]);
    else throw new Error(`unknown argument ${argv[i]}`);
  }
  return a;
}

function gaussian(seed: number): () => number {
  const r = rng(seed);
  return () => Math.sqrt(-2 * Math.log(Math.max(r(), 1e-300))) * Math.cos(2 * Math.PI * r());
}

/** H = Toeplitz(0.6^|i−j|)·d + Σ_{t<32} v_t v_tᵀ (SPD, mildly conditioned, correlated). */
function randomGram(d: number, seed: number): Float64Array {
  const g = gaussian(seed);
  const H = new Float64Array(d * d);
  for (let i = 0; i < d; i++) for (let j = 0; j < d; j++) H[i * d + j] = d * 0.6 ** Math.abs(i - j);
  const v = new Float64Array(d);
  for (let t = 0; t < 32; t++) {
    for (let i = 0; i < d; i++) v[i] = g() * Math.sqrt(d);
    for (let i = 0; i < d; i++) for (let j = 0; j < d; j++) H[i * d + j] += v[i] * v[j];
  }
  return H;
}

/** CPU time of this process in ms (less disturbed than wall time by other jobs on a shared machine). */
function cpuMs(): number {
  const u = process.cpuUsage();
  return (u.user + u.system) / 1000;
}

function time<T>(fn: () => T): { ms: number; value: T } {
  const first = cpuMs();
  let value = fn();
  const ms0 = cpuMs() - first;
  if (ms0 > 2000) return { ms: ms0, value };
  const runs = [ms0];
  for (let i = 0; i < 2; i++) {
    const t0 = cpuMs();
    value = fn();
    runs.push(cpuMs() - t0);
  }
  runs.sort((a, b) => a - b);
  return { ms: runs[1], value };
}

function fmt(ms: number): string {
  return ms >= 1000 ? `${(ms / 1000).toFixed(2)} s` : `${ms.toFixed(1)} ms`;
}

function main(): void {
  const { sizes, dOut, obsSteps } = parseArgs(process.argv.slice(2));
  console.log(`node ${process.version}, d_out = ${dOut}, CPU times`);
  for (const dIn of sizes) {
    const H = randomGram(dIn, dIn);
    const g = gaussian(dIn + 1);
    const W = Float32Array.from({ length: dOut * dIn }, g);
    const sum = Float64Array.from({ length: dIn }, () => g() * dIn);
    let meanDiag = 0;
    for (let j = 0; j < dIn; j++) meanDiag += H[j * dIn + j] / dIn;
    const rows: [string, string][] = [];
    const chol = time(() => dampedCholesky(H, dIn, { scale: meanDiag }));
    rows.push(['damped Cholesky', fmt(chol.ms)]);
    rows.push(['SPD inverse (from L)', fmt(time(() => inverseFromCholesky(chol.value.L, dIn)).ms)]);
    for (const frac of [0.25, 0.5]) {
      const removed = Array.from({ length: Math.round(frac * dIn) }, (_, i) => Math.floor(i / frac));
      const r = time(() => refitKept(W, dOut, dIn, H, removed));
      const err = reconstructionError(W, r.value.W, H, dOut, dIn);
      rows.push([`refitKept ${frac * 100} % removed`, `${fmt(r.ms)} (relative error ${err.relative.toExponential(2)})`]);
    }
    const half = Array.from({ length: dIn / 2 }, (_, i) => 2 * i);
    rows.push(['refitAffine 50 % removed', fmt(time(() => refitAffine(W, undefined, dOut, dIn, H, sum, 4 * dIn, half)).ms)]);
    rows.push(['reconstructionError', fmt(time(() => reconstructionError(W, W, H, dOut, dIn)).ms)]);
    const steps = dIn <= 256 ? dIn : Math.min(obsSteps, dIn);
    const o1 = time(() => obsPath(W, dOut, dIn, H, blockUnits(dIn, 1), { steps }));
    rows.push([`obsPath single columns, ${steps} steps`, `${fmt(o1.ms)} (${fmt(o1.ms / steps)}/step incl. the inverse)`]);
    const heads = dIn / 64;
    const oh = time(() => obsPath(W, dOut, dIn, H, blockUnits(heads, 64), { steps: heads / 2, levels: [heads / 4, heads / 2] }));
    rows.push([`obsPath ${heads} units of 64 columns, ${heads / 2} steps`, fmt(oh.ms)]);
    console.log(`\nd_in = ${dIn}`);
    for (const [k, v] of rows) console.log(`  ${k.padEnd(42)} ${v}`);
  }
}

main();
