/**
 * Minimal ZIP reading for `.npz` archives: the central directory (with ZIP64 sizes/offsets), stored and
 * deflated entries (inflated with Node's built-in zlib), CRC-32 checked. Encrypted or multi-disk archives are
 * refused with a clear error. Every offset and length read from the archive is checked against its bytes, and
 * inflating is bounded by the size an entry declares and by INFLATE_MAX_BYTES for the archive (zip bombs).
 */
import * as zlib from 'zlib';
import { UserError } from '../ir/errors';
import { INFLATE_MAX_BYTES, formatBytes } from '../ir/limits';

export interface ZipEntry {
  name: string;
  /** The entry's bytes (a stored entry's share memory with the archive's bytes). */
  data: Uint8Array;
}

const SIG_EOCD = 0x06054b50;
const SIG_EOCD64 = 0x06064b50;
const SIG_EOCD64_LOC = 0x07064b50;
const SIG_CENTRAL = 0x02014b50;
const SIG_LOCAL = 0x04034b50;

let crcTable: Uint32Array | undefined;
export function crc32(b: Uint8Array): number {
  if (!crcTable) {
    crcTable = new Uint32Array(256);
    for (let n = 0; n < 256; n++) {
      let c = n;
      for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
      crcTable[n] = c >>> 0;
    }
  }
  let c = 0xffffffff;
  for (let i = 0; i < b.length; i++) c = crcTable[(c ^ b[i]) & 0xff] ^ (c >>> 8);
  return (c ^ 0xffffffff) >>> 0;
}

function u64(v: DataView, at: number): number {
  const lo = v.getUint32(at, true);
  const hi = v.getUint32(at + 4, true);
  return hi * 2 ** 32 + lo;
}

export interface ReadZipOptions {
  /** Entries to read (others are skipped without being inflated); default all. */
  filter?: (name: string) => boolean;
  /** Most bytes the compressed entries read may inflate to, together; default INFLATE_MAX_BYTES. */
  maxBytes?: number;
}

/** Reads the file entries of a ZIP archive. */
export function readZip(bytes: Uint8Array, label = 'archive', opts: ReadZipOptions = {}): ZipEntry[] {
  const bad = (why: string) => new UserError(`${label} is not a readable .npz/zip archive (${why})`);
  const maxBytes = opts.maxBytes ?? INFLATE_MAX_BYTES;
  const v = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  let eocd = -1;
  for (let i = bytes.length - 22; i >= Math.max(0, bytes.length - 22 - 65535); i--) {
    if (v.getUint32(i, true) === SIG_EOCD) { eocd = i; break; }
  }
  if (eocd < 0) throw bad('no end-of-central-directory record');
  if (v.getUint16(eocd + 4, true) !== 0 || v.getUint16(eocd + 6, true) !== 0) throw bad('multi-disk archives are not supported');
  let count = v.getUint16(eocd + 10, true);
  let cdOffset = v.getUint32(eocd + 16, true);
  if ((count === 0xffff || cdOffset === 0xffffffff) && eocd >= 20 && v.getUint32(eocd - 20, true) === SIG_EOCD64_LOC) {
    const at = u64(v, eocd - 20 + 8);
    if (at + 56 > bytes.length || v.getUint32(at, true) !== SIG_EOCD64) throw bad('bad ZIP64 end record');
    count = u64(v, at + 32);
    cdOffset = u64(v, at + 48);
  }
  // First the directory (every offset and size checked), then the data: what the entries declare is checked
  // against the budget before anything is inflated.
  const found: { name: string; method: number; crc: number; csize: number; usize: number; start: number }[] = [];
  let inflated = 0;
  let p = cdOffset;
  for (let e = 0; e < count; e++) {
    if (p + 46 > bytes.length || v.getUint32(p, true) !== SIG_CENTRAL) throw bad('bad central directory entry');
    const flags = v.getUint16(p + 8, true);
    const method = v.getUint16(p + 10, true);
    const crc = v.getUint32(p + 16, true);
    let csize = v.getUint32(p + 20, true);
    let usize = v.getUint32(p + 24, true);
    const nameLen = v.getUint16(p + 28, true);
    const extraLen = v.getUint16(p + 30, true);
    const commentLen = v.getUint16(p + 32, true);
    let local = v.getUint32(p + 42, true);
    if (p + 46 + nameLen + extraLen + commentLen > bytes.length) throw bad('central directory entry runs past the end of the file');
    const name = Buffer.from(bytes.subarray(p + 46, p + 46 + nameLen)).toString('utf8');
    // ZIP64 extra field: the 0xffffffff fields, in order usize, csize, offset.
    let x = p + 46 + nameLen;
    const xEnd = x + extraLen;
    while (x + 4 <= xEnd) {
      const id = v.getUint16(x, true);
      const len = v.getUint16(x + 2, true);
      const fieldEnd = x + 4 + len;
      if (fieldEnd > xEnd) throw bad(`entry '${name}' has a malformed extra field`);
      if (id === 0x0001) {
        let q = x + 4;
        const next = () => {
          if (q + 8 > fieldEnd) throw bad(`entry '${name}' has a short ZIP64 extra field`);
          const r = u64(v, q);
          q += 8;
          return r;
        };
        if (usize === 0xffffffff) usize = next();
        if (csize === 0xffffffff) csize = next();
        if (local === 0xffffffff) local = next();
      }
      x = fieldEnd;
    }
    p = xEnd + commentLen;
    if (name.endsWith('/')) continue;
    if (opts.filter && !opts.filter(name)) continue;
    if (flags & 1) throw bad(`entry '${name}' is encrypted`);
    if (local + 30 > bytes.length || v.getUint32(local, true) !== SIG_LOCAL) throw bad(`bad local header for '${name}'`);
    const start = local + 30 + v.getUint16(local + 26, true) + v.getUint16(local + 28, true);
    if (start + csize > bytes.length) throw bad(`entry '${name}' is truncated`);
    if (method === 0) {
      if (csize !== usize) throw bad(`stored entry '${name}' has ${csize} bytes, expected ${usize}`);
    } else if (method === 8) {
      inflated += usize;
    } else throw bad(`entry '${name}' uses compression method ${method} (only stored and deflate are supported)`);
    found.push({ name, method, crc, csize, usize, start });
  }
  if (inflated > maxBytes) {
    throw new UserError(`${label}: its compressed entries declare ${formatBytes(inflated)} of data, over the ${formatBytes(maxBytes)} limit for an archive`);
  }
  const out: ZipEntry[] = [];
  for (const { name, method, crc, csize, usize, start } of found) {
    const comp = bytes.subarray(start, start + csize);
    let data: Uint8Array;
    if (method === 0) {
      data = comp;
    } else {
      try {
        // Inflating stops past the declared size (a lying header cannot make it allocate more); one output chunk
        // larger than that size inflates in place (no chunks concatenated into a second copy).
        const b = zlib.inflateRawSync(comp, { maxOutputLength: Math.max(1, usize), chunkSize: Math.max(zlib.constants.Z_MIN_CHUNK, usize + 64) });
        data = new Uint8Array(b.buffer, b.byteOffset, b.byteLength);
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code === 'ERR_BUFFER_TOO_LARGE') throw bad(`entry '${name}' inflates to more than the ${usize} bytes it declares`);
        throw bad(`entry '${name}' does not inflate: ${(err as Error).message}`);
      }
    }
    if (data.length !== usize) throw bad(`entry '${name}' has ${data.length} bytes, expected ${usize}`);
    if (crc32(data) !== crc) throw bad(`entry '${name}' fails its CRC check`);
    out.push({ name, data });
  }
  return out;
}

