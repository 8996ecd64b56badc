// Jest runs each test file in its own VM context whose globals (Float32Array, ...) differ from the ones native
// addons such as onnxruntime-node create. Copy the outer realm's typed-array constructors into the sandbox so
// `instanceof Float32Array` holds for ORT outputs.
const { TestEnvironment } = require('jest-environment-node');

const SHARED = ['Float32Array', 'Float64Array', 'Int8Array', 'Int16Array', 'Int32Array', 'Uint8Array',
  'Uint8ClampedArray', 'Uint16Array', 'Uint32Array', 'BigInt64Array', 'BigUint64Array', 'ArrayBuffer',
  'SharedArrayBuffer', 'DataView', 'Buffer'];

class OrtEnvironment extends TestEnvironment {
  constructor(config, context) {
    super(config, context);
    for (const name of SHARED) if (globalThis[name]) this.global[name] = globalThis[name];
  }
}
module.exports = OrtEnvironment;
