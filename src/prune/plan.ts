/**
 * Pruning plans: for each group, the unit indices to remove. A plan is JSON (schemas/plan.schema.json),
 * carries a fingerprint of the model it was made for, and is validated with clear one-line errors before it is
 * applied (bad JSON, schema violations, other model, unknown or declined group, index out of range, all units).
 */
import { createHash } from 'crypto';
import * as path from 'path';
import { DataType, dtypeName } from '../ir/dtype';
import { formatNpy, parseNpy } from '../ort/npy';
import { readZip, writeZip } from '../ort/zip';
import type { DeclinedGroup, Group, GroupAnalysis } from '../analysis/types';
import type { BiasAdjustment } from '../score/compensate';
import { UserError } from '../ir/errors';
import { OutputSet, readInputFile, readJsonText } from '../ir/files';
import type { Model } from '../ir/model';
import planSchema from '../../schemas/plan.schema.json';
import { checkSchema, type JsonSchema } from '../util/json-schema';

/** Group id → sorted unit indices to remove. */
export type PlanGroups = Record<string, number[]>;

export interface ModelFingerprint {
  /** sha256 (hex) of the graph structure: see `fingerprintModel`. */
  fingerprint: string;
  graph?: string;
  nodes?: number;
  params?: number;
}


export type { BiasAdjustment };

/** A reconstruction carried by a plan: weights in the sidecar `.npz` (array `array` per consumer), biases inline. */
export interface PlanReconstruction {
  mode: 'ls';
  sequential: boolean;
  /** The sidecar file's name, in the plan's folder, and the sha256 (hex) of its bytes. */
  file: string;
  sha256: string;
  weights: { node: string; input: number; array: string; dims: number[] }[];
  biases: BiasAdjustment[];
}

export interface PrunePlan {
  format: 'onnx-prune-plan';
  version: 1;
  model: ModelFingerprint;
  groups: PlanGroups;
  /** Bias compensation made with the plan (data-aware importances); `--plan` re-applies it. */
  compensation?: BiasAdjustment[];
  /** Least-squares reconstruction made with the plan: the refit weights are in a sidecar file; `--plan` re-applies it. */
  reconstruction?: PlanReconstruction;
  meta?: Record<string, unknown>;
}

/**
 * A structural fingerprint: graph inputs/outputs, every node's op type, domain, inputs and outputs, and every
 * weight's name, type and shape (all graphs). Weight values are left out on purpose.
 */
export function fingerprintModel(model: Model): ModelFingerprint {
  const h = createHash('sha256');
  const put = (s: string) => h.update(`${s}\n`);
  let nodes = 0;
  let params = 0;
  for (const g of model.graph.allGraphs()) {
    put(`graph ${g.name}`);
    for (const i of g.proto.input) put(`in ${i.name}`);
    for (const o of g.proto.output) put(`out ${o.name}`);
    for (const n of g.nodes) {
      nodes++;
      put(`node ${n.domain}:${n.opType} ${n.inputs.join(',')} -> ${n.outputs.join(',')}`);
    }
    for (const w of g.weights()) {
      params += w.tensor.size;
      put(`w ${w.name} ${w.tensor.dtype} [${w.tensor.dims.join(',')}]`);
    }
  }
  return { fingerprint: h.digest('hex'), graph: model.graph.name, nodes, params };
}

/** A plan for `model` removing `groups` (indices sorted; groups with nothing removed left out). */
export function makePlan(model: Model, groups: PlanGroups, meta?: Record<string, unknown>): PrunePlan {
  const out: PlanGroups = {};
  for (const [id, idx] of Object.entries(groups)) if (idx.length) out[id] = [...idx].sort((a, b) => a - b);
  const plan: PrunePlan = { format: 'onnx-prune-plan', version: 1, model: fingerprintModel(model), groups: out };
  if (meta) plan.meta = meta;
  return plan;
}

/** Where a declined group could be named by a plan (its id, if the analysis gives one, tensor, node, producers). */
function declinedNames(d: DeclinedGroup): string[] {
  const names = [(d as { id?: string }).id, d.tensor, d.node, ...(d.producers ?? [])];
  return names.filter((x): x is string => typeof x === 'string' && x !== '');
}

/**
 * Checks plan groups against the analysis: every id must be a prunable group, every index in range, no
 * duplicates, and at least one unit must stay in each group. Throws UserError; returns sorted copies.
 */
