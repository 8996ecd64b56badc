/**
 * Deep copies of models. The protobuf message tree is copied structurally (every message and array is new, so
 * edits of one copy never show in the other) while byte fields — raw_data, unknown fields — are shared: nothing
 * writes into a tensor's bytes in place (ConstTensor.setData and the tensor edits always store new arrays), so a
 * copy costs no weight memory and no encode/decode. External data stays external, read lazily by each copy.
 */
import { Model } from './model';

/** A deep copy of a protobuf message tree; Uint8Arrays (bytes) and Long values (immutable) are shared. */
export function cloneMessage<T extends object>(root: T): T {
  const copyShell = (v: object): object => (Array.isArray(v) ? new Array(v.length) : Object.create(Object.getPrototypeOf(v)));
  const isShared = (v: object) => ArrayBuffer.isView(v) || (v as { __isLong__?: boolean }).__isLong__ === true;
  const out = copyShell(root);
  // Iterative: pending (source, copy) pairs whose properties still have to be copied.
  const stack: [object, object][] = [[root, out]];
  while (stack.length) {
    const [src, dst] = stack.pop()!;
    if (Array.isArray(src)) {
      const d = dst as unknown[];
      for (let i = 0; i < src.length; i++) {
        const v = src[i] as unknown;
        if (v === null || typeof v !== 'object' || isShared(v)) d[i] = v;
        else stack.push([v, (d[i] = copyShell(v))]);
      }
      continue;
    }
    // Own properties, enumerable or not (protobufjs keeps `$unknowns` non-enumerable), with the same flags.
    for (const key of Object.getOwnPropertyNames(src)) {
      const desc = Object.getOwnPropertyDescriptor(src, key)!;
      let value = desc.value as unknown;
      if ('value' in desc && value !== null && typeof value === 'object' && !isShared(value)) {
        const copy = copyShell(value);
        stack.push([value, copy]);
        value = copy;
      }
      Object.defineProperty(dst, key, 'value' in desc ? { ...desc, value } : desc);
    }
  }
  return out as T;
}

export function cloneModel(model: Model): Model {
  return new Model(cloneMessage(model.toProto()), model.files);
}
