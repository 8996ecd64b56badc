/** Shape rules for neural-network ops: convolutions, pooling, normalizations, resizing, RNNs, quantization. */
import { DataType } from '../dtype';
import { type Rule, type RuleCtx, normAxis } from './context';
import { type Dim, type Shape, addDim, divDim, mulDim } from './sym';
import { numbersOf } from './values';

interface Window {
  kernel: number[];
  strides: number[];
  dilations: number[];
  pads: number[];
  autoPad: string;
}

/** Kernel/stride/dilation/pad attributes for `n` spatial dims (kernel from the attribute or `kernelDflt`). */
function windowAttrs(c: RuleCtx, n: number, kernelDflt?: Dim[]): Window | undefined {
  const kernel = c.attrInts('kernel_shape') ?? numbersOf(kernelDflt ? { dims: [n], data: kernelDflt } : undefined);
  if (!kernel || kernel.length !== n) return undefined;
  const pads = c.attrInts('pads') ?? new Array<number>(2 * n).fill(0);
  return {
    kernel,
    strides: c.attrInts('strides') ?? new Array<number>(n).fill(1),
    dilations: c.attrInts('dilations') ?? new Array<number>(n).fill(1),
    pads: pads.length === 2 * n ? pads : new Array<number>(2 * n).fill(0),
    autoPad: c.node.attrString('auto_pad', 'NOTSET'),
  };
}

/** ceil(a / s) for a dim (exact for numbers; symbolic only when s divides it). */
function ceilDiv(a: Dim, s: number): Dim {
  if (typeof a === 'number') return Math.ceil(a / s);
  return s === 1 ? a : divDim(a, s);
}

/** Output size of one spatial axis of a convolution or pooling window. */
export function windowOut(inDim: Dim, w: Window, i: number, n: number, ceilMode = false): Dim {
  const k = w.kernel[i], s = w.strides[i], d = w.dilations[i];
  const ek = (k - 1) * d + 1;
  if (w.autoPad === 'SAME_UPPER' || w.autoPad === 'SAME_LOWER') return ceilDiv(inDim, s);
  const pad = w.autoPad === 'VALID' ? 0 : w.pads[i] + w.pads[i + n];
  if (typeof inDim !== 'number') return s === 1 ? addDim(inDim, pad - ek + 1) : undefined;
  const span = inDim + pad - ek;
  if (!ceilMode) return Math.floor(span / s) + 1;
  let out = Math.ceil(span / s) + 1;
  // The last window must start inside the input or the left padding (PyTorch / ONNX ceil_mode rule).
  if ((out - 1) * s >= inDim + (w.autoPad === 'VALID' ? 0 : w.pads[i])) out--;
  return out;
}

function convLike(xIdx: number, wIdx: number, outType?: (c: RuleCtx) => number | undefined): Rule {
  return (c) => {
    const x = c.shape(xIdx);
    const wt = c.shape(wIdx);
    const dtype = outType ? outType(c) : c.dtype(xIdx);
    const r = x?.length ?? wt?.length;
    if (r === undefined || r < 3) return c.out(0, dtype);
    const n = r - 2;
    const w = windowAttrs(c, n, wt?.slice(2));
    const out: Shape = [x?.[0], wt?.[0]];
    for (let i = 0; i < n; i++) out.push(w && x ? windowOut(x[2 + i], w, i, n) : undefined);
    c.out(0, dtype, out);
  };
}

const convTranspose: Rule = (c) => {
  const x = c.shape(0);
  const wt = c.shape(1);
  const r = x?.length ?? wt?.length;
  if (r === undefined || r < 3) return c.out(0, c.dtype(0));
  const n = r - 2;
  const group = c.attrInt('group', 1);
  const w = windowAttrs(c, n, wt?.slice(2));
  const out: Shape = [x?.[0], mulDim(wt?.[1], group)];
  const given = c.attrInts('output_shape');
  const outPad = c.attrInts('output_padding') ?? new Array<number>(n).fill(0);
  for (let i = 0; i < n; i++) {
    if (given && given.length >= n) {
      out.push(given[given.length - n + i]);
      continue;
    }
    const inDim = x?.[2 + i];
    if (!w || inDim === undefined) {
      out.push(undefined);
      continue;
    }
    const s = w.strides[i];
    if (w.autoPad === 'SAME_UPPER' || w.autoPad === 'SAME_LOWER') {
      out.push(mulDim(inDim, s));
      continue;
    }
    const ek = (w.kernel[i] - 1) * w.dilations[i] + 1;
    const pad = w.autoPad === 'VALID' ? 0 : w.pads[i] + w.pads[i + n];
    // s*(in-1) + output_padding + ek - pads
    out.push(addDim(mulDim(inDim, s), -s + outPad[i] + ek - pad));
  }
  c.out(0, c.dtype(0), out);
};