/**
 * A ZIP archive of stored (uncompressed) entries, as `.npz` files are written by numpy.savez: local headers,
 * data, central directory, end record. Entry names are ASCII; every entry and the archive stay under 4 GiB (no
 * ZIP64 when writing). Deterministic: the timestamp fields are fixed (1980-01-01).
 */
export function writeZip(entries: ZipEntry[]): Uint8Array {
  const parts: Uint8Array[] = [];
  const central: Uint8Array[] = [];
  let offset = 0;
  const DOS_DATE = (0 << 9) | (1 << 5) | 1; // 1980-01-01
  for (const e of entries) {
    const name = Buffer.from(e.name, 'latin1');
    if (e.data.length >= 2 ** 32 - 1 || offset >= 2 ** 32 - 1) throw new UserError(`cannot write '${e.name}': archives over 4 GiB are not written`);
    const crc = crc32(e.data);
    const local = new DataView(new ArrayBuffer(30));
    local.setUint32(0, SIG_LOCAL, true);
    local.setUint16(4, 20, true); // version needed
    local.setUint16(8, 0, true); // stored
    local.setUint16(12, DOS_DATE, true);
    local.setUint32(14, crc, true);
    local.setUint32(18, e.data.length, true);
    local.setUint32(22, e.data.length, true);
    local.setUint16(26, name.length, true);
    const cd = new DataView(new ArrayBuffer(46));
    cd.setUint32(0, SIG_CENTRAL, true);
    cd.setUint16(4, 20, true);
    cd.setUint16(6, 20, true);
    cd.setUint16(14, DOS_DATE, true);
    cd.setUint32(16, crc, true);
    cd.setUint32(20, e.data.length, true);
    cd.setUint32(24, e.data.length, true);
    cd.setUint16(28, name.length, true);
    cd.setUint32(42, offset, true);
    parts.push(new Uint8Array(local.buffer), name, e.data);
    central.push(new Uint8Array(cd.buffer), name);
    offset += 30 + name.length + e.data.length;
  }
  const cdSize = central.reduce((t, b) => t + b.length, 0);
  if (offset + cdSize >= 2 ** 32 - 1) throw new UserError('cannot write an archive over 4 GiB');
  const end = new DataView(new ArrayBuffer(22));
  end.setUint32(0, SIG_EOCD, true);
  end.setUint16(8, entries.length, true);
  end.setUint16(10, entries.length, true);
  end.setUint32(12, cdSize, true);
  end.setUint32(16, offset, true);
  return Buffer.concat([...parts, ...central, new Uint8Array(end.buffer)]);
}
