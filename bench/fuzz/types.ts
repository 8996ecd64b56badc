/** The fuzz suite's data: a generated case (files + command line) and the classified outcome of running it. */

/**
 * A file of a case, at `path` relative to the case folder. The command runs in `work/`; `outside/` holds files the
 * command must never read into an output nor change (a secret planted by the harness, victims).
 * Roles: `input` must be unchanged after the run (whatever the exit code); `existing` may be replaced by a
 * successful run (a pre-existing OUT) but must be unchanged after a failing one; `outside` must be unchanged.
 */
export interface CaseFile {
  path: string;
  kind: 'file' | 'symlink' | 'fifo' | 'dir' | 'chardev';
  data?: Uint8Array | string;
  /** symlink target (as written in the link). */
  target?: string;
  /** chardev major, minor (only harmless ones: 1,3 = null, 1,5 = zero). */
  dev?: [number, number];
  role: 'input' | 'existing' | 'outside';
}

export interface FuzzCase {
  /** `<seed>-<index>` */
  id: string;
  seed: number;
  index: number;
  family: string;
  /** What was generated, e.g. `struct tiny_cnn: initializer dim -1; prune --ratio 0.3`. */
  desc: string;
  files: CaseFile[];
  /** CLI arguments (paths relative to work/). */
  args: string[];
  /**
   * The model input (relative to work/), when the command reads one that onnxruntime can compare with: a
   * successful run's output is checked against it (finite where it is finite).
   */
  model?: string;
  /** Outputs of a successful run may differ between runs (e.g. the case embeds its own absolute path). */
  nondeterministicOk?: boolean;
  /** File size limit (bytes) for the run (RLIMIT_FSIZE: writes past it fail with EFBIG). */
  fsize?: number;
  /** Paths (relative to the case folder) the case itself changes (a --pass module swapping files): not compared. */
  ignore?: string[];
  /** The command is allowed to write its OUT after exit 3 (--keep-invalid). */
  keepInvalid?: string[];
}

export const CLASSES = ['internal', 'hang', 'memory', 'leftover', 'escape', 'unloadable', 'nondeterministic', 'nonfinite'] as const;
export type FailureClass = (typeof CLASSES)[number];

export interface Finding {
  cls: FailureClass;
  detail: string;
}

export interface Outcome {
  case: FuzzCase;
  /** Exit code, or null when killed by a signal. */
  code: number | null;
  signal?: string;
  ms: number;
  /** Peak resident memory of the CLI process in bytes (0 when it could not be measured). */
  peakBytes: number;
  stdout: string;
  stderr: string;
  findings: Finding[];
  /** Command line to reproduce (cd into the case's work folder first). */
  command: string;
}
