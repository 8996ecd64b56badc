/**
 * Full-size exporter-shaped models for bench/scale.ts, built in code with src/ir/builder.ts (never committed):
 *  - resnet50: torchvision ResNet-50 (bottleneck blocks [3, 4, 6, 3], stride on the 3x3 conv, 1x1 projection
 *    shortcuts, BatchNormalization after every conv, residual Add, 224x224 input, 1000 classes; ~25.6M params);
 *  - bert: a BERT-base encoder as torch 1.13 exports HF BertModel (12 layers, hidden 768, 12 heads, MLP 3072,
 *    separate q/k/v MatMul + Add(bias, ·), Shape→Gather→Unsqueeze→Concat head reshapes, Div by √64, Softmax,
 *    LayerNormalization, erf GELU, Gemm+Tanh pooler; input = embeddings [batch, seq, 768]; ~85.6M params);
 *  - llama1b: a LLaMA decoder in the pattern of ../shared/models/llama_s.onnx (hidden 2048, 16 layers, 16 heads
 *    of 128, SwiGLU 5632, decomposed RMSNorm sharing one all-ones weight through Identity nodes as the exporter
 *    deduplicates it, RoPE rotate_half through Slice/Neg/Concat, causal mask table; vocab 32000; ~0.97B params)
 *    written as fp32 with external data straight to disk (the weights are never all in memory).
 */
import * as fs from 'fs';
import * as path from 'path';
import { writeAll } from '../src/ir/external-data';
import { DataType, attr, graph, modelBytes, node, onnx, seededRng, tensor, valueInfo } from '../src/ir/builder';

const F = DataType.FLOAT;
const I64 = DataType.INT64;

/** Fills `out` with uniform values in [-scale, scale) from `next`. */
function fillUniform(out: Float32Array, next: () => number, scale: number, offset = 0): Float32Array {
  for (let i = 0; i < out.length; i++) out[i] = offset + (next() * 2 - 1) * scale;
  return out;
}

/**
 * Collects nodes and initializers with exporter-style names: node `/<scope>/<Op>[_k]`, output
 * `/<scope>/<Op>[_k]_output_0`, weights `onnx::<Op>_<n>`. Also used by bench/retinanet-model.ts.
 */
export class GraphBuilder {
  readonly nodes: onnx.NodeProto[] = [];
  readonly inits: onnx.TensorProto[] = [];
  private readonly counts = new Map<string, number>();
  private weightId = 100;
  private seed = 1;

  /** Adds a node; returns its first output's name. */
  op(scope: string, opType: string, inputs: string[], attrs: onnx.AttributeProto[] = [], outputs = 1): string {
    const base = `${scope}/${opType}`;
    const k = this.counts.get(base) ?? 0;
    this.counts.set(base, k + 1);
    const name = k === 0 ? base : `${base}_${k}`;
    const outs = Array.from({ length: outputs }, (_, i) => `${name}_output_${i}`);
    this.nodes.push(node(opType, inputs, outs, attrs, name));
    return outs[0];
  }

  /** A Constant node holding an int64 vector (or scalar when `scalar`). */
  constI64(scope: string, values: (number | bigint)[], scalar = false): string {
    const t = tensor('', I64, scalar ? [] : [values.length], BigInt64Array.from(values.map((v) => BigInt(v))));
    delete (t as { name?: string }).name;
    return this.op(scope, 'Constant', [], [attr.tensor('value', t)]);
  }

  constF(scope: string, value: number): string {
    const t = tensor('', F, [], Float32Array.of(value));
    delete (t as { name?: string }).name;
    return this.op(scope, 'Constant', [], [attr.tensor('value', t)]);
  }

  /** A float initializer with seeded uniform values (`offset` ± `scale`). */
  weight(name: string | undefined, dims: number[], scale: number, offset = 0): string {
    const n = name ?? `onnx::W_${this.weightId++}`;
    const data = fillUniform(new Float32Array(dims.reduce((a, b) => a * b, 1)), seededRng(this.seed++), scale, offset);
    this.inits.push(tensor(n, F, dims, data));
    return n;
  }

