/**
 * Transformer export patterns of Hugging Face (and other) exporters that the shared models do not have, built
 * small in code (random weights, symbolic batch and seq):
 *  (a) BERT at opsets 11/13/14: decomposed LayerNorm, attention-mask path, head reshape targets built at run time
 *      (Shape→Gather→Unsqueeze→Concat or Shape→Slice→Concat with constant heads/head_dim), 1/√d before or after
 *      q·kᵀ or split over both (SDPA), Erf GELU, pooler;
 *  (b) fused QKV with interleaved heads: GPT-NeoX [b,s,H,3·d] split on the last axis (Split or Slice, partial
 *      rotary, heads folded into the batch for baddbmm) and Bloom [b,s,H,3,d] picked with Gather, with ALiBi
 *      computed once and added in every layer;
 *  (c) multi-query attention (Falcon-7B: one k/v head broadcast by MatMul; Falcon-40B layout and LLaMA
 *      repeat_kv with one kv head: repeated by Expand), Falcon-40B grouped-query, Phi-2's partial rotary;
 *  (d) T5: RMSNorm (Pow→ReduceMean→Add→Sqrt→Reciprocal→Mul), gated-GELU FFN, relative position bias shared by
 *      the layers.
 * For each: `onnx-prune groups` finds the head (or kv-group) and MLP neuron groups, and declines what is truly
 * unsafe with its reason; `onnx-prune IN OUT --ratio 0.3` prunes and passes verification; and the output runs in
 * onnxruntime at two other sequence lengths, where it equals the masked dense model too.
 */
import * as fs from 'fs';
import * as path from 'path';
import { analyzeGroups } from '../src/pipeline/stages';
import { DECLINE } from '../src/analysis/decline';
import { fromGroupsJson } from '../src/analysis/groups-json';
import type { Group, GroupAnalysis, Member } from '../src/analysis/types';
import { loadModel } from '../src/ir/io';
import { cloneModel } from '../src/ir/clone';
import { maskPlan } from '../src/prune/mask';
import { compareOutputs } from '../src/verify/compare';
import { runModel, verificationFeeds } from '../src/verify/verify';
import { DataType, attr, constantNode, floatTensor, graph, int64Tensor, modelBytes, node, onnx, seededRng, uniform, valueInfo } from './helpers/builder';
import { mkTmp, rmTmp, runCliInProcess } from './helpers/cli';

const F = DataType.FLOAT;
const I64 = DataType.INT64;

let tmp: string;
beforeAll(() => { tmp = mkTmp('onnx-prune-hf-'); });
afterAll(() => rmTmp(tmp));

// ---------------------------------------------------------------------------------------------------------
// A small graph builder in the exporters' style: fresh SSA names, Constant nodes for small constants,
// initializers for weights, opset-dependent forms of Unsqueeze/ReduceMean/Split.

class Net {
  readonly nodes: onnx.NodeProto[] = [];
  readonly inits: onnx.TensorProto[] = [];
  private k = 0;
  private next: () => number;

  constructor(readonly opset: number, seed: number) {
    this.next = seededRng(seed);
  }

  fresh(p: string): string {
    return `${p}_${this.k++}`;
  }

  op(type: string, inputs: string[], attrs: onnx.AttributeProto[] = [], outs = 1): string[] {
    const o = Array.from({ length: outs }, () => this.fresh(type.toLowerCase()));
    this.nodes.push(node(type, inputs, o, attrs, o[0]));
    return o;
  }

  op1(type: string, inputs: string[], attrs: onnx.AttributeProto[] = []): string {
    return this.op(type, inputs, attrs)[0];
  }

  /** A random float initializer. */
  weight(name: string, dims: number[], scale = 0.3): string {
    const n = dims.reduce((a, b) => a * b, 1);
    this.inits.push(floatTensor(name, dims, uniform(this.next, n, scale)));
    return name;
  }

  /** A float initializer near 1 (norm gains). */
  gain(name: string, dims: number[]): string {
    const n = dims.reduce((a, b) => a * b, 1);
    this.inits.push(floatTensor(name, dims, Float32Array.from({ length: n }, () => 0.8 + 0.4 * this.next())));
    return name;
  }

  /** A float Constant node (a scalar when dims are omitted). */
  f(v: number | number[], dims?: number[]): string {
    const vals = Array.isArray(v) ? v : [v];
    const name = this.fresh('cf');
    this.nodes.push(constantNode(name, floatTensor(name, dims ?? (Array.isArray(v) ? [vals.length] : []), vals)));
    return name;
  }

  /** An int64 Constant node (1-D unless dims say otherwise). */
  i(v: number | bigint | (number | bigint)[], dims?: number[]): string {
    const vals = Array.isArray(v) ? v : [v];
    const name = this.fresh('ci');
    this.nodes.push(constantNode(name, int64Tensor(name, dims ?? (Array.isArray(v) ? [vals.length] : []), vals)));
    return name;
  }

  unsqueeze(x: string, axes: number[]): string {
    return this.opset >= 13 ? this.op1('Unsqueeze', [x, this.i(axes)]) : this.op1('Unsqueeze', [x], [attr.ints('axes', axes)]);
  }

  reduceMean(x: string, axes: number[]): string {
    return this.opset >= 18
      ? this.op1('ReduceMean', [x, this.i(axes)], [attr.int('keepdims', 1)])
      : this.op1('ReduceMean', [x], [attr.ints('axes', axes), attr.int('keepdims', 1)]);
  }

  split(x: string, axis: number, sizes: number[]): string[] {
    return this.opset >= 13
      ? this.op('Split', [x, this.i(sizes)], [attr.int('axis', axis)], sizes.length)
      : this.op('Split', [x], [attr.int('axis', axis), attr.ints('split', sizes)], sizes.length);
  }

  slice(x: string, starts: number[], ends: (number | bigint)[], axes: number[]): string {
    return this.op1('Slice', [x, this.i(starts), this.i(ends), this.i(axes)]);
  }

  transpose(x: string, perm: number[]): string {
    return this.op1('Transpose', [x], [attr.ints('perm', perm)]);
  }

  /** `x.size(i)` as torch exports it: Shape → Gather(scalar index) (a 0-D tensor). */
  dim(x: string, i: number): string {
    return this.op1('Gather', [this.op1('Shape', [x]), this.i(i, [])], [attr.int('axis', 0)]);
  }

  /** A shape tensor from 0-D run-time sizes (Unsqueeze'd) and constants: `x.view(b, s, H, d)`. */
  shapeOf(parts: (string | number)[]): string {
    const ins = parts.map((p) => (typeof p === 'number' ? this.i([p]) : this.unsqueeze(p, [0])));
    return this.op1('Concat', ins, [attr.int('axis', 0)]);
  }

  reshape(x: string, parts: (string | number)[]): string {
    return this.op1('Reshape', [x, this.shapeOf(parts)]);
  }

  /** nn.Linear: MatMul with a [in, out] weight, plus the bias. */
  linear(x: string, name: string, din: number, dout: number, bias = true): string {
    const y = this.op1('MatMul', [x, this.weight(`${name}.weight`, [din, dout])]);
    return bias ? this.op1('Add', [this.weight(`${name}.bias`, [dout], 0.1), y]) : y;
  }

