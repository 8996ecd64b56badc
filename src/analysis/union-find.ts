/** Union-find over dense integer ids (path halving, union by size), growing on demand. */
export class UnionFind {
  private parent: Int32Array = new Int32Array(64);
  private size: Int32Array = new Int32Array(64);
  private n = 0;

  get count(): number { return this.n; }

  /** Adds `k` new singleton ids and returns the first. */
  add(k: number): number {
    const first = this.n;
    if (this.n + k > this.parent.length) {
      let cap = this.parent.length;
      while (cap < this.n + k) cap *= 2;
      const p = new Int32Array(cap);
      p.set(this.parent.subarray(0, this.n));
      const s = new Int32Array(cap);
      s.set(this.size.subarray(0, this.n));
      this.parent = p;
      this.size = s;
    }
    for (let i = 0; i < k; i++) {
      this.parent[first + i] = first + i;
      this.size[first + i] = 1;
    }
    this.n += k;
    return first;
  }

  find(x: number): number {
    const p = this.parent;
    while (p[x] !== x) {
      p[x] = p[p[x]];
      x = p[x];
    }
    return x;
  }

  /** Merges the sets of a and b; returns true when they were different. */
  union(a: number, b: number): boolean {
    let ra = this.find(a);
    let rb = this.find(b);
    if (ra === rb) return false;
    if (this.size[ra] < this.size[rb]) [ra, rb] = [rb, ra];
    this.parent[rb] = ra;
    this.size[ra] += this.size[rb];
    return true;
  }
}
