/**
 * Static shape inference with constant folding of shape plumbing.
 *
 * API
 * - `inferShapes(model, {inputShapes?, dims?})` fills `graph.types` (tensor name → {dtype, shape}) for the main
 *   graph and every subgraph, walking nodes in topological order from the graph inputs, initializers and
 *   Constant nodes. Returns `{known, unknown, unsupportedOps, unknownTensors, errors}` counted over node outputs
 *   of all graphs. `graph.types` is rebuilt on every call (so it is safe to re-run after editing the graph).
 *   - A dim is a number, a symbolic string, or undefined (unknown). Symbolic strings are graph-input dim params
 *     ('batch', 'seq') or monomials over them ('16*batch', 'batch*seq'); see ./sym. Symbols are assumed ≥ 1.
 *     Unnamed input dims get fresh symbols `unk__<input>_<axis>`.
 *   - `inputShapes` overrides graph-input shapes by name; `dims` substitutes numbers for symbols in the inputs.
 *   - `inputValues` fixes the value of small graph inputs (e.g. Silero VAD's sample rate `sr`: 16000), so that
 *     control flow and shape plumbing that depend on them resolve (an If whose condition is known takes its
 *     branch; see inferIf).
 *   - Small integer tensors (and tiny float ones) are tracked as values: Shape → Gather → Unsqueeze → Concat →
 *     Reshape, ConstantOfShape, Range, Slice/Cast/Equal/Where on shapes, Expand shapes, ... so that Reshape,
 *     Expand, Tile, Slice and Pad outputs get shapes. Values may hold symbolic elements.
 *   - Ops without a rule (see ./rules; non-default domains have none) get unknown outputs and are listed in
 *     `unsupportedOps` (as `domain.Op` for non-default domains); nothing throws for an unknown op.
 *   - Where inference leaves a dim unknown, a shape declared in the model (value_info / graph outputs) fills it
 *     (numeric dims, or symbols that the graph inputs use).
 * - `knownBranch(node)`: the branch (subgraph) an If node takes, when the last run could tell from its condition.
 * - `knownValues(graph)`: the tracked values (name → {dims, data}) from the last `inferShapes` run on that graph,
 *   e.g. a Reshape's target shape; `knownValue(graph, name)` also falls back to small constants.
 * - `evalDim` / `evalShape`: a dim/shape as numbers, given values for the symbols (missing symbols count as 1).
 * - `inferShapesWithOrt` lives in ./ort (it loads onnxruntime): measured shapes for what static inference
 *   cannot tell.
 */
import { DataType } from '../dtype';
import { UserError } from '../errors';
import { type Graph, type ValueType, valueTypeOf } from '../graph';
import { toNumber } from '../long';
import type { Model } from '../model';
import type { Node } from '../node';
import type { onnx } from '../proto';
import { InferState, RuleCtx } from './context';
import { ruleFor } from './rules';
import { type Shape, isFullyKnown, mergeShapes } from './sym';
import { FLOAT_VALUE_CAP, type TValue, VALUE_CAP, isFloatType, numel, valueFromConst } from './values';

export { type Dim, type Shape, evalDim, evalShape, isFullyKnown } from './sym';
export type { TValue } from './values';
export { RULES } from './rules';

export interface ShapeInferenceOptions {
  /** Concrete shapes for graph inputs (overrides symbolic dims), by input name. */
  inputShapes?: Record<string, (number | string)[]>;
  /** Numbers substituted for symbolic dims of the graph inputs, by symbol name (e.g. {batch: 1}). */
  dims?: Record<string, number>;
  /** Known values of small graph inputs, by input name: a number for a scalar or one-element input, else the
   * elements in row-major order (the input's shape must then be numeric with that many elements). */
  inputValues?: Record<string, number | number[]>;
}

export interface ShapeInferenceResult {
  /** Node outputs whose shape is fully known (numbers or symbols) after inference. */
  known: number;
  /** Node outputs whose shape is still unknown (partly or wholly). */
  unknown: number;
  /** Op types that have no shape rule. */
  unsupportedOps: string[];
  /** Names of the node outputs counted in `unknown`. */
  unknownTensors: string[];
  /** Rules that failed on malformed input (node label: message); their outputs are left unknown. */
  errors: string[];
}

