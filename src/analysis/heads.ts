/**
 * What a unit is. Units formed by attention-style mixing (an activation·activation contraction over
 * head_dim, e.g. q·kᵀ) are heads; head_dim is the size of the mixed axis. When the output projection reads
 * more than one head per unit (grouped-query attention: k/v heads repeated for several query heads), the
 * unit is a kv-group: one kv head with its `queriesPerKv` query heads. Otherwise units are neurons when every
 * producer is a fully connected layer (op spec `weighted.unit: 'fc'`: MLP hidden units, SwiGLU gate/up pairs),
 * else channels (convolutions, embedding tables, repeated k/v heads).
 */
import { specOf } from '../ir/ops';
import type { Member, UnitKind } from './types';
import type { State } from './state';

export interface UnitDescription {
  unit: UnitKind;
  unitSize: number;
  info: Record<string, unknown>;
}

/** Describes the units of a group from its spaces, the elements of its first unit and its members. */
export function describeUnits(st: State, spaces: number[], unitElements: number[], size: number, members: Member[]): UnitDescription {
  let headDim = 0;
  const perSpace = new Map<number, number>();
  for (const e of unitElements) {
    const sp = st.spaceOf(e).id;
    perSpace.set(sp, (perSpace.get(sp) ?? 0) + 1);
    headDim = Math.max(headDim, st.mixed.get(e) ?? 0);
  }
  const channels = Math.max(...perSpace.values());
  if (headDim > 0) {
    const readPerUnit = Math.max(0, ...members.map((m) => (m.kind === 'weight' && m.role === 'in' ? m.indices[0].length : 0)));
    const q = readPerUnit > headDim && readPerUnit % headDim === 0 ? readPerUnit / headDim : 1;
    if (q > 1) {
      // A kv-group's heads are one block of the consumer's input; heads spread over several blocks (GQA as a
      // broadcast MatMul on [b, n_kv, n_rep, s, d], k/v declined as shared) are query head r of every kv-group.
      const first = members.find((m) => m.kind === 'weight' && m.role === 'in' && m.indices[0].length === readPerUnit);
      const l = first?.kind === 'weight' ? [...first.indices[0]].sort((a, b) => a - b) : [];
      if (l.length && l[l.length - 1] - l[0] + 1 !== l.length) {
        return { unit: 'head', unitSize: headDim, info: { heads: size, headsPerUnit: q, headDim, queryHeadsWithinKvGroups: true } };
      }
      return { unit: 'kv-group', unitSize: headDim, info: { kvHeads: size, queriesPerKv: q, headDim, queryHeads: size * q } };
    }
    return { unit: 'head', unitSize: headDim, info: { heads: size, headDim } };
  }
  const unit: UnitKind = spaces.every((s) => specOf(st.spaces[s].node)?.weighted?.unit === 'fc') ? 'neuron' : 'channel';
  return { unit, unitSize: channels, info: channels > 1 ? { channelsPerUnit: channels } : {} };
}
