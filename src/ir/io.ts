/**
 * Loading and saving models: from a path or bytes, with external data (read lazily, validated), written either
 * inline or with external data, always through a temp file + rename so that no partial output is left behind.
 */
import * as fs from 'fs';
import * as path from 'path';
import { UserError } from './errors';
import { ModelFiles, isExternal } from './external-data';
import { OutputSet, openInput, readFd } from './files';
import { checkTensorData, tensorDims } from './limits';
import { toNumber } from './long';
import { Model } from './model';
import { decodeModelProto, encodeModelProto, onnx } from './proto';
import { DataType } from './dtype';
import { ConstTensor, clearData } from './tensor';

/** Protobuf messages (and so inline models) cannot exceed 2 GB. */
export const PROTOBUF_LIMIT = 2 ** 31 - 1;
/** Inline models above this size are saved with external data automatically. */
export const AUTO_EXTERNAL_BYTES = 1.8e9;

export interface LoadOptions {
  /** Folder that external-data locations are relative to (defaults to the model file's folder). */
  baseDir?: string;
}

export function loadModel(source: string | Uint8Array, opts: LoadOptions = {}): Model {
  let bytes: Uint8Array;
  let files: ModelFiles | undefined = opts.baseDir !== undefined ? new ModelFiles(opts.baseDir) : undefined;
  let label = 'model bytes';
  if (typeof source === 'string') {
    label = `'${source}'`;
    // One descriptor, checked (a regular file, not a FIFO: the open does not block) and read.
    const f = openInput(source, {
      label,
      maxBytes: PROTOBUF_LIMIT,
      tooLarge: (size) => `${label} is ${size} bytes; protobuf cannot parse a model over 2 GB (weights must be in external data)`,
    });
    try {
      if (f.size === 0) throw new UserError(`${label} is empty, not an ONNX model`);
      bytes = readFd(f.fd, f.size, 0, label);
    } finally {
      fs.closeSync(f.fd);
    }
    files = new ModelFiles(opts.baseDir ?? path.dirname(path.resolve(source)), { file: path.resolve(source), id: f.id });
  } else {
    bytes = source;
    if (bytes.length === 0) throw new UserError('model bytes are empty, not an ONNX model');
  }
  let proto: onnx.ModelProto;
  try {
    proto = decodeModelProto(bytes);
  } catch (e) {
    throw new UserError(`${label} is not a valid ONNX model (protobuf: ${(e as Error).message})`);
  }
  validateModelProto(proto, label);
  internalizeNonWeightTensors(proto, files);
  const model = new Model(proto, files);
  // ONNX graphs are acyclic; analysis and inspection rely on a topological order.
  for (const g of model.graph.allGraphs()) {
    const self = g.nodes.find((n) => n.inputs.some((i) => i !== '' && n.outputs.includes(i)));
    const cycle = self ?? g.cycleNode();
    if (cycle) throw new UserError(`${label} is not a valid ONNX model (graph '${g.name}' has a cycle through node '${cycle.label}')`);
  }
  return model;
}

/**
 * External data of the tensors that are not graph initializers (node attributes such as ConstantOfShape's value
 * and Constant's, sparse initializers) is read in now, from the checked data files, and stored inline: every
 * later consumer (onnxruntime, which would resolve it against its working folder; save) sees bytes, never a
 * location. Initializers stay external and are read lazily.
 */
function internalizeNonWeightTensors(m: onnx.ModelProto, files: ModelFiles | undefined): void {
  const tensors: onnx.TensorProto[] = [];
  const sparse = (sp: onnx.ISparseTensorProto | null | undefined) => {
    if (sp?.values) tensors.push(sp.values as onnx.TensorProto);
    if (sp?.indices) tensors.push(sp.indices as onnx.TensorProto);
  };
  const graphs: onnx.IGraphProto[] = m.graph ? [m.graph] : [];
  while (graphs.length) {
    const g = graphs.pop()!;
    for (const sp of g.sparseInitializer ?? []) sparse(sp);
    for (const n of g.node ?? []) {
      for (const a of n.attribute ?? []) {
        if (a.t) tensors.push(a.t as onnx.TensorProto);
        for (const t of a.tensors ?? []) tensors.push(t as onnx.TensorProto);
        sparse(a.sparseTensor);
        for (const sp of a.sparseTensors ?? []) sparse(sp);
        if (a.g) graphs.push(a.g);
        for (const sg of a.graphs ?? []) graphs.push(sg);
      }
    }
  }
  for (const t of tensors) if (isExternal(t)) new ConstTensor(t, files).internalize();
}

