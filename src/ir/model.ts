/** A loaded ONNX model: the ModelProto's metadata plus the mutable main graph. */
import { toNumber } from './long';
import { ModelFiles } from './external-data';
import { Graph } from './graph';
import { onnx } from './proto';

export class Model {
  readonly graph: Graph;

  /**
   * @param proto the decoded ModelProto (its `graph` is wrapped, and written back by toProto())
   * @param files the model's files (loadModel makes them: the model file and its external data, each checked once),
   * or the folder external-data locations are relative to
   */
  constructor(public proto: onnx.ModelProto, files?: ModelFiles | string) {
    this.graph = new Graph(proto.graph ?? onnx.GraphProto.create(), typeof files === 'string' ? new ModelFiles(files) : files);
  }

  /** The model's files (shared with its clones), when it came from disk or was given a folder. */
  get files(): ModelFiles | undefined { return this.graph.files; }
  /** Folder that external-data locations are relative to. */
  get baseDir(): string | undefined { return this.graph.files?.baseDir; }

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
