/**
 * External tensor data (TensorProto.external_data): resolving `location` safely relative to the model's folder,
 * and reading/writing bytes in chunks so that files over 2 GiB work (no readFileSync on them).
 */
import * as fs from 'fs';
import * as path from 'path';
import { UserError } from './errors';
import { toNumber } from './long';
import type { onnx } from './proto';

export interface ExternalRef {
  /** `location` as written in the model. */
  location: string;
  /** Absolute, validated path of the data file. */
  file: string;
  offset: number;
  /** Byte length, or -1 when the model gave none (to the end of the file). */
  length: number;
}

/** Chunk size for reads and writes of large buffers. */
export const IO_CHUNK = 64 * 1024 * 1024;

export function isExternal(t: onnx.ITensorProto): boolean {
  return t.dataLocation === 1 || (!!t.externalData && t.externalData.length > 0 && t.dataLocation !== 0 && !t.rawData?.length);
}

/**
 * Resolves a tensor's external_data entries. Rejects absolute locations and any location that leaves
 * `baseDir` (`..` segments, or a symlink pointing outside).
 */
export function resolveExternal(t: onnx.ITensorProto, baseDir: string | undefined): ExternalRef {
  const kv = new Map<string, string>();
  for (const e of t.externalData ?? []) kv.set(e.key ?? '', e.value ?? '');
  const location = kv.get('location');
  const what = `tensor '${t.name ?? ''}'`;
  if (!location) throw new UserError(`${what} has external data without a location`);
  if (baseDir === undefined) throw new UserError(`${what} uses external data '${location}', but the model was loaded from bytes without a base folder`);
  if (path.isAbsolute(location) || path.win32.isAbsolute(location) || /^[a-zA-Z]:/.test(location)) {
    throw new UserError(`${what}: external data location '${location}' is absolute; only paths inside the model's folder are allowed`);
  }
  const parts = location.split(/[\\/]+/);
  if (parts.includes('..')) {
    throw new UserError(`${what}: external data location '${location}' leaves the model's folder ('..' is not allowed)`);
  }
  const root = path.resolve(baseDir);
  const file = path.resolve(root, ...parts.filter((p) => p !== '' && p !== '.'));
  if (!file.startsWith(root + path.sep)) {
    throw new UserError(`${what}: external data location '${location}' leaves the model's folder`);
  }
  let st: fs.Stats;
  try {
    st = fs.statSync(file);
  } catch {
    throw new UserError(`${what}: external data file '${location}' not found next to the model (${file})`);
  }
  if (!st.isFile()) throw new UserError(`${what}: external data '${location}' is not a regular file`);
  const realRoot = fs.realpathSync(root);
  const real = fs.realpathSync(file);
  if (!real.startsWith(realRoot + path.sep)) {
    throw new UserError(`${what}: external data location '${location}' links outside the model's folder`);
  }
  const offset = kv.has('offset') ? Number(kv.get('offset')) : 0;
  const length = kv.has('length') ? Number(kv.get('length')) : -1;
  if (!Number.isSafeInteger(offset) || offset < 0 || (length !== -1 && (!Number.isSafeInteger(length) || length < 0))) {
    throw new UserError(`${what}: bad external data offset/length (${kv.get('offset')}, ${kv.get('length')})`);
  }
  const end = length === -1 ? st.size : offset + length;
  if (end > st.size || offset > st.size) {
    throw new UserError(`${what}: external data '${location}' is too short (needs bytes ${offset}..${end}, file has ${st.size})`);
  }
  return { location, file, offset, length: length === -1 ? st.size - offset : length };
}

/** Reads `length` bytes at `offset` from a file, in chunks (works past 2 GiB files). */
export function readBytes(file: string, offset: number, length: number): Uint8Array {
  const out = new Uint8Array(length);
  const fd = fs.openSync(file, 'r');
  try {
    let done = 0;
    while (done < length) {
      const n = fs.readSync(fd, out, done, Math.min(IO_CHUNK, length - done), offset + done);
      if (n <= 0) throw new UserError(`unexpected end of file reading ${file}`);
      done += n;
    }
  } finally {
    fs.closeSync(fd);
  }
  return out;
}

export function readExternal(ref: ExternalRef): Uint8Array {
  return readBytes(ref.file, ref.offset, ref.length);
}

/** Writes all of `data` to an open file descriptor at `position`, in chunks. */
export function writeAll(fd: number, data: Uint8Array, position: number): void {
  let done = 0;
  while (done < data.length) {
    const n = fs.writeSync(fd, data, done, Math.min(IO_CHUNK, data.length - done), position + done);
    done += n;
  }
}

/** Reads a whole file in chunks (fs.readFileSync fails over 2 GiB). */
export function readWholeFile(file: string): Uint8Array {
  const size = fs.statSync(file).size;
  return readBytes(file, 0, size);
}
