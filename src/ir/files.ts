/**
 * Reading and writing the user's files safely. Every input is opened once, checked through its descriptor
 * (a regular file, not a FIFO or device; a size cap) and read through that descriptor; a FIFO never blocks the
 * open (O_NONBLOCK). Every output is written to a temp file in its destination folder and renamed into place only
 * when the whole run succeeded (`OutputSet`), never over a non-regular file and never over an input (compared by
 * device and inode, so symlinks and hard links are seen through). File-system errors (EACCES, ENOSPC, EFBIG,
 * ENAMETOOLONG, …) become one-line UserErrors naming the file and the reason.
 */
import { randomBytes } from 'crypto';
import * as fs from 'fs';
import * as path from 'path';
import { UserError } from './errors';

/** Chunk size for reads and writes of large buffers (single read/write calls stop at 2 GiB). */
export const IO_CHUNK = 64 * 1024 * 1024;

/** Config and plan files are JSON written by people or tools: this is far more than any real one. */
export const JSON_FILE_MAX_BYTES = 16 * 1024 * 1024;

/** Deepest nesting of [ and { accepted in a config or plan file (real ones nest 3–4 levels). */
export const JSON_MAX_DEPTH = 64;

const REASONS: Record<string, string> = {
  ENOENT: 'no such file or folder',
  EACCES: 'permission denied',
  EPERM: 'operation not permitted',
  ENOSPC: 'no space left on the device',
  EDQUOT: 'disk quota exceeded',
  EFBIG: 'file too large for the file system or the file size limit',
  ENAMETOOLONG: 'file name too long',
  EISDIR: 'it is a directory',
  ENOTDIR: 'a part of the path is not a folder',
  EROFS: 'read-only file system',
  ELOOP: 'too many levels of symbolic links',
  EMFILE: 'too many open files',
  ENFILE: 'too many open files in the system',
  EIO: 'input/output error',
  ENXIO: 'no such device or address',
  ENODEV: 'no such device',
  EBUSY: 'the file is busy',
  ETXTBSY: 'the file is busy',
  EEXIST: 'the file exists',
  EAGAIN: 'the file is not ready (would block)',
  EINVAL: 'invalid argument',
  EXDEV: 'not on the same file system',
  ENOMEM: 'out of memory',
  EOVERFLOW: 'value too large',
  ESTALE: 'stale file handle',
};

/** A Node file-system error (an errno code such as 'EACCES'). */
export function isFsError(e: unknown): e is NodeJS.ErrnoException {
  const code = (e as NodeJS.ErrnoException | undefined)?.code;
  return e instanceof Error && typeof code === 'string' && /^E[A-Z0-9]+$/.test(code);
}

/** `permission denied (EACCES)`. */
export function fsReason(e: NodeJS.ErrnoException): string {
  const code = e.code ?? '';
  return REASONS[code] ? `${REASONS[code]} (${code})` : code;
}

/** A UserError `${action}: ${reason}` for a file-system error; anything else is returned unchanged. */
export function fsError(e: unknown, action: string): unknown {
  return isFsError(e) ? new UserError(`${action}: ${fsReason(e)}`) : e;
}

/** A file's identity: device and inode (exact, as bigints). */
export interface FileId {
  dev: bigint;
  ino: bigint;
}

export function sameFile(a: FileId, b: FileId): boolean {
  return a.dev === b.dev && a.ino === b.ino;
}

function idOf(st: fs.BigIntStats): FileId {
  return { dev: st.dev, ino: st.ino };
}

/** What a stat says a non-regular file is, for messages. */
export function kindOf(st: fs.Stats | fs.BigIntStats): string {
  if (st.isDirectory()) return 'a directory';
  if (st.isFIFO()) return 'a FIFO';
  if (st.isCharacterDevice()) return 'a character device';
  if (st.isBlockDevice()) return 'a block device';
  if (st.isSocket()) return 'a socket';
  if (st.isSymbolicLink()) return 'a symbolic link';
  return 'not a regular file';
}

/** stat (following links) of an existing path; undefined when nothing is there. */
function statIfExists(file: string): fs.BigIntStats | undefined {
  return fs.statSync(file, { bigint: true, throwIfNoEntry: false });
}

