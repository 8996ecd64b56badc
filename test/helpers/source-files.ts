/** The project's own TypeScript sources, for tests that read code (layer order, registries). */
import * as fs from 'fs';
import * as path from 'path';

export const REPO = path.resolve(__dirname, '../..');

/** Every .ts file under `dir` (recursively). */
export function tsFiles(dir: string, out: string[] = []): string[] {
  for (const f of fs.readdirSync(dir)) {
    const p = path.join(dir, f);
    if (fs.statSync(p).isDirectory()) tsFiles(p, out);
    else if (p.endsWith('.ts')) out.push(p);
  }
  return out;
}

/** src/ and passes/. */
export function sourceFiles(): string[] {
  return [...tsFiles(path.join(REPO, 'src')), ...tsFiles(path.join(REPO, 'passes'))];
}