  /** LayerNorm as torch exports it below opset 17. */
  layerNormDecomposed(x: string, name: string, d: number): string {
    const mean = this.reduceMean(x, [-1]);
    const c = this.op1('Sub', [x, mean]);
    const v = this.reduceMean(this.op1('Pow', [c, this.f(2)]), [-1]);
    const sd = this.op1('Sqrt', [this.op1('Add', [v, this.f(1e-12)])]);
    const n = this.op1('Div', [c, sd]);
    return this.op1('Add', [this.op1('Mul', [n, this.gain(`${name}.weight`, [d])]), this.weight(`${name}.bias`, [d], 0.1)]);
  }

  layerNorm(x: string, name: string, d: number): string {
    return this.op1('LayerNormalization', [x, this.gain(`${name}.weight`, [d]), this.weight(`${name}.bias`, [d], 0.1)], [attr.int('axis', -1), attr.float('epsilon', 1e-5)]);
  }

  /** T5LayerNorm: x * rsqrt(mean(x²) + eps) * weight. */
  rmsNorm(x: string, name: string, d: number): string {
    const v = this.reduceMean(this.op1('Pow', [x, this.f(2)]), [-1]);
    const r = this.op1('Reciprocal', [this.op1('Sqrt', [this.op1('Add', [v, this.f(1e-6)])])]);
    return this.op1('Mul', [this.gain(`${name}.weight`, [d]), this.op1('Mul', [x, r])]);
  }

  /** Exact GELU as exported without the Gelu op: x * 0.5 * (1 + erf(x / √2)). */
  geluErf(x: string): string {
    const e = this.op1('Erf', [this.op1('Div', [x, this.f(Math.SQRT2)])]);
    return this.op1('Mul', [this.op1('Mul', [x, this.op1('Add', [e, this.f(1)])]), this.f(0.5)]);
  }

  /** gelu_new (tanh approximation): 0.5·x·(1 + tanh(√(2/π)·(x + 0.044715·x³))). */
  geluTanh(x: string): string {
    const cube = this.op1('Mul', [this.op1('Pow', [x, this.f(3)]), this.f(0.044715)]);
    const t = this.op1('Tanh', [this.op1('Mul', [this.op1('Add', [x, cube]), this.f(Math.sqrt(2 / Math.PI))])]);
    return this.op1('Mul', [this.op1('Mul', [x, this.f(0.5)]), this.op1('Add', [this.f(1), t])]);
  }

  model(inputs: onnx.ValueInfoProto[], outputs: onnx.ValueInfoProto[]): Uint8Array {
    const g = graph({ nodes: this.nodes, inputs, outputs, initializers: this.inits });
    return modelBytes(g, { opset: this.opset, irVersion: this.opset < 13 ? 6 : 8, producerName: 'pytorch' });
  }
}

// ---------------------------------------------------------------------------------------------------------
// (a) BERT

interface BertOpts {
  opset: number;
  layers: number;
  /** Where 1/√d is applied: to the scores, to q, or √(1/√d) to both q and kᵀ (scaled_dot_product_attention). */
  scale: 'after' | 'before' | 'sqrt-both';
  /** How `x.size()[:-1] + (H, d)` is exported: Shape→Gather→Unsqueeze per dim, or Shape→Slice. */
  view: 'gather' | 'slice';
}

const BERT = { vocab: 40, maxPos: 128, D: 32, H: 4, d: 8, FF: 48 };

function bert(o: BertOpts): Uint8Array {
  const { vocab, maxPos, D, H, d, FF } = BERT;
  const g = new Net(o.opset, 11 + o.opset);
  const ids = 'input_ids', mask = 'attention_mask';
  // Embeddings: word + position (position_ids buffer sliced to the sequence length).
  const seq = g.dim(ids, 1);
  const posIds = g.op1('Slice', [g.i(Array.from({ length: maxPos }, (_, i) => i), [1, maxPos]), g.i([0]), g.unsqueeze(seq, [0]), g.i([1])]);
  const we = g.op1('Gather', [g.weight('embeddings.word_embeddings.weight', [vocab, D], 1), ids]);
  const pe = g.op1('Gather', [g.weight('embeddings.position_embeddings.weight', [maxPos, D], 1), posIds]);
  let h = g.layerNormDecomposed(g.op1('Add', [we, pe]), 'embeddings.LayerNorm', D);
  // Extended attention mask: (1 - mask[:, None, None, :]) * -10000.
  const m4 = g.op1('Cast', [g.unsqueeze(g.unsqueeze(mask, [1]), [2])], [attr.int('to', F)]);
  const ext = g.op1('Mul', [g.op1('Sub', [g.f(1), m4]), g.f(-10000)]);
  for (let l = 0; l < o.layers; l++) {
    const p = `encoder.layer.${l}`;
    const lead = (x: string, drop: number) => g.slice(g.op1('Shape', [x]), [0], [-drop], [0]);
    const heads = (x: string) => (o.view === 'gather'
      ? g.reshape(x, [g.dim(x, 0), g.dim(x, 1), H, d])
      : g.op1('Reshape', [x, g.op1('Concat', [lead(x, 1), g.i([H, d])], [attr.int('axis', 0)])]));
    const q = g.transpose(heads(g.linear(h, `${p}.attention.self.query`, D, D)), [0, 2, 1, 3]);
    const k = heads(g.linear(h, `${p}.attention.self.key`, D, D));
    const v = g.transpose(heads(g.linear(h, `${p}.attention.self.value`, D, D)), [0, 2, 1, 3]);
    let scores: string;
    if (o.scale === 'after') {
      scores = g.op1('Div', [g.op1('MatMul', [q, g.transpose(k, [0, 2, 3, 1])]), g.f(Math.sqrt(d))]);
    } else if (o.scale === 'before') {
      scores = g.op1('MatMul', [g.op1('Div', [q, g.f(Math.sqrt(d))]), g.transpose(k, [0, 2, 3, 1])]);
    } else {
      // scaled_dot_product_attention's export: q·√s and kᵀ·√s with s = 1/√d.
      const s = g.f(Math.sqrt(1 / Math.sqrt(d)));
      const kt = g.transpose(g.transpose(k, [0, 2, 1, 3]), [0, 1, 3, 2]);
      scores = g.op1('MatMul', [g.op1('Mul', [q, s]), g.op1('Mul', [kt, s])]);
    }
    const probs = g.op1('Softmax', [g.op1('Add', [scores, ext])], [attr.int('axis', -1)]);
    const ctx = g.transpose(g.op1('MatMul', [probs, v]), [0, 2, 1, 3]);
    const merged = o.view === 'gather'
      ? g.reshape(ctx, [g.dim(ctx, 0), g.dim(ctx, 1), D])
      : g.op1('Reshape', [ctx, g.op1('Concat', [lead(ctx, 2), g.i([D])], [attr.int('axis', 0)])]);
    const attnOut = g.linear(merged, `${p}.attention.output.dense`, D, D);
    h = g.layerNormDecomposed(g.op1('Add', [attnOut, h]), `${p}.attention.output.LayerNorm`, D);
    const inter = g.geluErf(g.linear(h, `${p}.intermediate.dense`, D, FF));
    const out = g.linear(inter, `${p}.output.dense`, FF, D);
    h = g.layerNormDecomposed(g.op1('Add', [out, h]), `${p}.output.LayerNorm`, D);
  }
  g.nodes.push(node('Identity', [h], ['last_hidden_state']));
  const outputs = [valueInfo('last_hidden_state', F, ['batch', 'seq', D])];
  if (o.opset === 13) {
    // BertPooler: tanh(dense(h[:, 0])).
    const first = g.op1('Gather', [h, g.i(0, [])], [attr.int('axis', 1)]);
    g.nodes.push(node('Tanh', [g.linear(first, 'pooler.dense', D, D)], ['pooler_output']));
    outputs.push(valueInfo('pooler_output', F, ['batch', D]));
  }
  return g.model([valueInfo(ids, I64, ['batch', 'seq']), valueInfo(mask, I64, ['batch', 'seq'])], outputs);
}

