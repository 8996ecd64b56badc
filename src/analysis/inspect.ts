/** `inspect`: a summary of a model (versions, I/O, op histogram, params, bytes, MACs, control flow). */
import { dtypeName } from '../ir/dtype';
import { valueTypeOf } from '../ir/graph';
import { toNumber } from '../ir/long';
import type { Model } from '../ir/model';
import { countMacs } from './flops';
import { escapeControl } from '../util/text';

export interface IoSummary {
  name: string;
  dtype: string;
  shape?: (number | string | null)[];
}

export interface ModelSummary {
  irVersion: number;
  opsets: Record<string, number>;
  producer: { name: string; version: string };
  inputs: IoSummary[];
  outputs: IoSummary[];
  nodes: number;
  /** Nodes in the main graph and all subgraphs. */
  nodesTotal: number;
  ops: Record<string, number>;
  /** Elements of all initializers and Constant-node values (all graphs). */
  params: number;
  paramsBySource: { initializer: number; constantNode: number; sparseInitializer: number };
  initializers: number;
  initializerBytes: number;
  externalDataBytes: number;
  controlFlow: string[];
  /** Multiply-accumulates for one run (batch/seq dims taken as 1 when symbolic); absent when not computable. */
  macs?: number;
  flops?: number;
}

function io(vi: import('../ir/proto').onnx.ValueInfoProto): IoSummary {
  const t = valueTypeOf(vi);
  return { name: vi.name ?? '', dtype: t ? dtypeName(t.dtype) : 'unknown', shape: t?.shape?.map((d) => (d === undefined ? null : d)) };
}

export function summarizeModel(model: Model, opts: { flops?: boolean } = {}): ModelSummary {
  const g = model.graph;
  const ops: Record<string, number> = {};
  const controlFlow = new Set<string>();
  let nodesTotal = 0;
  for (const sg of g.allGraphs()) {
    for (const n of sg.nodes) {
      nodesTotal++;
      const key = n.domain && n.domain !== 'ai.onnx' ? `${n.domain}.${n.opType}` : n.opType;
      ops[key] = (ops[key] ?? 0) + 1;
      if (n.subgraphs.length) controlFlow.add(n.opType);
    }
  }
  const bySource = { initializer: 0, constantNode: 0, sparseInitializer: 0 };
  let initializers = 0;
  let initializerBytes = 0;
  let externalDataBytes = 0;
  for (const sg of g.allGraphs()) {
    for (const w of sg.weights()) {
      if (w.source === 'initializer') {
        bySource.initializer += w.tensor.size;
        initializers++;
        initializerBytes += w.tensor.byteSize;
        if (w.tensor.external) externalDataBytes += w.tensor.byteSize;
      } else if (w.source === 'constant-node') bySource.constantNode += w.tensor.size;
      else bySource.sparseInitializer += w.tensor.size;
    }
  }
  const opsets: Record<string, number> = {};
  for (const o of model.proto.opsetImport) opsets[o.domain || 'ai.onnx'] = toNumber(o.version);
  const summary: ModelSummary = {
    irVersion: model.irVersion,
    opsets,
    producer: { name: model.proto.producerName ?? '', version: model.proto.producerVersion ?? '' },
    inputs: g.realInputs.map(io),
    outputs: g.outputs.map(io),
    nodes: g.nodes.length,
    nodesTotal,
    ops: Object.fromEntries(Object.entries(ops).sort((a, b) => b[1] - a[1] || a[0].localeCompare(b[0]))),
    params: bySource.initializer + bySource.constantNode + bySource.sparseInitializer,
    paramsBySource: bySource,
    initializers,
    initializerBytes,
    externalDataBytes,
    controlFlow: [...controlFlow].sort(),
  };
  if (opts.flops !== false) {
    const f = countMacs(model); // infers shapes first
    if (f.macs !== undefined) {
      summary.macs = f.macs;
      summary.flops = 2 * f.macs;
    }
  }
  return summary;
}

function fmtShape(s?: (number | string | null)[]): string {
  return s ? `[${s.map((d) => (d === null ? '?' : d)).join(', ')}]` : '(unknown shape)';
}

function human(n: number): string {
  if (n >= 1e9) return `${(n / 1e9).toFixed(2)}G`;
  if (n >= 1e6) return `${(n / 1e6).toFixed(2)}M`;
  if (n >= 1e3) return `${(n / 1e3).toFixed(1)}K`;
  return String(n);
}

export function formatSummary(s: ModelSummary, file: string): string {
  const lines: string[] = [];
  lines.push(`model        ${file}`);
  lines.push(`ir_version   ${s.irVersion}`);
  lines.push(`opsets       ${Object.entries(s.opsets).map(([d, v]) => `${d} ${v}`).join(', ')}`);
  if (s.producer.name) lines.push(`producer     ${s.producer.name} ${s.producer.version}`.trimEnd());
  for (const i of s.inputs) lines.push(`input        ${i.name}: ${i.dtype} ${fmtShape(i.shape)}`);
  for (const o of s.outputs) lines.push(`output       ${o.name}: ${o.dtype} ${fmtShape(o.shape)}`);
  lines.push(`nodes        ${s.nodes}${s.nodesTotal !== s.nodes ? ` (${s.nodesTotal} with subgraphs)` : ''}`);
  lines.push(`params       ${s.params} (${human(s.params)}; initializers ${s.paramsBySource.initializer}, Constant nodes ${s.paramsBySource.constantNode})`);
  lines.push(`weights      ${s.initializers} initializers, ${human(s.initializerBytes)}B${s.externalDataBytes ? ` (${human(s.externalDataBytes)}B external)` : ''}`);
  lines.push(`MACs         ${s.macs !== undefined ? `${s.macs} (${human(s.macs)}; FLOPs ${human(s.flops!)})` : 'unknown (shapes not inferable)'}`);
  lines.push(`control flow ${s.controlFlow.length ? s.controlFlow.join(', ') : 'none'}`);
  lines.push('ops:');
  for (const [op, c] of Object.entries(s.ops)) lines.push(`  ${op.padEnd(28)} ${c}`);
  // Names from the model are shown escaped: one line each, no escape sequences reaching the terminal.
  return lines.map(escapeControl).join('\n');
}
