/**
 * The project's own seeded fuzz suite (bench/fuzz/): 200 generated hostile cases (20 per family) (mutated models,
 * external data escapes, bad paths, options, config, calibration, plans, pass modules, deep graphs) run through
 * the built CLI, two at a time. Each must end as exit 0 with outputs onnxruntime loads (byte-identical on a second
 * run), or exit 1/3 with one error line and nothing written: zero internal errors, hangs, memory over budget,
 * leftovers, escapes, unloadable, nondeterministic or non-finite outputs.
 *
 * A failure prints the case id, class, detail, command line and first stderr line; `node dist/bench/fuzz.js
 * --only <id>` regenerates the case and keeps its folder. FUZZ_CASES / FUZZ_SEED change the corpus.
 */
import { cleanup, createRun, failureReport, runCorpus, summaryTable, tempRoot, type Outcome } from '../bench/fuzz/harness';
import { requireBuiltCli } from './helpers/cli';

const CASES = Number(process.env.FUZZ_CASES ?? 200);
const SEED = Number(process.env.FUZZ_SEED ?? 1);

test(`fuzz: ${CASES} seeded cases (seed ${SEED}) end cleanly`, async () => {
  const cli = requireBuiltCli();
  const ctx = createRun({ seed: SEED, root: tempRoot(), cli, concurrency: 2, timeoutMs: 20_000 });
  let outcomes: Outcome[];
  try {
    outcomes = await runCorpus(ctx, Array.from({ length: CASES }, (_, i) => i));
  } finally {
    cleanup(ctx);
  }
  const failures = failureReport(outcomes);
  process.stdout.write(`fuzz summary (seed ${SEED}, ${outcomes.length} cases, ${failures.length} failures):\n${summaryTable(outcomes)}\n`);
  // Each failure: [class] case id (family): detail, what was generated, exit code and first stderr line, command.
  expect(failures).toEqual([]);
}, 60 * 60_000);
