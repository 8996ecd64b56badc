/**
 * The graph model on tiny graphs built in code: producers/consumers, uniform weights (initializers and
 * Constant nodes), Identity chains, shared weights, topological sort and dead-node removal on long chains,
 * subgraphs with outer-scope values, unknown protobuf fields and int64 extremes through load/save, typed data.
 */
import * as fs from 'fs';
import * as path from 'path';
import Long from 'long';
import { float32ToFloat16 } from '../src/ir/dtype';
import { loadModel, saveModel } from '../src/ir/io';
import { toBigInt } from '../src/ir/long';
import { Model } from '../src/ir/model';
import { decodeModelProto, encodeModelProto } from '../src/ir/proto';
import { ConstTensor } from '../src/ir/tensor';
import { ort } from '../src/ort/session';
import {
  DataType, attr, constantNode, floatTensor, graph, int64Tensor, modelBytes, modelProto, node, onnx, tensor, valueInfo,
} from './helpers/builder';
import { mkTmp, rmTmp } from './helpers/cli';
import { runOnce } from './helpers/ort-run';

const F = DataType.FLOAT;
const INT64_MAX = 2n ** 63n - 1n;
const INT64_MIN = -(2n ** 63n);

let tmp: string;
beforeAll(() => { tmp = mkTmp('onnx-prune-ir-'); });
afterAll(() => rmTmp(tmp));

function load(g: onnx.GraphProto, opset = 17): Model {
  return loadModel(modelBytes(g, { opset }));
}

/** Saves and reloads through a file (the real I/O path). */
function saveLoad(m: Model, name: string): Model {
  const p = path.join(tmp, name);
  saveModel(m, p, { externalData: false });
  return loadModel(p);
}

const names = (nodes: { name: string }[]) => nodes.map((n) => n.name);

describe('producers and consumers', () => {
  const m = () => load(graph({
    nodes: [
      node('Relu', ['x'], ['a'], [], 'relu'),
      node('Add', ['a', 'b'], ['c'], [], 'add'),
      node('Mul', ['a', 'a'], ['d'], [], 'mul'),
      node('Concat', ['c', 'd'], ['y'], [attr.int('axis', 0)], 'concat'),
    ],
    initializers: [floatTensor('b', [2], [1, 2])],
    inputs: [valueInfo('x', F, [2])],
    outputs: [valueInfo('y', F, [4])],
  }));

  test('producer, consumers (a node reading a tensor twice is listed once), graph inputs/outputs', () => {
    const g = m().graph;
    expect(g.producer('a')?.name).toBe('relu');
    expect(g.producer('x')).toBeUndefined();
    expect(g.producer('b')).toBeUndefined();
    expect(names(g.consumers('a'))).toEqual(['add', 'mul']);
    expect(names(g.consumers('b'))).toEqual(['add']);
    expect(g.consumers('y')).toEqual([]);
    expect(g.isGraphInput('x')).toBe(true);
    expect(g.isGraphOutput('y')).toBe(true);
    expect(g.types.get('b')).toEqual({ dtype: F, shape: [2] });
    expect(g.types.get('x')).toEqual({ dtype: F, shape: [2] });
  });

  test('editing inputs + invalidate() updates the index; uniqueName avoids every used name', () => {
    const g = m().graph;
    g.producer('a');
    const mul = g.nodes.find((n) => n.name === 'mul')!;
    mul.inputs[1] = 'x';
    g.invalidate();
    expect(names(g.consumers('x'))).toEqual(['relu', 'mul']);
    expect(g.uniqueName('a')).toBe('a_1');
    expect(g.uniqueName('b')).toBe('b_1');
    expect(g.uniqueName('fresh')).toBe('fresh');
    const added = g.addNode(node('Neg', ['c'], ['n'], [], 'neg'));
    expect(g.producer('n')).toBe(added);
    expect(names(g.consumers('c'))).toEqual(['concat', 'neg']);
    g.removeNode(added);
    expect(g.producer('n')).toBeUndefined();
  });
});