const valueStore = new WeakMap<Graph, Map<string, TValue>>();
const branchStore = new WeakMap<Node, Graph>();

/**
 * The branch an If node takes, when the last `inferShapes` run that reached the node knew its condition's value
 * (e.g. a comparison of shape dims, or an `inputValues` entry); undefined otherwise.
 */
export function knownBranch(node: Node): Graph | undefined {
  return branchStore.get(node);
}

/**
 * Small tensor values tracked by the last `inferShapes` run on `graph` (empty before any run): every computed
 * value, and the constants some rule read (e.g. every Reshape target).
 */
export function knownValues(graph: Graph): ReadonlyMap<string, TValue> {
  return valueStore.get(graph) ?? new Map();
}

/** The tracked value of one tensor, falling back to a small constant (initializer or Constant node). */
export function knownValue(graph: Graph, name: string): TValue | undefined {
  const v = valueStore.get(graph)?.get(name);
  if (v) return v;
  const c = graph.constant(name);
  return c ? valueFromConst(c) : undefined;
}

interface Acc {
  /** Symbols of the main graph's inputs: the only declared symbolic dims trusted from value_info. */
  symbols: Set<string>;
  unsupported: Set<string>;
  known: number;
  unknownTensors: string[];
  errors: string[];
}

export function inferShapes(model: Model, opts: ShapeInferenceOptions = {}): ShapeInferenceResult {
  const g = model.graph;
  for (const name of Object.keys(opts.inputShapes ?? {})) {
    if (!g.realInputs.some((i) => i.name === name)) {
      throw new UserError(`input shape given for '${name}', which is not an input of the model (inputs: ${g.realInputs.map((i) => i.name).join(', ')})`);
    }
  }
  for (const name of Object.keys(opts.inputValues ?? {})) {
    if (!g.realInputs.some((i) => i.name === name)) {
      throw new UserError(`input value given for '${name}', which is not an input of the model (inputs: ${g.realInputs.map((i) => i.name).join(', ')})`);
    }
  }
  const acc: Acc = { symbols: new Set(), unsupported: new Set(), known: 0, unknownTensors: [], errors: [] };
  inferGraph(g, model.opset('') ?? 1, undefined, opts, acc);
  return {
    known: acc.known,
    unknown: acc.unknownTensors.length,
    unsupportedOps: [...acc.unsupported].sort(),
    unknownTensors: acc.unknownTensors,
    errors: acc.errors,
  };
}

function sanitize(s: string): string {
  return s.replace(/\W/g, '_');
}

function inputType(vi: onnx.ValueInfoProto, opts: ShapeInferenceOptions, isMain: boolean): ValueType {
  const name = vi.name ?? '';
  const t = valueTypeOf(vi) ?? { dtype: 0 };
  let shape: Shape | undefined = opts.inputShapes?.[name] ?? t.shape;
  if (shape && isMain) {
    shape = shape.map((d, i) => {
      if (d === undefined) return `unk__${sanitize(name)}_${i}`;
      if (typeof d === 'string' && opts.dims?.[d] !== undefined) return opts.dims[d];
      return d;
    });
  }
  return { dtype: t.dtype, shape };
}

/** A graph input's given value as a tracked value, checked against the input's shape. */
function inputValue(name: string, t: ValueType, given: number | number[]): TValue {
  const data = typeof given === 'number' ? [given] : given.slice();
  if (!data.every((x) => typeof x === 'number' && Number.isFinite(x))) throw new UserError(`input value for '${name}' must be finite numbers`);
  const float = isFloatType(t.dtype);
  const shape = t.shape;
  if (shape && shape.every((d) => typeof d === 'number')) {
    const dims = shape as number[];
    if (numel(dims) !== data.length) {
      throw new UserError(`input value for '${name}' has ${data.length} element(s) but the input's shape [${dims.join(', ')}] holds ${numel(dims)}`);
    }
    return { dims, data, float };
  }
  const rank = shape ? shape.length : typeof given === 'number' ? 0 : 1;
  if (rank === 0 && data.length !== 1) throw new UserError(`input value for '${name}' must be one number (the input is a scalar)`);
  if (rank > 1 && data.length !== 1) throw new UserError(`input value for '${name}': give the input's shape with numbers (its rank is ${rank})`);
  return { dims: rank === 1 ? [data.length] : new Array<number>(rank).fill(1), data, float };
}

