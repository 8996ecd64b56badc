#!/usr/bin/env node
// Copies the generated protobuf JS (not compiled by tsc) next to the compiled output and marks the CLI executable.
'use strict';
const fs = require('fs');
const path = require('path');
const root = path.resolve(__dirname, '..');
const dest = path.join(root, 'dist', 'src', 'ir', 'generated');
fs.mkdirSync(dest, { recursive: true });
for (const f of ['onnx.js', 'onnx.d.ts']) fs.copyFileSync(path.join(root, 'src', 'ir', 'generated', f), path.join(dest, f));
const cli = path.join(root, 'dist', 'src', 'cli', 'main.js');
if (fs.existsSync(cli)) fs.chmodSync(cli, 0o755);
