/**
 * An error caused by the user's input (bad file, bad option, impossible budget). The CLI prints its message
 * on one line and exits with code 1, never with a stack trace. Anything else is an internal error (exit 2).
 */
export class UserError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'UserError';
  }
}

export function isUserError(e: unknown): e is UserError {
  return e instanceof Error && e.name === 'UserError';
}
