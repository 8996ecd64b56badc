/** .npy / .npz reading against files written by NumPy (test/fixtures/calib/README.md). */
import * as fs from 'fs';
import * as path from 'path';
import { DataType } from '../src/ir/dtype';
import { parseNpy } from '../src/ort/npy';
import { readZip } from '../src/ort/zip';

const dir = path.join(__dirname, 'fixtures', 'calib');
const read = (f: string) => new Uint8Array(fs.readFileSync(path.join(dir, f)));
// NumPy computes in float32: fround(fround(i / 7) - 1).
const expected = Array.from({ length: 24 }, (_, i) => Math.fround(Math.fround(i / 7) - 1));

describe('parseNpy', () => {
  test('float32 C order', () => {
    const a = parseNpy(read('f32_c.npy'));
    expect(a.dtype).toBe(DataType.FLOAT);
    expect(a.dims).toEqual([2, 3, 4]);
    expect(Array.from(a.data as Float32Array)).toEqual(expected);
  });

  test('big-endian float64 is byte-swapped', () => {
    const a = parseNpy(read('f64_be.npy'));
    expect(a.dtype).toBe(DataType.DOUBLE);
    expect(Array.from(a.data as Float64Array)).toEqual(expected);
  });

  test('Fortran order is reordered to C order', () => {
    const a = parseNpy(read('f32_fortran.npy'));
    expect(a.dims).toEqual([2, 3, 4]);
    expect(Array.from(a.data as Float32Array)).toEqual(expected);
  });

  test('int64, float16 and bool', () => {
    expect(Array.from(parseNpy(read('i64.npy')).data as BigInt64Array)).toEqual([1n, 2n, 3n, 4n, 5n, -6n]);
    const h = parseNpy(read('f16.npy'));
    expect(h.dtype).toBe(DataType.FLOAT16);
    expect(Array.from(h.data as Uint16Array)).toEqual([0x3800, 0xc000, 0x7bff]);
    const b = parseNpy(read('bool.npy'));
    expect(b.dtype).toBe(DataType.BOOL);
    expect(Array.from(b.data as Uint8Array)).toEqual([1, 0, 1]);
  });

  test('bad inputs are one-line user errors', () => {
    expect(() => parseNpy(new Uint8Array(20))).toThrow(/not a \.npy file/);
    const good = read('f32_c.npy');
    expect(() => parseNpy(good.subarray(0, good.length - 4), 'x.npy')).toThrow(/x\.npy: has 92 data bytes, expected 96/);
    const text = Buffer.from(good).toString('latin1').replace("'<f4'", "'<c8'");
    expect(() => parseNpy(new Uint8Array(Buffer.from(text, 'latin1')))).toThrow(/unsupported \.npy dtype '<c8'/);
  });
});

describe('readZip', () => {
  test('stored and deflated archives give the same arrays', () => {
    for (const f of ['two_inputs.npz', 'two_inputs_compressed.npz']) {
      const entries = readZip(read(f));
      expect(entries.map((e) => e.name).sort()).toEqual(['tokens.npy', 'x.npy']);
      const x = parseNpy(entries.find((e) => e.name === 'x.npy')!.data);
      expect(x.dims).toEqual([6, 10]);
      expect((x.data as Float32Array)[0]).toBe(-1);
      expect((x.data as Float32Array)[59]).toBe(1);
      const t = parseNpy(entries.find((e) => e.name === 'tokens.npy')!.data);
      expect(t.dtype).toBe(DataType.INT32);
      expect(Array.from(t.data as Int32Array)).toEqual(Array.from({ length: 18 }, (_, i) => i));
    }
  });

  test('a corrupted entry fails its CRC check', () => {
    const bytes = read('two_inputs.npz').slice();
    // The first entry's data starts after its 30-byte local header and name/extra fields.
    const v = new DataView(bytes.buffer);
    const start = 30 + v.getUint16(26, true) + v.getUint16(28, true);
    bytes[start + 100] ^= 0xff;
    expect(() => readZip(bytes, 'bad.npz')).toThrow(/bad\.npz .*CRC/);
    expect(() => readZip(new Uint8Array(100), 'none.npz')).toThrow(/no end-of-central-directory/);
  });
});