function inferGraph(g: Graph, opset: number, parent: InferState | undefined, opts: ShapeInferenceOptions, acc: Acc, presetInputs?: Map<string, ValueType>): InferState {
  const st = new InferState(g, opset, parent);
  const declared = new Map<string, ValueType>();
  for (const vi of [...g.proto.output, ...g.proto.valueInfo]) {
    const t = valueTypeOf(vi);
    if (t && vi.name) declared.set(vi.name, t);
  }
  for (const vi of g.proto.input) {
    const name = vi.name ?? '';
    if (g.initializers.has(name)) continue;
    const t = presetInputs?.get(name) ?? inputType(vi, opts, !parent);
    st.types.set(name, t);
    const given = parent ? undefined : opts.inputValues?.[name];
    if (given !== undefined) st.values.set(name, inputValue(name, t, given));
    if (!parent) for (const d of t.shape ?? []) if (typeof d === 'string') acc.symbols.add(d);
  }
  for (const [name, t] of g.initializers) st.types.set(name, { dtype: t.dtype, shape: t.dims });

  for (const node of g.topoSort()) inferNode(node, st, opts, acc, declared);

  g.types.clear();
  for (const [k, v] of st.types) g.types.set(k, v);
  valueStore.set(g, st.values);
  return st;
}

function inferNode(node: Node, st: InferState, opts: ShapeInferenceOptions, acc: Acc, declared: Map<string, ValueType>): void {
  const g = st.graph;
  const outs: { dtype?: number; shape?: Shape; value?: TValue }[] = node.outputs.map(() => ({}));
  const isDefault = node.domain === '' || node.domain === 'ai.onnx';
  if (isDefault && node.opType === 'Constant') {
    const t = g.constant(node.outputs[0]);
    if (t) outs[0] = { dtype: t.dtype, shape: t.dims, value: valueFromConst(t) };
    else {
      const sp = node.attr('sparse_value')?.sparseTensor;
      if (sp) outs[0] = { dtype: sp.values?.dataType ?? 0, shape: (sp.dims ?? []).map((d) => toNumber(d)) };
    }
  } else if (isDefault && (node.opType === 'If' || node.opType === 'Loop')) {
    const res = node.opType === 'If' ? inferIf(node, st, opts, acc) : inferLoop(node, st, opts, acc);
    res.forEach((o, k) => (outs[k] = o));
  } else {
    const rule = ruleFor(node.opType, node.domain);
    if (!rule) {
      acc.unsupported.add(isDefault ? node.opType : `${node.domain}.${node.opType}`);
      for (const sg of node.subgraphs) inferGraph(sg, st.opset, st, opts, acc);
    } else {
      const ctx = new RuleCtx(node, st);
      try {
        rule(ctx);
        ctx.outs.forEach((o, k) => (outs[k] = o));
      } catch (e) {
        acc.errors.push(`${node.label}: ${(e as Error).message}`);
      }
    }
  }
  node.outputs.forEach((name, k) => {
    if (!name) return;
    const o = outs[k];
    let shape = o.shape?.slice();
    let dtype = o.dtype ?? 0;
    let value = o.value;
    if (value && (numel(value.dims) !== value.data.length || value.data.length > (value.float ? FLOAT_VALUE_CAP : VALUE_CAP))) value = undefined;
    if (value && !value.float) value = { dims: value.dims, data: value.data };
    if (value && (!shape || !shape.every((d) => typeof d === 'number'))) shape = value.dims.slice();
    const decl = declared.get(name);
    if (decl) {
      // Declared dims fill unknown ones when numeric or in terms of the inputs' symbols (an exporter's own
      // symbol names, e.g. 'Gemm_output_dim_0', say nothing about the size).
      const trusted = decl.shape?.map((d) => (typeof d === 'string' && !acc.symbols.has(d) ? undefined : d));
      if (!isFullyKnown(shape)) shape = mergeShapes(shape, trusted);
      if (!dtype) dtype = decl.dtype;
    }
    st.types.set(name, { dtype, shape });
    if (value) st.values.set(name, value);
    else st.values.delete(name);
    if (isFullyKnown(shape)) acc.known++;
    else acc.unknownTensors.push(name);
  });
}

type OutType = { dtype?: number; shape?: Shape; value?: TValue };

