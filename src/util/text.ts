/**
 * Text from outside (tensor and node names from a model, config keys and values, paths) made safe for one line of
 * a terminal: control characters are shown escaped, JSON-style (`\n`, `\t`, `\u001b`), so that a name can neither
 * split a one-line message nor send escape sequences to the terminal.
 */

/** C0 and C1 control characters, DEL, line/paragraph separators and bidirectional-text controls. */
const UNSAFE = /[\u0000-\u001f\u007f-\u009f\u2028\u2029\u200e\u200f\u202a-\u202e\u2066-\u2069]/g;

const SHORT: Record<string, string> = { '\n': '\\n', '\r': '\\r', '\t': '\\t', '\b': '\\b', '\f': '\\f' };

/** `text` with every unsafe character escaped (`\n`, `\u001b`); other text is unchanged. */
export function escapeControl(text: string): string {
  return text.replace(UNSAFE, (c) => SHORT[c] ?? `\\u${c.charCodeAt(0).toString(16).padStart(4, '0')}`);
}