/** Read flags: a FIFO or device opens without blocking and never becomes the controlling terminal. */
const READ_FLAGS = fs.constants.O_RDONLY | (fs.constants.O_NONBLOCK ?? 0) | (fs.constants.O_NOCTTY ?? 0);

/** An input file opened for reading and checked through its descriptor. */
export interface OpenedFile {
  fd: number;
  /** Size at open time. */
  size: number;
  id: FileId;
}

export interface OpenOptions {
  /** How messages name the file, e.g. `config file 'c.json'` (default `'FILE'`). */
  label?: string;
  /** The message when the file does not exist (default `cannot read LABEL: no such file`). */
  missing?: string;
  /** Largest accepted size in bytes. */
  maxBytes?: number;
  /** The message when the file is over maxBytes. */
  tooLarge?: (size: number) => string;
}

/**
 * Opens an input file (O_NONBLOCK: a FIFO cannot block) and checks through the descriptor that it is a regular
 * file within the size cap. The caller reads through `fd` and closes it.
 */
export function openInput(file: string, opts: OpenOptions = {}): OpenedFile {
  const label = opts.label ?? `'${file}'`;
  let fd: number;
  try {
    fd = fs.openSync(file, READ_FLAGS);
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    if (code === 'ENOENT') throw new UserError(opts.missing ?? `cannot read ${label}: no such file`);
    if (code === 'EISDIR') throw new UserError(`cannot read ${label}: it is a directory`);
    throw fsError(e, `cannot read ${label}`);
  }
  try {
    const st = fs.fstatSync(fd, { bigint: true });
    if (st.isDirectory()) throw new UserError(`cannot read ${label}: it is a directory`);
    if (!st.isFile()) throw new UserError(`cannot read ${label}: it is ${kindOf(st)}, not a regular file`);
    const size = Number(st.size);
    if (opts.maxBytes !== undefined && size > opts.maxBytes) {
      throw new UserError(opts.tooLarge?.(size) ?? `${label} is ${size} bytes, over the limit of ${opts.maxBytes} bytes`);
    }
    return { fd, size, id: idOf(st) };
  } catch (e) {
    fs.closeSync(fd);
    throw fsError(e, `cannot read ${label}`);
  }
}

/** Reads `length` bytes at `position` of an open file, in chunks; a short file is a UserError naming `label`. */
export function readFd(fd: number, length: number, position: number, label: string): Uint8Array {
  const out = new Uint8Array(length);
  let done = 0;
  try {
    while (done < length) {
      const n = fs.readSync(fd, out, done, Math.min(IO_CHUNK, length - done), position + done);
      if (n <= 0) throw new UserError(`unexpected end of file reading ${label}`);
      done += n;
    }
  } catch (e) {
    throw fsError(e, `cannot read ${label}`);
  }
  return out;
}

/** Reads a whole input file through one checked descriptor (see openInput). */
export function readInputFile(file: string, opts: OpenOptions = {}): Uint8Array {
  const f = openInput(file, opts);
  try {
    return readFd(f.fd, f.size, 0, opts.label ?? `'${file}'`);
  } finally {
    fs.closeSync(f.fd);
  }
}

/**
 * Throws a UserError when JSON text nests [ and { deeper than `maxDepth` (a linear scan, no recursion; strings
 * are skipped, escapes included), so that parsing and checking it can never overflow the stack.
 */
export function checkJsonDepth(text: string, maxDepth: number, label: string): void {
  let depth = 0;
  let inString = false;
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (inString) {
      if (c === 0x5c) i++; // backslash: skip the escaped character
      else if (c === 0x22) inString = false;
    } else if (c === 0x22) {
      inString = true;
    } else if (c === 0x5b || c === 0x7b) {
      if (++depth > maxDepth) throw new UserError(`${label} nests arrays and objects more than ${maxDepth} levels deep`);
    } else if (c === 0x5d || c === 0x7d) {
      depth--;
    }
  }
}

/** Reads a JSON input file: a regular file of at most JSON_FILE_MAX_BYTES, UTF-8, nesting checked; not parsed. */
export function readJsonText(file: string, opts: OpenOptions & { label: string }): string {
  const bytes = readInputFile(file, {
    maxBytes: JSON_FILE_MAX_BYTES,
    tooLarge: (size) => `${opts.label} is ${size} bytes; a JSON file over ${JSON_FILE_MAX_BYTES / 2 ** 20} MB is not accepted`,
    ...opts,
  });
  const text = Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength).toString('utf8');
  checkJsonDepth(text, JSON_MAX_DEPTH, opts.label);
  return text;
}