const INT64_MAX = 9223372036854775807n;
const MAXPOS = 64;

/** cos/sin tables [MAXPOS, rd] sliced to the sequence length of `ref` (axis `axis`), as rotary caches are. */
function rotaryTables(g: Net, ref: string, axis: number, rd: number): { cos: string; sin: string } {
  const inv = Array.from({ length: rd / 2 }, (_, i) => 1 / 10000 ** ((2 * i) / rd));
  const table = (fn: (x: number) => number) => {
    const name = g.fresh('rotary_cached');
    const vals: number[] = [];
    for (let p = 0; p < MAXPOS; p++) for (let j = 0; j < rd; j++) vals.push(fn(p * inv[j % (rd / 2)]));
    g.inits.push(floatTensor(name, [MAXPOS, rd], vals));
    return g.op1('Slice', [name, g.i([0]), g.unsqueeze(g.dim(ref, axis), [0]), g.i([0])]);
  };
  return { cos: table(Math.cos), sin: table(Math.sin) };
}

/** x·cos + rotate_half(x)·sin on the first `rd` positions of the last axis (all of it when rd = d). */
function rotary(g: Net, x: string, t: { cos: string; sin: string }, rd: number, d: number): string {
  const rot = rd < d ? g.slice(x, [0], [rd], [-1]) : x;
  const x1 = g.slice(rot, [0], [rd / 2], [-1]);
  const x2 = g.slice(rot, [rd / 2], [INT64_MAX], [-1]);
  const half = g.op1('Concat', [g.op1('Neg', [x2]), x1], [attr.int('axis', -1)]);
  const out = g.op1('Add', [g.op1('Mul', [rot, t.cos]), g.op1('Mul', [half, t.sin])]);
  return rd < d ? g.op1('Concat', [out, g.slice(x, [rd], [INT64_MAX], [-1])], [attr.int('axis', -1)]) : out;
}

/** Where(causal[:s, :s], scores, min): the lower-triangular buffer sliced to the sequence length of `ref`. */
function causal(g: Net, scores: string, ref: string, axis: number): string {
  const name = g.fresh('causal_bias');
  const vals: number[] = [];
  for (let i = 0; i < MAXPOS; i++) for (let j = 0; j < MAXPOS; j++) vals.push(j <= i ? 1 : 0);
  g.inits.push(onnx.TensorProto.create({ name, dataType: DataType.BOOL, dims: [MAXPOS, MAXPOS], int32Data: vals }));
  const s = g.unsqueeze(g.dim(ref, axis), [0]);
  const m = g.op1('Slice', [name, g.i([0, 0]), g.op1('Concat', [s, s], [attr.int('axis', 0)]), g.i([0, 1])]);
  return g.op1('Where', [m, scores, g.f(-1e4)]);
}

const tokens = (name = 'input_ids') => valueInfo(name, I64, ['batch', 'seq']);

// ---------------------------------------------------------------------------------------------------------
// (b) GPT-NeoX: fused QKV with interleaved heads, partial rotary, heads folded into the batch for baddbmm,
// parallel residual.

const NEOX = { vocab: 48, D: 32, H: 4, d: 8, rd: 4, FF: 64 };

function neox(opts: { opset: number; split: 'slice' | 'split' }): Uint8Array {
  const { vocab, D, H, d, rd, FF } = NEOX;
  const g = new Net(opts.opset, 21);
  let x = g.op1('Gather', [g.weight('gpt_neox.embed_in.weight', [vocab, D], 1), 'input_ids']);
  for (let l = 0; l < 2; l++) {
    const p = `gpt_neox.layers.${l}`;
    const a = g.layerNorm(x, `${p}.input_layernorm`, D);
    const qkv = g.linear(a, `${p}.attention.query_key_value`, D, 3 * D);
    // qkv.view(qkv.size()[:-1] + (H, 3·d))
    const lead = g.slice(g.op1('Shape', [qkv]), [0], [-1], [0]);
    const fused = g.op1('Reshape', [qkv, g.op1('Concat', [lead, g.i([H, 3 * d])], [attr.int('axis', 0)])]);
    const [q0, k0, v0] = opts.split === 'split'
      ? g.split(fused, -1, [d, d, d])
      : [g.slice(fused, [0], [d], [-1]), g.slice(fused, [d], [2 * d], [-1]), g.slice(fused, [2 * d], [INT64_MAX], [-1])];
    const t = rotaryTables(g, a, 1, rd);
    const q = rotary(g, g.transpose(q0, [0, 2, 1, 3]), t, rd, d);
    const k = rotary(g, g.transpose(k0, [0, 2, 1, 3]), t, rd, d);
    const v = g.transpose(v0, [0, 2, 1, 3]);
    // _attn: q.view(b·H, s, d), baddbmm(zeros, q, kᵀ, alpha = 1/√d), view(b, H, s, s)
    const b = g.dim(q, 0), s = g.dim(q, 2);
    const bh = g.op1('Mul', [b, g.i(H, [])]);
    const qf = g.reshape(q, [bh, s, d]);
    const kf = g.reshape(k, [bh, s, d]);
    const sc = g.op1('Mul', [g.op1('MatMul', [qf, g.transpose(kf, [0, 2, 1])]), g.f(1 / Math.sqrt(d))]);
    const scores = causal(g, g.reshape(sc, [b, H, s, s]), a, 1);
    const probs = g.op1('Softmax', [scores], [attr.int('axis', -1)]);
    const ctx = g.transpose(g.op1('MatMul', [probs, v]), [0, 2, 1, 3]);
    const merged = g.reshape(ctx, [g.dim(ctx, 0), g.dim(ctx, 1), H * d]);
    const attn = g.linear(merged, `${p}.attention.dense`, D, D);
    const m = g.layerNorm(x, `${p}.post_attention_layernorm`, D);
    const mlp = g.linear(g.geluErf(g.linear(m, `${p}.mlp.dense_h_to_4h`, D, FF)), `${p}.mlp.dense_4h_to_h`, FF, D);
    x = g.op1('Add', [g.op1('Add', [mlp, attn]), x]);
  }
  const logits = g.op1('MatMul', [g.layerNorm(x, 'gpt_neox.final_layer_norm', D), g.weight('embed_out.weight', [D, vocab])]);
  g.nodes.push(node('Identity', [logits], ['logits']));
  return g.model([tokens()], [valueInfo('logits', F, ['batch', 'seq', vocab])]);
}

