/**
 * Seeded case generators. Case `index` of a corpus with seed `seed` is a pure function of (seed, index, the base
 * models and plans): the family is `FAMILIES[index % FAMILIES.length]`, everything else comes from the case's
 * own PRNG, so one case can be regenerated alone (`node dist/bench/fuzz.js --seed S --only ID`).
 *
 * Families:
 * - bytes:    byte-level mutations of real models (flip, truncate, duplicate/delete ranges, 0xff runs)
 * - struct:   structure-aware mutations through src/ir/proto.ts (bad dims, short raw_data, clashing or
 *             control-character names, cycles, dropped inputs, unknown ops, bad types/opsets/attributes)
 * - external: external data with `..`/absolute/symlink/device/FIFO/directory locations, bad offsets/lengths,
 *             and OUT colliding with the input's data file
 * - paths:    IN/OUT/--save-plan that are FIFOs, devices, folders, symlinks to the input, missing parents
 * - options:  bad or extreme option values and combinations on valid models
 * - config:   --config with bad, deep, huge JSON, FIFOs, devices
 * - calib:    --calib with malformed .npy/.npz (bombs, lying headers), NaN/Inf data, raw files
 * - plan:     hand-edited --plan files (bad indices, huge/infinite bias deltas, other model)
 * - pass:     --pass modules that throw, corrupt the model, or swap the external data file for a symlink
 * - deep:     deep If nesting and long node chains (recursion)
 */
import { createHash } from 'crypto';
import Long from 'long';
import { onnx } from '../../src/ir/proto';
import { bombItem, chainModel, decodeModel, encodeModel, externalize, f32, nestedIfModel, npy, rawInitializers, zip, zipItem, type ZipItem } from './formats';
import { caseSeed, Rand } from './rand';
import type { CaseFile, FuzzCase } from './types';

export const FAMILIES = ['bytes', 'struct', 'external', 'paths', 'options', 'config', 'calib', 'plan', 'pass', 'deep'] as const;
export type Family = (typeof FAMILIES)[number];

/** A plan written by the CLI (`--save-plan`) for a base model. */
export interface PlanFixture {
  base: string;
  text: string;
  /** The options it was made with (e.g. `--importance wanda`). */
  args: string[];
  /** The `.refit.npz` sidecar of a plan with a least-squares reconstruction. */
  sidecar?: Uint8Array;
}

export interface GenContext {
  /** Base models by name (e.g. tiny_cnn) → file bytes. */
  bases: Record<string, Uint8Array>;
  plans: PlanFixture[];
  /** Absolute path of the case folder (for cases that need absolute paths). */
  caseDir: string;
  /** Size of the secret the harness plants at outside/secret.bin. */
  secretSize: number;
}

/** Relative path from work/ to the planted secret. */
export const SECRET_FROM_WORK = '../outside/secret.bin';

/** Small, valid models the option and path families run on (in this order of preference). */
const SMALL = ['tiny_cnn', 'tiny_mlp', 'mnist_lenet_bn'];

class Builder {
  readonly files: CaseFile[] = [];
  readonly args: string[] = [];
  readonly desc: string[] = [];
  model?: string;
  nondeterministicOk = false;
  keepInvalid?: string[];
  ignore?: string[];
  fsize?: number;

  constructor(readonly r: Rand, readonly ctx: GenContext) {}

  input(path: string, data: Uint8Array | string): string {
    this.files.push({ path: `work/${path}`, kind: 'file', data, role: 'input' });
    return path;
  }
  existing(path: string, data: Uint8Array | string): string {
    this.files.push({ path: `work/${path}`, kind: 'file', data, role: 'existing' });
    return path;
  }
  symlink(path: string, target: string): string {
    this.files.push({ path: `work/${path}`, kind: 'symlink', target, role: 'input' });
    return path;
  }
  fifo(path: string): string {
    this.files.push({ path: `work/${path}`, kind: 'fifo', role: 'input' });
    return path;
  }
  dir(path: string): string {
    this.files.push({ path: `work/${path}`, kind: 'dir', role: 'input' });
    return path;
  }
  chardev(path: string, dev: [number, number]): string {
    this.files.push({ path: `work/${path}`, kind: 'chardev', dev, role: 'input' });
    return path;
  }
  outside(path: string, data: Uint8Array | string): void {
    this.files.push({ path: `outside/${path}`, kind: 'file', data, role: 'outside' });
  }
  say(s: string): void {
    this.desc.push(s);
  }

  /** A base model name among those present (`prefer` first). */
  base(prefer: readonly string[] = Object.keys(this.ctx.bases)): string {
    const have = prefer.filter((n) => this.ctx.bases[n]);
    return this.r.pick(have.length ? have : Object.keys(this.ctx.bases));
  }
}

// ------------------------------------------------------------------------------------------ commands

/** A prune/inspect/groups command on `model` (OUT = out.onnx); mostly prune. */
function command(b: Builder, model: string, weights: { prune?: number; zero?: number; inspect?: number; groups?: number } = {}): void {
  const r = b.r;
  const kind = r.weighted([
    ['prune', weights.prune ?? 5],
    ['zero', weights.zero ?? 2],
    ['inspect', weights.inspect ?? 2],
    ['groups', weights.groups ?? 2],
  ] as const);
  b.model = model;
  if (kind === 'inspect' || kind === 'groups') {
    b.args.push(kind, model);
    if (r.chance(0.5)) b.args.push('--json');
  } else {
    b.args.push(model, 'out.onnx', '--ratio', kind === 'zero' ? '0' : r.pick(['0.3', '0.5', '0.2']));
    if (kind === 'prune' && r.chance(0.25)) b.args.push('--importance', r.pick(['l1', 'lamp', 'wanda', 'random', 'bn']));
    if (r.chance(0.2)) b.args.push('--save-plan', 'plan.json');
  }
  b.say(b.args.join(' '));
}

// ------------------------------------------------------------------------------------------ bytes

