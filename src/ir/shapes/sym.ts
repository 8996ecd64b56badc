/**
 * Symbolic dimensions. A dim is a number, a symbolic string, or undefined (unknown).
 *
 * A symbolic string is a *monomial*: an optional integer coefficient times a product of symbol names, written
 * canonically as `"16*batch"`, `"batch*seq"`, `"batch"` (symbols sorted, coefficient first when not 1).
 * Graph-input dim params ('batch', 'seq', ...) are single-symbol monomials, so they are kept exactly. A string that
 * contains characters other than word characters, '.', ':', '-' and '*' (e.g. 'seq + 1') is one opaque symbol.
 *
 * Assumption used throughout: every symbol stands for an integer ≥ 1 (dims of real tensors). Sums of distinct
 * symbols are not representable and become undefined.
 */

export type Dim = number | string | undefined;
export type Shape = Dim[];

interface Mono {
  c: number;
  /** Symbol names, sorted, with multiplicity. */
  s: string[];
}

const cache = new Map<string, Mono>();
const ATOMIC = /[^\w.:*-]/;

function parse(d: string): Mono {
  let m = cache.get(d);
  if (m) return m;
  if (ATOMIC.test(d) || !d.includes('*')) {
    m = { c: 1, s: [d] };
  } else {
    let c = 1;
    const s: string[] = [];
    for (const part of d.split('*')) {
      if (part !== '' && /^-?\d+$/.test(part)) c *= Number(part);
      else s.push(part);
    }
    s.sort();
    m = { c, s };
  }
  if (cache.size > 100000) cache.clear();
  cache.set(d, m);
  return m;
}

function mono(d: Dim): Mono | undefined {
  if (d === undefined) return undefined;
  if (typeof d === 'number') return Number.isFinite(d) ? { c: d, s: [] } : undefined;
  return parse(d);
}

function format(m: Mono): Dim {
  if (m.c === 0 || m.s.length === 0) return m.c;
  if (m.c === 1 && m.s.length === 1) return m.s[0];
  return (m.c !== 1 ? [String(m.c), ...m.s] : m.s).join('*');
}

function sameSyms(a: string[], b: string[]): boolean {
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
}

export function isSym(d: Dim): d is string {
  return typeof d === 'string';
}

/** True when every dim is a number or a symbol (no undefined). */
export function isFullyKnown(s: Shape | undefined): s is (number | string)[] {
  return s !== undefined && s.every((d) => d !== undefined);
}

export function mulDim(a: Dim, b: Dim): Dim {
  if (a === 0 || b === 0) return 0;
  const x = mono(a), y = mono(b);
  if (!x || !y) return undefined;
  if (!x.s.length && !y.s.length) return x.c * y.c;
  return format({ c: x.c * y.c, s: [...x.s, ...y.s].sort() });
}

/** Product of dims (1 for an empty list). */
export function prodDims(ds: Dim[]): Dim {
  let p: Dim = 1;
  for (const d of ds) p = mulDim(p, d);
  return p;
}

/**
 * Exact division: a/b when the quotient is known to be an integer monomial (`int`: integer semantics,
 * truncation toward zero for numbers); undefined otherwise.
 */
export function divDim(a: Dim, b: Dim, int = true): Dim {
  if (typeof a === 'number' && typeof b === 'number') {
    if (b === 0) return undefined;
    return int ? Math.trunc(a / b) : a / b;
  }
  if (a === 0 && b !== undefined) return 0;
  const x = mono(a), y = mono(b);
  if (!x || !y || y.c === 0) return undefined;
  const rest = x.s.slice();
  for (const sym of y.s) {
    const i = rest.indexOf(sym);
    if (i < 0) return undefined;
    rest.splice(i, 1);
  }
  if (x.c % y.c !== 0) return undefined;
  return format({ c: x.c / y.c, s: rest });
}

/** a/b only when it divides exactly (numbers or monomials); undefined otherwise. */
export function exactDivDim(a: Dim, b: Dim): Dim {
  if (typeof a === 'number' && typeof b === 'number') return b !== 0 && a % b === 0 ? a / b : undefined;
  return divDim(a, b, true);
}

export function negDim(a: Dim): Dim {
  const x = mono(a);
  return x ? format({ c: -x.c, s: x.s }) : undefined;
}

export function addDim(a: Dim, b: Dim): Dim {
  if (typeof a === 'number' && typeof b === 'number') return a + b;
  if (a === 0) return b;
  if (b === 0) return a;
  const x = mono(a), y = mono(b);
  if (!x || !y || !sameSyms(x.s, y.s)) return undefined;
  return format({ c: x.c + y.c, s: x.s });
}

export function subDim(a: Dim, b: Dim): Dim {
  return addDim(a, negDim(b));
}

