/**
 * The seeded fuzz corpus against the built CLI (bench/fuzz/harness.ts):
 *
 *   node dist/bench/fuzz.js [--cases N] [--seed S] [--only ID,ID...] [--families a,b] [--timeout MS]
 *                           [--concurrency K] [--no-determinism] [--out DIR]
 *
 * Prints a table of outcome classes per generator family, then every failing case with a command that reproduces
 * it; failing cases stay in DIR/cases/<id>/ (work/ = the command's folder, restored to its state before the run),
 * everything else is removed. Exit 1 when any case failed. `--only 7-12` regenerates case 12 of seed 7 alone (the
 * jest fuzz test prints case ids in this form).
 */
import * as fs from 'fs';
import * as path from 'path';
import { createRun, failureReport, FAMILIES, runCorpus, summaryTable, tempRoot, type Family } from './fuzz/harness';

function arg(name: string): string | undefined {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 ? process.argv[i + 1] : undefined;
}

async function main(): Promise<void> {
  const cases = Number(arg('cases') ?? 2000);
  let seed = Number(arg('seed') ?? 1);
  const only = arg('only');
  let indices = Array.from({ length: cases }, (_, i) => i);
  if (only) {
    const ids = only.split(',').map((s) => s.trim().split('-').map(Number));
    seed = ids[0][0];
    if (ids.some(([s]) => s !== seed)) throw new Error('--only: all case ids must have the same seed');
    indices = ids.map(([, i]) => i);
  }
  const families = arg('families')?.split(',') as Family[] | undefined;
  for (const f of families ?? []) if (!FAMILIES.includes(f)) throw new Error(`unknown family '${f}' (known: ${FAMILIES.join(', ')})`);
  const root = arg('out') ? path.resolve(arg('out')!) : tempRoot();
  const t0 = Date.now();
  const ctx = createRun({
    seed,
    root,
    timeoutMs: Number(arg('timeout') ?? 30_000),
    concurrency: Number(arg('concurrency') ?? 2),
    keepFailures: true,
    determinism: !process.argv.includes('--no-determinism'),
    families,
    onOutcome: (o, done, total) => {
      const tag = o.findings.length ? o.findings.map((f) => f.cls).join(',') : 'ok';
      process.stderr.write(`\r${done}/${total} ${o.case.id} ${o.case.family}: ${tag}`.padEnd(70).slice(0, 100) + (o.findings.length ? '\n' : ''));
    },
  });
  const outcomes = await runCorpus(ctx, indices);
  process.stderr.write('\n');
  const failures = failureReport(outcomes);
  console.log(`fuzz: seed ${seed}, ${outcomes.length} cases in ${((Date.now() - t0) / 1000).toFixed(0)} s`);
  console.log(summaryTable(outcomes));
  if (failures.length) {
    console.log(`\n${failures.length} failures (case folders kept in ${path.join(root, 'cases')}):`);
    for (const f of failures) console.log(f);
  }
  // Nothing else of the run is kept.
  fs.rmSync(path.join(root, 'plans'), { recursive: true, force: true });
  if (!failures.length) fs.rmSync(root, { recursive: true, force: true });
  process.exitCode = failures.length ? 1 : 0;
}

main().catch((e) => {
  console.error(e);
  process.exitCode = 2;
});