function genBytes(b: Builder): void {
  const r = b.r;
  const name = b.base();
  const src = b.ctx.bases[name];
  let buf = Buffer.from(src);
  const ops: string[] = [];
  const n = r.int(1, 4);
  for (let k = 0; k < n; k++) {
    const op = r.pick(['flip', 'flip', 'truncate', 'dup', 'delete', 'insert', 'ff', 'zero'] as const);
    const at = r.int(0, Math.max(0, buf.length - 1));
    const len = r.pick([1, 2, 4, 16, 64, 1024, r.int(1, Math.max(1, buf.length >> 2))]);
    switch (op) {
      case 'flip':
        for (let i = 0; i < r.int(1, 8); i++) buf[r.int(0, buf.length - 1)] ^= r.int(1, 255);
        break;
      case 'truncate':
        buf = buf.subarray(0, at);
        break;
      case 'dup':
        buf = Buffer.concat([buf.subarray(0, at), buf.subarray(at, at + len), buf.subarray(at)]);
        break;
      case 'delete':
        buf = Buffer.concat([buf.subarray(0, at), buf.subarray(at + len)]);
        break;
      case 'insert':
        buf = Buffer.concat([buf.subarray(0, at), Buffer.from(r.bytes(Math.min(len, 64))), buf.subarray(at)]);
        break;
      case 'ff':
        for (let i = at; i < Math.min(buf.length, at + r.int(5, 10)); i++) buf[i] = 0xff;
        break;
      case 'zero':
        buf.fill(0, at, Math.min(buf.length, at + len));
        break;
    }
    ops.push(`${op}@${at}`);
    if (buf.length === 0) break;
  }
  b.say(`${name} bytes ${ops.join(',')}`);
  b.input('model.onnx', buf);
  command(b, 'model.onnx');
}

// ------------------------------------------------------------------------------------------ struct

const BAD_DIMS: (number | Long)[] = [-1, -2, -1000, 0, 2 ** 31 - 1, 2 ** 31, 2 ** 32 + 7, 2 ** 40, 2 ** 53 - 1, 1e6, 65537, 3, Long.MAX_VALUE, Long.MIN_VALUE];
const BAD_NAMES = ['a\nb', 'x\x1b[31mRED\x1b[0m', 'cr\rname', 'nul\x00name', 'rtl\u202ename', 'tab\tname', 'z'.repeat(10000), '', ' ', '../../x', '%s%n'];

function dimText(d: number | Long): string {
  return typeof d === 'number' ? String(d) : d.toString();
}

/** Every tensor name a graph mentions. */
function tensorNames(g: onnx.IGraphProto): string[] {
  const s = new Set<string>();
  for (const n of g.node ?? []) for (const x of [...(n.input ?? []), ...(n.output ?? [])]) if (x) s.add(x);
  for (const v of [...(g.input ?? []), ...(g.output ?? []), ...(g.initializer ?? [])]) if (v.name) s.add(v.name);
  return [...s].sort();
}

function renameTensor(g: onnx.IGraphProto, from: string, to: string): void {
  for (const n of g.node ?? []) {
    n.input = (n.input ?? []).map((x) => (x === from ? to : x));
    n.output = (n.output ?? []).map((x) => (x === from ? to : x));
  }
  for (const v of [...(g.input ?? []), ...(g.output ?? []), ...(g.valueInfo ?? []), ...(g.initializer ?? [])]) if (v.name === from) v.name = to;
}

type Mutation = (m: onnx.ModelProto, g: onnx.GraphProto, r: Rand) => string;

