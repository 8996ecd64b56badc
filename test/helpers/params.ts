/**
 * An independent parameter count, straight over the decoded protobuf (not through the graph model): all
 * initializer elements plus all Constant-node value elements, in the main graph and every subgraph.
 */
import { toNumber } from '../../src/ir/long';
import { onnx } from '../../src/ir/proto';

function elements(t: onnx.ITensorProto): number {
  return (t.dims ?? []).reduce<number>((a, d) => a * toNumber(d), 1);
}

export interface ParamCount {
  initializer: number;
  constantNode: number;
  total: number;
}

export function countParams(bytes: Uint8Array): ParamCount {
  const m = onnx.ModelProto.decode(bytes);
  let initializer = 0;
  let constantNode = 0;
  const stack: onnx.IGraphProto[] = m.graph ? [m.graph] : [];
  while (stack.length) {
    const g = stack.pop()!;
    for (const t of g.initializer ?? []) initializer += elements(t);
    for (const n of g.node ?? []) {
      for (const a of n.attribute ?? []) {
        if (a.g) stack.push(a.g);
        for (const sg of a.graphs ?? []) stack.push(sg);
      }
      if (n.opType !== 'Constant' || (n.domain ?? '') !== '') continue;
      for (const a of n.attribute ?? []) {
        switch (a.name) {
          case 'value': constantNode += a.t ? elements(a.t) : 0; break;
          case 'value_float': case 'value_int': case 'value_string': constantNode += 1; break;
          case 'value_floats': constantNode += a.floats?.length ?? 0; break;
          case 'value_ints': constantNode += a.ints?.length ?? 0; break;
          case 'value_strings': constantNode += a.strings?.length ?? 0; break;
          default: break;
        }
      }
    }
  }
  return { initializer, constantNode, total: initializer + constantNode };
}
