/** Helpers for protobuf int64 values, which decode as `Long` (lossless) or arrive as plain numbers. */
import Long from 'long';

export type Int64Like = number | Long | { low: number; high: number; unsigned?: boolean } | string | bigint;

/** int64 → JS number (exact up to 2^53; INT64_MAX/MIN map to ±9.223372036854776e18). */
export function toNumber(v: Int64Like | null | undefined): number {
  if (v === null || v === undefined) return 0;
  if (typeof v === 'number') return v;
  if (typeof v === 'bigint') return Number(v);
  if (typeof v === 'string') return Number(v);
  return Long.fromBits(v.low, v.high, !!v.unsigned).toNumber();
}

/** int64 → bigint (exact). */
export function toBigInt(v: Int64Like | null | undefined): bigint {
  if (v === null || v === undefined) return 0n;
  if (typeof v === 'bigint') return v;
  if (typeof v === 'number') return BigInt(Math.trunc(v));
  if (typeof v === 'string') return BigInt(v);
  return BigInt(Long.fromBits(v.low, v.high, !!v.unsigned).toString());
}

/** A number or bigint as an int64 value the encoder accepts losslessly. */
export function toLong(v: number | bigint): Long {
  return typeof v === 'bigint' ? Long.fromString(v.toString()) : Long.fromNumber(v);
}