const MUTATIONS: Record<string, Mutation> = {
  initDim(m, g, r) {
    const t = r.pick(g.initializer);
    const dims = [...(t.dims ?? [])] as (number | Long)[];
    const d = r.pick(BAD_DIMS);
    const how = r.int(0, 2);
    if (how === 0 && dims.length) dims[r.int(0, dims.length - 1)] = d;
    else if (how === 1) dims.push(d);
    else dims.splice(0, dims.length, d, d);
    t.dims = dims;
    return `initializer '${t.name}' dims [${dims.map(dimText).join(',')}]`;
  },
  inputDim(m, g, r) {
    const vi = r.pick(g.input);
    const shape = vi.type?.tensorType?.shape;
    if (!shape) return 'no input shape';
    const choice = r.int(0, 3);
    if (choice === 0) {
      const d = r.pick(BAD_DIMS);
      const k = r.int(0, Math.max(0, shape.dim.length - 1));
      if (shape.dim[k]) shape.dim[k] = onnx.TensorShapeProto.Dimension.create({ dimValue: d });
      return `input '${vi.name}' dim ${k} = ${dimText(d)}`;
    }
    if (choice === 1) {
      for (const d of shape.dim) {
        d.dimValue = 1e6;
        delete (d as { dimParam?: string }).dimParam;
      }
      return `input '${vi.name}' all dims 1e6`;
    }
    if (choice === 2) {
      for (let i = 0; i < r.int(1, 30); i++) shape.dim.push(onnx.TensorShapeProto.Dimension.create({ dimValue: r.pick([2, 1000, 1e5]) }));
      return `input '${vi.name}' extra dims`;
    }
    for (const d of shape.dim) d.dimParam = r.pick(BAD_NAMES);
    return `input '${vi.name}' dim params renamed`;
  },
  shrinkRaw(m, g, r) {
    const ts = rawInitializers(m);
    if (!ts.length) return 'no raw data';
    const t = r.pick(ts);
    const len = r.pick([0, 1, 3, r.int(0, t.rawData!.length - 1)]);
    t.rawData = t.rawData!.subarray(0, len);
    return `initializer '${t.name}' raw_data cut to ${len} bytes`;
  },
  typedData(m, g, r) {
    const t = r.pick(g.initializer);
    t.rawData = new Uint8Array(0);
    t.floatData = Array.from({ length: r.pick([0, 1, 7, 100000]) }, (_, i) => (i % 3 === 0 ? NaN : i));
    return `initializer '${t.name}' float_data of wrong length`;
  },
  dataType(m, g, r) {
    const t = r.pick(g.initializer);
    t.dataType = r.pick([0, 8, 16, 10, 99, -1, 7, 11, 23]);
    return `initializer '${t.name}' data_type ${t.dataType}`;
  },
  renameClash(m, g, r) {
    const names = tensorNames(g);
    const n = r.pick(g.node);
    const other = r.pick(names);
    if (r.chance(0.5) && n.output.length) n.output[0] = other;
    else if (g.initializer.length) r.pick(g.initializer).name = other;
    return `name clash on '${other}'`;
  },
  renameControl(m, g, r) {
    const from = r.pick(tensorNames(g));
    const to = r.pick(BAD_NAMES);
    renameTensor(g, from, to);
    if (r.chance(0.3)) g.name = to;
    if (r.chance(0.3) && g.node.length) r.pick(g.node).name = to;
    return `renamed '${from}' to ${JSON.stringify(to.slice(0, 20))}`;
  },
  cycle(m, g, r) {
    if (g.node.length < 2) return 'too few nodes';
    const i = r.int(0, g.node.length - 2);
    const j = r.int(i, g.node.length - 1);
    const src = g.node[j].output[0];
    if (g.node[i].input.length) g.node[i].input[0] = src;
    else g.node[i].input.push(src);
    return `cycle: node ${i} reads node ${j}'s output`;
  },
  dropInput(m, g, r) {
    if (r.chance(0.5)) {
      g.input = [];
      return 'all graph inputs dropped';
    }
    if (!g.initializer.length) return 'no initializer';
    const k = r.int(0, g.initializer.length - 1);
    const [t] = g.initializer.splice(k, 1);
    return `initializer '${t.name}' dropped`;
  },
  unknownOp(m, g, r) {
    const n = r.pick(g.node);
    const how = r.int(0, 2);
    if (how === 0) n.opType = r.pick(['FuzzOp', '', 'conv', 'Conv\n']);
    else if (how === 1) n.domain = r.pick(['com.fuzz', 'ai.onnx.ml', '\x1b[2J']);
    else g.node.push(onnx.NodeProto.create({ opType: 'FuzzOp', domain: 'com.fuzz', input: [g.node[0].output[0]], output: ['fuzz_out'] }));
    return `op ${JSON.stringify(n.opType)} domain ${JSON.stringify(n.domain ?? '')}`;
  },
  opset(m, g, r) {
    const how = r.int(0, 3);
    if (how === 0) m.opsetImport = [];
    else if (how === 1) m.opsetImport[0].version = r.pick([0, 1, 5, 99, -1, 2 ** 40]);
    else if (how === 2) m.opsetImport.push(onnx.OperatorSetIdProto.create({ domain: '', version: 7 }));
    else m.irVersion = r.pick([0, 1, 3, 99, -1]);
    return `opset/ir edited (${how})`;
  },
  attr(m, g, r) {
    const withAttr = g.node.filter((n) => n.attribute.length);
    if (!withAttr.length) return 'no attributes';
    const n = r.pick(withAttr);
    const a = r.pick(n.attribute);
    const v = r.pick([0, -1, -5, 2 ** 31, 1e9, 100]);
    if (a.ints && a.ints.length) a.ints = a.ints.map(() => v);
    else if (a.type === onnx.AttributeProto.AttributeType.INT) a.i = v;
    else if (a.type === onnx.AttributeProto.AttributeType.FLOAT) a.f = r.pick([NaN, Infinity, -1, 1e38]);
    else a.type = r.pick([0, 1, 2, 7, 99]) as onnx.AttributeProto.AttributeType;
    return `${n.opType} attribute ${a.name} = ${v}`;
  },
  outputs(m, g, r) {
    const how = r.int(0, 2);
    if (how === 0) g.output = [];
    else if (how === 1 && g.output.length) g.output[0].name = r.pick(['nonexistent', g.input[0]?.name ?? 'x', '']);
    else g.output.push(onnx.ValueInfoProto.create({ name: g.output[0]?.name ?? 'y' }));
    return `graph outputs edited (${how})`;
  },
  valueInfo(m, g, r) {
    const names = g.node.flatMap((n) => n.output);
    for (let i = 0; i < r.int(1, 5); i++) {
      g.valueInfo.push(onnx.ValueInfoProto.create({
        name: r.pick(names),
        type: { tensorType: { elemType: r.pick([1, 7, 0]), shape: { dim: [{ dimValue: r.pick(BAD_DIMS) }, { dimValue: r.pick(BAD_DIMS) }] } } },
      }));
    }
    return 'value_info with bad shapes';
  },
  hugeInit(m, g, r) {
    const d = r.pick([[1e6, 1e6], [2 ** 31], [65536, 65536, 16], [-1, 4], [1e5, 1e4]]);
    g.initializer.push(onnx.TensorProto.create({ name: g.initializer[0]?.name ?? 'w', dataType: 1, dims: d }));
    return `initializer with dims [${d.join(',')}] and no data`;
  },
  constantNode(m, g, r) {
    const n = g.node[0];
    const d = r.pick([[1e9], [-3], [2 ** 33], [4, 4]]);
    g.node.unshift(onnx.NodeProto.create({
      opType: 'Constant',
      output: [n.input[0] ?? 'c0'],
      attribute: [{ name: 'value', type: onnx.AttributeProto.AttributeType.TENSOR, t: { dataType: 1, dims: d, rawData: new Uint8Array(16) } }],
    }));
    return `Constant with dims [${d.join(',')}] shadowing '${n.input[0]}'`;
  },
  emptyNames(m, g, r) {
    const n = r.pick(g.node);
    if (r.chance(0.5)) n.input = n.input.map(() => '');
    else n.output = n.output.map(() => '');
    return `node ${n.opType} with empty names`;
  },
};

function genStruct(b: Builder): void {
  const r = b.r;
  const name = b.base();
  const m = decodeModel(b.ctx.bases[name]);
  const g = m.graph as onnx.GraphProto;
  const keys = Object.keys(MUTATIONS);
  const done: string[] = [];
  for (let i = 0; i < r.weighted([[1, 6], [2, 3], [3, 1]] as const); i++) {
    const k = r.pick(keys);
    done.push(MUTATIONS[k](m, g, r));
  }
  b.say(`${name}: ${done.join('; ')}`);
  b.input('model.onnx', encodeModel(m));
  command(b, 'model.onnx');
}

// ------------------------------------------------------------------------------------------ external

function kvSet(t: onnx.ITensorProto, key: string, value: string | undefined): void {
  const list = (t.externalData ?? []).filter((e) => e.key !== key);
  if (value !== undefined) list.push(onnx.StringStringEntryProto.create({ key, value }));
  t.externalData = list;
}