/** Structural checks that catch bytes which happen to decode as protobuf but are no ONNX model. */
function validateModelProto(m: onnx.ModelProto, label: string): void {
  const bad = (why: string) => new UserError(`${label} is not a valid ONNX model (${why})`);
  const ir = toNumber(m.irVersion);
  if (!(ir >= 1 && ir < 1000)) throw bad(`ir_version ${ir} is missing or out of range`);
  if (!m.graph) throw bad('it has no graph');
  if (ir >= 3 && m.opsetImport.length === 0) throw bad('it imports no opset');
  for (const o of m.opsetImport) {
    const v = toNumber(o.version);
    if (!(v >= 1 && v < 10000)) throw bad(`opset version ${v} for domain '${o.domain ?? ''}' is out of range`);
  }
  // Every tensor's declared size is checked against the data it holds (external ones: their dims here, their
  // file range when resolved), before anything reads it. Iterative: subgraphs can nest deeply.
  const tensor = (t: onnx.ITensorProto | null | undefined) => {
    if (!t) return;
    if (isExternal(t)) tensorDims(t);
    else checkTensorData(t);
  };
  const sparse = (s: onnx.ISparseTensorProto | null | undefined) => {
    if (!s) return;
    tensor(s.values);
    tensor(s.indices);
  };
  const graphs: onnx.IGraphProto[] = [m.graph];
  while (graphs.length) {
    const g = graphs.pop()!;
    for (const t of g.initializer ?? []) tensor(t);
    for (const s of g.sparseInitializer ?? []) sparse(s);
    for (const n of g.node ?? []) {
      if (!n.opType) throw bad('a node has no op_type');
      for (const a of n.attribute ?? []) {
        tensor(a.t);
        for (const t of a.tensors ?? []) tensor(t);
        sparse(a.sparseTensor);
        for (const s of a.sparseTensors ?? []) sparse(s);
        if (a.g) graphs.push(a.g);
        for (const sg of a.graphs ?? []) graphs.push(sg);
      }
    }
  }
}

export interface SaveOptions {
  /**
   * true: weights ≥ `externalThreshold` bytes go to `<output>.data`; false: everything inline;
   * 'auto' (default): external when the input had external data or the model would exceed ~1.8 GB.
   */
  externalData?: boolean | 'auto';
  /** Smallest tensor (bytes) moved to external data. Default 1024. */
  externalThreshold?: number;
}

/** Every TensorProto the model stores data in: initializers and attribute tensors, in all graphs. */
function forEachTensorSlot(g: onnx.GraphProto, fn: (t: onnx.TensorProto, replace: (t2: onnx.TensorProto) => void) => void): void {
  g.initializer.forEach((t, i) => fn(t, (t2) => (g.initializer[i] = t2)));
  for (const n of g.node) {
    for (const a of n.attribute) {
      if (a.t) fn(a.t, (t2) => (a.t = t2));
      a.tensors?.forEach((t, i) => fn(t, (t2) => (a.tensors[i] = t2)));
      if (a.g) forEachTensorSlot(a.g, fn);
      for (const sg of a.graphs ?? []) forEachTensorSlot(sg, fn);
    }
  }
}

/** The ConstTensor behind every TensorProto of the model's weights, and which of them are initializers. */
function tensorIndex(model: Model): { byProto: Map<onnx.TensorProto, ConstTensor>; initializers: Set<onnx.TensorProto> } {
  const byProto = new Map<onnx.TensorProto, ConstTensor>();
  const initializers = new Set<onnx.TensorProto>();
  for (const g of model.graph.allGraphs()) {
    for (const w of g.weights()) {
      byProto.set(w.tensor.proto, w.tensor);
      if (w.source === 'initializer') initializers.add(w.tensor.proto);
    }
  }
  return { byProto, initializers };
}