describe('initializer and Constant-node weights are presented uniformly', () => {
  const build = () => load(graph({
    nodes: [
      constantNode('c_tensor', floatTensor('', [2, 3], [1, 2, 3, 4, 5, 6])),
      node('Constant', [], ['c_floats'], [attr.floats('value_floats', [0.5, -1.5])]),
      node('Constant', [], ['c_float'], [attr.float('value_float', 0.25)]),
      node('Constant', [], ['c_ints'], [attr.ints('value_ints', [3, -1, INT64_MAX])]),
      node('Constant', [], ['c_int'], [attr.int('value_int', 7)]),
      node('Relu', ['x'], ['not_const']),
      node('MatMul', ['x', 'w'], ['y0']),
      node('Add', ['y0', 'c_tensor'], ['y1']),
      node('Concat', ['c_floats', 'c_float', 'not_const'], ['y2'], [attr.int('axis', 0)]),
      node('Concat', ['c_ints', 'c_int'], ['y3'], [attr.int('axis', 0)]),
    ],
    initializers: [floatTensor('w', [3, 3], [1, 0, 0, 0, 1, 0, 0, 0, 1])],
    inputs: [valueInfo('x', F, [2, 3])],
    outputs: [valueInfo('y1', F, [2, 3]), valueInfo('y2', F), valueInfo('y3', DataType.INT64, [4])],
  }));

  test('constant(name) returns a ConstTensor for initializers and every Constant-node form', () => {
    const g = build().graph;
    const w = g.constant('w')!;
    expect(w).toBeInstanceOf(ConstTensor);
    expect([w.dtype, w.dims, w.size]).toEqual([F, [3, 3], 9]);
    const c = g.constant('c_tensor')!;
    expect([c.dtype, c.dims]).toEqual([F, [2, 3]]);
    expect(Array.from(c.toFloat32())).toEqual([1, 2, 3, 4, 5, 6]);
    expect(Array.from(g.constant('c_floats')!.toFloat32())).toEqual([0.5, -1.5]);
    expect(g.constant('c_float')!.dims).toEqual([]);
    expect(Array.from(g.constant('c_float')!.toFloat32())).toEqual([0.25]);
    const ints = g.constant('c_ints')!;
    expect(ints.dtype).toBe(DataType.INT64);
    expect(Array.from(ints.data() as BigInt64Array)).toEqual([3n, -1n, INT64_MAX]);
    expect(Array.from(g.constant('c_int')!.data() as BigInt64Array)).toEqual([7n]);
    expect(g.constant('x')).toBeUndefined();
    expect(g.constant('not_const')).toBeUndefined();
    expect(g.constant('no_such_tensor')).toBeUndefined();
  });

  test('weights() lists both kinds with their source', () => {
    const ws = build().graph.weights();
    const bySource = (s: string) => ws.filter((w) => w.source === s).map((w) => w.name).sort();
    expect(bySource('initializer')).toEqual(['w']);
    expect(bySource('constant-node')).toEqual(['c_float', 'c_floats', 'c_int', 'c_ints', 'c_tensor']);
    expect(ws.find((w) => w.name === 'c_tensor')!.node?.opType).toBe('Constant');
    expect(ws.reduce((a, w) => a + w.tensor.size, 0)).toBe(9 + 6 + 2 + 1 + 3 + 1);
  });
});