function genExternal(b: Builder): void {
  const r = b.r;
  const name = b.base(SMALL);
  const m = decodeModel(b.ctx.bases[name]);
  const inits = rawInitializers(m);
  const chosen = new Set(r.chance(0.5) ? inits.map((t) => t.name ?? '') : r.sample(inits.length, r.int(1, inits.length)).map((i) => inits[i].name ?? ''));
  const dataName = 'model.onnx.data';
  const data = externalize(m, chosen, dataName);
  const ext = (m.graph?.initializer ?? []).filter((t) => t.externalData && t.externalData.length);
  const victim = r.pick(ext);
  const variant = r.pick([
    'valid', 'dotdot', 'absolute', 'symlinkOut', 'symlinkDir', 'nested', 'backslash', 'device', 'fifo', 'directory',
    'offsetBeyond', 'lengthBeyond', 'negative', 'garbageNumber', 'huge', 'noLocation', 'emptyLocation', 'dupLocation',
    'truncatedData', 'outIsData', 'outDataIsData', 'controlLocation', 'hugeDims',
  ] as const);
  let dataFile = data;
  let out = 'out.onnx';
  switch (variant) {
    case 'dotdot': kvSet(victim, 'location', SECRET_FROM_WORK); kvSet(victim, 'offset', '0'); break;
    case 'absolute': kvSet(victim, 'location', `${b.ctx.caseDir}/outside/secret.bin`); kvSet(victim, 'offset', '0'); b.nondeterministicOk = true; break;
    case 'symlinkOut': b.symlink('w.bin', SECRET_FROM_WORK); kvSet(victim, 'location', 'w.bin'); kvSet(victim, 'offset', '0'); break;
    case 'symlinkDir': b.symlink('sub', '../outside'); kvSet(victim, 'location', 'sub/secret.bin'); kvSet(victim, 'offset', '0'); break;
    case 'nested': kvSet(victim, 'location', r.pick(['a/../../outside/secret.bin', './../outside/secret.bin', 'sub/./../../outside/secret.bin'])); kvSet(victim, 'offset', '0'); break;
    case 'backslash': kvSet(victim, 'location', '..\\outside\\secret.bin'); kvSet(victim, 'offset', '0'); break;
    case 'device': b.chardev('dev.bin', r.pick([[1, 3], [1, 5]] as [number, number][])); kvSet(victim, 'location', 'dev.bin'); break;
    case 'fifo': b.fifo('fifo.bin'); kvSet(victim, 'location', 'fifo.bin'); break;
    case 'directory': b.dir('d.bin'); kvSet(victim, 'location', r.pick(['d.bin', '.', './', ''])); break;
    case 'offsetBeyond': kvSet(victim, 'offset', String(data.length + r.pick([1, 4096, 2 ** 40]))); break;
    case 'lengthBeyond': kvSet(victim, 'length', String(r.pick([data.length * 2, 2 ** 33, 2 ** 53 + 2]))); break;
    case 'negative': kvSet(victim, r.pick(['offset', 'length']), r.pick(['-1', '-4096'])); break;
    case 'garbageNumber': kvSet(victim, r.pick(['offset', 'length']), r.pick(['abc', '1e3', '0x10', ' 7', '', 'NaN', 'Infinity', '4.5'])); break;
    case 'huge': kvSet(victim, 'offset', '99999999999999999999999'); break;
    case 'noLocation': kvSet(victim, 'location', undefined); break;
    case 'emptyLocation': kvSet(victim, 'location', ''); break;
    case 'dupLocation': victim.externalData!.push(onnx.StringStringEntryProto.create({ key: 'location', value: SECRET_FROM_WORK })); break;
    case 'truncatedData': dataFile = data.subarray(0, r.int(0, Math.max(0, data.length - 1))); break;
    case 'outIsData': out = dataName; break;
    case 'outDataIsData': {
      // The input's data file is named like OUT's: OUT.data would overwrite it.
      for (const t of ext) kvSet(t, 'location', 'out.onnx.data');
      b.input('out.onnx.data', data);
      dataFile = new Uint8Array(0);
      break;
    }
    case 'controlLocation': kvSet(victim, 'location', r.pick(['w\n.bin', 'w\x1b[31m.bin', 'w\x00.bin'])); break;
    case 'hugeDims': victim.dims = [r.pick([2 ** 31, 1e9, 2 ** 40]), 4]; break;
    case 'valid': break;
  }
  if (variant !== 'outDataIsData') b.input(dataName, dataFile);
  b.input('model.onnx', encodeModel(m));
  b.say(`${name} external (${ext.length} tensors): ${variant} on '${victim.name}'`);
  const kind = r.weighted([['prune', 4], ['zero', 3], ['inspect', 1], ['groups', 1]] as const);
  b.model = 'model.onnx';
  if (kind === 'inspect' || kind === 'groups') b.args.push(kind, 'model.onnx');
  else b.args.push('model.onnx', out, '--ratio', kind === 'zero' ? '0' : '0.3');
  if (kind !== 'inspect' && kind !== 'groups' && r.chance(0.3)) b.args.push(r.pick(['--external-data', '--no-external-data']));
  b.say(b.args.join(' '));
}

// ------------------------------------------------------------------------------------------ paths

function genPaths(b: Builder): void {
  const r = b.r;
  const name = b.base(SMALL);
  const model = b.input('model.onnx', b.ctx.bases[name]);
  b.model = model;
  const ratio = r.pick(['0', '0.3']);
  const variant = r.pick([
    'outIsInput', 'outSymlinkToInput', 'outHardPathToInput', 'outFifo', 'outDir', 'outMissingParent', 'outDevNull',
    'outThroughFile', 'outLongName', 'outTrailingSlash', 'outEmpty', 'outExisting', 'inDir', 'inFifo', 'inDevZero',
    'inMissing', 'inEmpty', 'inSymlinkLoop', 'planIsInput', 'planIsOut', 'planFifo', 'planDir', 'planMissingParent',
    'planOnFailure', 'planDevNull', 'outDotData', 'efbig', 'efbigPlan',
  ] as const);
  let inp = model;
  let out = 'out.onnx';
  const extra: string[] = [];
  switch (variant) {
    case 'outIsInput': out = model; break;
    case 'outSymlinkToInput': out = b.symlink('link.onnx', 'model.onnx'); break;
    case 'outHardPathToInput': out = './sub/../model.onnx'; b.dir('sub'); break;
    case 'outFifo': out = b.fifo('out.onnx'); break;
    case 'outDir': out = b.dir('out.onnx'); break;
    case 'outMissingParent': out = 'missing/dir/out.onnx'; break;
    case 'outDevNull': out = b.chardev('null.onnx', [1, 3]); break;
    case 'outThroughFile': out = 'model.onnx/out.onnx'; break;
    case 'outLongName': out = `${'o'.repeat(r.pick([256, 300, 5000]))}.onnx`; break;
    case 'outTrailingSlash': out = 'newdir/'; break;
    case 'outEmpty': out = ''; break;
    case 'outExisting': b.existing('out.onnx', 'previous contents'); extra.push('--tolerance', '-1'); break;
    case 'inDir': inp = b.dir('in.onnx'); break;
    case 'inFifo': inp = b.fifo('in.onnx'); break;
    case 'inDevZero': inp = b.chardev('zero.onnx', [1, 5]); break;
    case 'inMissing': inp = 'nope.onnx'; break;
    case 'inEmpty': inp = b.input('empty.onnx', ''); break;
    case 'inSymlinkLoop': b.symlink('loop.onnx', 'loop.onnx'); inp = 'loop.onnx'; break;
    case 'planIsInput': extra.push('--save-plan', model); break;
    case 'planIsOut': extra.push('--save-plan', 'out.onnx'); break;
    case 'planFifo': extra.push('--save-plan', b.fifo('plan.json')); break;
    case 'planDir': extra.push('--save-plan', b.dir('plan.json')); break;
    case 'planMissingParent': extra.push('--save-plan', 'missing/plan.json'); break;
    case 'planDevNull': extra.push('--save-plan', b.chardev('plan.json', [1, 3])); break;
    case 'planOnFailure':
      // The run fails after the plan is made: the plan must not be left behind.
      extra.push('--save-plan', 'plan.json', ...r.pick([['--tolerance', '1e-30', '--importance', 'random'], ['--passes', 'load,analyze,importance-l2,allocate,plan,bogus,save'], ['--calib', 'missing.npy', '--importance', 'wanda']]));
      break;
    case 'outDotData': out = 'model.onnx.onnx'; extra.push('--external-data'); break;
    // Writes past a file size limit fail with EFBIG (a full disk fails alike with ENOSPC).
    case 'efbig': b.fsize = r.pick([0, 100, 4096, 10000]); if (r.chance(0.5)) extra.push('--external-data'); break;
    case 'efbigPlan': b.fsize = r.pick([0, 100]); extra.push('--save-plan', 'plan.json'); break;
  }
  b.args.push(inp, out, '--ratio', variant === 'planOnFailure' || variant === 'efbigPlan' ? '0.5' : ratio, ...extra);
  b.say(`${name} ${variant}: ${b.args.join(' ')}`);
}

