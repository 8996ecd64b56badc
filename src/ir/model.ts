/** A loaded ONNX model: the ModelProto's metadata plus the mutable main graph. */
import { toNumber } from './long';
import { Graph } from './graph';
import { onnx } from './proto';

export class Model {
  readonly graph: Graph;

  /**
   * @param proto the decoded ModelProto (its `graph` is wrapped, and written back by toProto())
   * @param baseDir folder that external-data locations are relative to
   */
  constructor(public proto: onnx.ModelProto, public readonly baseDir?: string) {
    this.graph = new Graph(proto.graph ?? onnx.GraphProto.create(), baseDir);
  }

  get irVersion(): number { return toNumber(this.proto.irVersion); }

  /** The opset version imported for a domain ('' and 'ai.onnx' are the default domain). */
  opset(domain = ''): number | undefined {
    for (const o of this.proto.opsetImport) {
      const d = o.domain ?? '';
      if (d === domain || (domain === '' && d === 'ai.onnx') || (domain === 'ai.onnx' && d === '')) return toNumber(o.version);
    }
    return undefined;
  }

  /** Writes the graph model back into the ModelProto and returns it. */
  toProto(): onnx.ModelProto {
    this.proto.graph = this.graph.toProto();
    return this.proto;
  }
}
