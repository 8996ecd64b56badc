/** Deep copies of models (through their protobuf bytes; external data stays external, read lazily). */
import { loadModel } from '../ir/io';
import type { Model } from '../ir/model';
import { encodeModelProto } from '../ir/proto';

export function cloneModel(model: Model): Model {
  return loadModel(encodeModelProto(model.toProto()), { baseDir: model.baseDir });
}