/** Bytes of weight data the model holds (external data included), and whether any of it is external. */
function weightBytes(proto: onnx.ModelProto, byProto: Map<onnx.TensorProto, ConstTensor>): { bytes: number; anyExternal: boolean } {
  let bytes = 0;
  let anyExternal = false;
  forEachTensorSlot(proto.graph!, (t) => {
    const ct = byProto.get(t);
    bytes += ct ? ct.byteSize : (t.rawData?.length ?? 0);
    if (ct?.external) anyExternal = true;
  });
  return { bytes, anyExternal };
}

/** A copy of `t` whose data is `length` bytes at `offset` of the external file `location`. */
function externalCopy(t: onnx.TensorProto, location: string, offset: number, length: number): onnx.TensorProto {
  const copy = shallowCopy(t);
  clearData(copy);
  copy.dataLocation = 1;
  copy.externalData = [
    onnx.StringStringEntryProto.create({ key: 'location', value: location }),
    onnx.StringStringEntryProto.create({ key: 'offset', value: String(offset) }),
    onnx.StringStringEntryProto.create({ key: 'length', value: String(length) }),
  ];
  return copy;
}

/** A serialized model for onnxruntime, with the weights it keeps out of the protobuf message. */
export interface RuntimeModel {
  /** ModelProto bytes. */
  bytes: Uint8Array;
  /**
   * Weights the bytes refer to as external data, for onnxruntime's `externalData` session option
   * (`path` is the location the model names).
   */
  externalData: { path: string; data: Uint8Array }[];
}

export interface RuntimeModelOptions {
  /** Intermediate tensors to add as graph outputs (in the bytes only). */
  extraOutputs?: string[];
  /**
   * Initializers of at least this many bytes go to `externalData` (default 64 KiB); Infinity keeps every weight
   * in the bytes (which then cannot exceed 2 GB).
   */
  splitAbove?: number;
}

/** Default RuntimeModelOptions.splitAbove. */
export const RUNTIME_SPLIT_BYTES = 64 * 1024;

/**
 * Serializes `model` for onnxruntime without changing it. Large initializers are not copied into the protobuf
 * message: they are handed over as in-memory external data, one buffer per tensor, shared with the model when it
 * stores them inline (external data is read in). This skips encoding (and allocating) a copy of every weight —
 * onnxruntime copies them once anyway — and lets models with more than 2 GB of weights load. Constant-node
 * tensors and the initializers of subgraphs (which onnxruntime only looks for in files) stay in the message.
 */
export function runtimeModel(model: Model, opts: RuntimeModelOptions = {}): RuntimeModel {
  const proto = model.toProto();
  const { byProto } = tensorIndex(model);
  // onnxruntime finds in-memory external data for the main graph's initializers only (not in If/Loop bodies).
  const mainInitializers = new Set([...model.graph.initializers.values()].map((t) => t.proto));
  const splitAbove = opts.splitAbove ?? RUNTIME_SPLIT_BYTES;
  const externalData: RuntimeModel['externalData'] = [];
  const restores: (() => void)[] = [];
  const outputs = proto.graph!.output;
  const outputCount = outputs.length;
  try {
    forEachTensorSlot(proto.graph!, (t, replace) => {
      const ct = byProto.get(t);
      if (!ct) return;
      if (mainInitializers.has(t) && ct.dtype !== DataType.STRING && ct.byteSize >= splitAbove) {
        const data = ct.bytesView();
        const location = `onnx-prune-memory/${externalData.length}`;
        externalData.push({ path: location, data });
        replace(externalCopy(t, location, 0, data.length));
        restores.push(() => replace(t));
      } else if (ct.external) {
        const copy = shallowCopy(t);
        clearData(copy);
        copy.rawData = ct.bytes();
        replace(copy);
        restores.push(() => replace(t));
      }
    });
    const present = new Set(outputs.map((o) => o.name ?? ''));
    for (const name of opts.extraOutputs ?? []) {
      if (present.has(name)) continue;
      present.add(name);
      outputs.push(onnx.ValueInfoProto.create({ name }));
    }
    return { bytes: encodeModelProto(proto), externalData };
  } finally {
    outputs.length = outputCount;
    for (const r of restores.reverse()) r();
  }
}

