/** onnxruntime error messages, shortened for one-line reports. */

/**
 * The first line of an ORT error without its boilerplate: "Non-zero status code returned while running Add node.
 * Name:'n' Status Message: /path/file.h:563 void f() cond was false. What went wrong" → "Add 'n': What went wrong".
 */
export function ortErrorSummary(e: unknown): string {
  let msg = String((e as Error)?.message ?? e).split('\n')[0].trim();
  const m = /running (\S+) node\. Name:'([^']*)' Status Message: (.*)$/.exec(msg);
  if (m) msg = `${m[1]} '${m[2]}': ${m[3]}`;
  // Source locations and the failed condition (ORT_ENFORCE) say nothing to a user.
  msg = msg.replace(/\S+\.(?:h|cc|cpp):\d+ .*? was false\.\s*/, '').replace(/\S+\.(?:h|cc|cpp):\d+ [^(]*\([^)]*\)\s*/, '');
  return msg.length > 240 ? `${msg.slice(0, 237)}...` : msg;
}