// ---------------------------------------------------------------------------------------------------------
// Bloom: fused QKV viewed as [b, s, H, 3, d] and picked with Gather; ALiBi added to heads folded into the batch.

const BLOOM = { vocab: 48, D: 32, H: 4, d: 8, FF: 64 };

function bloom(layers: number, alibiBias = true): Uint8Array {
  const { vocab, D, H, d, FF } = BLOOM;
  const g = new Net(14, 31);
  const mask = 'attention_mask';
  let x = g.layerNorm(g.op1('Gather', [g.weight('word_embeddings.weight', [vocab, D], 1), 'input_ids']), 'word_embeddings_layernorm', D);
  // build_alibi_tensor: slopes[:, None] * ((mask.cumsum(-1) - 1) * mask)[:, None, :] → [b·H, 1, s]
  const mf = g.op1('Cast', [mask], [attr.int('to', F)]);
  const pos = g.op1('Mul', [g.op1('Sub', [g.op1('CumSum', [mf, g.i(-1, [])]), g.f(1)]), mf]);
  const slopes = Array.from({ length: H }, (_, h) => 2 ** (-8 * (h + 1) / H));
  const al = g.op1('Mul', [g.f(slopes, [H, 1]), g.unsqueeze(pos, [1])]);
  const alibi = g.reshape(al, [g.op1('Mul', [g.dim(mask, 0), g.i(H, [])]), 1, g.dim(mask, 1)]);
  for (let l = 0; l < layers; l++) {
    const p = `h.${l}`;
    const a = g.layerNorm(x, `${p}.input_layernorm`, D);
    const qkv = g.linear(a, `${p}.self_attention.query_key_value`, D, 3 * D);
    const b = g.dim(qkv, 0), s = g.dim(qkv, 1);
    const fused = g.reshape(qkv, [b, s, H, 3, d]);
    const pick = (i: number) => g.op1('Gather', [fused, g.i(i, [])], [attr.int('axis', 3)]);
    const bh = g.op1('Mul', [b, g.i(H, [])]);
    const q = g.reshape(g.transpose(pick(0), [0, 2, 1, 3]), [bh, s, d]);
    const k = g.reshape(g.transpose(pick(1), [0, 2, 3, 1]), [bh, d, s]);
    const v = g.reshape(g.transpose(pick(2), [0, 2, 1, 3]), [bh, s, d]);
    // alibi.baddbmm(q, k, beta=1, alpha=1/√d)
    const qk = g.op1('Mul', [g.op1('MatMul', [q, k]), g.f(1 / Math.sqrt(d))]);
    const sc = alibiBias ? g.op1('Add', [g.op1('Mul', [alibi, g.f(1)]), qk]) : qk;
    const scores = causal(g, g.reshape(sc, [b, H, s, s]), a, 1);
    const probs = g.reshape(g.op1('Softmax', [scores], [attr.int('axis', -1)]), [bh, s, s]);
    const ctx = g.op1('MatMul', [probs, v]);
    const merged = g.reshape(g.transpose(g.reshape(ctx, [b, H, s, d]), [0, 2, 1, 3]), [b, s, H * d]);
    x = g.op1('Add', [g.linear(merged, `${p}.self_attention.dense`, D, D), x]);
    const m = g.layerNorm(x, `${p}.post_attention_layernorm`, D);
    x = g.op1('Add', [g.linear(g.geluTanh(g.linear(m, `${p}.mlp.dense_h_to_4h`, D, FF)), `${p}.mlp.dense_4h_to_h`, FF, D), x]);
  }
  g.nodes.push(node('Identity', [g.layerNorm(x, 'ln_f', D)], ['last_hidden_state']));
  return g.model([tokens(), valueInfo(mask, I64, ['batch', 'seq'])], [valueInfo('last_hidden_state', F, ['batch', 'seq', D])]);
}

// ---------------------------------------------------------------------------------------------------------
// (c) Falcon-7B: multi-query attention. One fused projection to H query heads + 1 key + 1 value head,
// viewed [b, s, H+2, d]; q = [..., :-2, :], k = [..., [-2], :], v = [..., [-1], :]; rotary; SDPA export
// (the single k/v head broadcast over the query heads by MatMul); parallel attention + MLP.

const FALCON = { vocab: 48, D: 32, H: 4, d: 8, FF: 64 };

function falcon(): Uint8Array {
  const { vocab, D, H, d, FF } = FALCON;
  const g = new Net(14, 41);
  let x = g.op1('Gather', [g.weight('word_embeddings.weight', [vocab, D], 1), 'input_ids']);
  for (let l = 0; l < 2; l++) {
    const p = `h.${l}`;
    const a = g.layerNorm(x, `${p}.input_layernorm`, D);
    const qkv = g.linear(a, `${p}.self_attention.query_key_value`, D, (H + 2) * d, false);
    const b = g.dim(qkv, 0), s = g.dim(qkv, 1);
    const fused = g.reshape(qkv, [b, s, H + 2, d]);
    const q0 = g.slice(fused, [0], [-2], [2]);
    const k0 = g.op1('Gather', [fused, g.i([-2])], [attr.int('axis', 2)]);
    const v0 = g.op1('Gather', [fused, g.i([-1])], [attr.int('axis', 2)]);
    const bh = g.op1('Mul', [b, g.i(H, [])]);
    const t = rotaryTables(g, a, 1, d);
    const q = rotary(g, g.reshape(g.transpose(q0, [0, 2, 1, 3]), [bh, s, d]), t, d, d);
    const k = rotary(g, g.reshape(g.transpose(k0, [0, 2, 1, 3]), [b, s, d]), t, d, d);
    const v = g.reshape(g.transpose(v0, [0, 2, 1, 3]), [b, s, d]);
    const q4 = g.reshape(q, [b, H, -1, d]);
    const k4 = g.reshape(k, [b, 1, -1, d]);
    const v4 = g.reshape(v, [b, 1, -1, d]);
    const sc = g.f(Math.sqrt(1 / Math.sqrt(d)));
    const scores = g.op1('MatMul', [g.op1('Mul', [q4, sc]), g.op1('Mul', [g.transpose(k4, [0, 1, 3, 2]), sc])]);
    const probs = g.op1('Softmax', [causal(g, scores, a, 1)], [attr.int('axis', -1)]);
    const ctx = g.op1('MatMul', [probs, v4]);
    const merged = g.reshape(g.transpose(g.reshape(ctx, [b, H, s, d]), [0, 2, 1, 3]), [b, s, H * d]);
    const attn = g.linear(merged, `${p}.self_attention.dense`, D, D, false);
    const mlp = g.linear(g.geluErf(g.linear(a, `${p}.mlp.dense_h_to_4h`, D, FF, false)), `${p}.mlp.dense_4h_to_h`, FF, D, false);
    x = g.op1('Add', [g.op1('Add', [mlp, attn]), x]);
  }
  g.nodes.push(node('Identity', [g.layerNorm(x, 'ln_f', D)], ['last_hidden_state']));
  return g.model([tokens()], [valueInfo('last_hidden_state', F, ['batch', 'seq', D])]);
}

