/** Log-softmax of x[off, off + n) into out[outOff, outOff + n): x − (max + log Σ exp(x − max)). */
export function logSoftmaxRow(x: ArrayLike<number>, off: number, n: number, out: Float32Array | Float64Array, outOff = 0): void {
  let m = -Infinity;
  for (let j = 0; j < n; j++) m = Math.max(m, x[off + j]);
  let s = 0;
  for (let j = 0; j < n; j++) s += Math.exp(x[off + j] - m);
  const lse = m + Math.log(s);
  for (let j = 0; j < n; j++) out[outOff + j] = x[off + j] - lse;
}