describe('Identity chains and shared weights', () => {
  const build = () => load(graph({
    nodes: [
      node('Identity', ['w'], ['w_id1'], [], 'id1'),
      node('Identity', ['w_id1'], ['w_id2'], [], 'id2'),
      node('MatMul', ['x', 'w'], ['a'], [], 'mm_direct'),
      node('MatMul', ['x', 'w_id2'], ['b'], [], 'mm_via_identity'),
      node('MatMul', ['x', 'v'], ['c'], [], 'mm_v'),
      node('Sum', ['a', 'b', 'c'], ['y'], [], 'sum'),
    ],
    initializers: [floatTensor('w', [2, 2], [1, 2, 3, 4]), floatTensor('v', [2, 2], [5, 6, 7, 8])],
    inputs: [valueInfo('x', F, [1, 2])],
    outputs: [valueInfo('y', F, [1, 2])],
  }));

  test('resolveIdentity / resolveConstant follow the chain to the initializer', () => {
    const g = build().graph;
    expect(g.resolveIdentity('w_id2')).toBe('w');
    expect(g.resolveIdentity('w')).toBe('w');
    expect(g.resolveIdentity('a')).toBe('a');
    expect(g.resolveConstant('w_id2')).toBe(g.initializers.get('w'));
    expect(g.constant('w_id2')).toBeUndefined();
  });

  test('a weight used by two nodes (directly and through Identity) is shared; a single-use one is not', () => {
    const g = build().graph;
    expect(names(g.realConsumers('w')).sort()).toEqual(['mm_direct', 'mm_via_identity']);
    expect(g.isSharedWeight('w')).toBe(true);
    expect(g.isSharedWeight('w_id2')).toBe(true);
    expect(g.isSharedWeight('v')).toBe(false);
    expect(names(g.realConsumers('v'))).toEqual(['mm_v']);
  });

  test('a 10k-long Identity chain resolves without recursion', () => {
    const n = 10_000;
    const nodes = Array.from({ length: n }, (_, i) => node('Identity', [i === 0 ? 'w' : `t${i - 1}`], [`t${i}`]));
    const g = load(graph({
      nodes: [...nodes, node('MatMul', ['x', `t${n - 1}`], ['y'])],
      initializers: [floatTensor('w', [1, 1], [2])],
      inputs: [valueInfo('x', F, [1, 1])], outputs: [valueInfo('y', F, [1, 1])],
    })).graph;
    expect(g.resolveIdentity(`t${n - 1}`)).toBe('w');
    expect(g.realConsumers('w').map((c) => c.opType)).toEqual(['MatMul']);
  });
});

describe('topological sort and dead-node removal', () => {
  const N = 20_000;

  /** x → Neg → Neg → ... (N nodes) → y, stored in reverse order, plus a dead branch. */
  function chain(): Model {
    const nodes: onnx.NodeProto[] = [];
    for (let i = 0; i < N; i++) nodes.push(node('Neg', [i === 0 ? 'x' : `t${i - 1}`], [i === N - 1 ? 'y' : `t${i}`], [], `n${i}`));
    nodes.reverse();
    for (let i = 0; i < 100; i++) nodes.push(node('Add', [i === 0 ? 't5' : `dead${i - 1}`, 'dead_w'], [`dead${i}`], [], `dead${i}`));
    return load(graph({
      nodes, initializers: [floatTensor('dead_w', [1], [1]), floatTensor('unused_w', [1], [1])],
      inputs: [valueInfo('x', F, [1])], outputs: [valueInfo('y', F, [1])],
    }));
  }

  test(`topoSort orders a ${N}-node chain given in reverse (no stack overflow)`, () => {
    const g = chain().graph;
    const order = g.topoSort();
    expect(order).toHaveLength(N + 100);
    const pos = new Map(order.map((n, i) => [n, i]));
    for (const n of order) for (const i of n.inputs) {
      const p = g.producer(i);
      if (p) expect(pos.get(p)!).toBeLessThan(pos.get(n)!);
    }
    expect(order[0].name).toBe('n0');
    expect(order[N + 99].name).toBe('dead99');
    g.sortNodes();
    expect(g.nodes[1].name).toBe('n1');
  });

  test('removeDeadNodes drops the dead branch and unused initializers, keeps the chain; the result runs', async () => {
    const m = chain();
    const g = m.graph;
    expect(g.removeDeadNodes()).toBe(100);
    expect(g.nodes).toHaveLength(N);
    expect([...g.initializers.keys()]).toEqual([]);
    g.sortNodes();
    const out = await runOnce(saveLoad(m, 'chain.onnx'), { x: new ort.Tensor('float32', Float32Array.of(3), [1]) });
    expect(Array.from(out.y.data as Float32Array)).toEqual([3]); // an even number of negations
  });

  test('a cycle is reported: loading refuses the model, topoSort names a node on the cycle', () => {
    const proto = graph({
      nodes: [node('Neg', ['x'], ['y']), node('Neg', ['b'], ['a']), node('Neg', ['a'], ['b']), node('Relu', ['a'], ['c'])],
      inputs: [valueInfo('x', F, [1])], outputs: [valueInfo('y', F, [1])],
    });
    expect(() => load(proto)).toThrow(/not a valid ONNX model \(graph 'g' has a cycle through node 'Neg\(a\)'\)/);
    const g = new Model(modelProto(proto)).graph;
    expect(() => g.topoSort()).toThrow(/graph 'g' has a cycle \(through node 'Neg\(a\)'\)/);
    expect(g.cycleNode()?.label).toBe('Neg(a)');
  });
});

