/**
 * The layer order of the source folders (README "Layout"): imports point down only, so folders form no cycle.
 *
 *   src/util ← src/ir ← src/ort ← src/analysis ← src/score, src/allocate ← src/prune ← src/verify ← src/pipeline
 *   ← passes/ ← src/index.ts ← src/cli
 *
 * Only src/ort imports onnxruntime-node; nothing under src/ir or src/analysis reaches it, even through other files.
 * Type-only imports count too: they couple folders as much as value imports do.
 */
import * as fs from 'fs';
import * as path from 'path';
import * as ts from 'typescript';
import { sourceFiles } from './helpers/source-files';

const ROOT = path.resolve(__dirname, '..');

/** Layer rank by folder; folders of equal rank must not import each other. */
const RANK: Record<string, number> = {
  schemas: -1, // JSON schemas (data)
  'src/util': 0,
  'src/ir': 1,
  'src/ort': 2,
  'src/analysis': 3,
  'src/score': 4,
  'src/allocate': 4,
  'src/prune': 5,
  'src/verify': 6,
  'src/pipeline': 7,
  passes: 8,
  'src/index.ts': 9,
  'src/cli': 10,
};


function folderOf(file: string): string {
  const rel = path.relative(ROOT, file).split(path.sep);
  if (rel[0] === 'passes') return 'passes';
  if (rel[0] === 'src') return rel.length === 2 ? `src/${rel[1]}` : `src/${rel[1]}`;
  return rel[0];
}

/** Imports of a file: resolved project files, and bare module names. */
function importsOf(file: string): { files: string[]; modules: string[] } {
  const info = ts.preProcessFile(fs.readFileSync(file, 'utf8'), true, true);
  const files: string[] = [];
  const modules: string[] = [];
  for (const ref of info.importedFiles) {
    const spec = ref.fileName;
    if (!spec.startsWith('.')) {
      modules.push(spec);
      continue;
    }
    const base = path.resolve(path.dirname(file), spec);
    const hit = [`${base}.ts`, `${base}.js`, path.join(base, 'index.ts'), base].find((p) => fs.existsSync(p) && fs.statSync(p).isFile());
    if (!hit) throw new Error(`${path.relative(ROOT, file)}: cannot resolve '${spec}'`);
    files.push(hit);
  }
  return { files, modules };
}

const FILES = sourceFiles();
const IMPORTS = new Map(FILES.map((f) => [f, importsOf(f)]));

test('every source file is in a layer', () => {
  const unknown = [...new Set(FILES.map(folderOf))].filter((f) => RANK[f] === undefined);
  expect(unknown).toEqual([]);
});

test('imports point down the layers (no folder imports a folder above it or beside it)', () => {
  const bad: string[] = [];
  for (const [file, { files }] of IMPORTS) {
    const from = folderOf(file);
    for (const target of files) {
      const to = folderOf(target);
      if (to === from) continue;
      const ok = RANK[to] !== undefined && RANK[to] < RANK[from];
      if (!ok) bad.push(`${path.relative(ROOT, file)} (${from}) imports ${path.relative(ROOT, target)} (${to})`);
    }
  }
  expect(bad).toEqual([]);
});

test('folders form no import cycle', () => {
  const edges = new Map<string, Set<string>>();
  for (const [file, { files }] of IMPORTS) {
    const from = folderOf(file);
    for (const t of files) {
      const to = folderOf(t);
      if (to !== from) (edges.get(from) ?? edges.set(from, new Set()).get(from)!).add(to);
    }
  }
  // Depth-first search for a back edge.
  const state = new Map<string, 1 | 2>();
  const cycles: string[] = [];
  const visit = (n: string, trail: string[]) => {
    state.set(n, 1);
    for (const m of edges.get(n) ?? []) {
      if (state.get(m) === 1) cycles.push([...trail, n, m].join(' → '));
      else if (!state.has(m)) visit(m, [...trail, n]);
    }
    state.set(n, 2);
  };
  for (const n of edges.keys()) if (!state.has(n)) visit(n, []);
  expect(cycles).toEqual([]);
});

test('only src/ort imports onnxruntime-node, and src/ir and src/analysis do not reach it', () => {
  const direct = FILES.filter((f) => IMPORTS.get(f)!.modules.some((m) => m === 'onnxruntime-node' || m.startsWith('onnxruntime-node/')));
  expect(direct.map(folderOf).filter((f) => f !== 'src/ort')).toEqual([]);
  expect(direct.length).toBeGreaterThan(0);
  const reaches = new Map<string, boolean>();
  const reachesOrt = (file: string): boolean => {
    // Iterative closure over the project's own imports.
    if (reaches.has(file)) return reaches.get(file)!;
    const seen = new Set([file]);
    const stack = [file];
    let hit = false;
    while (stack.length && !hit) {
      const f = stack.pop()!;
      if (direct.includes(f)) hit = true;
      for (const t of IMPORTS.get(f)?.files ?? []) if (!seen.has(t)) { seen.add(t); stack.push(t); }
    }
    reaches.set(file, hit);
    return hit;
  };
  const bad = FILES.filter((f) => ['src/ir', 'src/analysis', 'src/util'].includes(folderOf(f)) && reachesOrt(f));
  expect(bad.map((f) => path.relative(ROOT, f))).toEqual([]);
});

test('src and passes import nothing from test/, bench/ or models/', () => {
  const bad: string[] = [];
  for (const [file, { files }] of IMPORTS) {
    for (const t of files) if (!['src', 'passes', 'schemas'].includes(path.relative(ROOT, t).split(path.sep)[0])) bad.push(`${path.relative(ROOT, file)} → ${path.relative(ROOT, t)}`);
  }
  expect(bad).toEqual([]);
});
