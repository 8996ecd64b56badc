/**
 * The JSON form of a GroupAnalysis (`onnx-prune groups MODEL --json`, schemas/groups.schema.json).
 *
 * It is the GroupAnalysis itself except that a weight (or statistics) member's `indices` (one list of axis positions per
 * unit, possibly long: a Flatten consumer has C·H·W columns) is written as `ranges`: per unit, a list of
 * half-open [start, end) intervals covering exactly the same positions in the same (ascending) order.
 * `fromGroupsJson` restores the explicit form.
 */
import type { Block, DeclinedGroup, Group, GroupAnalysis, Member, StatMember, WeightMember } from './types';

export type Range = [number, number];

export interface WeightMemberJson extends Omit<WeightMember, 'indices'> {
  /** ranges[u] = positions of unit u along `axis`, as half-open [start, end) intervals. */
  ranges: Range[][];
}

export interface StatMemberJson extends Omit<StatMember, 'indices'> {
  ranges: Range[][];
}

export type MemberJson = WeightMemberJson | StatMemberJson | Exclude<Member, WeightMember | StatMember>;

export interface GroupJson extends Omit<Group, 'members'> {
  members: MemberJson[];
}

export interface GroupsJson {
  groups: GroupJson[];
  declined: DeclinedGroup[];
  blocks?: Block[];
  unaccounted?: GroupAnalysis['unaccounted'];
  summary: GroupAnalysis['summary'] & { prunableFraction: number };
}

export function toRanges(positions: number[]): Range[] {
  const out: Range[] = [];
  for (const p of positions) {
    const last = out[out.length - 1];
    if (last && last[1] === p) last[1] = p + 1;
    else out.push([p, p + 1]);
  }
  return out;
}

export function fromRanges(ranges: Range[]): number[] {
  const out: number[] = [];
  for (const [s, e] of ranges) for (let i = s; i < e; i++) out.push(i);
  return out;
}

export function toGroupsJson(a: GroupAnalysis): GroupsJson {
  return {
    groups: a.groups.map((g) => ({
      ...g,
      members: g.members.map((m): MemberJson => {
        if (m.kind !== 'weight' && m.kind !== 'stat') return m;
        const { indices, ...rest } = m;
        return { ...rest, ranges: indices.map(toRanges) } as MemberJson;
      }),
    })),
    declined: a.declined,
    ...(a.blocks ? { blocks: a.blocks } : {}),
    ...(a.unaccounted ? { unaccounted: a.unaccounted } : {}),
    summary: { ...a.summary, prunableFraction: a.summary.totalParams ? a.summary.prunableParams / a.summary.totalParams : 0 },
  };
}

export function fromGroupsJson(j: GroupsJson): GroupAnalysis {
  const { prunableFraction: _unused, ...summary } = j.summary;
  return {
    groups: j.groups.map((g) => ({
      ...g,
      members: g.members.map((m): Member => {
        if (m.kind !== 'weight' && m.kind !== 'stat') return m;
        const { ranges, ...rest } = m;
        return { ...rest, indices: ranges.map(fromRanges) } as Member;
      }),
    })),
    declined: j.declined,
    ...(j.blocks ? { blocks: j.blocks } : {}),
    ...(j.unaccounted ? { unaccounted: j.unaccounted } : {}),
    summary,
  };
}