export function checkPlanGroups(groups: PlanGroups, analysis: GroupAnalysis, source = 'plan'): PlanGroups {
  const byId = new Map<string, Group>(analysis.groups.map((g) => [g.id, g]));
  const out: PlanGroups = {};
  for (const [id, idx] of Object.entries(groups)) {
    const g = byId.get(id);
    if (!g) {
      const d = analysis.declined.find((x) => declinedNames(x).includes(id));
      if (d) throw new UserError(`${source}: group '${id}' was declined by the analysis (${d.reason}) and cannot be pruned`);
      if (id.startsWith('block:') && analysis.blocks?.some((b) => `block:${b.id}` === id)) throw new UserError(`${source}: '${id}' is a residual block: apply the plan with --depth-only`);
      throw new UserError(`${source}: '${id}' is not a group of this model (it has ${analysis.groups.length} groups; list them with \`onnx-prune groups MODEL\`)`);
    }
    if (!Array.isArray(idx)) throw new UserError(`${source}: group '${id}' must map to an array of unit indices`);
    const seen = new Set<number>();
    for (const u of idx) {
      if (!Number.isInteger(u)) throw new UserError(`${source}: group '${id}': unit index ${JSON.stringify(u)} is not an integer`);
      if (u < 0 || u >= g.size) throw new UserError(`${source}: group '${id}': unit index ${u} is out of range (the group has ${g.size} units: 0..${g.size - 1})`);
      if (seen.has(u)) throw new UserError(`${source}: group '${id}': unit index ${u} is listed twice`);
      seen.add(u);
    }
    if (seen.size >= g.size && g.unit !== 'block') throw new UserError(`${source}: group '${id}' would remove all ${g.size} of its units; at least one must stay`);
    if (seen.size) out[id] = [...seen].sort((a, b) => a - b);
  }
  return out;
}

/** Validates a parsed plan (schema, model fingerprint, groups) and returns it normalized. */
export function validatePlan(value: unknown, model: Model, analysis: GroupAnalysis, source = 'plan'): PrunePlan {
  const problem = checkSchema(value, planSchema as JsonSchema, 'plan');
  if (problem) throw new UserError(`${source} is not a valid plan: ${problem}`);
  const plan = value as PrunePlan;
  const fp = fingerprintModel(model);
  if (plan.model.fingerprint !== fp.fingerprint) {
    throw new UserError(`${source} was made for a different model (fingerprint ${plan.model.fingerprint.slice(0, 12)}…, this model has ${fp.fingerprint.slice(0, 12)}…)`);
  }
  const groups = checkPlanGroups(plan.groups, analysis, source);
  return { ...plan, groups };
}

/**
 * Reads and parses a plan file (UserError when missing, not a regular file, over 16 MB, nested too deeply or not
 * JSON); validate it with `validatePlan`.
 */
export function readPlanFile(file: string): unknown {
  const text = readJsonText(file, { label: `plan '${file}'` });
  try {
    return JSON.parse(text);
  } catch (e) {
    throw new UserError(`plan '${file}' is not valid JSON (${(e as Error).message.split('\n')[0]})`);
  }
}

/** The plan as stable JSON text (fixed key order, one group per line). */
export function planToJson(plan: PrunePlan): string {
  const lines = Object.entries(plan.groups).map(([id, idx]) => `    ${JSON.stringify(id)}: ${JSON.stringify(idx)}`);
  const head: Record<string, unknown> = { format: plan.format, version: plan.version, model: plan.model };
  const body = JSON.stringify(head, null, 2).replace(/\n}$/, '');
  const meta = plan.meta ? `,\n  "meta": ${JSON.stringify(plan.meta)}` : '';
  const rec = plan.reconstruction;
  const recText = rec ? `,\n  "reconstruction": {\n    ${JSON.stringify({ mode: rec.mode, sequential: rec.sequential, file: rec.file, sha256: rec.sha256 }).slice(1, -1)},\n` +
    `    "weights": [${rec.weights.map((w) => `\n      ${JSON.stringify(w)}`).join(',')}${rec.weights.length ? '\n    ' : ''}],\n` +
    `    "biases": [${rec.biases.map((b) => `\n      ${JSON.stringify({ node: b.node, input: b.input, delta: b.delta })}`).join(',')}${rec.biases.length ? '\n    ' : ''}]\n  }` : '';
  const comp = plan.compensation?.length ? `,\n  "compensation": [\n${plan.compensation.map((c) => `    ${JSON.stringify({ node: c.node, input: c.input, delta: c.delta })}`).join(',\n')}\n  ]` : '';
  return `${body},\n  "groups": {${lines.length ? `\n${lines.join(',\n')}\n  ` : ''}}${comp}${recText}${meta}\n}\n`;
}

