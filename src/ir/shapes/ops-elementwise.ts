/** Shape rules for elementwise ops: unary, broadcasting binary/variadic, comparisons, Where, Cast. */
import { DataType } from '../dtype';
import type { Rule, RuleCtx } from './context';
import {
  type Dim, addDim, broadcastShapes, divDim, eqDim, ltDim, maxDim, minDim, modDim, mulDim, negDim, subDim,
} from './sym';
import { type TValue, broadcastValues, isFloatType } from './values';

type Fn1 = (x: Dim, float: boolean) => Dim;
type Fn2 = (a: Dim, b: Dim, float: boolean, ctx: RuleCtx) => Dim;

const num = (f: (x: number) => number): Fn1 => (x) => (typeof x === 'number' ? f(x) : undefined);
/** Symbols with a positive integer coefficient are positive integers. */
const posSym = (x: Dim): boolean => typeof x === 'string' && ltDim(0, x) === true;

/** Same shape and dtype as input 0; optional value function. */
function unary(fn?: Fn1): Rule {
  return (c) => {
    const v = c.value(0);
    let value: TValue | undefined;
    if (fn && v) {
      const fl = !!v.float;
      value = { dims: v.dims, data: v.data.map((x) => fn(x, fl)), float: v.float };
    }
    c.out(0, c.dtype(0), c.shape(0), value);
  };
}

/** Numpy-broadcasting n-ary op; `outType` overrides the output dtype (comparisons give bool). */
function broadcasting(fn?: Fn2, outType?: number, variadicFold = true): Rule {
  return (c) => {
    const n = c.nIn;
    const idx = Array.from({ length: n }, (_, i) => i).filter((i) => c.has(i));
    let shape = broadcastShapes(idx.map((i) => c.shape(i)));
    // Before opset 7, Add/Sub/Mul/Div/... had legacy broadcasting (B aligned with A): the output is A's shape.
    if (c.opset < 7 && c.node.hasAttr('broadcast')) shape = c.shape(0);
    let value: TValue | undefined;
    const vals = idx.map((i) => c.value(i));
    if (fn && vals.length && vals.every((v) => v !== undefined)) {
      const float = vals.some((v) => v!.float);
      if (variadicFold) {
        value = broadcastValues(vals as TValue[], (xs) => {
          let acc = xs[0];
          for (let j = 1; j < xs.length; j++) acc = fn(acc, xs[j], float, c);
          return acc;
        });
      }
      if (value && outType === DataType.BOOL) value.float = false;
    }
    c.out(0, outType ?? c.dtype(idx[0]), shape, value);
  };
}

const bool = (b: boolean | undefined): Dim => (b === undefined ? undefined : b ? 1 : 0);
const numBool = (f: (a: number, b: number) => boolean): Fn2 => (a, b) => (typeof a === 'number' && typeof b === 'number' ? (f(a, b) ? 1 : 0) : undefined);

function divFn(a: Dim, b: Dim, float: boolean): Dim {
  if (float) return typeof a === 'number' && typeof b === 'number' ? a / b : divDim(a, b, false);
  return divDim(a, b, true);
}

function castValue(x: Dim, to: number): Dim {
  if (to === DataType.BOOL) return typeof x === 'number' ? (x !== 0 ? 1 : 0) : posSym(x) ? 1 : undefined;
  if (isFloatType(to)) return x;
  if (typeof x === 'number') return Number.isFinite(x) ? Math.trunc(x) : x;
  return x;
}

const cast: Rule = (c) => {
  const to = c.attrInt('to', 0);
  const v = c.value(0);
  const value = v ? { dims: v.dims, data: v.data.map((x) => castValue(x, to)), float: isFloatType(to) } : undefined;
  c.out(0, to || undefined, c.shape(0), value);
};

const castLike: Rule = (c) => {
  const to = c.dtype(1);
  const v = c.value(0);
  const value = v && to ? { dims: v.dims, data: v.data.map((x) => castValue(x, to)), float: isFloatType(to) } : undefined;
  c.out(0, to, c.shape(0), value);
};

