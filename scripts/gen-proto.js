#!/usr/bin/env node
// Generates static protobufjs code (JS + .d.ts) for schemas/onnx.proto into src/ir/generated/.
// The output is not committed: `npm run build` regenerates it.
'use strict';
const { execFileSync } = require('child_process');
const fs = require('fs');
const path = require('path');

const root = path.resolve(__dirname, '..');
const outDir = path.join(root, 'src', 'ir', 'generated');
const proto = path.join(root, 'schemas', 'onnx.proto');
const bin = (name) => path.join(root, 'node_modules', 'protobufjs-cli', 'bin', name);

fs.mkdirSync(outDir, { recursive: true });
const js = path.join(outDir, 'onnx.js');
const dts = path.join(outDir, 'onnx.d.ts');
// Skip when the generated files are newer than the schema (keeps rebuilds fast).
const fresh = (f) => fs.existsSync(f) && fs.statSync(f).mtimeMs >= fs.statSync(proto).mtimeMs;
if (fresh(js) && fresh(dts) && !process.argv.includes('--force')) process.exit(0);

execFileSync(process.execPath, [bin('pbjs'), '-t', 'static-module', '-w', 'commonjs', '--no-verify',
  '--no-convert', '--no-delimited', '--no-typeurl', '--no-service', '-o', js, proto], { stdio: 'inherit' });
execFileSync(process.execPath, [bin('pbts'), '-o', dts, js], { stdio: 'inherit' });

// pbts types a decoded message's child fields as plain property interfaces (onnx.X.$Properties), although the
// decoder creates class instances. Retype class members (not the $Properties interfaces) to the classes so that
// TypeScript code can mutate decoded models without casts.
const lines = fs.readFileSync(dts, 'utf8').split('\n');
let inIface = null;
for (let i = 0; i < lines.length; i++) {
  const line = lines[i];
  if (inIface !== null) {
    if (line === inIface + '}') inIface = null;
    continue;
  }
  const m = /^(\s*)interface \$Properties \{/.exec(line);
  if (m) { inIface = m[1]; continue; }
  if (/^\s+[\w$]+\??: /.test(line)) lines[i] = line.replace(/onnx\.([\w.]+?)\.\$Properties/g, 'onnx.$1');
}
fs.writeFileSync(dts, lines.join('\n'));
console.log(`generated ${path.relative(root, js)} and ${path.relative(root, dts)}`);
