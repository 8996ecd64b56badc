/**
 * External tensor data (TensorProto.external_data): resolving `location` safely relative to the model's folder,
 * and reading bytes in chunks so that files over 2 GiB work (no readFileSync on them).
 *
 * The files of one loaded model (`ModelFiles`, shared by its clones) are each checked once, through an open
 * descriptor: a regular file whose real path is inside the model's real folder. Its device and inode are recorded
 * and every later read opens the file again and reads only when the descriptor is that same file: a data file
 * swapped for a symlink (or hard link, FIFO, other file) after loading is refused, never followed.
 */
import * as fs from 'fs';
import * as path from 'path';
import { UserError } from './errors';
import { IO_CHUNK, fsError, kindOf, readFd, sameFile, writeAll, type FileId } from './files';
import { toNumber } from './long';
import type { onnx } from './proto';

export { IO_CHUNK, writeAll };

/** A data file checked at load. */
export interface VerifiedFile {
  /** Absolute path (as resolved from the model's folder, not through links). */
  file: string;
  /** `location` as the model first named it. */
  location: string;
  id: FileId;
  size: number;
}

export interface ExternalRef {
  /** `location` as written in the model. */
  location: string;
  /** Absolute, validated path of the data file. */
  file: string;
  offset: number;
  /** Byte length, or -1 when the model gave none (to the end of the file). */
  length: number;
  /** The file as checked at load; reads go to it only. */
  verified: VerifiedFile;
}

const READ_FLAGS = fs.constants.O_RDONLY | (fs.constants.O_NONBLOCK ?? 0) | (fs.constants.O_NOCTTY ?? 0);

/**
 * The files of a model loaded from disk: its folder (external-data locations are relative to it), the model file
 * itself, and the external-data files, each verified once (see the file comment). Clones share it.
 */
export class ModelFiles {
  /** Absolute folder that external-data locations are relative to. */
  readonly baseDir: string;
  /** The model file, when the model was loaded from a path. */
  readonly modelFile?: { file: string; id: FileId };
  private realRoot?: string;
  private readonly verified = new Map<string, VerifiedFile>();

  constructor(baseDir: string, modelFile?: { file: string; id: FileId }) {
    this.baseDir = path.resolve(baseDir);
    this.modelFile = modelFile;
  }

  /** Every external-data file verified so far. */
  dataFiles(): VerifiedFile[] {
    return [...this.verified.values()];
  }

  /** Opens, checks and records the data file `file` (absolute, inside baseDir by its path) once. */
  verify(file: string, location: string, what: string): VerifiedFile {
    const known = this.verified.get(file);
    if (known) return known;
    let fd: number;
    try {
      fd = fs.openSync(file, READ_FLAGS);
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code === 'ENOENT') {
        throw new UserError(`${what}: external data file '${location}' not found next to the model (${file})`);
      }
      throw fsError(e, `${what}: cannot read external data '${location}'`);
    }
    try {
      const st = fs.fstatSync(fd, { bigint: true });
      if (!st.isFile()) throw new UserError(`${what}: external data '${location}' is ${kindOf(st)}, not a regular file`);
      this.realRoot ??= fs.realpathSync(this.baseDir);
      const real = realPathOf(fd, file, { dev: st.dev, ino: st.ino });
      if (real === undefined || !real.startsWith(this.realRoot + path.sep)) {
        throw new UserError(`${what}: external data location '${location}' links outside the model's folder`);
      }
      const v: VerifiedFile = { file, location, id: { dev: st.dev, ino: st.ino }, size: Number(st.size) };
      this.verified.set(file, v);
      return v;
    } catch (e) {
      throw fsError(e, `${what}: cannot read external data '${location}'`);
    } finally {
      fs.closeSync(fd);
    }
  }
}

/**
 * The real path of the file open as `fd`: the kernel's (/proc/self/fd on Linux), else realpath(file) when it still
 * is the same file (device and inode); undefined when it is not.
 */