describe('subgraphs (If with branches using outer-scope tensors)', () => {
  /** y = If(cond, then: xr + w, else: xr - w), where xr = Relu(x) is produced *after* the If in node order. */
  function ifModel(): Model {
    const thenG = graph({
      name: 'then', nodes: [node('Add', ['xr', 'w'], ['t_out'], [], 'then_add')],
      inputs: [], outputs: [valueInfo('t_out', F, [3])],
    });
    const elseG = graph({
      name: 'else', nodes: [node('Sub', ['xr', 'w'], ['e_out'], [], 'else_sub')],
      inputs: [], outputs: [valueInfo('e_out', F, [3])],
    });
    return load(graph({
      nodes: [
        node('If', ['cond'], ['y'], [attr.graph('then_branch', thenG), attr.graph('else_branch', elseG)], 'if'),
        node('Relu', ['x'], ['xr'], [], 'relu'),
        node('Neg', ['x'], ['unused'], [], 'dead'),
      ],
      initializers: [floatTensor('w', [3], [10, 20, 30])],
      inputs: [valueInfo('cond', DataType.BOOL, []), valueInfo('x', F, [3])],
      outputs: [valueInfo('y', F, [3])],
    }), 13);
  }

  test('outer-scope reads count as consumers; topoSort and removeDeadNodes respect them', () => {
    const m = ifModel();
    const g = m.graph;
    const ifNode = g.nodes.find((n) => n.opType === 'If')!;
    expect(ifNode.subgraphs.map((s) => s.name)).toEqual(['then', 'else']);
    expect(names(g.consumers('w'))).toEqual(['if']);
    expect(names(g.consumers('xr'))).toEqual(['if']);
    expect(ifNode.subgraphs[0].constant('w')).toBe(g.initializers.get('w'));
    expect(m.graph.allGraphs()).toHaveLength(3);
    expect(names(g.topoSort())).toEqual(['relu', 'if', 'dead']);
    expect(g.removeDeadNodes()).toBe(1);
    expect([...g.initializers.keys()]).toEqual(['w']);
    g.sortNodes();
    expect(names(g.nodes)).toEqual(['relu', 'if']);
  });

  test('kept intact through save/load, and it runs in onnxruntime for both branches', async () => {
    const m = ifModel();
    m.graph.removeDeadNodes();
    m.graph.sortNodes();
    const r = saveLoad(m, 'if.onnx');
    const ifNode = r.graph.nodes.find((n) => n.opType === 'If')!;
    expect(ifNode.subgraphs.map((s) => s.nodes.map((n) => `${n.opType}(${n.inputs.join(',')})`))).toEqual([['Add(xr,w)'], ['Sub(xr,w)']]);
    const x = Float32Array.of(1.5, -2, 3.25);
    const feeds = (c: boolean) => ({ cond: new ort.Tensor('bool', Uint8Array.of(c ? 1 : 0), []), x: new ort.Tensor('float32', x, [3]) });
    const relu = Array.from(x, (v) => Math.max(0, v));
    const thenOut = await runOnce(path.join(tmp, 'if.onnx'), feeds(true));
    expect(Array.from(thenOut.y.data as Float32Array)).toEqual(relu.map((v, i) => v + [10, 20, 30][i]));
    const elseOut = await runOnce(r, feeds(false));
    expect(Array.from(elseOut.y.data as Float32Array)).toEqual(relu.map((v, i) => v - [10, 20, 30][i]));
  });
});