/** Writes all of `data` to an open file descriptor at `position`, in chunks. */
export function writeAll(fd: number, data: Uint8Array, position: number): void {
  let done = 0;
  while (done < data.length) {
    const n = fs.writeSync(fd, data, done, Math.min(IO_CHUNK, data.length - done), position + done);
    done += n;
  }
}

/** A file the run reads: outputs may never be it. */
interface Protected {
  id: FileId;
  file: string;
  /** e.g. `the input model`. */
  what: string;
}

/** An output being written: a temp file in the destination folder, renamed at commit. */
export interface StagedOutput {
  dest: string;
  tmp: string;
  what: string;
  /** Commit order: lower first (external data before the model that refers to it). */
  rank: number;
  fd?: number;
}

/**
 * The files a run writes, committed together. `stage` checks the destination (its folder exists; it is not a
 * directory, FIFO, device or socket; it is none of the protected inputs and no other output) and creates a temp
 * file next to it; `commit` renames every temp file into place (data files first, then models, then the rest);
 * `abort` removes them. Inputs are registered with `protect` (by device and inode).
 */
export class OutputSet {
  private readonly protectedFiles: Protected[] = [];
  private readonly staged: StagedOutput[] = [];
  /** Destinations announced before they are staged (checked against inputs protected later, for an early error). */
  private readonly declared: { dest: string; what: string }[] = [];

  /** Registers a file the run reads (`what`: e.g. `the input model`); no output may be it. Missing files are ignored. */
  protect(file: string, what: string, id?: FileId): void {
    let fileId = id;
    if (!fileId) {
      let st: fs.BigIntStats | undefined;
      try {
        st = statIfExists(file);
      } catch {
        return; // an unreachable path: the run's own read reports it
      }
      if (!st) return;
      fileId = idOf(st);
    }
    if (this.protectedFiles.some((p) => sameFile(p.id, fileId!))) return;
    this.protectedFiles.push({ id: fileId, file, what });
    for (const d of this.declared) this.checkDest(d.dest, d.what);
    for (const s of this.staged) this.checkDest(s.dest, s.what, s);
  }

  /** Checks a destination now (see stage) and again whenever an input is protected later. */
  declare(dest: string, what: string): void {
    this.checkDest(dest, what);
    const abs = path.resolve(dest);
    const st = statIfExists(abs);
    for (const d of this.declared) {
      if (d.what === what) continue;
      const other = statIfExists(d.dest);
      if (path.resolve(d.dest) === abs || (st && other && sameFile(idOf(st), idOf(other)))) {
        throw new UserError(`cannot write ${what} '${dest}': it is also the ${d.what} '${d.dest}'`);
      }
    }
    this.declared.push({ dest, what });
  }

  /** The destinations staged so far. */
  get files(): string[] {
    return this.staged.map((s) => s.dest);
  }

  /**
   * Checks `dest` and opens a new temp file next to it for writing (replacing an earlier staging of the same
   * destination). Write with `write`, then `close`.
   */
  open(dest: string, what: string, rank = 1): StagedOutput {
    const abs = path.resolve(dest);
    const earlier = this.staged.find((s) => s.dest === abs);
    if (earlier && earlier.what !== what) throw new UserError(`cannot write ${what} '${dest}': it is also the ${earlier.what}`);
    if (earlier) this.discard(this.staged.splice(this.staged.indexOf(earlier), 1)[0]);
    this.checkDest(dest, what);
    const tmp = path.join(path.dirname(abs), `.onnx-prune-${process.pid}-${randomBytes(6).toString('hex')}.tmp`);
    const s: StagedOutput = { dest: abs, tmp, what, rank };
    try {
      // O_EXCL: never through an existing file or symlink of that name.
      s.fd = fs.openSync(tmp, fs.constants.O_WRONLY | fs.constants.O_CREAT | fs.constants.O_EXCL, 0o666);
    } catch (e) {
      throw fsError(e, `cannot write ${what} '${dest}'`);
    }
    this.staged.push(s);
    return s;
  }