/**
 * Writes a plan (temp file + rename). With `outputs` it is only staged there: the run commits it with its other
 * outputs when it succeeds (a failed run leaves no plan behind).
 */
export function writePlanFile(file: string, plan: PrunePlan, outputs?: OutputSet): void {
  if (outputs) {
    outputs.stage(file, 'plan file', planToJson(plan), 2);
    return;
  }
  const own = new OutputSet();
  try {
    own.stage(file, 'plan file', planToJson(plan), 2);
    own.commit();
  } catch (e) {
    own.abort();
    throw e;
  }
}

/** The sidecar of plan `file`: `<name>.refit.npz` beside it (`<name>` without a .json extension). */
export function sidecarPath(file: string): string {
  const dir = path.dirname(file);
  const base = path.basename(file).replace(/\.json$/i, '');
  return path.join(dir, `${base}.refit.npz`);
}

/**
 * Stages plan `file` with its reconstruction: the refit weights go to the sidecar `.npz` (float32 arrays w0, w1, …,
 * loadable with numpy.load), the plan records their consumers, the sidecar's name and sha256, and the bias changes.
 */
export function writePlanWithReconstruction(file: string, plan: PrunePlan, r: { mode: 'ls'; sequential: boolean; weights: { node: string; input: number; dims: number[]; values: Float32Array }[]; biases: BiasAdjustment[] }, outputs?: OutputSet): void {
  const side = sidecarPath(file);
  const entries = r.weights.map((w, i) => ({ name: `w${i}.npy`, data: formatNpy({ dtype: DataType.FLOAT, dims: w.dims, data: w.values }) }));
  const bytes = writeZip(entries);
  plan.reconstruction = {
    mode: r.mode, sequential: r.sequential, file: path.basename(side), sha256: createHash('sha256').update(bytes).digest('hex'),
    weights: r.weights.map((w, i) => ({ node: w.node, input: w.input, array: `w${i}`, dims: w.dims.slice() })),
    biases: r.biases,
  };
  const own = outputs ?? new OutputSet();
  try {
    own.stage(side, 'reconstruction file', bytes, 2);
    writePlanFile(file, plan, own);
    if (!outputs) own.commit();
  } catch (e) {
    if (!outputs) own.abort();
    throw e;
  }
}

/**
 * The refit weights of a plan's reconstruction, read from its sidecar (beside the plan file): the file must have
 * the recorded sha256, and hold every recorded array with its dims (float32). UserErrors name the file.
 */
export function readReconstructionWeights(planFile: string, rec: PlanReconstruction): { node: string; input: number; dims: number[]; values: Float32Array }[] {
  const side = path.join(path.dirname(planFile), rec.file);
  const label = `reconstruction file '${side}' of plan '${planFile}'`;
  const bytes = readInputFile(side, { label });
  const sha = createHash('sha256').update(bytes).digest('hex');
  if (sha !== rec.sha256) throw new UserError(`${label} does not match the plan (sha256 ${sha.slice(0, 12)}…, the plan recorded ${rec.sha256.slice(0, 12)}…)`);
  const arrays = new Map(readZip(bytes, label).map((e) => [e.name.replace(/\.npy$/, ''), e.data]));
  return rec.weights.map((w) => {
    const data = arrays.get(w.array);
    if (!data) throw new UserError(`${label} has no array '${w.array}'`);
    const a = parseNpy(data, `${label}: array '${w.array}'`);
    if (a.dtype !== DataType.FLOAT || a.dims.length !== w.dims.length || a.dims.some((d, i) => d !== w.dims[i])) {
      throw new UserError(`${label}: array '${w.array}' is ${dtypeName(a.dtype)}[${a.dims.join(',')}], the plan says float32[${w.dims.join(',')}]`);
    }
    return { node: w.node, input: w.input, dims: w.dims.slice(), values: Float32Array.from(a.data as Float32Array) };
  });
}
