#!/usr/bin/env node
// Writes schemas/config.schema.json from the option registry (src/pipeline/options.ts), as compiled by
// `npm run build`. test/options.test.ts fails when the committed file differs from the registry.
'use strict';
const fs = require('fs');
const path = require('path');
const root = path.resolve(__dirname, '..');
const { configSchema } = require(path.join(root, 'dist', 'src', 'pipeline', 'options.js'));
fs.writeFileSync(path.join(root, 'schemas', 'config.schema.json'), `${JSON.stringify(configSchema(), null, 2)}\n`);