/**
 * Falcon-40B ("new decoder architecture", grouped-query): the fused projection viewed
 * [b, s, kv, H/kv + 2, d]; q = [..., :-2, :], k/v = [..., [-2]/[-1], :] broadcast_to q's shape (Expand), then
 * flatten(2, 3) to [b, s, H, d].
 */
function falcon40b(kv: number): Uint8Array {
  const { vocab, D, H, d, FF } = FALCON;
  const qpk = H / kv;
  const g = new Net(14, 43);
  let x = g.op1('Gather', [g.weight('word_embeddings.weight', [vocab, D], 1), 'input_ids']);
  for (let l = 0; l < 2; l++) {
    const p = `h.${l}`;
    const a = g.layerNorm(x, `${p}.ln_attn`, D);
    const m = g.layerNorm(x, `${p}.ln_mlp`, D);
    const qkv = g.linear(a, `${p}.self_attention.query_key_value`, D, (H + 2 * kv) * d, false);
    const b = g.dim(qkv, 0), s = g.dim(qkv, 1);
    const fused = g.reshape(qkv, [b, s, kv, qpk + 2, d]);
    const q0 = g.slice(fused, [0], [-2], [3]);
    const qShape = g.op1('Shape', [q0]);
    const k0 = g.op1('Expand', [g.op1('Gather', [fused, g.i([-2])], [attr.int('axis', 3)]), qShape]);
    const v0 = g.op1('Expand', [g.op1('Gather', [fused, g.i([-1])], [attr.int('axis', 3)]), qShape]);
    const heads = (y: string) => g.transpose(g.reshape(y, [b, s, H, d]), [0, 2, 1, 3]);
    const q = heads(q0), k = heads(k0), v = heads(v0);
    const scores = g.op1('Div', [g.op1('MatMul', [q, g.transpose(k, [0, 1, 3, 2])]), g.f(Math.sqrt(d))]);
    const probs = g.op1('Softmax', [causal(g, scores, a, 1)], [attr.int('axis', -1)]);
    const ctx = g.transpose(g.op1('MatMul', [probs, v]), [0, 2, 1, 3]);
    const attn = g.linear(g.reshape(ctx, [b, s, H * d]), `${p}.self_attention.dense`, D, D, false);
    const mlp = g.linear(g.geluErf(g.linear(m, `${p}.mlp.dense_h_to_4h`, D, FF, false)), `${p}.mlp.dense_4h_to_h`, FF, D, false);
    x = g.op1('Add', [g.op1('Add', [mlp, attn]), x]);
  }
  g.nodes.push(node('Identity', [g.layerNorm(x, 'ln_f', D)], ['last_hidden_state']));
  return g.model([tokens()], [valueInfo('last_hidden_state', F, ['batch', 'seq', D])]);
}

/** LLaMA-style attention with separate projections and repeat_kv (Unsqueeze → Expand → Reshape) of `kv` heads. */
function llamaRepeatKv(kv: number): Uint8Array {
  const { vocab, D, H, d, FF } = FALCON;
  const g = new Net(17, 47);
  let x = g.op1('Gather', [g.weight('model.embed_tokens.weight', [vocab, D], 1), 'input_ids']);
  for (let l = 0; l < 2; l++) {
    const p = `model.layers.${l}`;
    const a = g.rmsNorm(x, `${p}.input_layernorm`, D);
    const b = g.dim(a, 0), s = g.dim(a, 1);
    const t = rotaryTables(g, a, 1, d);
    const heads = (y: string, n: number) => g.transpose(g.reshape(y, [b, s, n, d]), [0, 2, 1, 3]);
    const repeat = (y: string) => {
      const e = g.op1('Expand', [g.unsqueeze(y, [2]), g.shapeOf([b, kv, H / kv, s, d])]);
      return g.reshape(e, [b, H, s, d]);
    };
    const q = rotary(g, heads(g.linear(a, `${p}.self_attn.q_proj`, D, H * d, false), H), t, d, d);
    const k = repeat(rotary(g, heads(g.linear(a, `${p}.self_attn.k_proj`, D, kv * d, false), kv), t, d, d));
    const v = repeat(heads(g.linear(a, `${p}.self_attn.v_proj`, D, kv * d, false), kv));
    const scores = g.op1('Div', [g.op1('MatMul', [q, g.transpose(k, [0, 1, 3, 2])]), g.f(Math.sqrt(d))]);
    const probs = g.op1('Softmax', [causal(g, scores, a, 1)], [attr.int('axis', -1)]);
    const ctx = g.transpose(g.op1('MatMul', [probs, v]), [0, 2, 1, 3]);
    x = g.op1('Add', [x, g.linear(g.reshape(ctx, [b, s, H * d]), `${p}.self_attn.o_proj`, H * d, D, false)]);
    const f = g.rmsNorm(x, `${p}.post_attention_layernorm`, D);
    const gate = g.linear(f, `${p}.mlp.gate_proj`, D, FF, false);
    const act = g.op1('Mul', [gate, g.op1('Sigmoid', [gate])]);
    x = g.op1('Add', [x, g.linear(g.op1('Mul', [act, g.linear(f, `${p}.mlp.up_proj`, D, FF, false)]), `${p}.mlp.down_proj`, FF, D, false)]);
  }
  g.nodes.push(node('Identity', [g.rmsNorm(x, 'model.norm', D)], ['last_hidden_state']));
  return g.model([tokens()], [valueInfo('last_hidden_state', F, ['batch', 'seq', D])]);
}

// ---------------------------------------------------------------------------------------------------------
// (c) Phi-2: separate q/k/v with biases, partial rotary (Slice of head_dim, rotate, Concat back), Softmax in
// float32 (Cast around it), gelu_new MLP in parallel with attention, one LayerNorm per block, lm_head.

const PHI = { vocab: 48, D: 40, H: 4, d: 10, rd: 4, FF: 64 };

function phi(): Uint8Array {
  const { vocab, D, H, d, rd, FF } = PHI;
  const g = new Net(17, 51);
  let x = g.op1('Gather', [g.weight('model.embed_tokens.weight', [vocab, D], 1), 'input_ids']);
  for (let l = 0; l < 2; l++) {
    const p = `model.layers.${l}`;
    const a = g.layerNorm(x, `${p}.input_layernorm`, D);
    const b = g.dim(a, 0), s = g.dim(a, 1);
    const heads = (y: string) => g.transpose(g.reshape(y, [b, s, H, d]), [0, 2, 1, 3]);
    const t = rotaryTables(g, a, 1, rd);
    const q = rotary(g, heads(g.linear(a, `${p}.self_attn.q_proj`, D, H * d)), t, rd, d);
    const k = rotary(g, heads(g.linear(a, `${p}.self_attn.k_proj`, D, H * d)), t, rd, d);
    const v = heads(g.linear(a, `${p}.self_attn.v_proj`, D, H * d));
    const sc = g.op1('Div', [g.op1('MatMul', [q, g.transpose(k, [0, 1, 3, 2])]), g.f(Math.sqrt(d))]);
    const probs = g.op1('Softmax', [g.op1('Cast', [causal(g, sc, a, 1)], [attr.int('to', F)])], [attr.int('axis', -1)]);
    const ctx = g.transpose(g.op1('MatMul', [g.op1('Cast', [probs], [attr.int('to', F)]), v]), [0, 2, 1, 3]);
    const attn = g.linear(g.reshape(ctx, [b, s, D]), `${p}.self_attn.dense`, H * d, D);
    const mlp = g.linear(g.geluTanh(g.linear(a, `${p}.mlp.fc1`, D, FF)), `${p}.mlp.fc2`, FF, D);
    x = g.op1('Add', [g.op1('Add', [attn, mlp]), x]);
  }
  const logits = g.linear(g.layerNorm(x, 'model.final_layernorm', D), 'lm_head', D, vocab);
  g.nodes.push(node('Identity', [logits], ['logits']));
  return g.model([tokens()], [valueInfo('logits', F, ['batch', 'seq', vocab])]);
}