describe('unknown protobuf fields survive decode → encode', () => {
  /** A varint field 9999 = 42 and a length-delimited field 10000 = marker (numbers no ONNX message uses). */
  function unknownBytes(marker: string): Buffer {
    const varint = (v: number) => {
      const out: number[] = [];
      while (v > 0x7f) { out.push((v & 0x7f) | 0x80); v >>>= 7; }
      out.push(v);
      return out;
    };
    const payload = Buffer.from(marker, 'utf8');
    return Buffer.from([...varint((9999 << 3) | 0), 42, ...varint((10000 << 3) | 2), ...varint(payload.length), ...payload]);
  }

  /** Attaches encoded unknown fields to a message the way the decoder stores them (written last by encode). */
  function withUnknowns<T extends object>(msg: T, marker: string): T {
    Object.defineProperty(msg, '$unknowns', { value: [unknownBytes(marker)], writable: true, enumerable: false, configurable: true });
    return msg;
  }

  const hasMarker = (msg: object, marker: string) =>
    ((msg as { $unknowns?: Uint8Array[] }).$unknowns ?? []).some((u) => Buffer.from(u).includes(Buffer.from(marker)));

  /**
   * Model bytes with unknown fields in a NodeProto, a TensorProto (initializer) and the ModelProto itself
   * (the last appended to the encoded bytes, as a newer ONNX writer would put it).
   */
  function modelWithUnknowns(): Buffer {
    const mm = withUnknowns(node('MatMul', ['x', 'w'], ['y'], [], 'mm'), 'node-extra');
    const w = withUnknowns(floatTensor('w', [32, 32], new Float32Array(1024).fill(0.5)), 'tensor-extra');
    const g = graph({ nodes: [mm], initializers: [w], inputs: [valueInfo('x', F, [1, 32])], outputs: [valueInfo('y', F, [1, 32])] });
    const bytes = Buffer.concat([Buffer.from(encodeModelProto(modelProto(g))), unknownBytes('model-extra')]);
    for (const marker of ['node-extra', 'tensor-extra', 'model-extra']) expect(bytes.includes(Buffer.from(marker))).toBe(true);
    return bytes;
  }

  test('decodeModelProto → encodeModelProto gives the same bytes (ModelProto, NodeProto, TensorProto)', () => {
    const bytes = modelWithUnknowns();
    const decoded = decodeModelProto(bytes);
    expect(hasMarker(decoded, 'model-extra')).toBe(true);
    expect(hasMarker(decoded.graph!.node[0], 'node-extra')).toBe(true);
    expect(hasMarker(decoded.graph!.initializer[0], 'tensor-extra')).toBe(true);
    expect(Buffer.from(encodeModelProto(decoded)).equals(bytes)).toBe(true);
  });

  test('through loadModel/saveModel, inline and with external data', () => {
    const bytes = modelWithUnknowns();
    const inline = path.join(tmp, 'unknown-inline.onnx');
    saveModel(loadModel(bytes), inline, { externalData: false });
    expect(fs.readFileSync(inline).equals(bytes)).toBe(true);

    const ext = path.join(tmp, 'unknown-ext.onnx');
    saveModel(loadModel(bytes), ext, { externalData: true });
    const reloaded = loadModel(ext);
    expect(reloaded.graph.initializers.get('w')!.external).toBeDefined();
    expect(hasMarker(reloaded.proto, 'model-extra')).toBe(true);
    expect(hasMarker(reloaded.graph.nodes[0].proto, 'node-extra')).toBe(true);
    expect(hasMarker(reloaded.graph.initializers.get('w')!.proto, 'tensor-extra')).toBe(true);
    // And back inline: identical to the original bytes.
    const back = path.join(tmp, 'unknown-back.onnx');
    saveModel(reloaded, back, { externalData: false });
    expect(fs.readFileSync(back).equals(bytes)).toBe(true);
  });
});