function realPathOf(fd: number, file: string, id: FileId): string | undefined {
  try {
    const p = fs.readlinkSync(`/proc/self/fd/${fd}`);
    if (path.isAbsolute(p)) return p;
  } catch {
    // no /proc: compare identities instead
  }
  const real = fs.realpathSync(file);
  const st = fs.statSync(real, { bigint: true });
  return sameFile({ dev: st.dev, ino: st.ino }, id) ? real : undefined;
}

export function isExternal(t: onnx.ITensorProto): boolean {
  return t.dataLocation === 1 || (!!t.externalData && t.externalData.length > 0 && t.dataLocation !== 0 && !t.rawData?.length);
}

/**
 * Resolves a tensor's external_data entries. Rejects absolute locations and any location that leaves the model's
 * folder (`..` segments, or a symlink pointing outside); the data file is verified once per ModelFiles.
 */
export function resolveExternal(t: onnx.ITensorProto, files: ModelFiles | undefined): ExternalRef {
  const kv = new Map<string, string>();
  for (const e of t.externalData ?? []) kv.set(e.key ?? '', e.value ?? '');
  const location = kv.get('location');
  const what = `tensor '${t.name ?? ''}'`;
  if (!location) throw new UserError(`${what} has external data without a location`);
  if (files === undefined) throw new UserError(`${what} uses external data '${location}', but the model was loaded from bytes without a base folder`);
  if (location.includes('\0')) throw new UserError(`${what}: external data location '${location}' holds a NUL character`);
  if (path.isAbsolute(location) || path.win32.isAbsolute(location) || /^[a-zA-Z]:/.test(location)) {
    throw new UserError(`${what}: external data location '${location}' is absolute; only paths inside the model's folder are allowed`);
  }
  const parts = location.split(/[\\/]+/);
  if (parts.includes('..')) {
    throw new UserError(`${what}: external data location '${location}' leaves the model's folder ('..' is not allowed)`);
  }
  const root = files.baseDir;
  const file = path.resolve(root, ...parts.filter((p) => p !== '' && p !== '.'));
  if (!file.startsWith(root + path.sep)) {
    throw new UserError(`${what}: external data location '${location}' leaves the model's folder`);
  }
  const verified = files.verify(file, location, what);
  const size = verified.size;
  const offset = kv.has('offset') ? Number(kv.get('offset')) : 0;
  const length = kv.has('length') ? Number(kv.get('length')) : -1;
  if (!Number.isSafeInteger(offset) || offset < 0 || (length !== -1 && (!Number.isSafeInteger(length) || length < 0))) {
    throw new UserError(`${what}: bad external data offset/length (${kv.get('offset')}, ${kv.get('length')})`);
  }
  const end = length === -1 ? size : offset + length;
  if (end > size || offset > size) {
    throw new UserError(`${what}: external data '${location}' is too short (needs bytes ${offset}..${end}, file has ${size})`);
  }
  return { location, file, offset, length: length === -1 ? size - offset : length, verified };
}

/**
 * Reads a tensor's external bytes: from the data file checked at load only (the file at that path is opened and
 * read when it is still the same file).
 */
export function readExternal(ref: ExternalRef): Uint8Array {
  const v = ref.verified;
  const label = `external data '${ref.location}'`;
  let fd: number;
  try {
    fd = fs.openSync(ref.file, READ_FLAGS);
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') throw new UserError(`${label} (${ref.file}) was removed while the model was in use`);
    throw fsError(e, `cannot read ${label}`);
  }
  try {
    const st = fs.fstatSync(fd, { bigint: true });
    if (!sameFile({ dev: st.dev, ino: st.ino }, v.id)) {
      throw new UserError(`${label} (${ref.file}) was replaced by another file while the model was in use; not reading it`);
    }
    return readFd(fd, ref.length, ref.offset, `${label} (${ref.file})`);
  } finally {
    fs.closeSync(fd);
  }
}
