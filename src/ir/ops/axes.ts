/** Axis helpers for op specs. */

/** A possibly negative axis counted from the end. */
export function normAxis(a: number, rank: number): number {
  return a < 0 ? a + rank : a;
}

/** The axes from `start` to the last one. */
export function axesFrom(start: number, rank: number): number[] {
  return Array.from({ length: Math.max(0, rank - start) }, (_, i) => start + i);
}