  /** Writes bytes at `position` of a staged output (file-system errors are UserErrors naming it). */
  write(s: StagedOutput, data: Uint8Array, position: number): void {
    if (s.fd === undefined) throw new Error(`output '${s.dest}' is closed`);
    try {
      writeAll(s.fd, data, position);
    } catch (e) {
      throw fsError(e, `cannot write ${s.what} '${s.dest}'`);
    }
  }

  close(s: StagedOutput): void {
    if (s.fd === undefined) return;
    const fd = s.fd;
    s.fd = undefined;
    try {
      fs.closeSync(fd);
    } catch (e) {
      throw fsError(e, `cannot write ${s.what} '${s.dest}'`);
    }
  }

  /** Stages a whole file. */
  stage(dest: string, what: string, data: Uint8Array | string, rank = 2): void {
    const s = this.open(dest, what, rank);
    this.write(s, typeof data === 'string' ? Buffer.from(data, 'utf8') : data, 0);
    this.close(s);
  }

  /** Removes one staged output (closes and deletes its temp file). */
  unstage(dest: string): void {
    const abs = path.resolve(dest);
    const i = this.staged.findIndex((s) => s.dest === abs);
    if (i >= 0) this.discard(this.staged.splice(i, 1)[0]);
  }

  /**
   * Renames every staged file into place (after checking each destination once more) and returns the
   * destinations. On an error the remaining temp files are removed (renames are atomic one by one, not as a set:
   * a rename that fails after an earlier one succeeded leaves that earlier file replaced).
   */
  commit(): string[] {
    const todo = [...this.staged].sort((a, b) => a.rank - b.rank);
    const done: string[] = [];
    try {
      for (const s of todo) {
        this.close(s);
        this.checkDest(s.dest, s.what, s);
      }
      for (const s of todo) {
        try {
          fs.renameSync(s.tmp, s.dest);
        } catch (e) {
          throw fsError(e, `cannot write ${s.what} '${s.dest}'`);
        }
        this.staged.splice(this.staged.indexOf(s), 1);
        done.push(s.dest);
      }
    } catch (e) {
      this.abort();
      throw e;
    }
    return done;
  }

  /** Removes every temp file (nothing is written). */
  abort(): void {
    for (const s of this.staged.splice(0)) this.discard(s);
  }

  private discard(s: StagedOutput): void {
    if (s.fd !== undefined) {
      try {
        fs.closeSync(s.fd);
      } catch {
        // already closed or broken: nothing to keep
      }
      s.fd = undefined;
    }
    try {
      fs.unlinkSync(s.tmp);
    } catch {
      // never created or already gone
    }
  }

  /** The checks of a destination (see the class comment); `self` is its own staging (skipped when comparing). */
  private checkDest(dest: string, what: string, self?: StagedOutput): void {
    const abs = path.resolve(dest);
    const cannot = `cannot write ${what} '${dest}'`;
    const dir = path.dirname(abs);
    let dirSt: fs.BigIntStats | undefined;
    try {
      dirSt = statIfExists(dir);
    } catch (e) {
      throw fsError(e, cannot);
    }
    if (!dirSt) throw new UserError(`${cannot}: folder '${dir}' does not exist`);
    if (!dirSt.isDirectory()) throw new UserError(`${cannot}: '${dir}' is not a folder`);
    let st: fs.BigIntStats | undefined;
    try {
      st = statIfExists(abs);
    } catch (e) {
      throw fsError(e, cannot);
    }
    if (st) {
      if (st.isDirectory()) throw new UserError(`${cannot}: it is a directory`);
      if (!st.isFile()) throw new UserError(`${cannot}: it is ${kindOf(st)}, not a regular file; refusing to replace it`);
      const id = idOf(st);
      const p = this.protectedFiles.find((x) => sameFile(x.id, id));
      if (p) {
        const via = path.resolve(p.file) === abs ? '' : ` ('${dest}' and '${p.file}' are the same file)`;
        throw new UserError(`${cannot}: it is ${p.what}${via}; outputs and inputs must be different files`);
      }
    }
    for (const s of this.staged) {
      if (s === self || (s.dest === abs && s.what === what)) continue; // the same output staged again
      const other = s.dest === abs ? undefined : statIfExists(s.dest);
      if (s.dest === abs || (st && other && sameFile(idOf(st), idOf(other)))) throw new UserError(`${cannot}: it is also the ${s.what} '${s.dest}'`);
    }
  }
}