// ---------------------------------------------------------------------------------------------------------
// (d) T5 encoder: RMSNorm, no 1/√d, relative position bias computed once (bucketed with Log) and added to the
// scores of every layer, heads viewed with -1, inner dim H·d_kv ≠ d_model, gated-GELU FFN (wi_0, wi_1, wo).

const T5 = { vocab: 48, D: 32, H: 4, dkv: 12, FF: 40, buckets: 32, maxDistance: 128 };

function t5(layers: number): Uint8Array {
  const { vocab, D, H, dkv, FF, buckets, maxDistance } = T5;
  const g = new Net(13, 61);
  const mask = 'attention_mask';
  let x = g.op1('Gather', [g.weight('shared.weight', [vocab, D], 1), 'input_ids']);
  const ext = g.op1('Mul', [g.op1('Sub', [g.f(1), g.op1('Cast', [g.unsqueeze(mask, [1, 2])], [attr.int('to', F)])]), g.f(-1e4)]);
  // compute_bias(s, s): bidirectional buckets of memory - context positions.
  const s = g.dim('input_ids', 1);
  const rng = g.op1('Range', [g.i(0, []), s, g.i(1, [])]);
  const rel = g.op1('Sub', [g.unsqueeze(rng, [0]), g.unsqueeze(rng, [1])]);
  const nb = buckets / 2, maxExact = nb / 2;
  const sign = g.op1('Mul', [g.op1('Cast', [g.op1('Greater', [rel, g.i(0, [])])], [attr.int('to', I64)]), g.i(nb, [])]);
  const n = g.op1('Abs', [rel]);
  const isSmall = g.op1('Less', [n, g.i(maxExact, [])]);
  const logRatio = g.op1('Div', [g.op1('Log', [g.op1('Div', [g.op1('Cast', [n], [attr.int('to', F)]), g.f(maxExact)])]), g.f(Math.log(maxDistance / maxExact))]);
  const large0 = g.op1('Add', [g.op1('Cast', [g.op1('Mul', [logRatio, g.f(nb - maxExact)])], [attr.int('to', I64)]), g.i(maxExact, [])]);
  const large = g.op1('Min', [large0, g.i(nb - 1, [])]);
  const bucket = g.op1('Add', [sign, g.op1('Where', [isSmall, n, large])]);
  const values = g.op1('Gather', [g.weight('encoder.block.0.layer.0.SelfAttention.relative_attention_bias.weight', [buckets, H], 1), bucket]);
  const bias = g.op1('Add', [g.unsqueeze(g.transpose(values, [2, 0, 1]), [0]), ext]);
  for (let l = 0; l < layers; l++) {
    const p = `encoder.block.${l}`;
    const a = g.rmsNorm(x, `${p}.layer.0.layer_norm`, D);
    const b = g.dim(a, 0);
    const heads = (y: string) => g.transpose(g.reshape(y, [b, -1, H, dkv]), [0, 2, 1, 3]);
    const q = heads(g.linear(a, `${p}.layer.0.SelfAttention.q`, D, H * dkv, false));
    const k = heads(g.linear(a, `${p}.layer.0.SelfAttention.k`, D, H * dkv, false));
    const v = heads(g.linear(a, `${p}.layer.0.SelfAttention.v`, D, H * dkv, false));
    const scores = g.op1('Add', [g.op1('MatMul', [q, g.transpose(k, [0, 1, 3, 2])]), bias]);
    const probs = g.op1('Softmax', [scores], [attr.int('axis', -1)]);
    const ctx = g.transpose(g.op1('MatMul', [probs, v]), [0, 2, 1, 3]);
    const o = g.linear(g.reshape(ctx, [b, -1, H * dkv]), `${p}.layer.0.SelfAttention.o`, H * dkv, D, false);
    x = g.op1('Add', [x, o]);
    const f = g.rmsNorm(x, `${p}.layer.1.layer_norm`, D);
    const gate = g.geluTanh(g.linear(f, `${p}.layer.1.DenseReluDense.wi_0`, D, FF, false));
    const up = g.linear(f, `${p}.layer.1.DenseReluDense.wi_1`, D, FF, false);
    x = g.op1('Add', [x, g.linear(g.op1('Mul', [gate, up]), `${p}.layer.1.DenseReluDense.wo`, FF, D, false)]);
  }
  g.nodes.push(node('Identity', [g.rmsNorm(x, 'encoder.final_layer_norm', D)], ['last_hidden_state']));
  return g.model([tokens(), valueInfo(mask, I64, ['batch', 'seq'])], [valueInfo('last_hidden_state', F, ['batch', 'seq', D])]);
}

// ---------------------------------------------------------------------------------------------------------
// Running the CLI and checking the result

interface Outcome {
  analysis: GroupAnalysis;
  plan: Record<string, number[]>;
  report: Record<string, any>;
}

/**
 * Writes the model, lists its groups with `onnx-prune groups --json`, prunes it with `onnx-prune IN OUT --ratio 0.3`
 * (which verifies the result against the masked dense model), then runs the output at seq 5 and 11 (batch 2)
 * and compares it there with the masked dense model too.
 */
async function run(name: string, bytes: Uint8Array): Promise<Outcome> {
  const input = path.join(tmp, `${name}.onnx`);
  const output = path.join(tmp, `${name}.pruned.onnx`);
  const planFile = path.join(tmp, `${name}.plan.json`);
  fs.writeFileSync(input, bytes);
  const j = await runCliInProcess(['groups', input, '--json']);
  expect({ code: j.code, stderr: j.stderr }).toEqual({ code: 0, stderr: '' });
  const analysis = fromGroupsJson(JSON.parse(j.stdout));

  const r = await runCliInProcess([input, output, '--ratio', '0.3', '--json', '--save-plan', planFile]);
  const report = r.stdout.trim() ? JSON.parse(r.stdout) : {};
  const failing = report.verify?.failingGroups ?? [];
  expect({ code: r.code, stderr: r.stderr, error: report.verify?.error, failing }).toEqual({ code: 0, stderr: '', error: undefined, failing: [] });
  expect(report.verify.passed).toBe(true);
  expect(report.params.after).toBeLessThan(report.params.before);
  const plan = JSON.parse(fs.readFileSync(planFile, 'utf8')).groups as Record<string, number[]>;

  const dense = loadModel(input);
  const pruned = loadModel(output);
  const masked = cloneModel(dense);
  maskPlan(masked, await analyzeGroups(dense, { rewriteComputedShapes: true }), plan);
  for (const seq of [5, 11]) {
    const feeds = verificationFeeds(dense, { batch: 2, seq, seed: seq });
    const want = await runModel(masked, feeds);
    const got = await runModel(pruned, feeds);
    for (const o of dense.graph.outputs) {
      const c = compareOutputs(o.name ?? '', want[o.name ?? ''], got[o.name ?? '']);
      expect({ seq, output: o.name, mismatch: c.mismatch, close: c.maxRelDiff < 1e-4 }).toEqual({ seq, output: o.name, mismatch: undefined, close: true });
    }
  }
  return { analysis, plan, report };
}