/** Python-style modulo (result has the divisor's sign), or C fmod when `fmod`. */
export function modDim(a: Dim, b: Dim, fmod = false): Dim {
  if (typeof a === 'number' && typeof b === 'number') {
    if (b === 0) return undefined;
    if (fmod) return a % b;
    const r = a % b;
    return r !== 0 && (r < 0) !== (b < 0) ? r + b : r;
  }
  const x = mono(a);
  if (x && typeof b === 'number' && b !== 0 && Number.isInteger(x.c / b)) return 0;
  return undefined;
}

/** Smallest value a dim can take (symbols ≥ 1), when the coefficient is positive. */
function lowerBound(m: Mono): number | undefined {
  return m.c > 0 ? m.c : undefined;
}

/** a == b: true, false, or undefined when it depends on symbol values. */
export function eqDim(a: Dim, b: Dim): boolean | undefined {
  if (a === undefined || b === undefined) return undefined;
  if (a === b) return true;
  if (typeof a === 'number' && typeof b === 'number') return false;
  const x = mono(a)!, y = mono(b)!;
  if (sameSyms(x.s, y.s)) return x.c === y.c;
  // A monomial c*syms (syms ≥ 1) only takes values c*k for integers k ≥ 1.
  const [m, n] = !x.s.length ? [y, x.c] : !y.s.length ? [x, y.c] : [undefined, 0];
  if (m) {
    const k = n / m.c;
    if (!Number.isInteger(k) || k < 1) return false;
  }
  return undefined;
}

/** a < b: true, false, or undefined. */
export function ltDim(a: Dim, b: Dim): boolean | undefined {
  if (typeof a === 'number' && typeof b === 'number') return a < b;
  const x = mono(a), y = mono(b);
  if (!x || !y) return undefined;
  if (x.s.length && !y.s.length) {
    const lb = lowerBound(x);
    if (lb !== undefined && y.c <= lb) return false;
  } else if (!x.s.length && y.s.length) {
    const lb = lowerBound(y);
    if (lb !== undefined && x.c < lb) return true;
  } else if (sameSyms(x.s, y.s) && x.c > 0 && y.c > 0) {
    return x.c < y.c;
  }
  return undefined;
}

export function maxDim(a: Dim, b: Dim): Dim {
  if (eqDim(a, b) === true) return a;
  const l = ltDim(a, b);
  return l === undefined ? undefined : l ? b : a;
}

export function minDim(a: Dim, b: Dim): Dim {
  if (eqDim(a, b) === true) return a;
  const l = ltDim(a, b);
  return l === undefined ? undefined : l ? a : b;
}

/**
 * A dim as a number: symbols are looked up in `dims` (missing symbols count as `dflt`, 1 by default).
 * Undefined for an unknown dim.
 */
export function evalDim(d: Dim, dims: Record<string, number> = {}, dflt = 1): number | undefined {
  if (d === undefined) return undefined;
  if (typeof d === 'number') return d;
  if (dims[d] !== undefined) return dims[d];
  const m = parse(d);
  let v = m.c;
  for (const s of m.s) v *= dims[s] ?? dflt;
  return v;
}

/** A shape with every dim evaluated (see evalDim); undefined when any dim is unknown. */
export function evalShape(s: Shape | undefined, dims: Record<string, number> = {}, dflt = 1): number[] | undefined {
  if (!s) return undefined;
  const out: number[] = [];
  for (const d of s) {
    const v = evalDim(d, dims, dflt);
    if (v === undefined) return undefined;
    out.push(v);
  }
  return out;
}

/**
 * Broadcast two dims (numpy rules). A known dim ≠ 1 wins over a symbol or an unknown (a valid model can only
 * broadcast it against 1 or itself).
 */
export function broadcastDim(a: Dim, b: Dim): Dim {
  if (a === 1) return b;
  if (b === 1) return a;
  if (a === b) return a;
  if (typeof a === 'number') return a;
  if (typeof b === 'number') return b;
  return undefined;
}

/** Multidirectional broadcast of shapes; undefined when any rank is unknown. */
export function broadcastShapes(shapes: (Shape | undefined)[]): Shape | undefined {
  let out: Shape = [];
  for (const s of shapes) {
    if (!s) return undefined;
    const r = Math.max(out.length, s.length);
    const next: Shape = new Array(r);
    for (let i = 0; i < r; i++) {
      const a = i - (r - out.length) >= 0 ? out[i - (r - out.length)] : 1;
      const b = i - (r - s.length) >= 0 ? s[i - (r - s.length)] : 1;
      next[i] = broadcastDim(a, b);
    }
    out = next;
  }
  return out;
}

/** Merge two descriptions of the same shape: known dims win; on a conflict the numeric dim wins, else `a`'s. */
export function mergeShapes(a: Shape | undefined, b: Shape | undefined): Shape | undefined {
  if (!a) return b;
  if (!b || a.length !== b.length) return a;
  return a.map((d, i) => (d === undefined ? b[i] : b[i] === undefined || b[i] === d ? d : typeof d === 'number' ? d : b[i]));
}