/**
 * If: when the condition's value is known (e.g. a comparison of shape dims), the taken branch gives the outputs
 * (types and values) and the other branch is inferred without being counted (it never runs: its shapes may be
 * invalid, so its rule errors are dropped too). Otherwise both branches are inferred and an output dim is kept
 * where they agree.
 */
function inferIf(node: Node, st: InferState, opts: ShapeInferenceOptions, acc: Acc): OutType[] {
  const branches = ['then_branch', 'else_branch'].map((n) => node.attr(n)?.g).map((p) => node.subgraphs.find((sg) => sg.proto === p));
  const cond = node.inputs[0] ? st.value(node.inputs[0]) : undefined;
  const c = cond && cond.data.length === 1 && typeof cond.data[0] === 'number' ? cond.data[0] !== 0 : undefined;
  const taken = c === undefined ? undefined : c ? 0 : 1;
  const results = branches.map((sg, k) => {
    if (!sg) return undefined;
    const dead = taken !== undefined && k !== taken;
    const a: Acc = dead ? { symbols: acc.symbols, unsupported: new Set(), known: 0, unknownTensors: [], errors: [] } : acc;
    const sub = inferGraph(sg, st.opset, st, opts, a);
    return sg.proto.output.map((o) => ({ ...sub.type(o.name ?? ''), value: sub.value(o.name ?? '') }));
  });
  const takenGraph = taken === undefined ? undefined : branches[taken];
  if (takenGraph) branchStore.set(node, takenGraph);
  else branchStore.delete(node);
  if (taken !== undefined) return node.outputs.map((_, k) => results[taken]?.[k] ?? {});
  return node.outputs.map((_, k) => {
    const [a, b] = results.map((r) => r?.[k]);
    if (!a || !b) return {};
    let shape: Shape | undefined;
    if (a.shape && b.shape && a.shape.length === b.shape.length) shape = a.shape.map((d, i) => (d === b.shape![i] ? d : undefined));
    return { dtype: a.dtype || b.dtype, shape };
  });
}

/** Loop: carried values keep dims that do not change across iterations; scan outputs get a leading unknown dim. */
function inferLoop(node: Node, st: InferState, opts: ShapeInferenceOptions, acc: Acc): OutType[] {
  const body = node.subgraphs.find((sg) => sg.proto === node.attr('body')?.g);
  if (!body) return [];
  const nCarried = node.inputs.length - 2;
  const preset = new Map<string, ValueType>();
  const bin = body.proto.input.map((i) => i.name ?? '');
  if (bin[0]) preset.set(bin[0], { dtype: DataType.INT64, shape: [] });
  if (bin[1]) preset.set(bin[1], { dtype: DataType.BOOL, shape: [] });
  for (let k = 0; k < nCarried; k++) {
    const init = node.inputs[2 + k] ? st.type(node.inputs[2 + k]) : undefined;
    const decl = valueTypeOf(body.proto.input[2 + k] ?? {});
    // The first pass uses the initial types; dims that differ after one iteration become unknown below.
    preset.set(bin[2 + k], init ?? decl ?? { dtype: 0 });
  }
  // First pass with the initial types (not counted); dims that change across an iteration become unknown.
  const scratch: Acc = { symbols: acc.symbols, unsupported: new Set(), known: 0, unknownTensors: [], errors: [] };
  const first = inferGraph(body, st.opset, st, opts, scratch, preset);
  const bout = body.proto.output.map((o) => o.name ?? '');
  for (let k = 0; k < nCarried; k++) {
    const a = preset.get(bin[2 + k]);
    const b = first.type(bout[1 + k]);
    const merged = a?.shape && b?.shape && a.shape.length === b.shape.length ? a.shape.map((d, i) => (d === b.shape![i] ? d : undefined)) : undefined;
    preset.set(bin[2 + k], { dtype: a?.dtype || b?.dtype || 0, shape: merged });
  }
  const sub = inferGraph(body, st.opset, st, opts, acc, preset);
  const out: OutType[] = [];
  for (let k = 0; k < nCarried; k++) out.push(preset.get(bin[2 + k]) ?? {});
  for (let k = 1 + nCarried; k < bout.length; k++) {
    const t = sub.type(bout[k]);
    out.push({ dtype: t?.dtype, shape: t?.shape ? [undefined, ...t.shape] : undefined });
  }
  return out;
}