// ------------------------------------------------------------------------------------------ options

const OPTION_VALUES: Record<string, (string | string[])[]> = {
  '--ratio': ['0', '0.3', '0.5', '0.9', '0.999999', '-0.1', '1', '2', 'NaN', 'abc', '', 'Infinity', '1e-320', '0x10', ' 0.3'],
  '--target': ['params', 'flops', 'bogus', ''],
  '--importance': ['l1', 'l2', 'bn', 'lamp', 'random', 'wanda', 'fluctuation', 'obs', 'obs-weights', 'bogus', 'L2'],
  '--reduce': ['mean', 'sum', 'max', 'median'],
  '--reconstruct': ['none', 'bias', 'ls', 'ls', 'LS', 'obs', ''],
  '--allocation': ['uniform', 'global', 'greedy', 'search', 'search'],
  '--search-time': ['0.5', '5', '0', '-1', 'x', '1e308'],
  '--search-generations': ['1', '2', '0', '1e12', 'x'],
  '--search-offspring': ['1', '3', '0', '-2', 'x'],
  '--search-iterations': ['1', '2', '0', 'x'],
  '--max-ratio': ['0', '0.5', '1', '1.5', '-1', 'x'],
  '--round-to': ['1', '2', '8', '0', '-1', '2.5', '1e9', 'x'],
  '--protect': ['conv1', 'x\x1b[31mred', '', 'g0', '*', 'a\nb'],
  '--exclude-op': ['Conv', 'Gemm', 'MatMul', 'x'],
  '--calib-batch': ['1', '16', '0', '-5', '1e12', '2.5', '1000'],
  '--calib-samples': ['1', '4', '0', '-1', '100', '1e12', 'x', '100000'],
  '--seed': ['0', '1', '-1', '9007199254740993', '1e300', 'x', '0.5'],
  '--dim': ['N=2', 'N=-1', 'N=1e12', 'x', '=3', 'N=abc', 'batch=0', 'N=100000'],
  '--shapes': ['auto', 'static', 'ort', 'dynamic'],
  '--tolerance': ['0', '1e-4', '-1', 'NaN', '1e308', '1'],
  '--verify-batch': ['1', '2', '0', '-1', '1e9', '64', '100000'],
  '--verify-seq': ['1', '8', '0', '-1', '1e9', '300'],
  '--passes': ['load,save', 'save,load', 'load,bogus', '', 'load,analyze,save', 'load,verify,save', 'load,prune,save', 'load,load,save', 'load,\x1b[31m,save'],
  '--calib-shape': ['1,1,28,28', '-1,3', '1e9,1', 'x', ''],
  '--calib-dtype': ['float32', 'int8', 'bool', 'complex64'],
};
const FLAGS = ['--compensate', '--no-compensate', '--sequential', '--no-sequential', '--protect-defaults', '--no-protect-defaults', '--gqa-query-heads', '--rewrite-shapes', '--no-rewrite-shapes', '--verify', '--no-verify', '--keep-invalid', '--external-data', '--no-external-data', '--json', '-q', '--verbose', '--bogus', '--help', '--version'];

function genOptions(b: Builder): void {
  const r = b.r;
  const name = b.base(SMALL);
  const model = b.input('model.onnx', b.ctx.bases[name]);
  b.model = model;
  const cmd = r.weighted([['prune', 8], ['groups', 1], ['inspect', 1]] as const);
  if (cmd === 'prune') b.args.push(model, 'out.onnx');
  else b.args.push(cmd, model);
  const keys = Object.keys(OPTION_VALUES);
  for (let i = 0, n = r.int(1, 5); i < n; i++) {
    if (r.chance(0.25)) {
      b.args.push(r.pick(FLAGS));
      continue;
    }
    const k = r.pick(keys);
    const v = r.pick(OPTION_VALUES[k]);
    b.args.push(...(Array.isArray(v) ? [k, ...v] : [k, v]));
  }
  if (cmd === 'prune' && !b.args.includes('--ratio') && r.chance(0.7)) b.args.push('--ratio', r.pick(['0.3', '0.5']));
  // A search stays short: its defaults (up to 150 s of evolution) are for real runs.
  if (b.args.includes('search') && !b.args.includes('--search-time')) b.args.push('--search-time', '3');
  if (r.chance(0.05)) b.args.push('extra-positional');
  if (b.args.includes('--keep-invalid')) b.keepInvalid = ['out.onnx'];
  b.say(`${name}: ${b.args.join(' ')}`);
}

// ------------------------------------------------------------------------------------------ config