/**
 * Saves `model` to `outPath`: the model and its external data (`<output>.data`) are written to temp files next to
 * them and renamed into place when both are complete. Never over a directory, FIFO or device, nor over the
 * model's own input files (the model file it was loaded from, its external data). With `opts.outputs` the files
 * are only staged there (the caller commits them together with its other outputs). Returns the files written.
 */
export function saveModel(model: Model, outPath: string, opts: SaveOptions & { outputs?: OutputSet } = {}): string[] {
  const own = opts.outputs === undefined;
  const outputs = opts.outputs ?? new OutputSet();
  try {
    const files = stageModel(model, outPath, opts, outputs);
    if (own) outputs.commit();
    return files;
  } catch (e) {
    if (own) outputs.abort();
    throw e;
  }
}

/** Registers the files `model` was read from with `outputs`: no output may replace them. */
export function protectModelFiles(model: Model, outputs: OutputSet): void {
  const files = model.files;
  if (!files) return;
  if (files.modelFile) outputs.protect(files.modelFile.file, 'the input model', files.modelFile.id);
  for (const d of files.dataFiles()) outputs.protect(d.file, `the input's external data '${d.location}'`, d.id);
}

function stageModel(model: Model, outPath: string, opts: SaveOptions, outputs: OutputSet): string[] {
  const out = path.resolve(outPath);
  protectModelFiles(model, outputs);
  outputs.declare(outPath, 'output model');

  const proto = model.toProto();
  const { byProto: tensorsByProto, initializers: initializerProtos } = tensorIndex(model);
  const threshold = opts.externalThreshold ?? 1024;
  const { bytes: dataBytes, anyExternal } = weightBytes(proto, tensorsByProto);
  const mode = opts.externalData ?? 'auto';
  const external = mode === true || (mode === 'auto' && (anyExternal || dataBytes > AUTO_EXTERNAL_BYTES));
  if (!external && dataBytes > PROTOBUF_LIMIT) {
    throw new UserError(`the model has ${dataBytes} bytes of weights, over the 2 GB protobuf limit; save it with external data`);
  }

  const dataName = `${path.basename(out)}.data`;
  const dataPath = path.join(path.dirname(out), dataName);
  if (external) outputs.declare(dataPath, 'output external data');
  const restores: (() => void)[] = [];
  const written: string[] = [];
  let data: ReturnType<OutputSet['open']> | undefined;
  try {
    let offset = 0;
    forEachTensorSlot(proto.graph!, (t, replace) => {
      const ct = tensorsByProto.get(t);
      const isExt = !!ct?.external;
      // External data is for initializers (Constant-node tensors stay inline); strings cannot be raw bytes.
      const big = ct !== undefined && ct.dtype !== 8 && ct.byteSize >= threshold;
      if (external && big && initializerProtos.has(t)) {
        const bytes = ct!.bytesView();
        data ??= outputs.open(dataPath, 'output external data', 0);
        const align = bytes.length >= 1 << 20 ? 4096 : 64;
        offset = Math.ceil(offset / align) * align;
        outputs.write(data, bytes, offset);
        const copy = externalCopy(t, dataName, offset, bytes.length);
        offset += bytes.length;
        replace(copy);
        restores.push(() => replace(t));
      } else if (isExt) {
        const copy = shallowCopy(t);
        clearData(copy);
        copy.rawData = ct!.bytes();
        replace(copy);
        restores.push(() => replace(t));
      }
    });
    if (data) {
      outputs.close(data);
      written.push(dataPath);
    }
    const bytes = encodeModelProto(proto);
    if (bytes.length > PROTOBUF_LIMIT) throw new UserError('the serialized model exceeds the 2 GB protobuf limit; save it with external data');
    outputs.stage(outPath, 'output model', bytes, 1);
    written.unshift(out);
    return written;
  } finally {
    for (const r of restores.reverse()) r();
  }
}

function shallowCopy(t: onnx.TensorProto): onnx.TensorProto {
  const c = onnx.TensorProto.create();
  for (const k of Object.getOwnPropertyNames(t)) (c as unknown as Record<string, unknown>)[k] = (t as unknown as Record<string, unknown>)[k];
  return c;
}