function pool(withIndices: boolean): Rule {
  return (c) => {
    const x = c.shape(0);
    if (!x || x.length < 3) {
      c.out(0, c.dtype(0));
      return withIndices ? c.out(1, DataType.INT64) : undefined;
    }
    const n = x.length - 2;
    const w = windowAttrs(c, n);
    const ceilMode = c.attrInt('ceil_mode', 0) === 1;
    const out: Shape = [x[0], x[1]];
    for (let i = 0; i < n; i++) out.push(w ? windowOut(x[2 + i], w, i, n, ceilMode) : undefined);
    c.out(0, c.dtype(0), out);
    if (withIndices) c.out(1, DataType.INT64, out);
  };
}

const maxUnpool: Rule = (c) => {
  const x = c.shape(0);
  if (c.has(2)) {
    const v = c.value(2);
    return c.out(0, c.dtype(0), v ? v.data : c.shape(2)?.length === 1 && typeof c.shape(2)![0] === 'number' ? new Array<Dim>(c.shape(2)![0] as number).fill(undefined) : undefined);
  }
  if (!x || x.length < 3) return c.out(0, c.dtype(0));
  const n = x.length - 2;
  const w = windowAttrs(c, n);
  const out: Shape = [x[0], x[1]];
  for (let i = 0; i < n; i++) {
    // (in - 1) * stride - pads + kernel
    out.push(w ? addDim(mulDim(x[2 + i], w.strides[i]), -w.strides[i] - w.pads[i] - w.pads[i + n] + w.kernel[i]) : undefined);
  }
  c.out(0, c.dtype(0), out);
};

const globalPool: Rule = (c) => {
  const x = c.shape(0);
  c.out(0, c.dtype(0), x ? [x[0], x[1], ...x.slice(2).map(() => 1)] : undefined);
};

const batchNorm: Rule = (c) => {
  c.out(0, c.dtype(0), c.shape(0));
  const ch = c.shape(0)?.[1] ?? c.shape(1)?.[0];
  for (let k = 1; k < c.nOut; k++) c.out(k, c.dtype(1) ?? c.dtype(0), [ch]);
};

const layerNorm: Rule = (c) => {
  const x = c.shape(0);
  c.out(0, c.dtype(0), x);
  const stash = c.attrInt('stash_type', 1) === 1 ? DataType.FLOAT : c.dtype(0);
  const axis = x ? normAxis(c.attrInt('axis', -1), x.length) : undefined;
  const st = x && axis !== undefined ? x.map((d, i) => (i < axis ? d : 1)) : undefined;
  c.out(1, stash, st);
  c.out(2, stash, st);
};

const same: Rule = (c) => c.out(0, c.dtype(0), c.shape(0));

/** floor(in * scale) for one axis, with the product rounded to float32 as onnxruntime computes it. */
function scaleDim(d: Dim, scale: Dim): Dim {
  if (typeof scale !== 'number') return undefined;
  if (typeof d === 'number') return Math.floor(Math.fround(Math.fround(d) * Math.fround(scale)));
  if (scale === 1) return d;
  return Number.isInteger(scale) ? mulDim(d, scale) : undefined;
}