type WeightMember = Extract<Member, { kind: 'weight' }>;

/** The group in which `tensor` is a member with `role` (throws with the declined list when there is none). */
function groupWith(a: GroupAnalysis, tensor: string, role = 'out'): Group {
  const g = a.groups.find((x) => x.members.some((m) => m.kind === 'weight' && m.tensor === tensor && m.role === role));
  if (!g) throw new Error(`no group with ${tensor} (${role}); declined: ${JSON.stringify(a.declined.map((d) => [d.reason, d.node, d.tensor]))}`);
  return g;
}

function member(g: Group, tensor: string, role: string): WeightMember {
  const m = g.members.find((x) => x.kind === 'weight' && x.tensor === tensor && x.role === role);
  if (!m) throw new Error(`${g.id} has no ${role} member ${tensor}`);
  return m as WeightMember;
}

const range = (from: number, to: number) => Array.from({ length: to - from }, (_, i) => from + i);

/** The plan removed at least one unit of `g`, and the pruned model's `tensor` (a member of `g`) lost their positions. */
function expectPrunedUnits(name: string, r: Outcome, g: Group, tensor: string): void {
  const removed = r.plan[g.id] ?? [];
  expect(removed.length).toBeGreaterThan(0);
  const m = g.members.find((x) => x.kind === 'weight' && x.tensor === tensor) as WeightMember;
  const lost = new Set(removed.flatMap((u) => m.indices[u])).size;
  const dense = loadModel(path.join(tmp, `${name}.onnx`)).graph.constant(tensor)!.dims[m.axis];
  const after = loadModel(path.join(tmp, `${name}.pruned.onnx`)).graph.constant(tensor)!.dims[m.axis];
  expect(after).toBe(dense - lost);
}


// ---------------------------------------------------------------------------------------------------------

describe('(a) BERT from transformers', () => {
  test.each([
    { opset: 11, scale: 'after' as const, view: 'gather' as const },
    { opset: 13, scale: 'before' as const, view: 'gather' as const },
    { opset: 14, scale: 'sqrt-both' as const, view: 'slice' as const },
  ])('opset $opset, 1/√d $scale q·kᵀ, view from size() by $view', async (o) => {
    const name = `bert${o.opset}`;
    const r = await run(name, bert({ ...o, layers: 2 }));
    const { H, d, FF } = BERT;
    for (let l = 0; l < 2; l++) {
      const p = `encoder.layer.${l}`;
      const heads = groupWith(r.analysis, `${p}.attention.self.query.weight`);
      expect([heads.unit, heads.size, heads.unitSize]).toEqual(['head', H, d]);
      for (const w of ['key', 'value']) expect(member(heads, `${p}.attention.self.${w}.weight`, 'out').indices[1]).toEqual(range(d, 2 * d));
      expect(member(heads, `${p}.attention.output.dense.weight`, 'in').indices[3]).toEqual(range(3 * d, 4 * d));
      // The reshape targets' constant heads (view) and all_head_size (merge) are rewritten per removed head.
      expect(heads.members.filter((m) => m.kind === 'shape').map((m) => (m as { perUnit: number }).perUnit).sort()).toEqual([1, 1, 1, d]);
      const mlp = groupWith(r.analysis, `${p}.intermediate.dense.weight`);
      expect([mlp.unit, mlp.size]).toEqual(['neuron', FF]);
      member(mlp, `${p}.output.dense.weight`, 'in');
      expectPrunedUnits(name, r, heads, `${p}.attention.self.query.weight`);
      expectPrunedUnits(name, r, mlp, `${p}.intermediate.dense.weight`);
    }
    expect(r.analysis.groups).toHaveLength(4);
    // The hidden size (its decomposed LayerNorms would run over the kept channels) is the last_hidden_state
    // output; the pooler reaches an output too.
    expect(r.analysis.declined.map((x) => x.reason)).toEqual([DECLINE.graphOutput, ...(o.opset === 13 ? [DECLINE.graphOutput] : [])]);
  });
});

describe('(b) fused QKV with interleaved heads', () => {
  test.each([
    { opset: 12, split: 'split' as const },
    { opset: 14, split: 'slice' as const },
  ])('GPT-NeoX [b,s,H,3·d] by $split at opset $opset (partial rotary, heads folded for baddbmm)', async (o) => {
    const name = `neox-${o.split}`;
    const r = await run(name, neox(o));
    const { H, d, FF } = NEOX;
    for (let l = 0; l < 2; l++) {
      const p = `gpt_neox.layers.${l}`;
      const heads = groupWith(r.analysis, `${p}.attention.query_key_value.weight`);
      expect([heads.unit, heads.size, heads.unitSize]).toEqual(['head', H, d]);
      // A head's q, k and v rows are contiguous in the fused projection.
      const qkv = member(heads, `${p}.attention.query_key_value.weight`, 'out');
      expect(qkv.indices.map((x) => [x[0], x.length])).toEqual(range(0, H).map((h) => [3 * d * h, 3 * d]));
      expect(member(heads, `${p}.attention.query_key_value.bias`, 'out').indices[2]).toEqual(range(6 * d, 9 * d));
      expect(member(heads, `${p}.attention.dense.weight`, 'in').indices[2]).toEqual(range(2 * d, 3 * d));
      expect([groupWith(r.analysis, `${p}.mlp.dense_h_to_4h.weight`).size]).toEqual([FF]);
      expectPrunedUnits(name, r, heads, `${p}.attention.query_key_value.weight`);
    }
  });

  test('Bloom [b,s,H,3,d] picked by Gather, heads folded into the batch, ALiBi shared by both layers', async () => {
    const r = await run('bloom', bloom(2));
    const { H, d, FF } = BLOOM;
    // The ALiBi tensor (slopes[H, 1] · positions, reshaped to [b·H, 1, s]) is added to the scores of every
    // layer: head h of both layers and slope h are one unit.
    const heads = groupWith(r.analysis, 'h.0.self_attention.query_key_value.weight');
    expect([heads.unit, heads.size, heads.unitSize]).toEqual(['head', H, d]);
    const slopes = heads.members.find((m) => m.kind === 'weight' && m.role === 'param') as WeightMember;
    expect([slopes.axis, slopes.indices]).toEqual([0, range(0, H).map((h) => [h])]);
    for (let l = 0; l < 2; l++) {
      expect(member(heads, `h.${l}.self_attention.query_key_value.weight`, 'out').indices[1]).toEqual(range(3 * d, 6 * d));
      member(heads, `h.${l}.self_attention.dense.weight`, 'in');
      expect(groupWith(r.analysis, `h.${l}.mlp.dense_h_to_4h.weight`).size).toBe(FF);
      expectPrunedUnits('bloom', r, heads, `h.${l}.self_attention.dense.weight`);
    }
    expectPrunedUnits('bloom', r, heads, slopes.tensor);
    expect(r.analysis.groups).toHaveLength(3);
  });
});