function genConfig(b: Builder): void {
  const r = b.r;
  const name = b.base(SMALL);
  const model = b.input('model.onnx', b.ctx.bases[name]);
  b.model = model;
  const variant = r.pick(['badJson', 'deepArray', 'deepObject', 'huge', 'hugeString', 'fifo', 'devZero', 'dir', 'empty', 'bom', 'wrongTypes', 'unknownKeys', 'proto', 'valid', 'bigNumbers', 'controlKeys', 'nulls'] as const);
  let cfg = 'config.json';
  switch (variant) {
    case 'badJson': b.input(cfg, r.pick(['{', '{"ratio": 0.3,}', "{'ratio': 0.3}", '[1,2', '{"ratio": 0.3} trailing', '\x00\x01\x02', 'null'])); break;
    case 'deepArray': { const d = r.pick([1000, 10000, 100000, 1000000]); b.input(cfg, `${'['.repeat(d)}${']'.repeat(d)}`); break; }
    case 'deepObject': { const d = r.pick([1000, 10000, 200000]); b.input(cfg, `${'{"a":'.repeat(d)}1${'}'.repeat(d)}`); break; }
    case 'huge': b.input(cfg, `{"ratio": 0.3, "protect": [${Array.from({ length: r.pick([1e5, 1e6]) }, (_, i) => `"n${i}"`).join(',')}]}`); break;
    case 'hugeString': b.input(cfg, `{"ratio": 0.3, "seed": "${'9'.repeat(r.pick([1e5, 5e6]))}"}`); break;
    case 'fifo': cfg = b.fifo(cfg); break;
    case 'devZero': cfg = b.chardev(cfg, [1, 5]); break;
    case 'dir': cfg = b.dir(cfg); break;
    case 'empty': b.input(cfg, ''); break;
    case 'bom': b.input(cfg, '\ufeff{"ratio": 0.3}'); break;
    case 'wrongTypes': b.input(cfg, JSON.stringify(r.pick([{ ratio: '0.3' }, { ratio: [0.3] }, { protect: 'x' }, { importance: 7 }, { dim: { N: 2 } }, { ratio: null }, { passes: ['load', 'save'] }]))); break;
    case 'unknownKeys': b.input(cfg, JSON.stringify({ ratio: 0.3, bogus: 1, 'a\nb': 2 })); break;
    case 'proto': b.input(cfg, '{"__proto__": {"ratio": 0.9}, "constructor": {"prototype": {"x": 1}}, "ratio": 0.3}'); break;
    case 'valid': b.input(cfg, JSON.stringify({ ratio: r.pick([0.3, 0.5]), importance: r.pick(['l1', 'l2', 'lamp']), seed: r.int(0, 9) })); break;
    case 'bigNumbers': b.input(cfg, r.pick(['{"ratio": 1e400}', '{"ratio": -0}', '{"seed": 1e400}', '{"calibSamples": 1e12}', '{"verifyBatch": 1e9}'])); break;
    case 'controlKeys': b.input(cfg, JSON.stringify({ ['\x1b[31mratio']: 0.3, importance: 'x\ny' })); break;
    case 'nulls': b.input(cfg, '{"ratio": 0.3, "protect": [null, 1, {}]}'); break;
  }
  b.args.push(model, 'out.onnx', '--config', cfg);
  if (r.chance(0.3)) b.args.push('--ratio', '0.3');
  b.say(`${name} config ${variant}: ${b.args.join(' ')}`);
}

// ------------------------------------------------------------------------------------------ calib

/** Input shape (sample axis first) and element count per sample of the small bases. */
const SAMPLE_SHAPES: Record<string, number[]> = { tiny_cnn: [3, 16, 16], tiny_mlp: [64], mnist_lenet_bn: [1, 28, 28] };

function genCalib(b: Builder): void {
  const r = b.r;
  const name = b.base(SMALL);
  const model = b.input('model.onnx', b.ctx.bases[name]);
  b.model = model;
  const sample = SAMPLE_SHAPES[name] ?? [3, 16, 16];
  const per = sample.reduce((a, x) => a * x, 1);
  const n = r.pick([1, 4, 16]);
  const values = (fill: (i: number) => number) => f32(Array.from({ length: n * per }, (_, i) => fill(i)));
  const good = () => values((i) => Math.sin(i * 0.37));
  const variant = r.pick([
    'valid', 'nan', 'inf', 'someNan', 'badMagic', 'badVersion', 'hugeHeaderLen', 'garbageHeader', 'hugeShape', 'negShape',
    'fortran', 'weirdDtype', 'truncated', 'npzValid', 'npzBomb', 'npzBombLying', 'npzBadCrc', 'npzBadCd', 'npzCount',
    'npzEncrypted', 'npzMethod', 'npzNames', 'npzMany', 'npzTruncated', 'rawShape', 'rawDtype', 'fifo', 'dir', 'npzNanBomb',
  ] as const);
  let file = 'calib.npy';
  const extra: string[] = [];
  const shape = [n, ...sample];
  const entry = 'input.npy';
  switch (variant) {
    case 'valid': b.input(file, npy(shape, good())); break;
    case 'nan': b.input(file, npy(shape, values(() => NaN))); break;
    case 'inf': b.input(file, npy(shape, values((i) => (i % 2 ? Infinity : -Infinity)))); break;
    case 'someNan': b.input(file, npy(shape, values((i) => (i === 7 ? NaN : Math.cos(i))))); break;
    case 'badMagic': b.input(file, npy(shape, good(), { magic: Buffer.from('\x93NUMPX', 'latin1') })); break;
    case 'badVersion': b.input(file, npy(shape, good(), { version: [r.pick([0, 4, 255]), 0] })); break;
    case 'hugeHeaderLen': b.input(file, npy(shape, good(), { headerLen: r.pick([65535, 60000]) })); break;
    case 'garbageHeader': b.input(file, npy(shape, good(), { header: r.pick(['{', "{'descr': '<f4'}", 'x'.repeat(500), "{'descr': '<f4', 'fortran_order': False, 'shape': (1,2,3), 'shape': (9,9)}", "{'descr': '<f4', 'fortran_order': False, 'shape': ((((((((((1,),),),),),),),),),)}"]) })); break;
    case 'hugeShape': b.input(file, npy(shape, good(), { shape: r.pick(['(1000000000, 1, 28, 28)', '(4294967296,)', `(${2 ** 53}, 1)`, '(100000, 100000, 100000)']) })); break;
    case 'negShape': b.input(file, npy(shape, good(), { shape: r.pick(['(-1, 1, 28, 28)', '(-4,)', '(1.5, 2)']) })); break;
    case 'fortran': b.input(file, npy(shape, good(), { fortran: true })); break;
    case 'weirdDtype': b.input(file, npy(shape, good(), { descr: r.pick(['<c16', '|O', '>f4', '<U10', '<f2', '|b1', 'V8', '']) })); break;
    case 'truncated': { const full = npy(shape, good()); b.input(file, full.subarray(0, r.int(0, full.length - 1))); break; }
    case 'rawShape': file = b.input('calib.bin', good()); extra.push('--calib-shape', r.pick([`${n},${sample.join(',')}`, '-1,3', `${2 ** 40},1`, '0', '3,x', `${n * 2},${sample.join(',')}`])); break;
    case 'rawDtype': file = b.input('calib.bin', good()); extra.push('--calib-dtype', r.pick(['int8', 'float64', 'bool', 'uint8']), '--calib-shape', `${n},${sample.join(',')}`); break;
    case 'fifo': file = b.fifo('calib.npy'); break;
    case 'dir': file = b.dir('calib.npy'); break;
    default: {
      file = 'calib.npz';
      const body = npy(shape, good());
      let items: ZipItem[] = [zipItem(entry, body, r.chance(0.5))];
      let z: Uint8Array | undefined;
      switch (variant) {
        case 'npzValid': break;
        case 'npzBomb': {
          const blocks = r.pick([4, 16, 64, 200]);
          const rows = Math.floor((blocks * (16 << 20)) / (4 * per));
          items = [bombItem(entry, npy([rows, ...sample], new Uint8Array(0)), blocks)];
          break;
        }
        case 'npzNanBomb': items = [bombItem(entry, npy([1, ...sample], new Uint8Array(0), { shape: '(1000000000, 1, 28, 28)' }), r.pick([2, 8]))]; break;
        case 'npzBombLying': items = [bombItem(entry, npy([1, ...sample], new Uint8Array(0)), r.pick([4, 32]), r.pick([100, 0, 0xffffffff]))]; break;
        case 'npzBadCrc': items[0].crc ^= 0x1234; break;
        case 'npzBadCd': z = zip(items, { cdOffset: r.pick([0xfffffff0, 1, 1 << 20]) }); break;
        case 'npzCount': z = zip(items, { count: 65535 }); break;
        case 'npzEncrypted': items[0].flags = 1; break;
        case 'npzMethod': items[0].method = r.pick([1, 12, 14, 99]); break;
        case 'npzNames': items[0].name = r.pick(['../../outside/x.npy', 'a\nb.npy', '\x1b[31m.npy', '.npy', '/abs.npy']); items.push(zipItem('input.npy', body, false)); break;
        case 'npzMany': items = Array.from({ length: r.pick([1000, 20000]) }, (_, i) => zipItem(`a${i}.npy`, npy([1], f32([i])), false)); break;
        case 'npzTruncated': { const full = zip(items); z = full.subarray(0, r.int(0, full.length - 1)); break; }
      }
      b.input(file, z ?? zip(items));
    }
  }
  b.args.push(model, 'out.onnx', '--ratio', '0.3', '--importance', r.pick(['wanda', 'fluctuation']), '--calib', file, ...extra);
  if (r.chance(0.3)) b.args.push('--calib-batch', r.pick(['1', '4', '64']));
  b.say(`${name} calib ${variant}: ${b.args.join(' ')}`);
}