const resize: Rule = (c) => {
  const x = c.shape(0);
  if (!x) return c.out(0, c.dtype(0));
  const r = x.length;
  const axes = (c.opset >= 18 ? c.attrInts('axes') : undefined)?.map((a) => (a < 0 ? a + r : a)) ?? x.map((_, i) => i);
  const scalesIdx = c.opset < 11 ? 1 : 2;
  const scales = c.has(scalesIdx) ? c.value(scalesIdx) : undefined;
  const sizes = c.opset >= 11 && c.has(3) ? c.value(3) : undefined;
  const out: Shape = x.slice();
  const policy = c.node.attrString('keep_aspect_ratio_policy', 'stretch');
  if (sizes && sizes.data.length === axes.length) {
    if (policy !== 'stretch' && c.opset >= 18) {
      const ratios = axes.map((a, k) => (typeof sizes.data[k] === 'number' && typeof x[a] === 'number' ? (sizes.data[k] as number) / (x[a] as number) : NaN));
      const s = policy === 'not_larger' ? Math.min(...ratios) : Math.max(...ratios);
      for (const a of axes) out[a] = Number.isNaN(s) ? undefined : Math.round(s * (x[a] as number));
    } else {
      axes.forEach((a, k) => (out[a] = sizes.data[k]));
    }
  } else if (scales && scales.data.length === axes.length) {
    axes.forEach((a, k) => (out[a] = scaleDim(x[a], scales.data[k])));
  } else {
    // Scales/sizes not known (or given by a non-constant input): rank only.
    for (const a of axes) out[a] = undefined;
  }
  c.out(0, c.dtype(0), out);
};

const upsample: Rule = (c) => {
  const x = c.shape(0);
  if (!x) return c.out(0, c.dtype(0));
  const scales = c.opset < 9 ? c.node.attrFloats('scales') : c.value(1)?.data;
  c.out(0, c.dtype(0), scales && scales.length === x.length ? x.map((d, i) => scaleDim(d, scales[i])) : x.map(() => undefined));
};

const rnn: Rule = (c) => {
  const x = c.shape(0);
  const rec = c.shape(2);
  const hidden: Dim = c.node.hasAttr('hidden_size') ? c.attrInt('hidden_size', 0) : rec?.[2];
  const dirs = c.node.attrString('direction', 'forward') === 'bidirectional' ? 2 : 1;
  const layout = c.attrInt('layout', 0);
  const dtype = c.dtype(0);
  if (!x || x.length !== 3) {
    for (let k = 0; k < c.nOut; k++) c.out(k, dtype);
    return;
  }
  const [seq, batch] = layout === 0 ? [x[0], x[1]] : [x[1], x[0]];
  c.out(0, dtype, layout === 0 ? [seq, dirs, batch, hidden] : [batch, seq, dirs, hidden]);
  const state: Shape = layout === 0 ? [dirs, batch, hidden] : [batch, dirs, hidden];
  c.out(1, dtype, state);
  c.out(2, dtype, state);
};

const quantize: Rule = (c) => {
  const dt = c.attrInt('output_dtype', 0) || c.dtype(2) || DataType.UINT8;
  c.out(0, dt, c.shape(0));
};

const dequantize: Rule = (c) => c.out(0, c.dtype(1) ?? DataType.FLOAT, c.shape(0));

const dynQuantize: Rule = (c) => {
  c.out(0, DataType.UINT8, c.shape(0));
  c.out(1, DataType.FLOAT, []);
  c.out(2, DataType.UINT8, []);
};

const gridSample: Rule = (c) => {
  const x = c.shape(0);
  const g = c.shape(1);
  if (!x || !g) return c.out(0, c.dtype(0));
  c.out(0, c.dtype(0), [x[0], x[1], ...g.slice(1, -1)]);
};

const roiAlign: Rule = (c) => {
  const x = c.shape(0);
  const rois = c.shape(1);
  c.out(0, c.dtype(0), [rois?.[0], x?.[1], c.attrInt('output_height', 1), c.attrInt('output_width', 1)]);
};

const maxRoiPool: Rule = (c) => {
  const x = c.shape(0);
  const rois = c.shape(1);
  c.out(0, c.dtype(0), [rois?.[0], x?.[1], ...(c.attrInts('pooled_shape') ?? [undefined, undefined])]);
};

/** The shape rules of neural-network ops, by behaviour (src/ir/ops names the rule of each op). */
export const NN_SHAPES = {
  conv: convLike(0, 1),
  convInteger: convLike(0, 1, () => DataType.INT32),
  qlinearConv: convLike(0, 3, (c) => c.dtype(7) ?? c.dtype(0)),
  convTranspose,
  /** Windowed pooling with the optional Indices output (MaxPool). */
  maxPool: pool(true),
  pool: pool(false),
  maxUnpool,
  globalPool,
  batchNorm,
  layerNorm,
  /** Output 0 has input 0's shape and dtype (normalizations without statistics outputs). */
  same,
  resize,
  upsample,
  rnn,
  quantize,
  dequantize,
  dynQuantize,
  gridSample,
  roiAlign,
  maxRoiPool,
} satisfies Record<string, Rule>;
