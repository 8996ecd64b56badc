/**
 * A small JSON Schema checker for the subset our schemas use (type, const, enum, oneOf, required, properties,
 * additionalProperties, items, minimum, maximum, exclusiveMinimum, exclusiveMaximum, minItems, maxItems,
 * uniqueItems, pattern, minLength, local $ref to `#/$defs/NAME` or `#/definitions/NAME`). It returns the
 * first problem as a readable path + message, for one-line user errors.
 */

export interface JsonSchema {
  type?: string | string[];
  const?: unknown;
  enum?: unknown[];
  oneOf?: JsonSchema[];
  required?: string[];
  properties?: Record<string, JsonSchema>;
  additionalProperties?: boolean | JsonSchema;
  items?: JsonSchema;
  minimum?: number;
  maximum?: number;
  exclusiveMinimum?: number;
  exclusiveMaximum?: number;
  minItems?: number;
  maxItems?: number;
  uniqueItems?: boolean;
  pattern?: string;
  minLength?: number;
  $ref?: string;
  $defs?: Record<string, JsonSchema>;
  definitions?: Record<string, JsonSchema>;
  [k: string]: unknown;
}

function typeOf(v: unknown): string {
  if (v === null) return 'null';
  if (Array.isArray(v)) return 'array';
  if (typeof v === 'number') return Number.isInteger(v) ? 'integer' : 'number';
  return typeof v;
}

function typeMatches(v: unknown, want: string): boolean {
  const t = typeOf(v);
  return t === want || (want === 'number' && t === 'integer');
}

function show(v: unknown): string {
  const s = JSON.stringify(v);
  return s === undefined ? String(v) : s.length > 40 ? `${s.slice(0, 37)}...` : s;
}

/** Returns undefined when `value` satisfies `schema`, else `"<path>: <problem>"`. */
export function checkSchema(value: unknown, schema: JsonSchema, path = '$', root: JsonSchema = schema): string | undefined {
  if (schema.$ref !== undefined) {
    const m = /^#\/(\$defs|definitions)\/(.+)$/.exec(schema.$ref);
    const target = m ? (m[1] === '$defs' ? root.$defs : root.definitions)?.[m[2]] : undefined;
    if (!target) throw new Error(`schema: cannot resolve $ref '${schema.$ref}'`);
    return checkSchema(value, target, path, root);
  }
  if (schema.oneOf) {
    const ok = schema.oneOf.filter((x) => checkSchema(value, x, path, root) === undefined).length;
    if (ok !== 1) return `${path}: must match exactly one of ${schema.oneOf.length} forms, matches ${ok}`;
  }
  if (schema.type !== undefined) {
    const types = Array.isArray(schema.type) ? schema.type : [schema.type];
    if (!types.some((t) => typeMatches(value, t))) return `${path}: expected ${types.join(' or ')}, got ${typeOf(value)} ${show(value)}`;
  }
  if ('const' in schema && JSON.stringify(value) !== JSON.stringify(schema.const)) return `${path}: must be ${show(schema.const)}, got ${show(value)}`;
  if (schema.enum && !schema.enum.some((e) => JSON.stringify(e) === JSON.stringify(value))) {
    return `${path}: must be one of ${schema.enum.map(show).join(', ')}, got ${show(value)}`;
  }
  if (typeof value === 'number') {
    if (schema.minimum !== undefined && value < schema.minimum) return `${path}: must be ≥ ${schema.minimum}, got ${value}`;
    if (schema.maximum !== undefined && value > schema.maximum) return `${path}: must be ≤ ${schema.maximum}, got ${value}`;
    if (schema.exclusiveMinimum !== undefined && !(value > schema.exclusiveMinimum)) return `${path}: must be > ${schema.exclusiveMinimum}, got ${value}`;
    if (schema.exclusiveMaximum !== undefined && !(value < schema.exclusiveMaximum)) return `${path}: must be < ${schema.exclusiveMaximum}, got ${value}`;
  }
  if (typeof value === 'string') {
    if (schema.minLength !== undefined && value.length < schema.minLength) return `${path}: must have at least ${schema.minLength} characters`;
    if (schema.pattern !== undefined && !new RegExp(schema.pattern).test(value)) return `${path}: ${show(value)} does not match /${schema.pattern}/`;
  }
  if (Array.isArray(value)) {
    if (schema.minItems !== undefined && value.length < schema.minItems) return `${path}: needs at least ${schema.minItems} items`;
    if (schema.maxItems !== undefined && value.length > schema.maxItems) return `${path}: has more than ${schema.maxItems} items`;
    if (schema.uniqueItems) {
      const seen = new Set<string>();
      for (const v of value) {
        const k = JSON.stringify(v);
        if (seen.has(k)) return `${path}: ${show(v)} appears more than once`;
        seen.add(k);
      }
    }
    if (schema.items) {
      for (let i = 0; i < value.length; i++) {
        const e = checkSchema(value[i], schema.items, `${path}[${i}]`, root);
        if (e) return e;
      }
    }
  }
  if (typeOf(value) === 'object') {
    const obj = value as Record<string, unknown>;
    for (const r of schema.required ?? []) if (!(r in obj)) return `${path}: missing required key '${r}'`;
    for (const [k, v] of Object.entries(obj)) {
      const sub = schema.properties?.[k];
      const p = /^[A-Za-z_][A-Za-z0-9_]*$/.test(k) ? `${path}.${k}` : `${path}[${JSON.stringify(k)}]`;
      if (sub) {
        const e = checkSchema(v, sub, p, root);
        if (e) return e;
      } else if (schema.additionalProperties === false) {
        return `${path}: unknown key '${k}'`;
      } else if (typeof schema.additionalProperties === 'object') {
        const e = checkSchema(v, schema.additionalProperties, p, root);
        if (e) return e;
      }
    }
  }
  return undefined;
}