// ------------------------------------------------------------------------------------------ plan

function genPlan(b: Builder): void {
  const r = b.r;
  if (!b.ctx.plans.length) return genOptions(b);
  const fx = r.pick(b.ctx.plans);
  const model = b.input('model.onnx', b.ctx.bases[fx.base]);
  b.model = model;
  const plan = JSON.parse(fx.text) as { groups: Record<string, number[]>; compensation?: { node: string; input: number; delta: number[] }[]; model: { fingerprint: string }; format?: unknown; version?: unknown };
  const ids = Object.keys(plan.groups);
  const gid = ids.length ? r.pick(ids) : 'g0';
  const variant = r.pick([
    'valid', 'negIndex', 'bigIndex', 'floatIndex', 'dupIndex', 'allUnits', 'hugeList', 'unknownGroup', 'controlGroup',
    'fingerprint', 'deltaHuge', 'deltaInf', 'deltaLength', 'deltaNode', 'deltaInput', 'format', 'deep', 'notJson', 'fifo',
    'dir', 'strings',
    ...(fx.sidecar ? ['sideMissing', 'sideFlip', 'sideNaN', 'sideDims', 'sideName', 'sideSymlink', 'sideTruncated', 'sideNode', 'sideValid'] as const : []),
  ] as const);
  const rec = (plan as { reconstruction?: { file: string; sha256: string; weights: { node: string; input: number; dims: number[] }[] } }).reconstruction;
  let side: Uint8Array | undefined = fx.sidecar;
  let sideLink = false;
  let text: string | undefined;
  let file = 'plan.json';
  switch (variant) {
    case 'valid': break;
    case 'negIndex': (plan.groups[gid] ??= []).push(-1); break;
    case 'bigIndex': (plan.groups[gid] ??= []).push(r.pick([1e6, 2 ** 31, 2 ** 53, 1e300])); break;
    case 'floatIndex': (plan.groups[gid] ??= []).push(1.5); break;
    case 'dupIndex': { const g = (plan.groups[gid] ??= [0]); g.push(g[0]); break; }
    case 'allUnits': plan.groups[gid] = Array.from({ length: r.pick([16, 32, 64, 128]) }, (_, i) => i); break;
    case 'hugeList': plan.groups[gid] = Array.from({ length: 1e6 }, (_, i) => i); break;
    case 'unknownGroup': plan.groups[r.pick(['nope', '', '__proto__', 'constructor'])] = [0]; break;
    case 'controlGroup': plan.groups['g\n\x1b[31mred'] = [0]; break;
    case 'fingerprint': plan.model.fingerprint = r.pick(['0'.repeat(64), 'x', '']); break;
    case 'deltaHuge': case 'deltaInf': case 'deltaLength': case 'deltaNode': case 'deltaInput': {
      const comp = plan.compensation ?? [];
      if (!comp.length) comp.push({ node: 'x', input: 1, delta: [1] });
      plan.compensation = comp;
      const c = r.pick(comp);
      if (variant === 'deltaHuge') c.delta = c.delta.map(() => r.pick([1e308, -1e308, 3e38]));
      if (variant === 'deltaLength') c.delta = c.delta.concat(c.delta, [1]);
      if (variant === 'deltaNode') c.node = r.pick(['nope', '', 'a\nb']);
      if (variant === 'deltaInput') c.input = r.pick([-1, 99, 2 ** 40]);
      if (variant === 'deltaInf') text = JSON.stringify(plan).replace(/"delta":\[([-0-9.e+]+)/, '"delta":[1e999');
      break;
    }
    case 'format': plan.format = r.pick(['x', null, 2]); plan.version = r.pick([2, '1']); break;
    case 'deep': text = `${'['.repeat(100000)}${']'.repeat(100000)}`; break;
    case 'notJson': text = r.pick(['', '{', 'null', '[]', '\x00']); break;
    case 'fifo': file = b.fifo('plan.json'); break;
    case 'dir': file = b.dir('plan.json'); break;
    case 'strings': plan.groups[gid] = ['0', '1'] as unknown as number[]; break;
    case 'sideMissing': side = undefined; break;
    case 'sideFlip': side = Uint8Array.from(side!); side[r.int(0, side.length - 1)] ^= 1 << r.int(0, 7); break;
    case 'sideTruncated': side = side!.subarray(0, r.int(0, side!.length - 1)); break;
    case 'sideNaN': case 'sideValid': {
      // Values changed and the sha256 recomputed: a NaN (or huge) refit weight must be refused; a valid edit accepted.
      side = Uint8Array.from(side!);
      const at = side.length - 4 * r.int(1, 8) - 200;
      if (variant === 'sideNaN') new DataView(side.buffer).setFloat32(at - (at % 4), r.pick([NaN, Infinity, 3e38]), true);
      if (rec) rec.sha256 = createHash('sha256').update(side).digest('hex');
      break;
    }
    case 'sideDims': if (rec?.weights.length) rec.weights[0].dims = rec.weights[0].dims.map((d) => d + 1); break;
    case 'sideNode': if (rec?.weights.length) { rec.weights[0].node = r.pick(['nope', '', 'a\nb']); rec.weights[0].input = r.pick([0, 1, 7]); } break;
    case 'sideName': if (rec) rec.file = r.pick(['../outside/secret.bin', '/etc/passwd', 'x/../../secret.npz', 'a\u0000.npz']); break;
    case 'sideSymlink': sideLink = true; break;
  }
  if (side && rec) {
    if (sideLink) b.symlink('plan.refit.npz', '../outside/secret.bin');
    else b.input('plan.refit.npz', side);
  }
  if (variant !== 'fifo' && variant !== 'dir') b.input(file, text ?? JSON.stringify(plan));
  b.args.push(model, 'out.onnx', '--plan', file, ...fx.args.filter((a) => a !== '--save-plan'));
  if (r.chance(0.3)) b.args.push('--save-plan', 'plan2.json');
  if (r.chance(0.2)) b.args.push(...r.pick([['--no-compensate'], ['--reconstruct', 'none'], ['--reconstruct', 'ls'], ['--reconstruct', 'bias']]));
  b.say(`${fx.base} plan ${variant} (group ${gid}): ${b.args.join(' ')}`);
}

// ------------------------------------------------------------------------------------------ pass

const PASS_BODIES: Record<string, string> = {
  throwError: `run() { throw new Error('plugin failed'); }`,
  throwNull: `run() { throw null; }`,
  throwNumber: `run() { throw 42; }`,
  throwMultiline: `run() { throw new Error('line one\\nline two\\x1b[31m'); }`,
  throwObject: `run() { throw { message: 'not an error', code: 'EPLUGIN' }; }`,
  reject: `async run() { await null; throw new TypeError('async failure'); }`,
  rangeError: `run() { const f = () => f(); f(); }`,
  dropNode: `run(ctx) { const g = ctx.model.graph; g.nodes.pop(); g.invalidate(); }`,
  renameOutput: `run(ctx) { ctx.model.graph.outputs[0].name = 'nonexistent'; }`,
  unknownOp: `run(ctx) { const g = ctx.model.graph; g.nodes[0].proto.opType = 'NoSuchOp'; g.invalidate(); }`,
  badDims: `run(ctx) { for (const t of ctx.model.graph.initializers.values()) t.proto.dims = [7, 7]; }`,
  cycle: `run(ctx) { const g = ctx.model.graph; const n = g.nodes; n[0].inputs[0] = n[n.length - 1].outputs[0]; g.invalidate(); }`,
  clearModel: `run(ctx) { ctx.model = undefined; }`,
  swapData: `run() { const fs = require('fs'); const path = require('path'); const f = path.resolve('model.onnx.data'); fs.renameSync(f, f + '.moved'); fs.symlinkSync(path.resolve('../outside/secret.bin'), f); }`,
  badName: `run() {}`,
};

function genPass(b: Builder): void {
  const r = b.r;
  const kind = r.chance(0.2) ? 'swapData' : r.pick([...Object.keys(PASS_BODIES), 'requireThrows', 'exportsGarbage', 'builtinName'] as const);
  // The race needs a tensor read again at save: ratio 0 reads few tensors before; mnist_lenet_bn has one over 1 MB.
  const name = kind === 'swapData' && r.chance(0.5) ? b.base(['mnist_lenet_bn']) : b.base(SMALL);
  let modelBytes = b.ctx.bases[name];
  if (kind === 'swapData') {
    const m = decodeModel(modelBytes);
    b.input('model.onnx.data', externalize(m, new Set(rawInitializers(m).map((t) => t.name ?? '')), 'model.onnx.data'));
    modelBytes = encodeModel(m);
    b.ignore = ['work/model.onnx.data', 'work/model.onnx.data.moved'];
  }
  const model = b.input('model.onnx', modelBytes);
  b.model = model;
  let src: string;
  if (kind === 'requireThrows') src = `throw new Error('cannot load\\nplugin');`;
  else if (kind === 'exportsGarbage') src = `module.exports = ${r.pick(['null', '42', '"x"', '[null]', '{ name: 1, run: 2 }', '() => { throw new Error("factory failed"); }'])};`;
  else if (kind === 'builtinName') src = `module.exports = { name: 'save', reads: [], writes: [], run() {} };`;
  else {
    const passName = kind === 'badName' ? r.pick(['', 'a\nb', '\x1b[31m', 'x'.repeat(5000)]) : `fuzz-${kind}`;
    src = `module.exports = { name: ${JSON.stringify(passName)}, reads: ['model'], writes: [], ${PASS_BODIES[kind]} };`;
  }
  const mod = b.input('plugin.js', src);
  b.args.push(model, 'out.onnx', '--ratio', r.pick(['0', '0.3']), '--pass', `./${mod}`);
  b.say(`${name} pass ${kind}: ${b.args.join(' ')}`);
}

// ------------------------------------------------------------------------------------------ deep

function genDeep(b: Builder): void {
  const r = b.r;
  const variant = r.pick(['if', 'chain'] as const);
  const n = variant === 'if' ? r.pick([50, 500, 2000, 5000, 20000]) : r.pick([1000, 10000, 50000]);
  const model = b.input('model.onnx', variant === 'if' ? nestedIfModel(n) : chainModel(n));
  b.say(`${variant} depth ${n}`);
  command(b, model, { prune: 4, zero: 2, inspect: 2, groups: 2 });
}

const GENERATORS: Record<Family, (b: Builder) => void> = {
  bytes: genBytes,
  struct: genStruct,
  external: genExternal,
  paths: genPaths,
  options: genOptions,
  config: genConfig,
  calib: genCalib,
  plan: genPlan,
  pass: genPass,
  deep: genDeep,
};

/** Case `index` of the corpus `seed` (deterministic). */
export function generateCase(seed: number, index: number, ctx: GenContext, families: readonly Family[] = FAMILIES): FuzzCase {
  const family = families[index % families.length];
  const b = new Builder(new Rand(caseSeed(seed, index)), ctx);
  GENERATORS[family](b);
  return {
    id: `${seed}-${index}`,
    seed,
    index,
    family,
    desc: b.desc.join(' | '),
    files: b.files,
    args: b.args,
    model: b.model,
    nondeterministicOk: b.nondeterministicOk || undefined,
    keepInvalid: b.keepInvalid,
    ignore: b.ignore,
    fsize: b.fsize,
  };
}