  /** A weight named like the exporter's anonymous ones (`onnx::MatMul_123`). */
  anon(op: string, dims: number[], scale: number): string {
    return this.weight(`onnx::${op}_${this.weightId++}`, dims, scale);
  }
}

// ResNet-50 -------------------------------------------------------------------------------------------------

export function resnet50(): Uint8Array {
  const b = new GraphBuilder();
  const convBn = (scope: string, x: string, cin: number, cout: number, k: number, stride: number, relu: boolean): string => {
    const w = b.weight(`${scope.slice(1).replace(/\//g, '.')}.weight`, [cout, cin, k, k], Math.sqrt(3 / (cin * k * k)));
    const p = (k - 1) / 2;
    const c = b.op(scope, 'Conv', [x, w], [
      attr.ints('dilations', [1, 1]), attr.int('group', 1), attr.ints('kernel_shape', [k, k]),
      attr.ints('pads', [p, p, p, p]), attr.ints('strides', [stride, stride]),
    ]);
    const bn = scope.replace(/conv(\d?)$/, 'bn$1').replace(/\/0$/, '/1');
    const key = bn.slice(1).replace(/\//g, '.');
    const y = b.op(bn, 'BatchNormalization', [
      c, b.weight(`${key}.weight`, [cout], 0.1, 1), b.weight(`${key}.bias`, [cout], 0.1),
      b.weight(`${key}.running_mean`, [cout], 0.1), b.weight(`${key}.running_var`, [cout], 0.25, 0.75),
    ], [attr.float('epsilon', 1e-5), attr.float('momentum', 0.9)]);
    return relu ? b.op(bn.replace(/bn\d?$/, 'relu'), 'Relu', [y]) : y;
  };
  let x = convBn('/conv1', 'input', 3, 64, 7, 2, true);
  x = b.op('/maxpool', 'MaxPool', [x], [attr.int('ceil_mode', 0), attr.ints('kernel_shape', [3, 3]), attr.ints('pads', [1, 1, 1, 1]), attr.ints('strides', [2, 2])]);
  let cin = 64;
  const stages = [[3, 64], [4, 128], [6, 256], [3, 512]];
  stages.forEach(([blocks, width], s) => {
    for (let i = 0; i < blocks; i++) {
      const scope = `/layer${s + 1}/layer${s + 1}.${i}`;
      const stride = i === 0 && s > 0 ? 2 : 1;
      const h1 = convBn(`${scope}/conv1`, x, cin, width, 1, 1, true);
      const h2 = convBn(`${scope}/conv2`, h1, width, width, 3, stride, true);
      const h3 = convBn(`${scope}/conv3`, h2, width, width * 4, 1, 1, false);
      const short = i === 0 ? convBn(`${scope}/downsample/0`, x, cin, width * 4, 1, stride, false) : x;
      const sum = b.op(scope, 'Add', [h3, short]);
      x = b.op(`${scope}/relu_2`, 'Relu', [sum]);
      cin = width * 4;
    }
  });
  const pooled = b.op('/avgpool', 'GlobalAveragePool', [x]);
  const flat = b.op('', 'Flatten', [pooled], [attr.int('axis', 1)]);
  const fcW = b.weight('fc.weight', [1000, 2048], Math.sqrt(3 / 2048));
  const fcB = b.weight('fc.bias', [1000], 0.01);
  b.nodes.push(node('Gemm', [flat, fcW, fcB], ['logits'], [attr.float('alpha', 1), attr.float('beta', 1), attr.int('transB', 1)], '/fc/Gemm'));
  return modelBytes(graph({
    name: 'torch_jit', nodes: b.nodes, initializers: b.inits,
    inputs: [valueInfo('input', F, ['batch', 3, 224, 224])], outputs: [valueInfo('logits', F, ['batch', 1000])],
  }), { opset: 17, producerName: 'pytorch', producerVersion: '1.13.0' });
}

// Shape plumbing shared by the transformers ----------------------------------------------------------------

/** Unsqueeze(Gather(Shape(x), axis)) as the exporter writes `x.size(axis)` used in a view. */
function dimOf(b: GraphBuilder, scope: string, x: string, axis: number): string {
  const shape = b.op(scope, 'Shape', [x]);
  const g = b.op(scope, 'Gather', [shape, b.constI64(scope, [axis], true)], [attr.int('axis', 0)]);
  return g;
}

function unsq(b: GraphBuilder, scope: string, scalar: string): string {
  return b.op(scope, 'Unsqueeze', [scalar, b.constI64(scope, [0])]);
}

/** Reshape x to [x.size(0), x.size(1), ...rest] (the exporter's Concat of Unsqueezed dims and constants). */
function viewAs(b: GraphBuilder, scope: string, x: string, dims: [string, string], rest: number[]): string {
  const parts = [unsq(b, scope, dims[0]), unsq(b, scope, dims[1]), ...rest.map((r) => b.constI64(scope, [r]))];
  const shape = b.op(scope, 'Concat', parts, [attr.int('axis', 0)]);
  return b.op(scope, 'Reshape', [x, shape], [attr.int('allowzero', 0)]);
}

// BERT-base -----------------------------------------------------------------------------------------------

export function bertBase(layers = 12, hidden = 768, heads = 12, mlp = 3072): Uint8Array {
  const b = new GraphBuilder();
  const headDim = hidden / heads;
  const s = (fan: number) => Math.sqrt(3 / fan);
  /** Linear on a 3-D input: MatMul + Add(bias, ·). */
  const linear = (scope: string, x: string, fin: number, fout: number, key: string): string => {
    const w = b.anon('MatMul', [fin, fout], s(fin));
    const mm = b.op(scope, 'MatMul', [x, w]);
    return b.op(scope, 'Add', [b.weight(`${key}.bias`, [fout], 0.02), mm]);
  };
  const layerNorm = (scope: string, x: string, key: string): string =>
    b.op(scope, 'LayerNormalization', [x, b.weight(`${key}.weight`, [hidden], 0.05, 1), b.weight(`${key}.bias`, [hidden], 0.02)],
      [attr.int('axis', -1), attr.float('epsilon', 1e-12)]);
  let x = 'inputs_embeds';
  for (let l = 0; l < layers; l++) {
    const L = `/encoder/layer.${l}`;
    const key = `encoder.layer.${l}`;
    const att = `${L}/attention/self`;
    const heads4 = (t: string, perm: number[], scope: string): string => {
      const d0 = dimOf(b, scope, t, 0);
      const d1 = dimOf(b, scope, t, 1);
      const r = viewAs(b, scope, t, [d0, d1], [heads, headDim]);
      return b.op(scope, 'Transpose', [r], [attr.ints('perm', perm)]);
    };
    const q = linear(`${att}/query`, x, hidden, hidden, `${key}.attention.self.query`);
    const k = linear(`${att}/key`, x, hidden, hidden, `${key}.attention.self.key`);
    const v = linear(`${att}/value`, x, hidden, hidden, `${key}.attention.self.value`);
    const qh = heads4(q, [0, 2, 1, 3], att);
    const kt = heads4(k, [0, 2, 3, 1], att);
    const vh = heads4(v, [0, 2, 1, 3], att);
    const scores = b.op(att, 'MatMul', [qh, kt]);
    const scaled = b.op(att, 'Div', [scores, b.constF(att, Math.sqrt(headDim))]);
    const probs = b.op(att, 'Softmax', [scaled], [attr.int('axis', -1)]);
    const ctx = b.op(att, 'MatMul', [probs, vh]);
    const ctxT = b.op(att, 'Transpose', [ctx], [attr.ints('perm', [0, 2, 1, 3])]);
    const merged = viewAs(b, att, ctxT, [dimOf(b, att, ctxT, 0), dimOf(b, att, ctxT, 1)], [hidden]);
    const o = linear(`${L}/attention/output/dense`, merged, hidden, hidden, `${key}.attention.output.dense`);
    const r1 = b.op(`${L}/attention/output`, 'Add', [o, x]);
    const n1 = layerNorm(`${L}/attention/output/LayerNorm`, r1, `${key}.attention.output.LayerNorm`);
    const up = linear(`${L}/intermediate/dense`, n1, hidden, mlp, `${key}.intermediate.dense`);
    const act = `${L}/intermediate/intermediate_act_fn`;
    const erf = b.op(act, 'Erf', [b.op(act, 'Div', [up, b.constF(act, Math.SQRT2)])]);
    const gelu = b.op(act, 'Mul', [b.op(act, 'Mul', [up, b.op(act, 'Add', [erf, b.constF(act, 1)])]), b.constF(act, 0.5)]);
    const down = linear(`${L}/output/dense`, gelu, mlp, hidden, `${key}.output.dense`);
    const r2 = b.op(`${L}/output`, 'Add', [down, n1]);
    x = layerNorm(`${L}/output/LayerNorm`, r2, `${key}.output.LayerNorm`);
  }
  // The last LayerNorm writes the graph output directly, as in real exports.
  b.nodes[b.nodes.length - 1].output[0] = 'last_hidden_state';
  x = 'last_hidden_state';
  const first = b.op('/pooler', 'Gather', [x, b.constI64('/pooler', [0], true)], [attr.int('axis', 1)]);
  const pooled = b.op('/pooler/dense', 'Gemm', [first, b.weight('pooler.dense.weight', [hidden, hidden], s(hidden)), b.weight('pooler.dense.bias', [hidden], 0.02)],
    [attr.float('alpha', 1), attr.float('beta', 1), attr.int('transB', 1)]);
  b.nodes.push(node('Tanh', [pooled], ['pooler_output'], [], '/pooler/activation/Tanh'));
  return modelBytes(graph({
    name: 'torch_jit', nodes: b.nodes, initializers: b.inits,
    inputs: [valueInfo('inputs_embeds', F, ['batch', 'seq', hidden])],
    outputs: [valueInfo('last_hidden_state', F, ['batch', 'seq', hidden]), valueInfo('pooler_output', F, ['batch', hidden])],
  }), { opset: 17, producerName: 'pytorch', producerVersion: '1.13.0' });
}

// LLaMA (external data) ---------------------------------------------------------------------------------------

export interface LlamaSpec {
  hidden: number;
  layers: number;
  heads: number;
  mlp: number;
  vocab: number;
  maxPos: number;
}

export const LLAMA_1B: LlamaSpec = { hidden: 2048, layers: 16, heads: 16, mlp: 5632, vocab: 32000, maxPos: 512 };

/**
 * Writes a LLaMA-shaped model to `file` with every weight of ≥ 1 KiB in `file.data` (generated and written in
 * chunks). Returns the number of parameters.
 */
export function writeLlama(file: string, spec: LlamaSpec = LLAMA_1B): number {
  const b = new GraphBuilder();
  const { hidden, heads, mlp, vocab, maxPos } = spec;
  const headDim = hidden / heads;
  const dataName = `${path.basename(file)}.data`;
  const fd = fs.openSync(`${file}.data`, 'w');
  let offset = 0;
  let params = 0;
  let seed = 1;
  const CHUNK = 1 << 22;
  const chunk = new Float32Array(CHUNK);
  /** An external initializer filled by `fill(chunk, start)`, written chunk by chunk. */
  const external = (name: string, dims: number[], fill: (out: Float32Array, start: number) => void): string => {
    const n = dims.reduce((a, c) => a * c, 1);
    offset = Math.ceil(offset / 4096) * 4096;
    const start = offset;
    for (let done = 0; done < n; done += CHUNK) {
      const m = Math.min(CHUNK, n - done);
      const view = chunk.subarray(0, m);
      fill(view, done);
      writeAll(fd, new Uint8Array(view.buffer, 0, m * 4), offset);
      offset += m * 4;
    }
    params += n;
    b.inits.push(onnx.TensorProto.create({
      name, dataType: F, dims, dataLocation: 1,
      externalData: [
        onnx.StringStringEntryProto.create({ key: 'location', value: dataName }),
        onnx.StringStringEntryProto.create({ key: 'offset', value: String(start) }),
        onnx.StringStringEntryProto.create({ key: 'length', value: String(n * 4) }),
      ],
    }));
    return name;
  };
  const random = (name: string, dims: number[], scale: number): string => {
    const next = seededRng(seed++);
    return external(name, dims, (out) => fillUniform(out, next, scale));
  };
  const matmulW = (fin: number, fout: number) => random(`onnx::MatMul_${1000 + seed}`, [fin, fout], Math.sqrt(3 / fin));
  try {
    // RoPE tables and the causal mask, as the exporter stores them (buffers of the module).
    const inv = Array.from({ length: headDim / 2 }, (_, i) => 1 / 10000 ** ((2 * i) / headDim));
    const table = (fn: (x: number) => number) => (out: Float32Array, start: number) => {
      for (let i = 0; i < out.length; i++) {
        const e = start + i;
        const pos = Math.floor(e / headDim);
        out[i] = fn(pos * inv[(e % headDim) % (headDim / 2)]);
      }
    };
    external('cos', [maxPos, headDim], table(Math.cos));
    external('sin', [maxPos, headDim], table(Math.sin));
    external('causal', [maxPos, maxPos], (out, start) => {
      for (let i = 0; i < out.length; i++) {
        const e = start + i;
        out[i] = e % maxPos > Math.floor(e / maxPos) ? -1e9 : 0;
      }
    });
    const embed = random('embed_tokens.weight', [vocab, hidden], 1);
    // One all-ones RMSNorm weight shared through Identity nodes (the exporter deduplicates equal initializers).
    const normW = 'layers.0.input_layernorm.weight';
    b.inits.push(tensor(normW, F, [hidden], new Float32Array(hidden).fill(1)));
    params += hidden;
    const normName = (k: number) => (k === 0 ? normW : k === 2 * spec.layers ? 'norm.weight' : `layers.${k >> 1}.${k % 2 ? 'post_attention' : 'input'}_layernorm.weight`);
    for (let k = 2 * spec.layers; k >= 1; k--) b.nodes.push(node('Identity', [normW], [normName(k)], [], `Identity_${2 * spec.layers - k}`));

    const seqLen = dimOf(b, '', 'input_ids', 1);
    let x = b.op('/embed_tokens', 'Gather', [embed, 'input_ids']);
    const sliceRows = (t: string, axis: number) =>
      b.op('', 'Slice', [t, b.constI64('', [0]), unsq(b, '', seqLen), b.constI64('', [axis]), b.constI64('', [1])]);
    const cos = sliceRows('cos', 0);
    const sin = sliceRows('sin', 0);
    const mask = sliceRows(sliceRows('causal', 0), 1);
    const rms = (scope: string, h: string, w: string): string => {
      const p = b.op(scope, 'Pow', [h, b.constF(scope, 2)]);
      const m = b.op(scope, 'ReduceMean', [p], [attr.ints('axes', [-1]), attr.int('keepdims', 1)]);
      const sq = b.op(scope, 'Sqrt', [b.op(scope, 'Add', [m, b.constF(scope, 1e-6)])]);
      const r = b.op(scope, 'Div', [b.constF(scope, 1), sq]);
      return b.op(scope, 'Mul', [b.op(scope, 'Mul', [h, r]), w]);
    };
    const rotate = (scope: string, t: string): string => {
      const half = b.op(scope, 'Div', [dimOf(b, scope, t, 3), b.constI64(scope, [2], true)]);
      const c = b.op(scope, 'Cast', [b.op(scope, 'Cast', [half], [attr.int('to', 7)])], [attr.int('to', 7)]);
      const hi = b.op(scope, 'Slice', [t, unsq(b, scope, c), b.constI64(scope, [2n ** 63n - 1n]), b.constI64(scope, [3]), b.constI64(scope, [1])]);
      const lo = b.op(scope, 'Slice', [t, b.constI64(scope, [0]), unsq(b, scope, c), b.constI64(scope, [3]), b.constI64(scope, [1])]);
      const rot = b.op(scope, 'Concat', [b.op(scope, 'Neg', [hi]), lo], [attr.int('axis', -1)]);
      return b.op(scope, 'Add', [b.op(scope, 'Mul', [t, cos]), b.op(scope, 'Mul', [rot, sin])]);
    };
    for (let l = 0; l < spec.layers; l++) {
      const L = `/layers.${l}`;
      const att = `${L}/self_attn`;
      const h = rms(`${L}/input_layernorm`, x, normName(2 * l));
      const d0 = dimOf(b, att, h, 0);
      const d1 = dimOf(b, att, h, 1);
      const proj = (name: string, t: string, fin: number, fout: number) => b.op(`${att}/${name}`, 'MatMul', [t, matmulW(fin, fout)]);
      const split = (t: string) => b.op(att, 'Transpose', [viewAs(b, att, t, [d0, d1], [heads, headDim])], [attr.ints('perm', [0, 2, 1, 3])]);
      const q = rotate(att, split(proj('q_proj', h, hidden, hidden)));
      const k = rotate(att, split(proj('k_proj', h, hidden, hidden)));
      const v = split(proj('v_proj', h, hidden, hidden));
      const kt = b.op(att, 'Transpose', [k], [attr.ints('perm', [0, 1, 3, 2])]);
      const sc = b.op(att, 'Div', [b.op(att, 'MatMul', [q, kt]), b.constF(att, Math.sqrt(headDim))]);
      const probs = b.op(att, 'Softmax', [b.op(att, 'Add', [sc, mask])], [attr.int('axis', -1)]);
      const ctxT = b.op(att, 'Transpose', [b.op(att, 'MatMul', [probs, v])], [attr.ints('perm', [0, 2, 1, 3])]);
      const merged = viewAs(b, att, ctxT, [d0, d1], [hidden]);
      x = b.op(L, 'Add', [x, proj('o_proj', merged, hidden, hidden)]);
      const h2 = rms(`${L}/post_attention_layernorm`, x, normName(2 * l + 1));
      const gate = b.op(`${L}/mlp/gate_proj`, 'MatMul', [h2, matmulW(hidden, mlp)]);
      const silu = b.op(`${L}/mlp`, 'Mul', [gate, b.op(`${L}/mlp`, 'Sigmoid', [gate])]);
      const up = b.op(`${L}/mlp/up_proj`, 'MatMul', [h2, matmulW(hidden, mlp)]);
      const down = b.op(`${L}/mlp/down_proj`, 'MatMul', [b.op(`${L}/mlp`, 'Mul', [silu, up]), matmulW(mlp, hidden)]);
      x = b.op(L, 'Add', [x, down]);
    }
    const hn = rms('/norm', x, normName(2 * spec.layers));
    b.nodes.push(node('MatMul', [hn, matmulW(hidden, vocab)], ['output'], [], '/lm_head/MatMul'));
  } finally {
    fs.closeSync(fd);
  }
  const bytes = modelBytes(graph({
    name: 'torch_jit', nodes: b.nodes, initializers: b.inits,
    inputs: [valueInfo('input_ids', I64, ['batch', 'seq'])], outputs: [valueInfo('output', F, ['batch', 'seq', vocab])],
  }), { opset: 17, producerName: 'pytorch', producerVersion: '1.13.0' });
  fs.writeFileSync(file, bytes);
  return params;
}
