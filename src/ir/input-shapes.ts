/**
 * Concrete input shapes for a model with symbolic dims, and their one-line form for messages. Verification,
 * calibration and shape probing all size symbolic dims this way.
 */
import { UserError } from './errors';
import { valueTypeOf } from './graph';
import type { Model } from './model';

/**
 * Input shapes with every symbolic dim set the way verification sets it: a named dim first seen on axis 0 →
 * `batch`, other named dims → `seq`, unnamed dims → `seq` (so that unnamed batch dims of several inputs agree).
 * Named dims in `dims` keep their value.
 */
export function uniformInputShapes(model: Model, batch: number, seq: number, dims: Record<string, number> = {}): Record<string, number[]> {
  const named = new Map<string, number>(Object.entries(dims));
  const out: Record<string, number[]> = {};
  for (const vi of model.graph.realInputs) {
    const t = valueTypeOf(vi);
    if (!t?.shape) throw new UserError(`input '${vi.name}' has no shape`);
    out[vi.name ?? ''] = t.shape.map((d, axis) => {
      if (typeof d === 'number') return d;
      if (typeof d !== 'string' || d === '') return seq;
      if (!named.has(d)) named.set(d, axis === 0 ? batch : seq);
      return named.get(d)!;
    });
  }
  return out;
}

/** `name[a,b], name2[c]` for messages. */
export function formatInputShapes(shapes: Record<string, number[]>): string {
  return Object.entries(shapes).map(([k, v]) => `${k}[${v.join(',')}]`).join(' ');
}