describe('(c) multi-query / grouped-query attention and partial rotary', () => {
  test('Falcon-7B multi-query: query heads prune, the shared k/v head is declined', async () => {
    const r = await run('falcon', falcon());
    const { H, d, FF } = FALCON;
    for (let l = 0; l < 2; l++) {
      const w = `h.${l}.self_attention.query_key_value.weight`;
      const heads = groupWith(r.analysis, w);
      expect([heads.unit, heads.size, heads.unitSize]).toEqual(['head', H, d]);
      // Only the query rows of a head; the view's H+2 shrinks with it; the k/v picks [-2], [-1] stay right.
      expect(member(heads, w, 'out').indices).toEqual(range(0, H).map((h) => range(h * d, (h + 1) * d)));
      expect(member(heads, `h.${l}.self_attention.dense.weight`, 'in').indices[1]).toEqual(range(d, 2 * d));
      expect(groupWith(r.analysis, `h.${l}.mlp.dense_h_to_4h.weight`).size).toBe(FF);
      expectPrunedUnits('falcon', r, heads, `h.${l}.self_attention.dense.weight`);
    }
    // k and v (one head each) are read by every query head: two declined single units per layer.
    const shared = r.analysis.declined.filter((x) => x.reason === DECLINE.broadcastShared);
    expect(shared.map((x) => x.size)).toEqual([1, 1, 1, 1]);
  });

  test.each([2, 1])('Falcon-40B [b,s,kv,H/kv+2,d] with k/v broadcast_to the query heads (Expand), %i kv heads', async (kv) => {
    const name = `falcon40b-kv${kv}`;
    const r = await run(name, falcon40b(kv));
    const { H, d } = FALCON;
    for (let l = 0; l < 2; l++) {
      const w = `h.${l}.self_attention.query_key_value.weight`;
      const g = groupWith(r.analysis, w);
      if (kv === 2) {
        expect([g.unit, g.size, g.unitSize, g.info?.queriesPerKv]).toEqual(['kv-group', 2, d, H / 2]);
        // A kv-group's 2 query heads, its k and its v head are contiguous rows of the fused projection.
        expect(member(g, w, 'out').indices).toEqual([range(0, 4 * d), range(4 * d, 8 * d)]);
      } else {
        // Multi-query: the query heads are the units; the expanded k/v shrink with them (Expand sizes follow
        // the query's Shape), the single k/v head itself is declined.
        expect([g.unit, g.size, g.unitSize]).toEqual(['head', H, d]);
        expect(member(g, w, 'out').indices).toEqual(range(0, H).map((h) => range(h * d, (h + 1) * d)));
      }
      expectPrunedUnits(name, r, g, `h.${l}.self_attention.dense.weight`);
    }
    const shared = r.analysis.declined.filter((x) => x.reason === DECLINE.broadcastShared);
    expect(shared.map((x) => x.size)).toEqual(kv === 1 ? [1, 1, 1, 1] : []);
  });

  test('LLaMA-style multi-query (repeat_kv: Unsqueeze → Expand → Reshape of one k/v head): query heads', async () => {
    const r = await run('llama-mqa', llamaRepeatKv(1));
    const { H, d } = FALCON;
    for (let l = 0; l < 2; l++) {
      const p = `model.layers.${l}`;
      const g = groupWith(r.analysis, `${p}.self_attn.q_proj.weight`);
      expect([g.unit, g.size, g.unitSize]).toEqual(['head', H, d]);
      // The repeat's Expand and Reshape targets lose one head per removed query head (k and v each).
      expect(g.members.filter((m) => m.kind === 'shape' && m.perUnit === 1)).toHaveLength(5);
      expect(g.members.some((m) => m.kind === 'weight' && /k_proj|v_proj/.test(m.tensor))).toBe(false);
      expectPrunedUnits('llama-mqa', r, g, `${p}.self_attn.o_proj.weight`);
    }
    expect(r.analysis.declined.filter((x) => x.reason === DECLINE.broadcastShared).map((x) => x.size)).toEqual([1, 1, 1, 1]);
  });

  test('Phi-2: partial rotary (Slice of head_dim, rotate, Concat back), parallel attention and MLP', async () => {
    const r = await run('phi', phi());
    const { H, d, FF } = PHI;
    for (let l = 0; l < 2; l++) {
      const p = `model.layers.${l}`;
      const heads = groupWith(r.analysis, `${p}.self_attn.q_proj.weight`);
      expect([heads.unit, heads.size, heads.unitSize]).toEqual(['head', H, d]);
      for (const w of ['k_proj', 'v_proj']) member(heads, `${p}.self_attn.${w}.bias`, 'out');
      const mlp = groupWith(r.analysis, `${p}.mlp.fc1.weight`);
      expect([mlp.unit, mlp.size]).toEqual(['neuron', FF]);
      expectPrunedUnits('phi', r, heads, `${p}.self_attn.dense.weight`);
      expectPrunedUnits('phi', r, mlp, `${p}.mlp.fc2.weight`);
    }
  });
});

describe('(d) T5', () => {
  test('RMSNorm, gated-GELU FFN; the relative position bias shared by both layers couples their heads', async () => {
    const r = await run('t5', t5(2));
    const { H, dkv, FF } = T5;
    const table = 'encoder.block.0.layer.0.SelfAttention.relative_attention_bias.weight';
    const heads = groupWith(r.analysis, table);
    expect([heads.unit, heads.size, heads.unitSize]).toEqual(['head', H, dkv]);
    expect(member(heads, table, 'out').axis).toBe(1);
    for (let l = 0; l < 2; l++) {
      const p = `encoder.block.${l}`;
      expect(member(heads, `${p}.layer.0.SelfAttention.q.weight`, 'out').indices[1]).toEqual(range(dkv, 2 * dkv));
      member(heads, `${p}.layer.0.SelfAttention.o.weight`, 'in');
      const ffn = groupWith(r.analysis, `${p}.layer.1.DenseReluDense.wi_0.weight`);
      expect([ffn.unit, ffn.size]).toEqual(['neuron', FF]);
      member(ffn, `${p}.layer.1.DenseReluDense.wi_1.weight`, 'out');
      member(ffn, `${p}.layer.1.DenseReluDense.wo.weight`, 'in');
      expectPrunedUnits('t5', r, ffn, `${p}.layer.1.DenseReluDense.wo.weight`);
    }
    expectPrunedUnits('t5', r, heads, table);
    expect(r.analysis.groups).toHaveLength(3);
  });
});

