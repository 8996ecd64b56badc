/** A one-line progress bar on stderr, shown only when stderr is a TTY and not quiet. */
export interface Progress {
  tick(done: number): void;
  done(): void;
}

export function progressBar(label: string, total: number, opts: { quiet?: boolean; stream?: NodeJS.WriteStream } = {}): Progress {
  const stream = opts.stream ?? process.stderr;
  const enabled = !opts.quiet && !!stream.isTTY && total > 1;
  const width = 30;
  let last = -1;
  return {
    tick(done: number) {
      if (!enabled) return;
      const filled = Math.round((done / total) * width);
      if (filled === last && done !== total) return;
      last = filled;
      stream.write(`\r${label} [${'#'.repeat(filled)}${' '.repeat(width - filled)}] ${done}/${total}`);
    },
    done() {
      if (enabled) stream.write(`\r${' '.repeat(label.length + width + 16)}\r`);
    },
  };
}