const where: Rule = (c) => {
  const shape = broadcastShapes([c.shape(0), c.shape(1), c.shape(2)]);
  const [vc, vx, vy] = [c.value(0), c.value(1), c.value(2)];
  let value: TValue | undefined;
  if (vc && vx && vy) {
    value = broadcastValues([vc, vx, vy], ([k, x, y]) => (k === undefined ? (x === y ? x : undefined) : k ? x : y), !!(vx.float || vy.float));
  }
  c.out(0, c.dtype(1) ?? c.dtype(2), shape, value);
};

const dropout: Rule = (c) => {
  c.out(0, c.dtype(0), c.shape(0));
  c.out(1, DataType.BOOL, c.shape(0));
};

const isBoolOut = (): Rule => (c) => c.out(0, DataType.BOOL, c.shape(0));

/**
 * The elementwise shape rules, by behaviour (src/ir/ops names the rule of each op). `same`: the output has
 * input 0's shape and dtype (value not tracked).
 */
export const EW_SHAPES = {
  same: unary(),
  identity: unary((x) => x),
  neg: unary((x) => negDim(x)),
  abs: unary((x) => (typeof x === 'number' ? Math.abs(x) : posSym(x) ? x : undefined)),
  sign: unary((x) => (typeof x === 'number' ? Math.sign(x) : posSym(x) ? 1 : undefined)),
  floor: unary((x) => (typeof x === 'number' ? Math.floor(x) : posSym(x) ? x : undefined)),
  ceil: unary((x) => (typeof x === 'number' ? Math.ceil(x) : posSym(x) ? x : undefined)),
  round: unary((x) => (typeof x === 'number' ? roundHalfEven(x) : posSym(x) ? x : undefined)),
  sqrt: unary(num(Math.sqrt)),
  reciprocal: unary(num((x) => 1 / x)),
  not: unary((x) => (typeof x === 'number' ? (x ? 0 : 1) : posSym(x) ? 0 : undefined)),
  /** Same shape, bool output (IsNaN, IsInf). */
  isBool: isBoolOut(),
  cast,
  castLike,
  dropout,
  add: broadcasting((a, b) => addDim(a, b)),
  sub: broadcasting((a, b) => subDim(a, b)),
  mul: broadcasting((a, b) => mulDim(a, b)),
  div: broadcasting(divFn),
  pow: broadcasting((a, b) => (typeof a === 'number' && typeof b === 'number' ? a ** b : b === 1 ? a : undefined)),
  mod: broadcasting((a, b, _f, c) => modDim(a, b, c.attrInt('fmod', 0) === 1)),
  max: broadcasting((a, b) => maxDim(a, b)),
  min: broadcasting((a, b) => minDim(a, b)),
  sum: broadcasting((a, b) => addDim(a, b)),
  /** Numpy broadcasting, value not tracked (Mean, PRelu, bitwise ops). */
  broadcast: broadcasting(),
  equal: broadcasting((a, b) => bool(eqDim(a, b)), DataType.BOOL),
  less: broadcasting((a, b) => bool(ltDim(a, b)), DataType.BOOL),
  greater: broadcasting((a, b) => bool(ltDim(b, a)), DataType.BOOL),
  lessOrEqual: broadcasting((a, b) => bool(negate(ltDim(b, a))), DataType.BOOL),
  greaterOrEqual: broadcasting((a, b) => bool(negate(ltDim(a, b))), DataType.BOOL),
  and: broadcasting(numBool((a, b) => !!a && !!b), DataType.BOOL),
  or: broadcasting(numBool((a, b) => !!a || !!b), DataType.BOOL),
  xor: broadcasting(numBool((a, b) => !!a !== !!b), DataType.BOOL),
  where,
} satisfies Record<string, Rule>;

function negate(b: boolean | undefined): boolean | undefined {
  return b === undefined ? undefined : !b;
}

function roundHalfEven(x: number): number {
  const r = Math.round(x);
  return Math.abs(x % 1) === 0.5 && r % 2 !== 0 ? r - 1 : r;
}