describe('int64 extremes', () => {
  test('INT64_MAX / INT64_MIN in attributes survive load/save exactly', () => {
    const g = graph({
      nodes: [node('Identity', ['x'], ['y'], [attr.int('big', INT64_MAX), attr.ints('bigs', [INT64_MAX, INT64_MIN, -1n, 0n])], 'n')],
      inputs: [valueInfo('x', F, [1])], outputs: [valueInfo('y', F, [1])],
    });
    const m = saveLoad(load(g), 'int64-attr.onnx');
    const n = m.graph.nodes[0];
    expect(toBigInt(n.attr('big')!.i)).toBe(INT64_MAX);
    expect(n.attr('bigs')!.ints.map((v) => toBigInt(v))).toEqual([INT64_MAX, INT64_MIN, -1n, 0n]);
    expect(n.attrInt('big')).toBe(Number(INT64_MAX));
    n.setAttrInt('set', INT64_MAX);
    n.setAttrInts('sets', [INT64_MIN, 5]);
    const m2 = saveLoad(m, 'int64-attr2.onnx');
    expect(toBigInt(m2.graph.nodes[0].attr('set')!.i)).toBe(INT64_MAX);
    expect(m2.graph.nodes[0].attr('sets')!.ints.map((v) => toBigInt(v))).toEqual([INT64_MIN, 5n]);
  });

  test('Slice with ends = INT64_MAX (raw_data and int64_data initializers) round-trips and runs', async () => {
    const endsTyped = onnx.TensorProto.create({ name: 'ends2', dataType: DataType.INT64, dims: [1], int64Data: [Long.fromString(INT64_MAX.toString())] });
    const g = graph({
      nodes: [node('Slice', ['x', 'starts', 'ends'], ['y1']), node('Slice', ['x', 'starts', 'ends2'], ['y2'])],
      initializers: [int64Tensor('starts', [1], [1]), int64Tensor('ends', [1], [INT64_MAX]), endsTyped],
      inputs: [valueInfo('x', F, [4])], outputs: [valueInfo('y1', F, [3]), valueInfo('y2', F, [3])],
    });
    const m = saveLoad(load(g, 13), 'slice.onnx');
    expect(Array.from(m.graph.constant('ends')!.data() as BigInt64Array)).toEqual([INT64_MAX]);
    expect(Array.from(m.graph.constant('ends2')!.data() as BigInt64Array)).toEqual([INT64_MAX]);
    const out = await runOnce(path.join(tmp, 'slice.onnx'), { x: new ort.Tensor('float32', Float32Array.of(1, 2, 3, 4), [4]) });
    expect(Array.from(out.y1.data as Float32Array)).toEqual([2, 3, 4]);
    expect(Array.from(out.y2.data as Float32Array)).toEqual([2, 3, 4]);
  });
});

describe('typed tensor access', () => {
  const cases: [string, DataType, ArrayLike<number | bigint>, string][] = [
    ['float32', DataType.FLOAT, Float32Array.of(1.5, -2, 3e-8), 'Float32Array'],
    ['float16', DataType.FLOAT16, Uint16Array.of(float32ToFloat16(1.5), float32ToFloat16(-2)), 'Uint16Array'],
    ['int64', DataType.INT64, BigInt64Array.of(1n, -2n, INT64_MAX), 'BigInt64Array'],
    ['int32', DataType.INT32, Int32Array.of(1, -2, 2147483647), 'Int32Array'],
    ['uint8', DataType.UINT8, Uint8Array.of(0, 200, 255), 'Uint8Array'],
    ['int8', DataType.INT8, Int8Array.of(-128, 0, 127), 'Int8Array'],
    ['bool', DataType.BOOL, Uint8Array.of(1, 0, 1), 'Uint8Array'],
  ];

  test.each(cases)('%s from raw_data and from the typed field', (_label, dtype, values, ctor) => {
    const raw = new ConstTensor(tensor('t', dtype, [values.length], values as never));
    expect(raw.data().constructor.name).toBe(ctor);
    expect(Array.from(raw.data() as ArrayLike<number>)).toEqual(Array.from(values));
    const typed = onnx.TensorProto.create({ name: 't', dataType: dtype, dims: [values.length] });
    const vals = Array.from(values);
    if (dtype === DataType.FLOAT) typed.floatData = vals as number[];
    else if (dtype === DataType.INT64) typed.int64Data = (vals as bigint[]).map((v) => Long.fromString(v.toString()));
    else typed.int32Data = vals as number[];
    const t2 = new ConstTensor(typed);
    expect(Array.from(t2.data() as ArrayLike<number>)).toEqual(vals);
    expect(Buffer.from(t2.bytes()).equals(Buffer.from(raw.bytes()))).toBe(true);
  });

  test('setData replaces the data and dims', () => {
    const t = new ConstTensor(floatTensor('w', [2, 2], [1, 2, 3, 4]));
    t.setData(Float32Array.of(5, 6), [2]);
    expect(t.dims).toEqual([2]);
    expect(Array.from(t.toFloat32())).toEqual([5, 6]);
    expect(() => t.setData(Float32Array.of(1, 2, 3))).toThrow();
  });
});
